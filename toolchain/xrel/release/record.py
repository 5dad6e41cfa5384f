"""The record of a target's last build: its inputs, and the result to give again while nothing changed."""

from __future__ import annotations

import hashlib
import json
import os

from xrel import __version__
from xrel.release import rust
from xrel.release.results import TargetResult
from xrel.release.target_build import TargetBuild
from xrel.storage.cache import stat_fingerprint

# Environment variables that can change what a build produces.
ENV_INPUTS = ("CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "MAKEFLAGS", "RUSTFLAGS", "ERL_COMPILER_OPTIONS",
              "ELIXIR_ERL_OPTIONS", "MIX_TARGET", "HEX_OFFLINE", rust.FORCE_BUILD_ALL, "RUSTUP_TOOLCHAIN")


def build_inputs(build: TargetBuild, synced: str) -> str:
    """A digest of everything a target's release is made from (`synced`: the digest of its tree)."""
    runtime, tc = build.runtime, build.toolchain
    return hashlib.sha256(json.dumps([
        synced, str(runtime.root), runtime.meta.get("sha256"), str(tc.directory), str(tc.zig.version),
        str(build.sysroot), build.project.mix_env, build.options.mix_target, build.release, str(build.release_dir),
        __version__, [(k, os.environ.get(k)) for k in ENV_INPUTS],
        build.options.node_agent.digest if build.options.node_agent else None]).encode()).hexdigest()


def previous_result(build: TargetBuild, inputs: str) -> TargetResult | None:
    """The last result of this target if its inputs and release are exactly as it left them (its
    tarball may not be: see build.up_to_date)."""
    try:
        last = json.loads(build.record.read_text())
    except (OSError, ValueError):
        return None
    if last.get("inputs") != inputs or not build.release_dir.is_dir():
        return None
    try:
        result = TargetResult.from_dict(last["result"])
    except (KeyError, TypeError):  # written by another xrel
        return None
    if last.get("release") != stat_fingerprint(build.release_dir):
        return None
    return result


def save(build: TargetBuild, inputs: str, result: TargetResult) -> None:
    build.record.write_text(json.dumps({"inputs": inputs, "release": stat_fingerprint(build.release_dir),
                                        "result": result.to_dict()}))


def forget(build: TargetBuild) -> None:
    build.record.unlink(missing_ok=True)
