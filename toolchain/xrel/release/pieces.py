"""Compressed tarball pieces kept for later tarballs: the previous tarball at the same place, the last
tarball of the same release and target anywhere (a clean build into a new output dir), and the big
members' pieces (ERTS binaries, big NIFs and libraries) of every tarball, kept in the cache across
xrel runs. A piece's key names its bytes and its deflate window (tarball._keys), so a kept piece is
exactly what compressing again would give."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

AREA = "tarball-pieces"
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # a tarball's: no name, mtime 0, OS unknown
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


def previous(dest: Path, record: Path) -> tuple[dict, bytes]:
    """The record of the tarball at `dest` and its bytes, when both are there and agree."""
    try:
        last, blob = json.loads(record.read_text()), dest.read_bytes()
        if not isinstance(last, dict) or hashlib.sha256(blob).hexdigest() != last.get("sha256"):
            return {}, b""
        return last, blob
    except (OSError, ValueError):
        return {}, b""


def of_tarball(last: dict, blob: bytes) -> dict[str, bytes]:
    """key -> compressed bytes of every piece of a tarball (they follow its 10-byte gzip header)."""
    known, offset = {}, len(GZIP_HEADER)
    for key, length in last.get("pieces", []):
        known[key], offset = blob[offset:offset + length], offset + length
    return known


def last_in_slot(slot: str) -> tuple[Path, Path]:
    """Where the last tarball of `slot` (a release and target) and its record are kept."""
    safe = slot.replace("/", "_")
    return _area() / f"last-{safe}.tar.gz", _area() / f"last-{safe}.tar.gz.content"


def keep_in_slot(slot: str, tarball: Path, record: Path) -> None:
    """Keep `tarball` and its record as the last of `slot`: hard links, each put in place by a rename
    (a reader who sees a record and a tarball that disagree ignores both)."""
    for source, kept in zip((tarball, record), last_in_slot(slot)):
        tmp = kept.with_name(f".{kept.name}.{os.getpid()}.link")
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
            os.link(source, tmp)
            os.replace(tmp, kept)
