"""`xrel build-erts`: build an OTP runtime for a target from source with zig (registered in cli/__init__.py)."""

from __future__ import annotations

import click

from xrel.cli.app import command, emit_json


@command("build-erts")
@click.argument("target")
@click.option("--otp", required=True, help="OTP version to build: 25, 25.2 or 25.2.3 (`xrel otp-versions TARGET "
                                           "--source build` lists them).")
@click.option("--from", "origin", type=click.Choice(["debian", "upstream"]), default=None,
              help="Where the OTP source comes from (default: Debian's source packages when a suite has the "
                   "version, else upstream's release tarball for an exact version).")
@click.option("--without-app", "without_apps", multiple=True, metavar="APP",
              help="Leave an OTP application out (configure's --without-APP; repeat it, or give a comma list): "
                   "a shorter build. A project's build finds the runtime when its [target.*] has the same "
                   "without_apps.")
@click.option("--force", is_flag=True, help="Build again even when a built runtime is cached.")
@click.option("--offline", is_flag=True, help="Use only cached indexes and sources.")
@click.option("--json", "as_json", is_flag=True, help="Print the runtime's metadata as JSON.")
def build_erts(target: str, otp: str, origin: str | None, without_apps: tuple[str, ...], force: bool, offline: bool,
               as_json: bool) -> None:
    """Build OTP for TARGET from source with zig (Debian's source package or upstream's release
    tarball; a static OpenSSL; ~8 min per target on 2 cores), cache it like a fetched runtime,
    print its root. An interrupted build resumes after its last finished phase; `--source build`
    uses the result."""
    from xrel.runtimes import fetch_runtime

    source = f"build:{origin}" if origin else "build"
    apps = [app.strip() for value in without_apps for app in value.split(",") if app.strip()]
    runtime = fetch_runtime(target, otp=otp, source=source, offline=offline, force=force, without_apps=apps)
    if as_json:
        emit_json({**runtime.to_dict(), "build": runtime.meta.get("build")})
    else:
        click.echo(runtime.root)
