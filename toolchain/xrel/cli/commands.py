"""Subcommands of `xrel` (registered on the group in cli/__init__.py).

Each command imports what it calls inside its body: registering the commands stays cheap (see app.py).
"""

from __future__ import annotations

from pathlib import Path

import click

from xrel import progress
from xrel.cli.app import command, emit_json
from xrel.errors import NotAvailableError


@command("targets")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def targets_cmd(as_json: bool) -> None:
    """Every target, its aliases, runtime sources, and whether it boots here."""
    from xrel.emulate import qemu
    from xrel.targets import all_targets

    rows = []
    for t in all_targets():
        e = qemu.emulation(t)
        rows.append({
            "name": t.name, "aliases": list(t.aliases), "sources": list(t.sources), "zig": t.zig,
            "rust": t.rust, "erlang": t.erlang, "debian": t.debian, "format": t.format,
            "bits": t.bits, "run_here": e.mode, "run_note": e.reason,
        })
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<24} sources: {', '.join(r['sources']):<20} run here: {r['run_here']}")
        click.echo(f"{'':<24} aliases: {', '.join(r['aliases'])}")


@command("zig-env")
@click.argument("target")
@click.option("--format", "fmt", type=click.Choice(["sh", "fish", "json"]), default="sh")
@click.option("--otp", default=None, help="OTP version of the cached runtime whose headers to use.")
@click.option("--source", default=None, help="Runtime source of that runtime.")
@click.option("--otp-root", default=None, type=click.Path(exists=True, file_okay=False),
              help="Use the headers of this OTP root instead of a cached runtime.")
@click.option("--sysroot", default=None, type=click.Path(exists=True, file_okay=False),
              help="A target sysroot with -dev libraries.")
def zig_env(target: str, fmt: str, otp: str | None, source: str | None, otp_root: str | None,
            sysroot: str | None) -> None:
    """Print the environment for building native code for TARGET with zig."""
    from xrel.runtimes import cached_runtime
    from xrel.targets import Target, host_target
    from xrel.zig.toolchain import ZigToolchain, render_env

    parsed = Target.parse(target)
    fetch = f"xrel fetch-erts {parsed.id}{f' --otp {otp}' if otp else ''}{f' --source {source}' if source else ''}"
    if otp_root is None:
        runtime = cached_runtime(parsed, otp=otp, source=source)
        if runtime is None and (otp or source):
            raise NotAvailableError(f"no cached runtime for {parsed.id} matches --otp/--source", f"run `{fetch}` first")
        otp_root = runtime.root if runtime else None
    tc = ZigToolchain(parsed, otp_root=otp_root, sysroot=sysroot)
    env = render_env(tc.env(), fmt)
    if tc.otp is None and parsed.name != host_target().name:
        # stderr: `eval "$(xrel zig-env ...)"` only reads stdout
        progress.note(f"xrel: note: no runtime for {parsed.id} is cached, so ERTS_INCLUDE_DIR & co. are not set "
                      f"and host Erlang headers will be refused (run `{fetch}` or pass --otp-root)")
    click.echo(env)


@command("doctor")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def doctor_cmd(project_dir: str, as_json: bool) -> None:
    """Check zig, Erlang/Elixir (and what xrel.toml pins), qemu-user, binfmt and the cache; say how to fix
    what is missing."""
    from xrel.doctor import report

    rows = report(Path(project_dir))
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        mark = "ok " if r["ok"] else "-- "
        click.echo(f"{mark}{r['name']:<26} {r['detail']}")
        if not r["ok"] and r["fix"] and r["fix"] != r["detail"]:
            click.echo(f"{'':<30}fix: {r['fix']}")


