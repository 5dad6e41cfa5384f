"""Writing files so that a reader never sees half of one: write beside, then rename into place."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, mode: int | None = None) -> Path:
    """Write `data` to `path` through a temp file in the same directory and one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # (the light modules' imports stay few: every command starts with them)

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_if_changed(path: Path, content: str, mode: int = 0o644) -> bool:
    """Write `content` unless the file already has it (keeps make/cmake from rebuilding); True if written."""
    try:
        if Path(path).read_text() == content:
            return False
    except OSError:
        pass
    atomic_write(path, content, mode)
    return True


def sha256_file(path: Path) -> str:
    """The file's sha256, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_sha256(text: str | None) -> bool:
    return bool(text) and len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def file_identity(st: os.stat_result) -> str:
    """A file's identity as a stat tells it (device, inode, size, mtime, mode): the same while nobody
    writes to it, which a cache of facts about its bytes can trust."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_mode}"


def walk_relative(root: Path | str):
    """os.walk(root) with each directory's path relative to `root` ("" for root itself), by slicing
    rather than os.path.relpath (which costs more than the walk on a release's thousand files)."""
    cut = len(os.path.join(str(root), ""))
    for dirpath, dirnames, filenames in os.walk(root):
        yield dirpath, dirpath[cut:], dirnames, filenames


def return_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim): after a tarball's
    tens of MB of buffers, so the process's footprint is not its high-water mark. No-op elsewhere."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # (not glibc)
        ctypes.CDLL(None).malloc_trim(0)


def same_bytes(a: str | Path, b: str | Path, chunk: int = 1 << 20) -> bool:
    """Whether two files hold the same bytes, compared a MiB at a time (filecmp reads 8 KiB at a time:
    ~4x slower on a release's ERTS binaries)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


@contextlib.contextmanager
def when_written(path: Path, callback: Callable[[], None], poll: float = 0.02) -> Iterator[None]:
    """Call `callback` (in a thread of its own, once) as soon as `path` is written after the block
    starts, if that happens before it ends; the block's end waits for a callback under way."""
    done = threading.Event()
    since = time.time()

    def watch() -> None:
        while not done.wait(poll):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime >= since:
                    callback()
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
