"""recipes/sonames.toml: shared libraries whose Debian package the policy name gets wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SysrootSettings:
    """[sysroot]: what sysroots leave out."""

    left_out: tuple[str, ...] = ()  # packages never put into a sysroot, nor followed


@dataclass(frozen=True)
class SonamesRecipe:
    """The whole file: soname overrides and the sysroot settings."""

    sonames: dict[str, str]  # soname -> Debian package, where the policy name is wrong
    sysroot: SysrootSettings = SysrootSettings()