@command("build")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False))
@click.option("-t", "--target", "targets", multiple=True, help="Target (repeatable; default: xrel.toml's targets).")
@click.option("--otp", default=None, help="Target OTP version (default: xrel.toml's, else this machine's OTP major).")
@click.option("--elixir", default=None, help="Elixir compiling the code (default: xrel.toml's, else the installed).")
@click.option("--source", default=None, help="Runtime source (see `xrel otp-versions`).")
@click.option("--release", default=None, help="Release name from mix.exs.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Output dir (default _build/xrel).")
@click.option("--mix-env", default=None, help="MIX_ENV (default: xrel.toml's, else prod).")
@click.option("--mix-target", default=None, help="Set MIX_TARGET (Nerves-style projects).")
@click.option("--offline", is_flag=True, help="Use cached runtimes only.")
@click.option("--locked", is_flag=True, help="Fail if xrel.lock would change (CI).")
@click.option("--sysroot-package", "sysroot_packages", multiple=True,
              help="Debian -dev package for NIFs that link target libraries (e.g. libsqlite3-dev).")
@click.option("--tarball/--no-tarball", default=None,
              help="Also write each target's tarball + .sha256 (`xrel dist` always does; default: when the "
                   "release's mix steps include :tar). Without one: the targets' tarballs leave the output dir.")
@click.option("--json", "as_json", is_flag=True)
def build_cmd(project_dir, targets, otp, elixir, source, release, out, mix_env, mix_target, offline, locked,
              sysroot_packages, tarball, as_json) -> None:
    """Cross-build the release of PROJECT_DIR for each target (options win over xrel.toml)."""
    from xrel.release import early_mix

    early_mix.start(project_dir)  # mix's VM boots while the build below is imported and planned
    from xrel.release.build import build

    result = build(project_dir, targets, otp=otp, elixir=elixir, source=source, release=release, out=out,
                   mix_env=mix_env, mix_target=mix_target, offline=offline, sysroot_packages=sysroot_packages,
                   locked=locked, tarball=tarball)
    if as_json:
        emit_json(result.to_dict())
        return
    by = result.compiled_by
    click.echo(f"BEAM code compiled by OTP {by['otp']} + Elixir {by['elixir']} ({by['why']})")
    for t in result.targets:
        floor = f", glibc >= {t.glibc_floor}" if t.glibc_floor else ""
        click.echo(f"{t.target:<24} {t.tarball or t.release_dir + '/'}  (OTP {t.otp_version}{floor}, {t.seconds:.1f}s)")
        for note in t.notes:
            click.echo(f"{'':<24} {note if note.startswith('runtime:') else 'note: ' + note}")
    click.echo(f"manifest: {result.manifest}")


@command("stop-kept-vms")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def stop_kept_cmd(project_dir, as_json) -> None:
    """Stop the VMs kept for PROJECT_DIR's next build (builds run from a terminal keep its mix VM and
    its extra targets' compile VM, ~110 MB, for XREL_KEEP_MIX seconds, default 600)."""
    from xrel.release import compile_server, early_mix

    stopped = {"mix_vm": early_mix.dismiss(project_dir), "compile_vm": compile_server.dismiss(Path(project_dir))}
    if as_json:
        emit_json(stopped)
        return
    names = [name.replace("_vm", " VM") for name, was in stopped.items() if was]
    click.echo(f"stopped the kept {' and '.join(names)}" if names else "no VM was kept for this project")


@command("lock")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False))
@click.option("--upgrade", is_flag=True, help="Take what the sources offer now instead of the locked versions.")
@click.option("--offline", is_flag=True, help="Use cached runtimes only.")
@click.option("--json", "as_json", is_flag=True)
def lock_cmd(project_dir, upgrade, offline, as_json) -> None:
    """Resolve xrel.toml's runtimes and host OTP/Elixir and record them in xrel.lock (builds nothing)."""
    from xrel.project.plan import plan_lock

    plan = plan_lock(Path(project_dir), upgrade=upgrade, offline=offline)
    rows = [{"target": t.target.id, "source": t.runtime.source, "otp": t.runtime.otp_version, "why": t.why}
            for t in plan.targets]
    tools = plan.host_tools
    host = {"otp": tools.otp_version, "elixir": tools.elixir_version, "provided": tools.provided,
            "why": tools.why} if tools else {}
    if as_json:
        emit_json({"lock": str(Path(project_dir) / "xrel.lock"), "host": host, "targets": rows})
        return
    if host:
        click.echo(f"host: OTP {host['otp']} + Elixir {host['elixir']} ({host['why']})")
    for row in rows:
        click.echo(f"{row['target']:<24} {row['source']} OTP {row['otp']}  ({row['why']})")
    click.echo(f"lock: {Path(project_dir) / 'xrel.lock'}")


