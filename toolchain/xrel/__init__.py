"""xrel: cross-build Elixir/Erlang releases for any target, with zig and prebuilt OTP runtimes."""

from .errors import XrelError
from .targets import Target, all_targets, host_target
from .toolchain import Toolchain

__version__ = "0.1.0"


def toolchain(target, otp_root=None, sysroot=None) -> Toolchain:
    """The zig toolchain for `target` (wrappers are written on first use of `.env()`)."""
    return Toolchain(target, otp_root=otp_root, sysroot=sysroot)


__all__ = ["Target", "Toolchain", "XrelError", "all_targets", "host_target", "toolchain"]
