"""`xrel appup --show`: the hot-upgrade gate's verdict and the generated appups, for review (nothing written)."""

from __future__ import annotations

import click

from xrel.cli.app import command, emit_json


@command("appup")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False))
@click.option("--show", is_flag=True, help="Print the appups and the gate's verdict (the only mode).")
@click.option("--upgrade-from", "upgrade_from", default=None, metavar="VERSION|PATH",
              help="The release upgraded from (default: the version [publish] names latest).")
@click.option("--to", "to", default=None, type=click.Path(exists=True),
              help="The new release, a dir or tarball (default: build the project).")
@click.option("-t", "--target", "targets", multiple=True, help="Target (repeatable; default: xrel.toml's targets).")
@click.option("--json", "as_json", is_flag=True)
def appup_cmd(project_dir, show, upgrade_from, to, targets, as_json) -> None:
    """Show what `xrel dist` would put in each target's hot-upgrade package: the gate's verdict, the appups."""
    from xrel.upgrade.review import reviews

    found = list(reviews(project_dir, upgrade_from, to, targets))
    if as_json:
        emit_json([r.to_dict() for r in found])
        return
    for review in found:
        head = f"{review.target}: {review.from_version or '-'} -> {review.to_version}"
        if review.note:
            click.echo(f"{head}: {review.note}")
        elif review.refused:
            click.echo(f"{head}: no hot upgrade, nodes restart:")
            for reason in review.refused:
                click.echo(f"  - {reason}")
        else:
            click.echo(f"{head}: hot upgrade")
            for app, vsn in review.renamed.items():
                click.echo(f"  {app} ships as {vsn} (same version, new bytes)")
            for app, text in review.appups.items():
                click.echo(f"--- {app}.appup\n{text.rstrip()}")
