"""Load the TOML data in recipes/: targets, runtime sources, package quirks."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from dataclasses import dataclass
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from xrel.errors import UsageError


def recipes_dir() -> Path:
    """$XREL_RECIPES, else the checkout's recipes/, else the copy shipped inside the wheel."""
    override = os.environ.get("XREL_RECIPES")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "recipes"
    if (checkout / "targets.toml").is_file():
        return checkout
    return Path(__file__).resolve().parent / "_recipes"  # where the wheel installs recipes/


@functools.cache
def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"recipe file {path} is missing", "reinstall xrel or unset XREL_RECIPES")
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"recipe file {path} is not valid TOML: {e}")


def load(name: str) -> dict[str, Any]:
    """Parsed contents of recipes/<name>.toml (cached)."""
    return _load(str(recipes_dir() / f"{name}.toml"))


@dataclass(frozen=True)
class JitFlags:
    arch: str
    from_otp: int
    flags: str


@dataclass(frozen=True)
class Compat:
    """recipes/compat.toml: version facts the build and run rules read."""

    elixir_otp: dict[str, tuple[int, int]]  # Elixir "1.18" -> (oldest, newest) OTP major
    nif_versions: dict[int, str]  # OTP major -> NIF version
    qemu_jit_flags: tuple[JitFlags, ...]
    rustler_minimum: str

    def nif_version(self, otp_major: int) -> str | None:
        return self.nif_versions.get(otp_major)

    def jit_flags(self, arch: str, otp_major: int) -> str:
        """Flags for the JIT of `arch` under qemu-user at `otp_major` ("" when none apply)."""
        found = [j for j in self.qemu_jit_flags if j.arch == arch and j.from_otp <= otp_major]
        return max(found, key=lambda j: j.from_otp).flags if found else ""


@functools.lru_cache(maxsize=None)
def compat() -> Compat:
    data = load("compat")
    return Compat(
        elixir_otp={k: (int(v[0]), int(v[1])) for k, v in data["elixir_otp"].items()},
        nif_versions={int(k): str(v) for k, v in data["nif_versions"].items()},
        qemu_jit_flags=tuple(JitFlags(**j) for j in data["qemu_jit_flags"]),
        rustler_minimum=str(data["rustler"]["minimum"]),
    )
