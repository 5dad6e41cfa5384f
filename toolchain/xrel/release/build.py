"""`xrel build`: compile a mix project once and assemble a release per target.

Each target's build is a few steps over one TargetBuild: prepare (runtime, compatibility rules,
sysroot, toolchain, build tree, environment), then, unless its last build is still up to date,
compile the deps with an environment of their own, assemble and inspect the release, and package it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from xrel import progress
from xrel.host import host_erlang
from xrel.inspection.check import Report, inspect_tree
from xrel.project.plan import Request, TargetPlan, activated, resolve
from xrel.release import assemble, blame, compat, derive, early_mix, precompiled, record, rust
from xrel.release.compile_server import CompileServer
from xrel.release.mix import Project, load_project, mix_env_vars, run_mix
from xrel.release.native import local_deps_env, own_env_compile_order, refuse_broken_targets
from xrel.release.results import BuildResult, RuntimeInfo, TargetResult, native_file
from xrel.release.tarball import forget_earlier_builds, source_date_epoch, tarball_sidecars, write_tarball
from xrel.release.target_build import BuildOptions, TargetBuild
from xrel.release.trees import seed_tree, sync_workspace
from xrel.release.workspace import workspace_for
from xrel.runtimes import Runtime
from xrel.runtimes.versions import parse_request
from xrel.storage import cache
from xrel.storage.cache import remove
from xrel.storage.files import return_free_memory, when_written
from xrel.targets import Target
from xrel.zig.toolchain import ZigToolchain

__all__ = ["BuildResult", "TargetResult", "build"]

# Targets after the first build concurrently (each is mostly one single-threaded mix process).
PARALLEL_TARGETS = max(1, min(2, os.cpu_count() or 1))
# Extra targets compile their native outputs one at a time: a mix VM and zig's compilers for each at
# once would double the build's peak memory (measured: 2 at once 350-400 MiB, the host's mix release
# 110 MiB) for little time on 2 cores; their assembly, inspection and tarballs still overlap.
NATIVE_COMPILES = threading.BoundedSemaphore(1)
# Targets after the first take their release from the first's when they can (derive.py); False:
# each runs its own `mix release`, as xrel did before (the equivalence test compares the two).
DERIVE_EXTRA_TARGETS = True


def build_sysroot(project: Project, target: Target, runtime: Runtime, options: BuildOptions) -> Path | None:
    """A build-time sysroot of Debian -dev packages for NIFs that link target system libraries:
    the packages asked on the command line plus those recipes name for the project's deps,
    from the runtime's Debian suite (the libraries the release will run with)."""
    wanted = list(options.sysroot_packages)
    for app in project.apps:
        wanted += app.recipe.get("sysroot_packages", [])
    if not wanted:
        return None
    from xrel.debian.sysroot import ensure_sysroot

    return ensure_sysroot(target, [], runtime.meta, sorted(set(wanted)), offline=options.offline)


def mix_environment(build: TargetBuild) -> dict[str, str]:
    """The environment of every mix run of the target: xrel's toolchain, cargo's and the
    precompilers' variables, the runtime's ERTS, and path deps' recipe environments."""
    extra = {**build.toolchain.env(), **rust.cargo_env(build.project, build.target, build.workspace),
             **precompiled.cache_env(), "XREL_INCLUDE_ERTS": str(build.runtime.erts_dir),
             "XREL_TARGET_OS": build.target.os, "XREL_RELEASE_INFO": str(build.release_info),
             "XREL_BEAM_MARK": str(build.beam_mark),
             "XREL_SOURCE_PREFIX": str(build.workspace.project)}  # the zig wrapper maps it to "." (reproducible)
    if build.options.mix_target:
        extra["MIX_TARGET"] = build.options.mix_target
    if build.options.node_agent:
        extra["XREL_NODE_AGENT"] = str(build.options.node_agent.ebin)
    extra.update(local_deps_env(build.project.deps, build.target))
    return mix_env_vars(build.workspace.project, build.project.mix_env, extra)


def prepare(project: Project, plan: TargetPlan, release: str, out: Path, options: BuildOptions) -> TargetBuild:
    """Apply the compatibility rules to the target's resolved runtime, and set up its sysroot,
    toolchain, build tree and mix environment."""
    host, target, runtime = host_erlang(), plan.target, plan.runtime
    label = f"[{target.id}]"
    notes = [f"runtime: {runtime.source} OTP {runtime.otp_version} ({plan.why})",
             *compat.check_runtime(runtime, host, target)]
    for note in notes[1:]:
        progress.note(f"{label} {note}")
    options = replace(options, sysroot_packages=tuple(sorted({*options.sysroot_packages, *plan.sysroot_packages})))
    sysroot = build_sysroot(project, target, runtime, options)
    tc = ZigToolchain(target, otp_root=runtime.root, sysroot=sysroot)
    # make cannot tell that CC, the sysroot or a recipe changed: objects in a tree are only valid
    # for the compiler setup that made them, so each setup gets its own tree
    setup = hashlib.sha256(json.dumps([tc.directory.name, [a.recipe for a in project.apps]]).encode()).hexdigest()
    ws = workspace_for(project.path, project.mix_env, target.id,
                       f"{runtime.source}-{runtime.otp_version}-{setup[:8]}")
    build = TargetBuild(project, target, release, out, options, host, runtime, tc, sysroot, ws, {}, notes)
    return replace(build, env=mix_environment(build))


