"""Inter-process file locks: flock(2) where the OS has it (Linux, macOS), filelock elsewhere.

filelock takes ~13 ms to import, paid by every `xrel build` for one lock; flock is what filelock's
Unix lock calls anyway. A lock is held by an open file description: released when the holder
closes it or dies, never left behind by a killed process.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

POLL = 0.05  # seconds between tries while another process holds the lock


class LockTimeout(Exception):
    """The lock stayed held by another process for the whole timeout."""


@contextlib.contextmanager
def hold(path: Path | str, timeout: float = 3600) -> Iterator[None]:
    """Hold the exclusive lock of `path` (created if missing), waiting up to `timeout` seconds
    (0: one try); LockTimeout when it stays taken."""
    try:
        import fcntl
    except ImportError:  # not POSIX: filelock's portable lock
        with _portable(path, timeout):
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(str(path)) from None
                time.sleep(POLL)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _portable(path: Path | str, timeout: float) -> Iterator[None]:
    import filelock

    try:
        lock = filelock.FileLock(str(path), timeout=timeout)
        lock.acquire()
    except filelock.Timeout:
        raise LockTimeout(str(path)) from None
    try:
        yield
    finally:
        lock.release()
