"""The `xrel` command: parses arguments, calls the library, prints. Nothing else lives here.

Startup stays fast: the group imports a command's module only when that command runs (or for
--help), and each command imports the library it calls inside its body.
"""

from __future__ import annotations

import functools
import sys

import click

from xrel import __version__, progress
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
                import traceback

                traceback.print_exc()
            click.echo(f"xrel: error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("xrel: interrupted", err=True)
            sys.exit(130)

    return wrapper


def emit_json(data) -> None:
    import json

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


class LazyGroup(click.Group):
    """A group that imports the module of a command when it is asked for (`lazy`: name -> module)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = {}

    @staticmethod
    def _load(module: str) -> None:
        __import__(module)  # not importlib.import_module: `python -X importtime` shows only these imports

    def _load_all(self) -> None:
        for module in sorted(set(self.lazy.values())):
            self._load(module)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self._load(self.lazy[cmd_name])
        if cmd_name not in self.commands:
            self._load_all()  # a command missing from `lazy`, or a typo (the error lists every command)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return super().list_commands(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.version_option(version=__version__, prog_name="xrel")
def main() -> None:
    """Cross-build Elixir/Erlang releases for any target, with zig and prebuilt OTP runtimes."""
    exit_on_sigterm()


def exit_on_sigterm() -> None:
    """SIGTERM (systemd, CI runners, kill) unwinds like Ctrl-C: staging dirs are deleted, locks
    released, the running child killed; exit status 143."""
    import signal

    def terminated(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)


def command(*args, group: click.Group = main, **kwargs):
    """A subcommand (of `group`) that takes the global options and whose XrelErrors become one-line messages."""

    def decorate(func):
        return group.command(*args, **kwargs)(global_options(_run(func)))

    return decorate

