"""OTP version requests ("27", "27.3", "OTP-27.3.4.1") and matching against what sources offer."""

from __future__ import annotations

import re

from xrel import recipes
from xrel.errors import UsageError
from xrel.versions import release, version_key

_REQUEST = re.compile(r"^(?:otp-)?(\d+(?:\.\d+){0,4})$", re.IGNORECASE)

_RELEASE_TAG = re.compile(r"^OTP-(\d+(?:\.\d+)*)$")


def tag_version(ref: str) -> str | None:
    """`OTP-27.3.4.1` -> `27.3.4.1`; None for branches (maint, master) and pre-releases (-rc1)."""
    m = _RELEASE_TAG.match(ref.strip())
    return m.group(1) if m else None


def parse_request(text: str | int) -> tuple[int, ...]:
    """`27`, `27.3`, `27.3.4.1` or `OTP-27.3.4.1` as a tuple prefix; UsageError otherwise."""
    m = _REQUEST.match(str(text).strip())
    if not m:
        raise UsageError(f"'{text}' is not an OTP version", "write e.g. 27, 27.3 or OTP-27.3.4.1")
    return release(m.group(1))


def matches(request: tuple[int, ...], version: str) -> bool:
    return release(version)[: len(request)] == request


def best(request: tuple[int, ...], versions: list[str]) -> str | None:
    """The newest version matching the request."""
    found = [v for v in versions if matches(request, v)]
    return max(found, key=version_key) if found else None


def nearest(request: tuple[int, ...], versions: list[str], n: int = 5) -> list[str]:
    """The versions closest to the request (same major first, then by distance), newest first."""

    def distance(v: str) -> tuple:
        k = release(v)
        padded = request + (0,) * (len(k) - len(request))
        return (abs(k[0] - request[0]), tuple(abs(a - b) for a, b in zip(k, padded)))

    ranked = sorted(set(versions), key=distance)[:n]
    return sorted(ranked, key=version_key, reverse=True)


def nif_version(otp_major: int) -> str:
    """The NIF version of an OTP major (recipes/compat.toml); beyond the table, the nearest major below it."""
    known = recipes.compat().nif_versions
    below = [major for major in known if major <= otp_major]
    return known[max(below)] if below else known[min(known)]