def compile_own_env_deps(build: TargetBuild) -> None:
    """Deps with an environment of their own (a precompiler's TARGET_*, a recipe's env) compile
    alone with it, after the deps they need; their notes go to the target's."""
    project, target = build.project, build.target
    for app in own_env_compile_order(project.deps, project.info.get("deps_tree", []), target):
        extra = app.env_for(target)
        # a dep with its own env always compiles here (incrementally): if it changed, `mix release`
        # would otherwise recompile it without that env (a precompiled dep would fetch the host's)
        if not extra and (build.lib_dir / app.name / "ebin" / f"{app.name}.app").is_file():
            continue
        if app.precompiler:  # failures named per dep and target; elixir_make's source fallback noted
            build.notes.extend(precompiled.compile_dep(app, build))
        else:
            run_mix(["deps.compile", app.name], build.workspace.project, {**build.env, **extra}, build.log,
                    f"compiling {app.name} for {target}")


def inspect_release(build: TargetBuild, release_dir: Path) -> Report:
    """Every native file must be the target's: a bad one fails the build, naming its dependency."""
    with progress.step(f"{build.label} inspect"):
        report = inspect_tree(release_dir, build.target)
        blame.explain(report, build.project.apps)
        report.raise_for_problems(f"the release for {build.target}")
    return report


def compile_native(build: TargetBuild, seed: derive.Seed, native_inputs: str, compiler: CompileServer) -> None:
    """An extra target's native outputs, compiled in its own tree (seeded from the first target's) by
    the build's compile VM, only when what they are made from changed since they were last compiled there.
    Not before the first target's build is over: zig's compilers beside its mix VM would be the
    build's peak memory."""
    if not derive.target_specific(build):
        return
    stamp = build.native_stamp
    if stamp.is_file() and stamp.read_text() == native_inputs and build.lib_dir.is_dir():
        return
    stamp.unlink(missing_ok=True)
    seed_tree(build, seed.build.workspace)
    seed.wait()
    with NATIVE_COMPILES:
        compile_own_env_deps(build)
        compiler.compile(build.project.name, build.workspace.project, build.env, build.log,
                         f"compiling for {build.target}")
    stamp.write_text(native_inputs)


def lay_out(build: TargetBuild, staging: Path, seed: derive.Seed | None) -> None:
    """The release in `staging`: derived from the seed's when it can be, else by `mix release`."""
    if seed is not None:
        why = derive.derive_release(seed, build, staging)
        if why is None:
            return
        build.notes.append(f"its own mix release (not derived from {seed.build.target}'s): {why}")
        progress.status(f"{build.label} its own mix release: {why}")
        remove(staging)
    build.native_stamp.unlink(missing_ok=True)  # mix compiles the tree from now on
    run_mix(["release", build.release, "--overwrite", "--path", str(staging)], build.workspace.project,
            build.env, build.log, f"building the release for {build.target}",
            early_for=build.project.path if seed is None else None)  # the first target's: see early_mix


def assemble_release(build: TargetBuild, seed: derive.Seed | None = None) -> Report:
    """The release beside its final place (by `mix release`, or from `seed`'s), finished and
    inspected, then moved there."""
    release_dir = build.release_dir
    staging = release_dir.with_name(f".{release_dir.name}.partial")
    remove(staging)
    build.release_info.unlink(missing_ok=True)
    try:
        lay_out(build, staging, seed)
        build.notes.extend(assemble.finish_release(staging, build))
        if build.options.node_agent:
            from xrel.node.release import add_node_files

            build.notes.extend(add_node_files(staging, build.release, build.options.node_agent))
        report = inspect_release(build, staging)
    except BaseException:
        remove(staging)
        raise
    cache.replace_discarding(staging, release_dir)
    return report


