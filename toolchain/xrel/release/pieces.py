"""Compressed tarball pieces of big members (ERTS binaries, big NIFs and libraries) kept in the cache
across xrel runs: a clean build for a target whose runtime was packed before compresses only what is
new. A piece's key names its bytes and its deflate window (tarball._keys), so a kept piece is exactly
what compressing again would give."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

AREA = "tarball-pieces"
MIN_MEMBER = 1 << 20  # members this big: the runtime's binaries, seldom the project's own code
LIMIT = 512 << 20  # the area's size; the least recently used pieces go first


def _area() -> Path:
    from xrel.storage import cache

    return cache.area(AREA)


def lookup(keys: list[str]) -> dict[str, bytes]:
    """The kept pieces among `keys` (each one used is marked as used now)."""
    found, area = {}, _area()
    for key in keys:
        path = area / key
        with contextlib.suppress(OSError):
            found[key] = path.read_bytes()
            os.utime(path)
    return found


def keep(pieces: dict[str, bytes]) -> None:
    """Keep these pieces (key -> compressed bytes); when any was new, trim the area to LIMIT."""
    from xrel.storage.files import atomic_write

    area, added = _area(), False
    for key, data in pieces.items():
        if not (area / key).is_file():
            with contextlib.suppress(OSError):
                atomic_write(area / key, data)
                added = True
    if added:  # (a scan of the whole area: not on every tarball whose pieces were all kept already)
        _trim(area)


def _trim(area: Path) -> None:
    entries = []
    for entry in os.scandir(area):
        with contextlib.suppress(OSError):
            st = entry.stat()
            entries.append((st.st_mtime, st.st_size, entry.path))
    total = sum(size for _t, size, _p in entries)
    for _mtime, size, path in sorted(entries):
        if total <= LIMIT:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            total -= size
