"""The target model: every OS/CPU/libc xrel builds for, loaded from recipes/targets.toml."""

from __future__ import annotations

import dataclasses
import functools
import glob
import platform
import re
import sys
from dataclasses import dataclass, field

from xrel import recipes
from xrel.errors import UsageError
from xrel.recipe_schema import build

_GLIBC_SUFFIX = re.compile(r"^(?P<base>.+?)\.(?P<floor>2\.\d{1,2})$")
_DARWIN_VERSION = re.compile(r"darwin\d+(\.\d+)*$")


@dataclass(frozen=True)
class Target:
    """One build target, plus an optional glibc floor requested by the user."""

    name: str
    zig: str
    rust: str
    rebar: str  # port_compiler's REBAR_TARGET_ARCH
    erlang: str
    format: str
    machine: int
    bits: int
    sources: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    debian: str | None = None
    multiarch: str | None = None
    qemu: str | None = None
    docker: str | None = None
    endian: str = "little"
    float_abi: str | None = None
    zig_cpu: str | None = None
    default_glibc_floor: str | None = None
    macos_min: str | None = None
    cmake_system: tuple[str, str] = ("", "")
    cc_precompiler: tuple[tuple[str, str], ...] = ()
    rustler_precompiled: tuple[tuple[str, str], ...] = ()
    glibc: str | None = field(default=None, compare=True)

    # -- derived facts -------------------------------------------------------------------
    @property
    def arch(self) -> str:
        return self.name.split("-")[0]

    @property
    def os(self) -> str:
        """linux, macos or windows."""
        return self.name.split("-")[1]

    @property
    def abi(self) -> str:
        parts = self.name.split("-")
        return parts[2] if len(parts) > 2 else ""

    @property
    def libc(self) -> str | None:
        """glibc, musl, or None (macOS, Windows)."""
        if self.os != "linux":
            return None
        return "musl" if self.abi.startswith("musl") else "glibc"

    @property
    def id(self) -> str:
        """Canonical name with the glibc floor, e.g. aarch64-linux-gnu.2.28."""
        return f"{self.name}.{self.glibc}" if self.glibc else self.name

    @property
    def zig_triple(self) -> str:
        """zig's -target value, with the glibc floor or macOS minimum when there is one."""
        floor = self.glibc or self.default_glibc_floor
        if floor:
            return f"{self.zig}.{floor}"
        if self.os == "macos" and self.macos_min:
            return f"{self.zig}.{self.macos_min}"
        return self.zig

    @property
    def exe_suffix(self) -> str:
        return ".exe" if self.os == "windows" else ""

    @property
    def shared_lib_suffix(self) -> str:
        return {"windows": ".dll", "macos": ".so"}.get(self.os, ".so")

    def precompiler_env(self, library: str) -> dict[str, str]:
        """TARGET_* variables in the spelling of cc_precompiler or rustler_precompiled."""
        values = dict(getattr(self, library))
        return {f"TARGET_{k.upper()}": v for k, v in values.items()}

    def precompiler_triple(self, library: str) -> str:
        """The target triple as that library names its artifacts."""
        values = dict(getattr(self, library))
        keys = ["arch", "vendor", "os", "abi"] if library == "rustler_precompiled" else ["arch", "os", "abi"]
        return "-".join(values[k] for k in keys if values.get(k))

    def with_glibc(self, floor: str | None) -> Target:
        if floor is not None and self.libc != "glibc":
            raise UsageError(
                f"a glibc floor ({floor}) only applies to glibc Linux targets, not {self.name}",
                f"use plain {self.name}",
            )
        return dataclasses.replace(self, glibc=floor)

    def __str__(self) -> str:
        return self.id

    # -- construction --------------------------------------------------------------------
    @classmethod
    def parse(cls, name: str | Target) -> Target:
        """Resolve a name a user typed (canonical, alias, `host`, glibc suffix) to a Target."""
        if isinstance(name, Target):
            return name
        text = name.strip().lower()
        if not text:
            raise UsageError("empty target name", "run `xrel targets` for the list")
        text = _DARWIN_VERSION.sub("darwin", text)
        floor = None
        m = _GLIBC_SUFFIX.match(text)
        if m and (m.group("base") in _index() or m.group("base") == "host"):
            text, floor = m.group("base"), m.group("floor")
        target = host_target() if text == "host" else _index().get(text)
        if target is None:
            import difflib

            close = difflib.get_close_matches(text, list(_index()), n=3, cutoff=0.5)
            names = sorted({_index()[c].name for c in close})
            hint = f"did you mean {', '.join(names)}? " if names else ""
            raise UsageError(f"unknown target '{name}'", f"{hint}`xrel targets` lists them all")
        return target.with_glibc(floor) if floor else target


def _from_recipe(name: str, data: dict, file: str) -> Target:
    """One [targets.<name>] table as a Target ("" means none; glibc_floor is the default floor)."""
    renamed = {"glibc_floor": "default_glibc_floor"}
    values = {renamed.get(key, key): (None if value == "" else value) for key, value in data.items()}
    return build(Target, {"name": name, **values}, file, f"targets.{name}", exclude=("glibc",))


@functools.cache
def all_targets() -> tuple[Target, ...]:
    """Every target in recipes/targets.toml, in file order."""
    file = str(recipes.recipes_dir() / "targets.toml")
    return tuple(_from_recipe(name, entry, file) for name, entry in recipes.targets().targets.items())


@functools.cache
def _index() -> dict[str, Target]:
    index: dict[str, Target] = {}
    for target in all_targets():
        for key in (target.name, *target.aliases):
            key = key.lower()
            if key in index and index[key] is not target:
                raise UsageError(f"recipes/targets.toml: alias '{key}' names two targets")
            index[key] = target
    return index


def _host_libc() -> str:
    if sys.platform != "linux":
        return ""
    if platform.libc_ver()[0] == "glibc":
        return "gnu"
    return "musl" if glob.glob("/lib/ld-musl-*") else "gnu"


@functools.cache
def host_target() -> Target:
    """The target this machine is."""
    names = recipes.targets().host
    machine = platform.machine().lower()
    arch = names.arches.get(machine, machine)
    if sys.platform == "darwin":
        name = f"{arch}-macos"
    elif sys.platform == "win32":
        name = f"{arch}-windows"
    else:
        name = f"{arch}-linux-{_host_libc()}{names.linux_abi_suffixes.get(arch, '')}"
    try:
        return _index()[name]
    except KeyError:
        raise UsageError(f"this machine ({name}) is not a known xrel target", "name a target explicitly") from None
