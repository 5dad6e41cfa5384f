"""`xrel dist` (a signed, reproducible dist/<version>/ of every target) and `xrel verify DIR|URL`."""

from __future__ import annotations

import click

from xrel.cli.app import command, emit_json


@command("dist")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False))
@click.option("-t", "--target", "targets", multiple=True, help="Target (repeatable; default: xrel.toml's targets).")
@click.option("--otp", default=None, help="Target OTP version (default: xrel.toml's).")
@click.option("--source", default=None, help="Runtime source (see `xrel otp-versions`).")
@click.option("--dist-dir", type=click.Path(file_okay=False), help="Where <version>/ goes (default: dist/).")
@click.option("--offline", is_flag=True, help="Use cached runtimes only.")
@click.option("--locked", is_flag=True, help="Fail if xrel.lock would change (CI).")
@click.option("--force", is_flag=True, help="Replace an existing dist/<version>/ with other content.")
@click.option("--check", is_flag=True, help="Assemble every release again and require the same bytes.")
@click.option("--upgrade-from", "upgrade_from", default=None, metavar="VERSION|PATH",
              help="Hot-upgrade packages from this version or dist/tarball ('none': no packages; "
                   "default: the version [publish] names latest).")
@click.option("--json", "as_json", is_flag=True)
def dist_cmd(project_dir, targets, otp, source, dist_dir, offline, locked, force, check, upgrade_from, as_json) -> None:
    """Build every target into dist/<version>/: tarballs, upgrade packages, SHA256SUMS, manifest, signatures."""
    from xrel.dist import make_dist

    result = make_dist(project_dir, targets, otp=otp, source=source, locked=locked, offline=offline,
                       dist_dir=dist_dir, force=force, check=check, upgrade_from=upgrade_from)
    if as_json:
        emit_json(result.to_dict())
        return
    for note in result.notes:
        click.echo(f"note: {note}")
    state = "unchanged" if result.unchanged else "written"
    checked = ", rebuilt and identical" if result.checked else ""
    click.echo(f"{result.directory} ({state}{checked}, {len(result.files)} files, {result.seconds:.1f}s)")


@command("verify")
@click.argument("source")
@click.option("--public-key", default=None, type=click.Path(dir_okay=False, exists=True),
              help="minisign public key (default: [signing] public_key of ./xrel.toml).")
@click.option("--json", "as_json", is_flag=True)
def verify_cmd(source, public_key, as_json) -> None:
    """Check a dist (directory or URL): signatures, every sha256, no COOKIE, each tarball against its target."""
    from xrel.dist import verify_dist

    result = verify_dist(source, public_key)
    if as_json:
        emit_json(result.to_dict())
        return
    for note in result.notes:
        click.echo(f"note: {note}")
    signed = f"signed by {result.signed_by}" if result.signed_by else "signatures not checked"
    click.echo(f"ok: {result.app} {result.version}, {len(result.targets)} targets, {signed}")
