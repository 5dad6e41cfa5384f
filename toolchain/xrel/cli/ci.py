"""`xrel ci github`: the GitHub Actions workflow that builds, signs and publishes on a tag."""

from __future__ import annotations

from pathlib import Path

import click

from xrel.cli.app import command, global_options, main


@main.group("ci")
@global_options
def ci_group() -> None:
    """Write CI workflows that build every target, sign and publish with xrel."""


@command("github", group=ci_group)
@click.argument("project_dir", default=".", type=click.Path(file_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Workflow file (default: .github/workflows/release.yml of the project's git repository).")
@click.option("--split", is_flag=True,
              help="A job per target (artifacts, failures named early), then one that builds, signs, publishes.")
@click.option("--force", is_flag=True, help="Write over an existing workflow file.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the workflow instead of writing it.")
def github_cmd(project_dir: str, output: str | None, split: bool, force: bool, to_stdout: bool) -> None:
    """Write the release workflow of PROJECT_DIR (default: here): on a v* tag, build, sign, publish."""
    from xrel.ci import render, write

    workflow = render(Path(project_dir), split=split)
    if to_stdout:
        click.echo(workflow.text, nl=False)
        return
    path = write(workflow, Path(output) if output else None, force=force)
    click.echo(str(path))
