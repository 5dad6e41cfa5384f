"""recipes/compat.toml: version facts the build and run rules read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JitFlags:
    """[[qemu_jit_flags]]: JIT flags an arch needs under qemu-user from an OTP major on."""

    arch: str
    from_otp: int
    flags: str


@dataclass(frozen=True)
class RustlerFacts:
    """[rustler]: the oldest rustler that builds for xrel's targets."""

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
