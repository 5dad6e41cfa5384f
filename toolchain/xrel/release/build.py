"""`xrel build`: compile a mix project once and assemble a release per target."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xrel import __version__, progress
from xrel.errors import UsageError
from xrel.host import HostErlang, host_erlang
from xrel.inspection.binaries import version_key
from xrel.inspection.check import Report, inspect_tree
from xrel.release import assemble, precompiled, rust
from xrel.release.mix import Project, load_project, mix_env_vars, run_mix
from xrel.release.native import local_deps_env, own_env_compile_order, refuse_broken_targets
from xrel.release.workspace import Workspace, sync_tree, workspace_for
from xrel.runtimes import Runtime, fetch_runtime
from xrel.storage import cache
from xrel.storage.cache import remove, stat_fingerprint
from xrel.targets import Target
from xrel.zig.toolchain import ZigToolchain

# Targets after the first build concurrently (each is mostly one single-threaded mix process).
PARALLEL_TARGETS = max(1, min(2, os.cpu_count() or 1))

# Elixir version -> the OTP majors it supports (a warning outside, not an error).
ELIXIR_OTP = {"1.13": (22, 25), "1.14": (23, 26), "1.15": (24, 26), "1.16": (24, 26), "1.17": (25, 27),
              "1.18": (25, 28), "1.19": (26, 28)}


@dataclass
class TargetResult:
    target: str
    release_dir: str
    tarball: str
    sha256: str
    otp_version: str
    erts_version: str
    nif_version: str
    runtime: dict
    glibc_floor: str | None
    native_files: list[dict]
    needed_libraries: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class BuildResult:
    project: str
    release: str
    version: str
    out: str
    manifest: str
    targets: list[TargetResult]

    def to_dict(self) -> dict:
        return asdict(self)


def check_versions(runtime: Runtime, host: HostErlang, target: Target) -> list[str]:
    """BEAM files compiled here must load on the target: target OTP in [host, host+2]."""
    notes = []
    major, hmajor = runtime.otp_major, host.otp_major
    if major < hmajor:
        raise UsageError(f"target OTP {runtime.otp_version} is older than this machine's OTP {hmajor}: "
                         f"BEAM files compiled here will not load there",
                         f"use --otp {hmajor} (or newer), or build on an OTP {major} machine")
    if major > hmajor + 2:
        raise UsageError(f"target OTP {major} is more than two releases newer than this machine's OTP {hmajor}",
                         f"use --otp {hmajor}..{hmajor + 2}, or install a newer OTP here")
    elixir = host.elixir_version or ""
    window = ELIXIR_OTP.get(".".join(elixir.split(".")[:2]))
    if window and not window[0] <= major <= window[1]:
        notes.append(f"warning: Elixir {elixir} supports OTP {window[0]}-{window[1]}, the target runs OTP {major}")
    if target.glibc and runtime.glibc_floor and version_key(runtime.glibc_floor) > version_key(target.glibc):
        raise UsageError(f"the {runtime.source} OTP {runtime.otp_version} runtime itself needs glibc "
                         f"{runtime.glibc_floor}, above the requested floor {target.glibc}",
                         f"ask for {target.name}.{runtime.glibc_floor} or a runtime built for an older glibc")
    return notes


def check_requested_otp(otp: str, host: HostErlang) -> None:
    """Refuse an OTP request outside [host, host+2] before fetching anything."""
    from xrel.runtimes.versions import parse_request

    major, hmajor = parse_request(otp)[0], host.otp_major
    if major < hmajor:
        raise UsageError(f"OTP {otp} is older than this machine's OTP {hmajor}: BEAM files compiled here "
                         f"will not load there", f"use --otp {hmajor} (or newer), or build on an OTP {major} machine")
    if major > hmajor + 2:
        raise UsageError(f"OTP {otp} is more than two releases newer than this machine's OTP {hmajor}",
                         f"use --otp {hmajor}..{hmajor + 2}, or install a newer OTP here")


def sync_workspace(project: Project, ws: Workspace) -> str:
    """Mirror the project and every dependency into the target's tree (host binaries of
    native apps are not copied); returns a digest of everything synced."""
    inside = [a.path for a in project.deps if a.path.is_relative_to(project.path)]
    digests = [sync_tree(project.path, ws.project,
                         excludes={"_build", ".git", ".elixir_ls", "deps"} | rust.sync_excludes(project.own),
                         drop_binaries_under=[project.path] if project.own.native else [],
                         skip_subtrees=inside).digest]
    for app in project.deps:
        dest = ws.root / app.path.resolve().relative_to(app.path.resolve().anchor)
        digests.append(sync_tree(app.path, dest, excludes=rust.sync_excludes(app),
                                 drop_binaries_under=[app.path] if app.native else []).digest)
    return hashlib.sha256("".join(digests).encode()).hexdigest()


# Environment variables that can change what a build produces.
_ENV_INPUTS = ("CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "MAKEFLAGS", "RUSTFLAGS", "ERL_COMPILER_OPTIONS",
               "ELIXIR_ERL_OPTIONS", "MIX_TARGET", "HEX_OFFLINE", rust.FORCE_BUILD_ALL, "RUSTUP_TOOLCHAIN")


def _up_to_date(record: Path, inputs: str, release_dir: Path) -> dict | None:
    """The previous result for this target if its inputs and outputs are exactly as left."""
    try:
        last = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if last.get("inputs") != inputs or not release_dir.is_dir():
        return None
    tarball = Path(last["result"]["tarball"])
    if not tarball.is_file() or last.get("release") != stat_fingerprint(release_dir):
        return None
    return last["result"]


def forget_native_outputs(project: Project, ws: Workspace) -> None:
    """In a tree seeded from another target: make mix rebuild every native or target-baking
    app (their build dirs go), and drop the project's own native outputs."""
    lib = ws.build_dir / project.build_subdir / "lib"
    for app in project.deps:
        if app.native or app.recompile_per_target:
            shutil.rmtree(lib / app.name, ignore_errors=True)
    own = project.own
    if own.recompile_per_target:
        shutil.rmtree(lib / own.name, ignore_errors=True)
    elif own.native and (lib / own.name).is_dir():
        # keep only its BEAM code: priv/ and build dirs under MIX_APP_PATH (a CMake cache names
        # the seed's tree and compilers) are the seed target's
        for child in (lib / own.name).iterdir():
            if child.name not in ("ebin", ".mix") and not child.is_symlink():
                shutil.rmtree(child) if child.is_dir() else child.unlink()


