"""xrel: cross-build Elixir/Erlang releases for any target, with zig and prebuilt OTP runtimes.

The public API: targets, runtimes, the zig toolchain, building, inspecting, running.
"""

from .errors import XrelError
from .inspect import Report
from .inspect import inspect_path as inspect
from .runtimes import Runtime, cached_runtime, fetch_runtime, list_offers
from .targets import Target, all_targets, host_target
from .toolchain import Toolchain

__version__ = "0.1.0"


def toolchain(target, otp_root=None, sysroot=None) -> Toolchain:
    """The zig toolchain for `target` (wrappers are written on first use of `.env()`)."""
    return Toolchain(target, otp_root=otp_root, sysroot=sysroot)


def build(*args, **kwargs):
    """Cross-build a mix project's release per target; see xrel.release.build."""
    from .release import build as _build

    return _build(*args, **kwargs)


def run(*args, **kwargs) -> int:
    """Run a release on its target CPU; see xrel.emulate.run."""
    from .emulate import run as _run

    return _run(*args, **kwargs)


def smoke(*args, **kwargs):
    """Boot a release and load every module; see xrel.emulate.smoke."""
    from .emulate import smoke as _smoke

    return _smoke(*args, **kwargs)


__all__ = ["Report", "Runtime", "Target", "Toolchain", "XrelError", "all_targets", "build", "cached_runtime",
           "fetch_runtime", "host_target", "inspect", "list_offers", "run", "smoke", "toolchain"]
