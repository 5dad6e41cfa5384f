"""What every runtime source implements, and the source registry."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from xrel import recipes
from xrel.errors import UsageError, VerificationError
from xrel.targets import Target

METADATA = "xrel-runtime.json"  # in every runtime's root: what it is (Runtime.meta)


@dataclass(frozen=True)
class Offer:
    """One runtime a source can provide for a target."""

    source: str
    target: str
    version: str  # full OTP version, e.g. 27.3.4.1
    url: str | None = None
    sha256: str | None = None
    note: str = ""  # e.g. "needs glibc >= 2.38 at run time"
    details: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class FetchOptions:
    offline: bool = False
    sha256: str | None = None  # a pin given by the user
    location: str | None = None  # a path or URL, for the local/url source
    request: tuple[int, ...] | None = None  # the OTP version asked; sources may skip what cannot match
    revision: str | None = None  # an exact package revision (a lock's Debian version) to offer when listed
    without_apps: tuple[str, ...] = ()  # the build source: OTP applications to leave out


def expected_sha256(offer: Offer, given: str | None, index: str, what: str, why_missing: str = "") -> str:
    """The sha256 a download must have: the one `index` publishes, else the user's --sha256.

    Never an unverified download: no hash at all is a VerificationError that says what to do.
    """
    if offer.sha256 and given and given.lower() != offer.sha256.lower():
        raise VerificationError(f"--sha256 {given} differs from the sha256 {index} publishes for {what}: "
                                f"{offer.sha256}", "check the hash you passed, or leave --sha256 out")
    if offer.sha256 or given:
        return (offer.sha256 or given).lower()
    raise VerificationError(
        f"{index} publishes no sha256 for {what}{f' ({why_missing})' if why_missing else ''}, "
        "and xrel does not install unverified runtimes",
        f"pass --sha256 <hash> if you verified {offer.url} another way, or pick a version with a "
        f"published hash (`xrel otp-versions {offer.target}`)",
    )


class Source(Protocol):
    name: str

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        """Every runtime this source has for `target` (newest first when it can)."""

    def install(self, offer: Offer, target: Target, dest: Path, options: FetchOptions) -> dict:
        """Download, verify and unpack `offer` as an OTP root into `dest` (an empty dir).

        Returns provenance for xrel-runtime.json: urls, sha256s, packages, ...
        """


# name -> module implementing it (imported on first use)
REGISTRY = {
    "debian": "xrel.runtimes.debian",
    "hexbuilds": "xrel.runtimes.hexbuilds",
    "otp_builds": "xrel.runtimes.otp_builds",
    "windows": "xrel.runtimes.windows",
    "alpine": "xrel.runtimes.alpine",
    "local": "xrel.runtimes.local",
    "path": "xrel.runtimes.local",  # `--source path:/x` (an OTP root or an archive of one)
    "url": "xrel.runtimes.local",
    "build": "xrel.otpbuild.source",  # built here from source with zig (xrel build-erts)
}


def get_source(name: str) -> Source:
    if name not in REGISTRY:
        raise UsageError(f"unknown runtime source '{name}'", f"choose one of {', '.join(sorted(REGISTRY))}")
    module = importlib.import_module(REGISTRY[name])
    return module.SOURCE if name != "url" else module.URL_SOURCE


def settings(name: str) -> Any:
    """A source's settings: its table of recipes/sources.toml, typed (xrel.schemas.sources.Sources)."""
    return getattr(recipes.sources(), name)


def mirror(name: str, default_key: str = "base_url") -> str:
    """A source's base URL; XREL_<NAME>_URL overrides it (mirrors, tests)."""
    override = os.environ.get(f"XREL_{name.upper()}_URL")
    return (override or getattr(settings(name), default_key)).rstrip("/")