def compile_precompiled_deps(project: Project, ws: Workspace, target: Target, env: dict, log: Path) -> list[str]:
    """Deps with an environment of their own (a precompiler's TARGET_*, a recipe's env) compile
    alone with it, after the deps they need; returns notes for the target."""
    notes: list[str] = []
    for app in own_env_compile_order(project.deps, project.info.get("deps_tree", []), target):
        extra = app.env_for(target)
        # a dep with its own env always compiles here (incrementally): if it changed, `mix release`
        # would otherwise recompile it without that env (a precompiled dep would fetch the host's)
        if not extra and (ws.build_dir / project.build_subdir / "lib" / app.name / "ebin" / f"{app.name}.app").is_file():
            continue
        if app.precompiler:  # failures named per dep and target; elixir_make's source fallback noted
            notes += precompiled.compile_dep(app, ws.project, target, {**env, **extra}, log)
        else:
            run_mix(["deps.compile", app.name], ws.project, {**env, **extra}, log, f"compiling {app.name} for {target}")
    return notes


def explain(report: Report, project: Project) -> None:
    """Name the dependency behind each bad file and the likely cause."""
    apps = {a.name: a for a in project.apps}
    for finding in report.problems:
        parts = Path(finding.path).parts
        if len(parts) > 1 and parts[0] == "lib":
            app = apps.get(parts[1].rsplit("-", 1)[0])
            if app is None:
                continue
            if app.precompiler:
                finding.origin = (f"dependency {app.name}: its {app.precompiler} artifact is not for this target "
                                  f"(a download for the wrong target?)")
            elif app.native:
                finding.origin = (f"dependency {app.name}: its build ({', '.join(app.kinds)}) did not use xrel's "
                                  f"CC/CXX (a hard-coded compiler?)")
            else:
                finding.origin = f"dependency {app.name}: ships a prebuilt binary"