@command("inspect")
@click.argument("path", type=click.Path(exists=True))
@click.option("-t", "--target", required=False, help="Target to check against (default: from the release).")
@click.option("--json", "as_json", is_flag=True)
def inspect_cmd(path: str, target: str | None, as_json: bool) -> None:
    """Check every native file in a release dir or tarball against its target."""
    from xrel.inspection.check import MACHINE_NAMES, inspect

    report = inspect(path, target)
    if as_json:
        emit_json(report.to_dict())
    else:
        for f in report.files:
            info = f.info or {}  # None: the file could not be parsed
            mark = "ok " if not f.problems else "BAD"
            needed = f"  needs: {', '.join(info.get('needed') or []) or '-'}"
            machine = MACHINE_NAMES.get(info.get("machine"), info.get("machine"))
            click.echo(f"{mark} {f.path}: {info.get('format')} {info.get('bits')}-bit {machine}"
                       f"{', ' + info['libc'] if info.get('libc') else ''}{needed}")
            for p in f.problems:
                click.echo(f"      {p}")
        click.echo(f"target {report.target}: {len(report.files)} native files, glibc floor "
                   f"{report.glibc_floor or '-'}, needs {', '.join(report.needed) or 'nothing outside'}")
    if not report.ok:
        report.raise_for_problems(path)


@command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("release", type=click.Path(exists=True))
@click.option("-t", "--target", default=None, help="Target (default: from the release).")
@click.option("--sysroot-package", "packages", multiple=True, help="Extra Debian package for the sysroot.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_cmd(release: str, target: str | None, packages: tuple[str, ...], args: tuple[str, ...]) -> None:
    """Run RELEASE's bin/<name> ARGS on its target CPU (qemu-user when foreign)."""
    from xrel.emulate.runner import run

    args = list(args)
    if args[:1] == ["--"]:
        args = args[1:]  # `xrel run REL -- ARGS`: everything after -- goes to the release
    raise SystemExit(run(release, args, target=target, sysroot_packages=packages))


@command("smoke")
@click.argument("release", type=click.Path(exists=True))
@click.option("-t", "--target", default=None)
@click.option("--sysroot-package", "packages", multiple=True, help="Extra Debian package for the sysroot.")
@click.option("--json", "as_json", is_flag=True)
def smoke_cmd(release: str, target: str | None, packages: tuple[str, ...], as_json: bool) -> None:
    """Boot RELEASE on its target CPU, load every module (every NIF), check crypto."""
    from xrel.emulate.smoke import smoke
    from xrel.errors import EmulationError

    report = smoke(release, target=target, sysroot_packages=packages)
    if as_json:
        emit_json(report.to_dict())
    else:
        crypto = f"{report.crypto.status} {report.crypto.library}" if report.crypto else "absent "
        click.echo(f"{report.target} ({report.mode}): {len(report.apps)} apps, {report.modules} modules, "
                   f"NIFs loaded: {', '.join(report.nifs_loaded) or 'none'}")
        click.echo(f"priv executables: {', '.join(report.executables) or 'none'}; crypto: {crypto}")
        for f in report.failures:
            click.echo(f"FAILED {f.module} ({f.app}): {f.reason} {f.loader_error}")
    if not report.ok:
        first = report.failures[0] if report.failures else None
        detail = f": {first.module}: {first.loader_error or first.reason}" if first else ""
        raise EmulationError(f"smoke test failed for {report.target}: {'; '.join(report.notes)}{detail}")