def write_or_drop_tarball(build: TargetBuild) -> tuple[str | None, str | None]:
    """With --tarball, the release's tarball and its sha256; else (None, None) and the target's
    tarball files gone from the output dir (a stale tarball beside a newer release would mislead)."""
    version = assemble.release_version(build.release_dir)
    tarball = build.out / assemble.tarball_name(build.release, version, build.runtime.otp_major, build.target.id)
    old_name = build.out / f"{build.release}-{version}-{build.target.id}.tar.gz"
    if not build.options.tarball:
        for path in (tarball, *tarball_sidecars(tarball), old_name, tarball_sidecars(old_name)[0]):
            path.unlink(missing_ok=True)
        return None, None
    with progress.step(f"{build.label} tarball"):  # reproducible: `xrel dist` ships these very bytes
        sha = write_tarball(build.release_dir, tarball, source_date_epoch(build.project.path),
                            slot=f"{build.release}-{build.target.id}")
        return_free_memory()
        assemble.link_old_name(tarball, old_name)
    return str(tarball), sha


def package(build: TargetBuild, report: Report, started: float) -> TargetResult:
    """The release's tarball (with --tarball) and the target's result."""
    tarball, sha = write_or_drop_tarball(build)
    runtime = build.runtime
    return TargetResult(
        target=build.target.id, release_dir=str(build.release_dir), tarball=tarball, sha256=sha,
        otp_version=runtime.otp_version, erts_version=runtime.erts_version, nif_version=runtime.nif_version,
        runtime=RuntimeInfo.of(runtime), glibc_floor=report.glibc_floor,
        native_files=[native_file(f) for f in report.files], needed_libraries=report.needed,
        seconds=round(time.monotonic() - started, 2), notes=build.notes, elixir_version=build.host.elixir_version,
    )


def up_to_date(build: TargetBuild, previous: TargetResult, inputs: str, started: float) -> TargetResult:
    """The last result again, the release untouched; its tarball written (or dropped) when the last
    build made it otherwise than this one asks (--tarball then, not now, or the file is gone)."""
    note = "up to date: nothing changed since the last build"
    has_tarball = previous.tarball is not None and os.path.isfile(previous.tarball)
    if has_tarball != build.options.tarball:
        tarball, sha = write_or_drop_tarball(build)
        previous = replace(previous, tarball=tarball, sha256=sha)
        record.save(build, inputs, previous)
        note += " (tarball written)" if tarball else " (tarball removed: no --tarball)"
    return replace(previous, seconds=round(time.monotonic() - started, 2), notes=[*build.notes[:1], note])


def make_release(build: TargetBuild, seed: derive.Seed | None, native_inputs: str,
                 compiler: CompileServer | None) -> Report:
    """The first target compiles and assembles with mix; the others compile only their native
    outputs (when changed, in `compiler`) and take the rest from the first's release."""
    if seed is not None and compiler is not None and DERIVE_EXTRA_TARGETS:
        compile_native(build, seed, native_inputs, compiler)
        seed.wait()
        return assemble_release(build, seed)
    if seed is not None:
        seed.wait()
    seed_tree(build, seed.build.workspace if seed else None)
    compile_own_env_deps(build)
    return assemble_release(build)


def build_target(build: TargetBuild, started: float, seed: derive.Seed | None, scans: dict | None = None,
                 compiler: CompileServer | None = None) -> TargetResult:
    """Build one prepared target's release (from `seed`'s when given, its native outputs compiled in
    `compiler`; `scans`: the build's source scans)."""
    # one build of a tree at a time (two xrel runs on one project wait for each other)
    with cache.locked("builds", build.workspace.key):
        build.log.parent.mkdir(parents=True, exist_ok=True)
        build.log.write_text("")
        with progress.step(f"{build.label} compile and assemble"):
            synced, native_synced = sync_workspace(build.project, build.workspace, scans,
                                                   seed.build.workspace if seed else None)
            inputs = record.build_inputs(build, synced)
            previous = record.previous_result(build, inputs)
            if previous is not None:
                return up_to_date(build, previous, inputs, started)
            record.forget(build)
            report = make_release(build, seed, record.build_inputs(build, native_synced), compiler)
        result = package(build, report, seed.own_time_from(started) if seed else started)
        record.save(build, inputs, result)
        return result


def needs_compile_vm(builds: Sequence[TargetBuild]) -> bool:
    """Will an extra target compile native outputs never compiled in its tree (a new tree)?"""
    return DERIVE_EXTRA_TARGETS and any(derive.target_specific(b) and not b.native_stamp.is_file() for b in builds)


def quietly(step: Callable[[], None]) -> Callable[[], None]:
    """`step` with its errors dropped: a step taken early, whose failure shows again, raised, later."""
    def run() -> None:
        with contextlib.suppress(Exception):
            step()
    return run


