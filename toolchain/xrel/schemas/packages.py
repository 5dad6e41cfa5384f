"""recipes/packages.toml: the quirks of mix packages (keys explained at the top of the file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

UsedLibrary = Literal["rustler", "rustler_precompiled", "cc_precompiler"]


@dataclass(frozen=True)
class PackageRecipe:
    """[packages.<name>]: how one mix package builds (all defaults when not named)."""

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
    """The whole file: package name -> its recipe."""

    packages: dict[str, PackageRecipe] = field(default_factory=dict)
