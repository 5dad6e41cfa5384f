"""Whether a target runtime fits this machine's Erlang/Elixir: the rules `xrel build` checks.

BEAM files are compiled here, by the host's OTP, and must load on the target's: the target OTP
major must be in [host major, host major + 2] (`require_otp_window`, checked on the request
before anything is fetched, and on the runtime after). Each rule of RULES looks at one fetched
runtime: it raises a UsageError to refuse it, or returns notes (warnings) for the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xrel import recipes
from xrel.errors import UsageError
from xrel.host import HostErlang
from xrel.inspection.binaries import version_key
from xrel.runtimes import Runtime
from xrel.targets import Target


def require_otp_window(otp: str, major: int, host_major: int, named: str = "OTP") -> None:
    """Refuse OTP `otp` (major `major`) outside [host_major, host_major + 2]; `named` starts the message."""
    if major < host_major:
        raise UsageError(f"{named} {otp} is older than this machine's OTP {host_major}: BEAM files compiled here "
                         f"will not load there",
                         f"use --otp {host_major} (or newer), or build on an OTP {major} machine")
    if major > host_major + 2:
        raise UsageError(f"{named} {otp} is more than two releases newer than this machine's OTP {host_major}",
                         f"use --otp {host_major}..{host_major + 2}, or install a newer OTP here")


def check_requested_otp(otp: str, host: HostErlang) -> None:
    """Refuse an --otp request outside the window before fetching anything."""
    from xrel.runtimes.versions import parse_request

    require_otp_window(otp, parse_request(otp)[0], host.otp_major)


@dataclass(frozen=True)
class Pairing:
    """What the rules look at: a fetched runtime for a target, and this machine's Erlang."""

    runtime: Runtime
    host: HostErlang
    target: Target


def otp_window(pair: Pairing) -> list[str]:
    """The runtime's OTP is one this machine's OTP compiles for."""
    require_otp_window(pair.runtime.otp_version, pair.runtime.otp_major, pair.host.otp_major, "target OTP")
    return []


def elixir_window(pair: Pairing) -> list[str]:
    """A warning when this machine's Elixir does not support the target's OTP (recipes/compat.toml)."""
    elixir = pair.host.elixir_version or ""
    window = recipes.compat().elixir_otp.get(".".join(elixir.split(".")[:2]))
    major = pair.runtime.otp_major
    if window and not window[0] <= major <= window[1]:
        return [f"warning: Elixir {elixir} supports OTP {window[0]}-{window[1]}, the target runs OTP {major}"]
    return []


def glibc_floor(pair: Pairing) -> list[str]:
    """A target with a glibc floor (`aarch64-linux-gnu.2.28`) needs a runtime that runs on it."""
    runtime, target = pair.runtime, pair.target
    if target.glibc and runtime.glibc_floor and version_key(runtime.glibc_floor) > version_key(target.glibc):
        raise UsageError(f"the {runtime.source} OTP {runtime.otp_version} runtime itself needs glibc "
                         f"{runtime.glibc_floor}, above the requested floor {target.glibc}",
                         f"ask for {target.name}.{runtime.glibc_floor} or a runtime built for an older glibc")
    return []


Rule = Callable[[Pairing], list[str]]

RULES: tuple[Rule, ...] = (
    otp_window,
    elixir_window,
    glibc_floor,
)


def check_runtime(runtime: Runtime, host: HostErlang, target: Target) -> list[str]:
    """Apply every rule to a fetched runtime: raises on a refusal, else returns the notes."""
    pair = Pairing(runtime, host, target)
    return [note for rule in RULES for note in rule(pair)]