def build_all(project: Project, targets: Sequence[TargetPlan], release: str, out: Path,
              options: BuildOptions) -> list[TargetResult]:
    """The first target compiles the BEAM code; the others start from its release and tree, two at
    a time, their native outputs compiled one target at a time in one mix VM. That VM boots when
    the first target's BEAM code starts compiling (xrel's mix wrapper marks it: its native outputs
    are done, zig's memory is freed); the others start as soon as its `mix release` assembles
    (xrel's release step writes its release info): their trees are synced and seeded meanwhile."""
    forget_earlier_builds()
    scans: dict = {}  # every target syncs the same sources: each tree is scanned once
    started = time.monotonic()
    first = prepare(project, targets[0], release, out, options)
    if not targets[1:]:
        return [build_target(first, started, None, scans)]
    from concurrent.futures import ThreadPoolExecutor  # (its import costs the 1-target edit loop ~9 ms)

    compiler, seed, extras, once = CompileServer(project.path), derive.Seed(first), [], threading.Lock()
    try:
        with ThreadPoolExecutor(max_workers=PARALLEL_TARGETS) as pool:
            preparing = [pool.submit(prepare, project, t, release, out, options) for t in targets[1:]]

            def boot_compile_vm() -> None:
                builds = [p.result() for p in preparing]
                if needs_compile_vm(builds):
                    compiler.start(first.env)

            def start_extras() -> None:
                with once:
                    if extras:
                        return
                    boot_compile_vm()
                    extras.extend(pool.submit(build_target, p.result(), time.monotonic(), seed, scans, compiler)
                                  for p in preparing)

            try:
                with when_written(first.beam_mark, quietly(boot_compile_vm)), \
                        when_written(first.release_info, quietly(start_extras)):
                    results = [build_target(first, started, None, scans)]
            except BaseException:
                seed.finished(failed=True)
                raise
            seed.finished()
            start_extras()
            return results + [f.result() for f in extras]
    finally:
        compiler.close()


def node_agent(config, project: Project, host):
    """The node agent to put in every release ([node] in xrel.toml), else None."""
    if config is None or config.sections.get("node") is None:
        return None  # (the agent's machinery is not even imported)
    from xrel.node.agent import agent_for

    return agent_for(config, project.name, bool(project.info.get("umbrella")), host.root, host.otp_release)


def write_manifest(out: Path, project: Project, release: str, version: str, results: list[TargetResult]) -> Path:
    entries = [r.manifest_entry() for r in results]
    with cache.locked("builds", "manifest-" + hashlib.sha256(str(out).encode()).hexdigest()[:16]):
        return assemble.update_manifest(out, project.name, release, version, entries)


def build(project_dir: str | Path = ".", targets: str | Target | Sequence[str | Target] = (), *,
          otp: str | None = None, elixir: str | None = None, source: str | None = None,
          release: str | None = None, out: str | Path | None = None, mix_env: str | None = None,
          mix_target: str | None = None, offline: bool = False, sysroot_packages: Sequence[str] = (),
          locked: bool = False, tarball: bool | None = None) -> BuildResult:
    """Build a release of the project for each target (default: xrel.toml's); see BuildResult.
    Arguments given here win over xrel.toml. Every runtime is resolved before anything compiles.
    Release dirs, and each target's reproducible tarball (the bytes `xrel dist` ships) when the
    release's mix steps include :tar, as `mix release` would, or `tarball=True`; `tarball=False`:
    never (results' tarball and sha256 are None)."""
    if isinstance(targets, (str, Target)):
        targets = [targets]
    project_dir = Path(project_dir)
    with early_mix.booted(project_dir):  # (the CLI booted it before its imports)
        if otp:
            parse_request(otp)  # a malformed --otp is a usage error before anything is fetched
        plan = resolve(project_dir, Request(tuple(targets), otp, elixir, source, offline, locked))
        config = plan.config
        with activated(plan.host_tools):
            host = host_erlang()
            for target_plan in plan.targets:  # the OTP window, for every target before compiling any
                compat.check_runtime(target_plan.runtime, host, target_plan.target)
            mix_env = mix_env or (config.mix_env if config else None) or "prod"
            project = load_project(project_dir, mix_env, mix_target)
            agent = node_agent(config, project, host)
            name = project.release_name(release or (config.release if config else None))
            tarball = name in project.info.get("tar_releases", []) if tarball is None else tarball  # mix's :tar
            options = BuildOptions(otp, source, offline, mix_target, tuple(sysroot_packages), agent, tarball)
            parsed = [t.target for t in plan.targets]
            refuse_broken_targets(project.apps, parsed)
            rust.check(project, parsed)
            out_dir = Path(out).resolve() if out else (config.out if config and config.out else
                                                        project.path / "_build" / "xrel")
            results = build_all(project, plan.targets, name, out_dir, options)  # (old releases deleted behind)
            version = assemble.release_version(Path(results[0].release_dir))
            manifest = write_manifest(out_dir, project, name, version, results)
            return BuildResult(project.name, name, version, str(out_dir), str(manifest), results,
                               compiled_by=plan.compiled_by())
