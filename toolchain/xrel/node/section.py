"""xrel.toml's [node] table: what the agent inside every release does on the node.

    [node]
    feed = "https://releases.example.com/myapp"   # `xrel publish dir:` output served over HTTPS
    # feed = "github:OWNER/REPO"                   # a GitHub release's assets (never the API)
    interval = "5m"          # poll period (jittered); also on demand
    probation = "2m"         # a new version must be healthy within this, else the node rolls back
    health_check = "MyApp.Health.check"   # optional: a 0-arity function returning :ok / true / {:ok, _}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xrel.project.locator import Locator

KEYS = ("feed", "interval", "probation", "max_attempts", "restart_sec", "health_check", "service",
        "cacertfile", "tag_prefix")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h)?$")
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600}
_ELIXIR_FUN = re.compile(r"^((?:[A-Z]\w*\.)*[A-Z]\w*)\.([a-z_]\w*[?!]?)$")
_ERLANG_FUN = re.compile(r"^([a-z]\w*):([a-z_]\w*)$")
_SERVICE = re.compile(r"^[A-Za-z0-9_.@-]+$")


@dataclass(frozen=True)
class NodeConfig:
    """The agent's settings as baked into a release (env vars override them on the node)."""

    feed: str
    interval: int = 300  # seconds
    probation: int = 120
    max_attempts: int = 3  # starts allowed on probation before the node rolls back
    restart_sec: int = 5
    health_check: tuple[str, str] | None = None  # (module, function) as Erlang atoms
    service: str | None = None  # systemd unit name; default: the release's name
    cacertfile: str | None = None  # a CA bundle on the node; default: the OS store
    tag_prefix: str = "v"  # github feeds: the tag of version V is <tag_prefix>V


def _feed(value: object, loc: Locator) -> str:
    ok = isinstance(value, str) and (re.match(r"^github:[\w.-]+/[\w.-]+$", value)
                                     or re.match(r"^https?://[^\s/]+(/\S*)?$", value))
    if not ok:
        raise loc.error("feed" if value is not None else None,
                        f"[node] feed must be an https:// URL or github:OWNER/REPO, not {value!r}",
                        'e.g. feed = "https://releases.example.com/myapp" (what `xrel publish dir:` wrote, served)')
    return value


def _duration(table: dict, key: str, default: int, loc: Locator, minimum: int = 1) -> int:
    value = table.get(key, default)
    match = _DURATION.match(str(value)) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    seconds = int(match.group(1)) * _UNITS[match.group(2)] if match else -1
    if seconds < minimum:
        raise loc.error(key, f"[node] {key} = {value!r} is not a duration of at least {minimum} s",
                        f'write {key} = {default} (seconds) or "{default // 60 or 1}m"')
    return seconds


def _health_check(value: object, loc: Locator) -> tuple[str, str] | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else ""
    if m := _ELIXIR_FUN.match(text):
        return f"Elixir.{m.group(1)}", m.group(2)
    if m := _ERLANG_FUN.match(text):
        return m.group(1), m.group(2)
    raise loc.error("health_check", f"[node] health_check = {value!r} names no function",
                    'write "MyApp.Health.check" (Elixir) or "my_health:check" (Erlang), a function of no arguments')


def _optional_string(table: dict, key: str, loc: Locator, pattern: re.Pattern | None = None) -> str | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value or (pattern and not pattern.match(value))):
        raise loc.error(key, f"[node] {key} = {value!r} is not valid", f"write {key} as a plain string")
    return value


def parse_node(table: dict, loc: Locator) -> NodeConfig:
    """The [node] table, checked. ConfigError (file:line) on any mistake."""
    for key in table:
        if key not in KEYS:
            raise loc.error(key, f"unknown key '{key}' in [node]", f"known keys: {', '.join(KEYS)}")
    return NodeConfig(
        feed=_feed(table.get("feed"), loc),
        interval=_duration(table, "interval", 300, loc, minimum=1),
        probation=_duration(table, "probation", 120, loc, minimum=5),
        max_attempts=_duration(table, "max_attempts", 3, loc),
        restart_sec=_duration(table, "restart_sec", 5, loc),
        health_check=_health_check(table.get("health_check"), loc),
        service=_optional_string(table, "service", loc, _SERVICE),
        cacertfile=_optional_string(table, "cacertfile", loc),
        tag_prefix=_optional_string(table, "tag_prefix", loc) or "v",
    )
