"""recipes/sources.toml: where each runtime source's OTP builds come from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DebianSuite:
    """[[debian.suites]]: one Debian suite, the OTP it ships and the arches it builds."""

    name: str
    otp: int  # the OTP major it ships
    glibc: str  # what its ERTS needs
    arches: tuple[str, ...]
    also: tuple[str, ...] = ()  # -updates / -security companions


@dataclass(frozen=True)
class DebianSettings:
    """[debian]: Debian's erlang packages as a runtime source."""

    keyring: str
    source_package: str
    left_out: tuple[str, ...]
    gui_apps_left_out: tuple[str, ...]
    suites: tuple[DebianSuite, ...]


@dataclass(frozen=True)
class HexBuildsSettings:
    """[hexbuilds]: the Ubuntu OTP builds of hex's build service, indexed by builds.txt."""

    base_url: str
    oses: tuple[str, ...]
    arches: dict[str, str]
    glibc: dict[str, str]


@dataclass(frozen=True)
class OtpBuildsSettings:
    """[otp_builds]: relocatable macOS OTP builds, with a sha256 per build."""

    base_url: str
    checksums_url: str
    triples: dict[str, str]


@dataclass(frozen=True)
class WindowsSettings:
    """[windows]: OTP's release zips for Windows (pinned on first use)."""

    base_url: str
    first_zip: str
    assets: dict[str, str]
    known_zips: tuple[str, ...] = ()
    installer_leftovers: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlpineKey:
    """[alpine.keys.<file>]: one Alpine signing key, pinned by its sha256."""

    sha256: str
    arches: tuple[str, ...] = ()  # none: every arch


@dataclass(frozen=True)
class AlpineSettings:
    """[alpine]: Alpine's erlang packages as a runtime source (musl targets)."""

    base_url: str
    branches: tuple[str, ...]
    repository: str
    arches: dict[str, str]
    package_pattern: str
    subpackages: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    keys: dict[str, AlpineKey] = field(default_factory=dict)


@dataclass(frozen=True)
class Sources:
    """The whole file: every runtime source's settings."""

    debian: DebianSettings
    hexbuilds: HexBuildsSettings
    otp_builds: OtpBuildsSettings
    windows: WindowsSettings
    alpine: AlpineSettings
