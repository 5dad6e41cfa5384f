"""xrel: cross-build Elixir/Erlang releases for any target, with zig and prebuilt OTP runtimes.

The public API: targets, runtimes, the zig toolchain, building, inspecting, running. Each name is
loaded on first use (so `import xrel` and the CLI stay fast); help() and type checkers see the
real definitions.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xrel.emulate.runner import run
    from xrel.emulate.smoke import SmokeReport, smoke
    from xrel.errors import XrelError
    from xrel.inspection.check import Report, inspect
    from xrel.release.build import build
    from xrel.release.results import BuildResult, TargetResult
    from xrel.runtimes import Runtime, cached_runtime, fetch_runtime, list_offers
    from xrel.targets import Target, all_targets, host_target
    from xrel.zig.toolchain import ZigToolchain, zig_toolchain

# public name -> the module that defines it
_API = {
    "XrelError": "xrel.errors",
    "Target": "xrel.targets", "all_targets": "xrel.targets", "host_target": "xrel.targets",
    "Runtime": "xrel.runtimes", "cached_runtime": "xrel.runtimes", "fetch_runtime": "xrel.runtimes",
    "list_offers": "xrel.runtimes",
    "ZigToolchain": "xrel.zig.toolchain", "zig_toolchain": "xrel.zig.toolchain",
    "build": "xrel.release.build", "BuildResult": "xrel.release.results", "TargetResult": "xrel.release.results",
    "inspect": "xrel.inspection.check", "Report": "xrel.inspection.check",
    "run": "xrel.emulate.runner", "smoke": "xrel.emulate.smoke", "SmokeReport": "xrel.emulate.smoke",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'xrel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
