"""Native-file facts cached by content: bytes parsed once (by any build, target or xrel process) are
not parsed again. The key is the file's sha256 and a fingerprint of the parser's own source, so a
changed file or a changed parser always parses afresh. Only facts are cached; every rule of
check.py still runs on them each time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import json
import threading
from pathlib import Path

AREA = "inspected"
_MEMO: dict[str, dict] = {}  # key -> facts, this process
_LOCK = threading.Lock()


@functools.cache
def parser_fingerprint() -> str:
    """sha256 (short) of binaries.py's source: a new parser never sees an old parser's facts."""
    origin = importlib.util.find_spec("xrel.inspection.binaries").origin
    return hashlib.sha256(Path(origin).read_bytes()).hexdigest()[:16]


def content_key(path: Path) -> str:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return f"{parser_fingerprint()}-{digest}"


def _entry(key: str) -> Path:
    from xrel.storage import cache

    return cache.area(AREA) / key[17:19] / f"{key}.json"


def _load(key: str) -> dict | None:
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
    try:
        facts = json.loads(_entry(key).read_text())
    except (OSError, ValueError):
        return None
    with _LOCK:
        _MEMO[key] = facts
    return facts


def _store(key: str, facts: dict) -> None:
    from xrel.storage.files import atomic_write

    with _LOCK:
        _MEMO[key] = facts
    with contextlib.suppress(OSError):  # a read-only cache: the facts are only kept for this process
        atomic_write(_entry(key), json.dumps(facts, sort_keys=True))


def read(path: Path):
    """binaries.read(path), from the cache when these bytes were parsed before (a file that is not
    native or is corrupt raises ValueError each time: such files are not cached)."""
    from xrel.inspection import binaries

    key = content_key(path)
    facts = _load(key)
    if facts is None:
        facts = dataclasses.asdict(binaries.read(path))
        _store(key, facts)
    return binaries.BinaryInfo(**{**facts, "path": str(path), "needed": list(facts["needed"])})
