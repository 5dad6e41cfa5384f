"""Progress bars and step lines: shown on a terminal, silent otherwise or when quiet."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    return not _quiet and sys.stderr.isatty()


def bar(total: int | None, desc: str, unit: str = "B") -> tqdm:
    """A tqdm bar on stderr; a disabled one when not interactive (tqdm is imported here: it is slow to load)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024 if unit == "B" else 1000,
        disable=not enabled(),
        leave=False,
        file=sys.stderr,
    )


def note(message: str) -> None:
    """A one-line message on stderr that the user should see (a warning, a caveat); only -q
    silences it."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def status(message: str) -> None:
    """A progress line: shown on a terminal, silent when not a TTY or quiet."""
    if enabled():
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """Print `label ...` then `label: done in 1.2s` (or failed) on a terminal. An exception with a
    `step_end` attribute names how the step ended instead of "failed" (e.g. "stopped")."""
    start = time.monotonic()
    status(f"{label} ...")
    try:
        yield
    except BaseException as e:
        status(f"{label}: {getattr(e, 'step_end', 'failed')} after {time.monotonic() - start:.1f}s")
        raise
    status(f"{label}: done in {time.monotonic() - start:.1f}s")
