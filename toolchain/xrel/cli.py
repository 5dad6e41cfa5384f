"""The `xrel` command: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import sys
import traceback

import click

from . import progress
from .errors import XrelError


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.version_option(package_name="xrel")
def main(debug: bool, quiet: bool) -> None:
    """Cross-build Elixir/Erlang releases for any target, with zig and prebuilt OTP runtimes."""
    Context.debug = debug
    progress.set_quiet(quiet)


def command(*args, **kwargs):
    """A subcommand whose XrelErrors become one-line messages."""

    def decorate(func):
        return main.command(*args, **kwargs)(_run(func))

    return decorate


from . import cli_commands  # noqa: E402,F401  (registers the subcommands)
from . import cli_runtime  # noqa: E402,F401  (fetch-erts, otp-versions, cache)
