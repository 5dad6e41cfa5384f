"""A target's build tree: the project and its deps mirrored into it, and, for a target after the
first, its compiled apps seeded from the first target's tree (the BEAM code is compiled once)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from xrel.release import rust
from xrel.release.mix import Project
from xrel.release.native import BEAM_SOURCES, App
from xrel.release.target_build import TargetBuild
from xrel.release.workspace import Workspace, mirrored, sync_tree


def xrel_outputs(project_dir: Path) -> set[str]:
    """xrel's own outputs in the project (dist/): not sources, never synced (a new dist is no change)."""
    dist = project_dir / "dist"
    ours = any(dist.glob("*/xrel-manifest.json")) or any(dist.glob(".*.partial*"))
    return {"dist"} if ours else set()


def sync_workspace(project: Project, ws: Workspace, scans: dict | None = None,
                   twin: Workspace | None = None) -> tuple[str, str]:
    """Mirror the project and every dependency into the target's tree (host binaries of
    native apps are not copied); returns digests of everything synced and of what native
    builds read (all but the BEAM-only sources of apps not recompiled per target). `scans`:
    the build's, so each source tree is scanned once for all targets; `twin`: the first target's
    tree, synced before, whose copies of BEAM-only sources this tree links to."""
    inside = [a.path for a in project.deps if a.path.is_relative_to(project.path)]

    def beam_only(app: App) -> tuple[str, ...]:
        return () if app.recompile_per_target else BEAM_SOURCES

    stats = [sync_tree(project.path, ws.project,
                       excludes={"_build", ".git", ".elixir_ls", "deps"} | xrel_outputs(project.path)
                       | rust.sync_excludes(project.own),
                       drop_binaries_under=[project.path] if project.own.native else [],
                       skip_subtrees=inside, beam_sources=beam_only(project.own), scans=scans,
                       twin=twin.project if twin else None)]
    for app in project.deps:
        stats.append(sync_tree(app.path, mirrored(ws.root, app.path), excludes=rust.sync_excludes(app),
                               drop_binaries_under=[app.path] if app.native else [], beam_sources=beam_only(app),
                               scans=scans, twin=mirrored(twin.root, app.path) if twin else None))
    return (hashlib.sha256("".join(s.digest for s in stats).encode()).hexdigest(),
            hashlib.sha256("".join(s.native_digest for s in stats).encode()).hexdigest())


def forget_native_outputs(build: TargetBuild) -> None:
    """In a tree seeded from another target: make mix rebuild every native or target-baking
    app (their build dirs go), and drop the project's own native outputs."""
    lib = build.lib_dir
    for app in build.project.deps:
        if app.native or app.recompile_per_target:
            shutil.rmtree(lib / app.name, ignore_errors=True)
    own = build.project.own
    if own.recompile_per_target:
        shutil.rmtree(lib / own.name, ignore_errors=True)
    elif own.native and (lib / own.name).is_dir():
        # keep only its BEAM code: priv/ and build dirs under MIX_APP_PATH (a CMake cache names
        # the seed's tree and compilers) are the seed target's
        for child in (lib / own.name).iterdir():
            if child.name not in ("ebin", ".mix") and not child.is_symlink():
                shutil.rmtree(child) if child.is_dir() else child.unlink()


def seed_tree(build: TargetBuild, seed: Workspace | None) -> None:
    """A new tree starts from the first target's compiled BEAM code, without its native outputs."""
    if seed is not None and not (build.workspace.build_dir / build.project.build_subdir).exists():
        build.workspace.relink_from(seed, build.project.build_subdir)
        forget_native_outputs(build)