def build_sysroot(target: Target, project: Project, packages: list[str], offline: bool,
                  runtime: Runtime) -> Path | None:
    """A build-time sysroot of Debian -dev packages for NIFs that link target system libraries:
    the packages asked on the command line plus those recipes name for the project's deps,
    from the runtime's Debian suite (the libraries the release will run with)."""
    wanted = list(packages)
    for app in project.apps:
        wanted += app.recipe.get("sysroot_packages", [])
    if not wanted:
        return None
    from xrel.debian.sysroot import ensure_sysroot

    return ensure_sysroot(target, [], runtime.meta, sorted(set(wanted)), offline=offline)


def build_target(project: Project, target: Target, release: str, out: Path, *, otp: str | None,
                 source: str | None, offline: bool, seed: Workspace | None,
                 mix_target: str | None, sysroot_packages: list[str] = ()) -> tuple[TargetResult, Workspace]:
    start = time.monotonic()
    host = host_erlang()
    label = f"[{target.id}]"
    with progress.step(f"{label} runtime"):
        runtime = fetch_runtime(target, otp=otp or str(host.otp_major), source=source, offline=offline)
    notes = check_versions(runtime, host, target)
    for note in notes:
        progress.note(f"{label} {note}")
    sysroot = build_sysroot(target, project, list(sysroot_packages), offline, runtime)
    tc = ZigToolchain(target, otp_root=runtime.root, sysroot=sysroot)
    # make cannot tell that CC, the sysroot or a recipe changed: objects in a tree are only valid
    # for the compiler setup that made them, so each setup gets its own tree
    setup = hashlib.sha256(json.dumps([tc.directory.name, [a.recipe for a in project.apps]]).encode()).hexdigest()
    ws = workspace_for(project.path, project.mix_env, target.id,
                       f"{runtime.source}-{runtime.otp_version}-{setup[:8]}")
    # one build of a tree at a time (two xrel runs on one project wait for each other)
    with cache.locked("builds", ws.key):
        log = ws.root.parent / "build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        release_dir = out / target.id / release
        record = ws.root.parent / "last-build.json"
        with progress.step(f"{label} compile and assemble"):
            synced = sync_workspace(project, ws)
            inputs = hashlib.sha256(json.dumps([
                synced, str(runtime.root), runtime.meta.get("sha256"), str(tc.directory), str(tc.zig.version),
                str(sysroot), project.mix_env, mix_target, release, str(release_dir), __version__,
                [(k, os.environ.get(k)) for k in _ENV_INPUTS]]).encode()).hexdigest()
            previous = _up_to_date(record, inputs, release_dir)
            if previous is not None:
                result = TargetResult(**{**previous, "seconds": round(time.monotonic() - start, 2),
                                         "notes": ["up to date: nothing changed since the last build"]})
                return result, ws
            record.unlink(missing_ok=True)
            if seed is not None and not (ws.build_dir / project.build_subdir).exists():
                ws.relink_from(seed, project.build_subdir)
                forget_native_outputs(project, ws)
            extra = {**tc.env(), **rust.cargo_env(project, target, ws), **precompiled.cache_env(),
                     "XREL_INCLUDE_ERTS": str(runtime.erts_dir), "XREL_TARGET_OS": target.os,
                     "XREL_RELEASE_INFO": str(ws.root.parent / "release-info.json")}
            if mix_target:
                extra["MIX_TARGET"] = mix_target
            extra.update(local_deps_env(project.deps, target))
            env = mix_env_vars(ws.project, project.mix_env, extra)
            notes += compile_precompiled_deps(project, ws, target, env, log)
            # assembled beside its final place and moved there only when it passed inspection
            staging = release_dir.with_name(f".{release_dir.name}.partial")
            remove(staging)
            Path(extra["XREL_RELEASE_INFO"]).unlink(missing_ok=True)
            try:
                run_mix(["release", release, "--overwrite", "--path", str(staging)], ws.project, env, log,
                        f"building the release for {target}")
                notes += finish_release(staging, target, runtime, host, Path(extra["XREL_RELEASE_INFO"]))
                with progress.step(f"{label} inspect"):
                    report = inspect_tree(staging, target)
                    explain(report, project)
                    report.raise_for_problems(f"the release for {target}")
            except BaseException:
                remove(staging)
                raise
            remove(release_dir)
            os.replace(staging, release_dir)
        version = release_version(release_dir)
        tarball = out / f"{release}-{version}-{target.id}.tar.gz"
        with progress.step(f"{label} tarball"):
            sha = assemble.write_tarball(release_dir, tarball)
        result = TargetResult(
            target=target.id, release_dir=str(release_dir), tarball=str(tarball), sha256=sha,
            otp_version=runtime.otp_version, erts_version=runtime.erts_version, nif_version=runtime.nif_version,
            runtime=runtime.to_dict(), glibc_floor=report.glibc_floor,
            native_files=[{"path": f.path, **f.info} for f in report.files], needed_libraries=report.needed,
            seconds=round(time.monotonic() - start, 2), notes=notes,
        )
        record.write_text(json.dumps({"inputs": inputs, "release": stat_fingerprint(release_dir),
                                      "result": asdict(result)}))
        return result, ws


