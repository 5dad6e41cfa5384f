"""The TOML data in recipes/, as frozen dataclasses: targets, runtime sources, package quirks,
sonames, version facts. Every file is checked on load: an unknown key or a value of the wrong
type is an error naming the file and the key (see xrel.recipe_schema)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from xrel.errors import UsageError
from xrel.recipe_schema import build


def recipes_dir() -> Path:
    """$XREL_RECIPES, else the checkout's recipes/, else the copy shipped inside the wheel."""
    override = os.environ.get("XREL_RECIPES")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "recipes"
    if (checkout / "targets.toml").is_file():
        return checkout
    return Path(__file__).resolve().parent / "_recipes"  # where the wheel installs recipes/


# -- targets.toml --------------------------------------------------------------------------------

@dataclass(frozen=True)
class HostNames:
    """[host]: how this machine's platform.machine() names map to target names."""

    arches: dict[str, str]  # platform.machine() -> target arch (amd64 -> x86_64)
    linux_abi_suffixes: dict[str, str] = field(default_factory=dict)  # arch -> text after the libc abi


@dataclass(frozen=True)
class TargetsRecipe:
    targets: dict[str, dict[str, Any]]  # each entry is checked against xrel.targets.Target
    host: HostNames


# -- sources.toml --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DebianSuite:
    name: str
    otp: int  # the OTP major it ships
    glibc: str  # what its ERTS needs
    arches: tuple[str, ...]
    also: tuple[str, ...] = ()  # -updates / -security companions


@dataclass(frozen=True)
class DebianSettings:
    keyring: str
    source_package: str
    left_out: tuple[str, ...]
    gui_apps_left_out: tuple[str, ...]
    suites: tuple[DebianSuite, ...]


@dataclass(frozen=True)
class HexBuildsSettings:
    base_url: str
    oses: tuple[str, ...]
    arches: dict[str, str]
    glibc: dict[str, str]


@dataclass(frozen=True)
class OtpBuildsSettings:
    base_url: str
    checksums_url: str
    triples: dict[str, str]


@dataclass(frozen=True)
class WindowsSettings:
    base_url: str
    first_zip: str
    assets: dict[str, str]
    known_zips: tuple[str, ...] = ()
    installer_leftovers: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlpineKey:
    sha256: str
    arches: tuple[str, ...] = ()  # none: every arch


@dataclass(frozen=True)
class AlpineSettings:
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
    debian: DebianSettings
    hexbuilds: HexBuildsSettings
    otp_builds: OtpBuildsSettings
    windows: WindowsSettings
    alpine: AlpineSettings


# -- packages.toml (the keys are explained at the top of the file) -------------------------------

UsedLibrary = Literal["rustler", "rustler_precompiled", "cc_precompiler"]


@dataclass(frozen=True)
class PackageRecipe:
    native: bool = False
    recompile_per_target: bool = False
    precompiler: Literal["rustler_precompiled", "cc_precompiler"] | None = None
    env: dict[str, str] = field(default_factory=dict)
    drop_flags: tuple[str, ...] = ()
    broken_targets: dict[str, str] = field(default_factory=dict)
    sysroot_packages: tuple[str, ...] = ()
    ignore_uses: tuple[UsedLibrary, ...] = ()


@dataclass(frozen=True)
class PackagesRecipe:
    packages: dict[str, PackageRecipe] = field(default_factory=dict)


# -- sonames.toml --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SysrootSettings:
    left_out: tuple[str, ...] = ()  # packages never put into a sysroot, nor followed


@dataclass(frozen=True)
class SonamesRecipe:
    sonames: dict[str, str]  # soname -> Debian package, where the policy name is wrong
    sysroot: SysrootSettings = SysrootSettings()


# -- compat.toml ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class JitFlags:
    arch: str
    from_otp: int
    flags: str


@dataclass(frozen=True)
class RustlerFacts:
    minimum: str


@dataclass(frozen=True)
class Compat:
    """recipes/compat.toml: version facts the build and run rules read."""

    elixir_otp: dict[str, tuple[int, int]]  # Elixir "1.18" -> (oldest, newest) OTP major
    nif_versions: dict[int, str]  # OTP major -> NIF version
    qemu_jit_flags: tuple[JitFlags, ...]
    rustler: RustlerFacts

    @property
    def rustler_minimum(self) -> str:
        return self.rustler.minimum

    def nif_version(self, otp_major: int) -> str | None:
        return self.nif_versions.get(otp_major)

    def jit_flags(self, arch: str, otp_major: int) -> str:
        """Flags for the JIT of `arch` under qemu-user at `otp_major` ("" when none apply)."""
        found = [j for j in self.qemu_jit_flags if j.arch == arch and j.from_otp <= otp_major]
        return max(found, key=lambda j: j.from_otp).flags if found else ""


# -- loading -------------------------------------------------------------------------------------

SCHEMAS: dict[str, type] = {
    "targets": TargetsRecipe,
    "sources": Sources,
    "packages": PackagesRecipe,
    "sonames": SonamesRecipe,
    "compat": Compat,
}


@functools.cache
def _parse(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"recipe file {path} is missing", "reinstall xrel or unset XREL_RECIPES") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"recipe file {path} is not valid TOML: {e}", "fix its syntax") from None


@functools.cache
def _typed(path: str, name: str) -> Any:
    return build(SCHEMAS[name], _parse(path), path)


def _path(name: str) -> str:
    return str(recipes_dir() / f"{name}.toml")


def load(name: str) -> dict[str, Any]:
    """Parsed contents of recipes/<name>.toml (cached), checked like the typed accessors below."""
    path = _path(name)
    if name in SCHEMAS:
        _typed(path, name)
    return _parse(path)


def targets() -> TargetsRecipe:
    return _typed(_path("targets"), "targets")


def sources() -> Sources:
    return _typed(_path("sources"), "sources")


def packages() -> dict[str, PackageRecipe]:
    return _typed(_path("packages"), "packages").packages


def package(name: str) -> PackageRecipe:
    """The quirks of one mix package (all defaults when packages.toml does not name it)."""
    return packages().get(name, PackageRecipe())


def sonames() -> SonamesRecipe:
    return _typed(_path("sonames"), "sonames")


def compat() -> Compat:
    return _typed(_path("compat"), "compat")
