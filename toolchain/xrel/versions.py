"""Dotted version numbers (OTP, ERTS, glibc, macOS): parsed by `packaging`, compared one way."""

from __future__ import annotations

import functools

from packaging.version import InvalidVersion, Version


@functools.lru_cache(maxsize=4096)
def release(version: str) -> tuple[int, ...]:
    """The numbers of a dotted version as written: `27.3.0` -> (27, 3, 0). ValueError if not one."""
    try:
        return Version(version).release
    except InvalidVersion:
        raise ValueError(f"'{version}' is not a version number") from None


def version_key(version: str) -> tuple[int, ...]:
    """The comparable form of a dotted version: trailing zeros do not count (11.0.0 == 11.0 == 11)."""
    parts = release(version)
    end = len(parts)
    while end and parts[end - 1] == 0:
        end -= 1
    return parts[:end]


def release_order(version: str) -> tuple[int, Version]:
    """A sort key for a project's release versions (SemVer as PEP 440 reads it); unparsable ones sort first."""
    try:
        return 1, Version(version)
    except InvalidVersion:
        return 0, Version("0")
