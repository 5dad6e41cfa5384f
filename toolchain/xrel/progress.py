"""Progress bars and step lines: shown on a terminal, silent otherwise or when quiet."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

from tqdm import tqdm

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    return not _quiet and sys.stderr.isatty()


def bar(total: int | None, desc: str, unit: str = "B") -> tqdm:
    """A tqdm bar on stderr; a disabled one when not interactive."""
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
    """A one-line status message on stderr (suppressed when quiet)."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """Print `label ...` then `label: done in 1.2s` (or failed) when not quiet."""
    start = time.monotonic()
    if enabled():
        print(f"{label} ...", file=sys.stderr, flush=True)
    try:
        yield
    except BaseException:
        note(f"{label}: failed after {time.monotonic() - start:.1f}s")
        raise
    note(f"{label}: done in {time.monotonic() - start:.1f}s")
