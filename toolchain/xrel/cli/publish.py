"""`xrel publish [DESTINATION]`: a `xrel dist` directory to a GitHub release or to a served directory."""

from __future__ import annotations

from pathlib import Path

import click

from xrel.cli.app import command, emit_json
from xrel.errors import UsageError


def _destination(destination: str | None, project_dir: Path):
    from xrel.project.config import load_config
    from xrel.publish.destination import FORMS, parse_destination

    if destination:
        return parse_destination(destination)
    config = load_config(project_dir)
    section = config.sections.get("publish") if config else None
    if section is None or section.to is None:
        raise UsageError("no publish destination", f"give one ({FORMS}) or set [publish] to = \"...\" in xrel.toml")
    return section.to


@command("publish")
@click.argument("destination", required=False)
@click.option("-C", "--project", "project_dir", default=".", type=click.Path(file_okay=False, path_type=Path),
              help="Project dir whose xrel.toml names the destination (default: .).")
@click.option("--dist", "dist_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="The dist/<version> dir of xrel dist (default: the newest version under <project>/dist).")
@click.option("--tag", default=None, help="GitHub release tag (default: v<version>).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def publish_cmd(destination, project_dir: Path, dist_dir: Path | None, tag: str | None, as_json: bool) -> None:
    """Publish a dist dir to github:OWNER/REPO (token in GITHUB_TOKEN or GH_TOKEN), dir:PATH or file:///PATH."""
    from xrel.publish import publish
    from xrel.publish.dist import find_dist

    dest = _destination(destination, project_dir)
    dist = find_dist(dist_dir if dist_dir is not None else project_dir / "dist")
    result = publish(dist, dest, tag=tag)
    if as_json:
        emit_json(result)
        return
    if "tag" in result:
        counts = {}
        for action in result["assets"].values():
            counts[action] = counts.get(action, 0) + 1
        summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
        click.echo(f"{result['destination']} {result['tag']}: published {result['url'] or ''} ({summary})")
    else:
        latest = "latest/ points at it" if result["latest"] else "latest/ names a newer version"
        click.echo(f"{result['destination']}: {result['version']} {result['state']} at {result['path']}; {latest}")
