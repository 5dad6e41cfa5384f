"""The `xrel` command: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import sys
import traceback

import click

from xrel import progress
from xrel.errors import XrelError


class Context:
    debug = False


def _run(func):
    """Map XrelError to one line on stderr and its exit code; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except XrelError as e:
            if Context.debug:
                traceback.print_exc()
            click.echo(f"xrel: error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("xrel: interrupted", err=True)
            sys.exit(130)

    return wrapper


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _set_debug(_ctx, _param, value: bool) -> None:
    if value:
        Context.debug = True


def _set_quiet(_ctx, _param, value: bool) -> None:
    if value:
        progress.set_quiet(True)


def global_options(func):
    """--debug and -q, taken before the subcommand (`xrel -q build`) or after it (`xrel build -q`)."""
    func = click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                        help="Show tracebacks for errors.")(func)
    return click.option("-q", "--quiet", is_flag=True, expose_value=False, is_eager=True, callback=_set_quiet,
                        help="No progress output.")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.version_option(package_name="xrel")
def main() -> None:
    """Cross-build Elixir/Erlang releases for any target, with zig and prebuilt OTP runtimes."""


def command(*args, group: click.Group = main, **kwargs):
    """A subcommand (of `group`) that takes the global options and whose XrelErrors become one-line messages."""

    def decorate(func):
        return group.command(*args, **kwargs)(global_options(_run(func)))

    return decorate