def finish_release(release_dir: Path, target: Target, runtime: Runtime, host: HostErlang,
                   release_info: Path) -> list[str]:
    """What mix cannot do for a cross target: Windows file names, the target's own OTP beams,
    xrel's marker; and a note when the user's config left ERTS out."""
    notes = []
    if target.os == "windows":
        notes += assemble.fix_windows_names(release_dir)
    if runtime.otp_major != host.otp_major:
        restored = assemble.restore_otp_beams(release_dir, runtime)
        notes.append(f"restored the target's own beams for {len(restored)} OTP apps")
    assemble.release_marker(release_dir, target, runtime)
    try:
        info = json.loads(release_info.read_text())
    except (OSError, ValueError):
        info = {}
    if info and info.get("erts_source") is None:
        notes.append(f"include_erts: false in mix.exs: the release has no ERTS; {target.name} must provide "
                     f"OTP {runtime.otp_version} (erts {runtime.erts_version}) itself")
    return notes


def release_version(release_dir: Path) -> str:
    data = (release_dir / "releases" / "start_erl.data").read_text().split()
    return data[1] if len(data) > 1 else "0"


def build(project_dir: str | Path = ".", targets: list[str | Target] = ("host",), *, otp: str | None = None,
          source: str | None = None, release: str | None = None, out: str | Path | None = None,
          mix_env: str = "prod", mix_target: str | None = None, offline: bool = False,
          sysroot_packages: list[str] = ()) -> BuildResult:
    """Build a release of the project for each target; see BuildResult."""
    parsed = [Target.parse(t) for t in targets]
    if not parsed:
        raise UsageError("no target given", "pass --target, e.g. --target aarch64-linux-gnu")
    if otp:
        check_requested_otp(otp, host_erlang())
    project = load_project(Path(project_dir), mix_env, mix_target)
    refuse_broken_targets(project.apps, parsed)
    name = project.release_name(release)
    rust.check(project, parsed)
    out_dir = Path(out).resolve() if out else project.path / "_build" / "xrel"
    def one(target: Target, seed: Workspace | None) -> tuple[TargetResult, Workspace]:
        return build_target(project, target, name, out_dir, otp=otp, source=source, offline=offline,
                            seed=seed, mix_target=mix_target, sysroot_packages=sysroot_packages)

    # The first target compiles the BEAM code; the others start from its tree, two at a time.
    first, seed = one(parsed[0], None)
    results = [first]
    if parsed[1:]:
        with ThreadPoolExecutor(max_workers=PARALLEL_TARGETS) as pool:
            results += [r for r, _ws in pool.map(lambda t: one(t, seed), parsed[1:])]
    version = release_version(Path(results[0].release_dir))
    entries = [{"target": r.target, "file": Path(r.tarball).name, "sha256": r.sha256, "otp": r.otp_version,
                "erts": r.erts_version, "nif": r.nif_version, "runtime_source": r.runtime.get("source"),
                "runtime_sha256": r.runtime.get("sha256"), "glibc_floor": r.glibc_floor} for r in results]
    with cache.locked("builds", "manifest-" + hashlib.sha256(str(out_dir).encode()).hexdigest()[:16]):
        manifest = assemble.update_manifest(out_dir, project.name, name, version, entries)
    return BuildResult(project.name, name, version, str(out_dir), str(manifest), results)
