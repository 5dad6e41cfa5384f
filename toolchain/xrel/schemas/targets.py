"""recipes/targets.toml: the targets and how this machine's names map to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HostNames:
    """[host]: how this machine's platform.machine() names map to target names."""

    arches: dict[str, str]  # platform.machine() -> target arch (amd64 -> x86_64)
    linux_abi_suffixes: dict[str, str] = field(default_factory=dict)  # arch -> text after the libc abi


@dataclass(frozen=True)
class TargetsRecipe:
    """The whole file: the [targets.<name>] tables and [host]."""

    targets: dict[str, dict[str, Any]]  # each entry is checked against xrel.targets.Target
    host: HostNames
