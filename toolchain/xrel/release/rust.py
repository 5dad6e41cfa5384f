"""Rust NIFs built from source by Rustler (`use Rustler`), for the target.

Rustler runs cargo while the module that says `use Rustler` compiles:
`cargo rustc --message-format=json-render-diagnostics -p <crate> [--target=T] --release` in the
crate's directory, then copies the library named in cargo's JSON messages to
`priv/native/<crate>.so` of the app it is compiling. xrel does not edit that app's config (its
`:target` option is read with `Application.compile_env`, which a release checks again at boot);
it sets cargo's own variables instead, for the whole mix run of a target:

* `CARGO_BUILD_TARGET=<rust triple>`: cargo builds for the target, and since rustler 0.37 the
  artifact's path comes from cargo's messages, so `<target dir>/<triple>/release/` is found.
  rustler <= 0.36 computed that path itself (without the triple) and is refused with a clear error.
* `CARGO_TARGET_<TRIPLE>_LINKER` and `CC_<triple>` (from the toolchain): zig links, with the
  target's glibc floor (`x86_64-linux-gnu.2.28` gives a library with no GLIBC_ symbol above 2.28).
* `CARGO_TARGET_DIR` inside the target's build tree: the user's `target/` is never written, and
  targets never share objects.

The app copy in the target's tree is where Rustler writes `priv/native/`, never the user's dep.
The module that runs cargo is recompiled per target (the app is native: see trees.forget_native_outputs).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from packaging.version import Version

from xrel import recipes
from xrel.errors import BuildError, MissingToolError
from xrel.release.mix import Project
from xrel.release.native import App
from xrel.release.workspace import Workspace
from xrel.targets import Target

RUST_HINT = "install Rust with rustup (https://rustup.rs), then `rustup target add <triple>` for each target"
FORCE_BUILD_ALL = "RUSTLER_PRECOMPILED_FORCE_BUILD_ALL"
_NOT_CRATE_DIRS = {"target", "deps", "_build", "node_modules", ".git", "priv"}
_VERSION = re.compile(r'(?:@version\s+|\bversion:\s*)"(\d+\.\d+[^"]*)"')


def forced_precompiled(app: App) -> bool:
    """A rustler_precompiled dep that will build from source (`use Rustler`) in this run."""
    return app.precompiler == "rustler_precompiled" and os.environ.get(FORCE_BUILD_ALL) in ("1", "true")


def rust_apps(project: Project) -> list[App]:
    """The apps that run cargo while they compile."""
    return [a for a in project.apps if "rustler" in a.kinds or forced_precompiled(a)]


def crate_dirs(root: Path, depth: int = 4) -> list[Path]:
    """Directories under `root` holding a Cargo.toml (not inside build outputs or deps)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "Cargo.toml" in filenames:
            found.append(Path(dirpath))
        level = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = [] if level >= depth else sorted(d for d in dirnames if d not in _NOT_CRATE_DIRS)
    return found


def sync_excludes(app: App) -> set[str]:
    """Cargo `target/` dirs of the app's crates: host build outputs, never mirrored."""
    if not app.native:
        return set()
    return {os.path.normpath(os.path.join(os.path.relpath(d, app.path), "target")) for d in crate_dirs(app.path)}


def rustler_version(project: Project) -> str | None:
    """The version of the `rustler` dependency (its mix.exs or hex metadata), if there is one."""
    dep = next((a for a in project.deps if a.name == "rustler"), None)
    if dep is None:
        return None
    for name in ("hex_metadata.config", "mix.exs"):
        try:
            text = (dep.path / name).read_text(errors="replace")
        except OSError:
            continue
        m = re.search(r'<<"version">>,\s*<<"([^"]+)">>', text) or _VERSION.search(text)
        if m:
            return m.group(1)
    return None


def _release_of(version: str) -> Version:
    """The numeric release of a version string ("0.36.1-rc.0" -> 0.36.1), for comparing with a minimum."""
    return Version(".".join(re.findall(r"\d+", version)[:3]) or "0")


@functools.cache
def _target_libdir(triple: str, cwd: str) -> tuple[Path | None, str]:
    """rustc's library dir for `triple` (asked in `cwd`, so a rust-toolchain file there counts)."""
    try:
        proc = subprocess.run(["rustc", "--print", "target-libdir", "--target", triple], cwd=cwd,
                              capture_output=True, text=True, timeout=120)
    except OSError as e:
        return None, str(e)
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["rustc failed"])[-1]
    return Path(proc.stdout.strip()), ""


def check_std(target: Target, cwd: Path, needed_by: str) -> None:
    """Fail unless the Rust standard library for the target is installed."""
    triple = target.rust
    libdir, error = _target_libdir(triple, str(cwd))
    has_std = libdir is not None and libdir.is_dir() and any(libdir.glob("libstd-*.rlib"))
    if has_std:
        return
    detail = f": rustc says {error}" if error else ""
    if shutil.which("rustup"):
        hint = f"run `rustup target add {triple}`"
    else:
        hint = f"install a Rust toolchain with the {triple} standard library (rustup: `rustup target add {triple}`)"
    raise MissingToolError(f"the Rust standard library for {triple} is not installed{detail} "
                           f"({needed_by} builds a Rust NIF for {target.id})", hint)


def check(project: Project, targets: list[Target]) -> None:
    """Before anything is built: cargo and rustc present, a rustler that honours cargo's target,
    and the Rust std of every target (each names its fix)."""
    apps = rust_apps(project)
    if not apps:
        return
    names = ", ".join(a.name for a in apps)
    for tool in ("cargo", "rustc"):
        if not shutil.which(tool):
            raise MissingToolError(f"`{tool}` is not on PATH ({names} builds a Rust NIF with Rustler)", RUST_HINT)
    forced = [a.name for a in apps if forced_precompiled(a)]
    if forced and not any(a.name == "rustler" for a in project.deps):
        raise BuildError(f"{FORCE_BUILD_ALL} makes {', '.join(forced)} build from source with Rustler, which is not "
                         f"a dependency of this project", 'add {:rustler, ">= 0.0.0", optional: true} to your deps')
    version, minimum = rustler_version(project), recipes.compat().rustler_minimum
    if version and _release_of(version) < Version(minimum):
        raise BuildError(f"rustler {version} (used by {names}) computes the NIF's path without the target "
                         f"triple, so it cannot build for another target",
                         f"upgrade the rustler dependency to {minimum} or newer")
    for app in apps:
        crates = crate_dirs(app.path)
        cwd = crates[0] if crates else app.path
        for target in targets:
            check_std(target, cwd, f"dependency {app.name}" if app is not project.own else app.name)


def cargo_env(project: Project, target: Target, ws: Workspace) -> dict[str, str]:
    """cargo's variables for a target's mix run (empty when no app builds Rust)."""
    if not rust_apps(project):
        return {}
    return {"CARGO_BUILD_TARGET": target.rust, "CARGO_TARGET_DIR": str(ws.root.parent / "cargo-target")}
