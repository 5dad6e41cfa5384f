"""xrel.toml: the project's pins (OTP, Elixir, targets, per-target overrides), loaded and checked.

Every mistake is one line naming the file, the line and the fix: `xrel.toml:7: unknown key 'otpp' (did you mean otp?)`.
Per-target settings live in `[target.<name>]` tables (`targets` itself is the list of names: TOML cannot make one
key both a list and a table). Later tables ([signing], [publish], [node]) register a parser in SECTIONS.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from xrel.errors import UsageError
from xrel.project.locator import _SYNTAX_AT, ConfigError, Locator
from xrel.targets import Target

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

FILE_NAME = "xrel.toml"
OTP_VERSION = re.compile(r"^(OTP-)?\d+(\.\d+){0,4}$", re.IGNORECASE)
ELIXIR_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?(-[\w.]+)?$")
GLIBC_FLOOR = re.compile(r"^2\.\d{1,2}$")
NAME = re.compile(r"^[a-z_][a-zA-Z0-9_]*$")  # a mix release name or MIX_ENV (an Elixir atom)


# -- checks of one value -------------------------------------------------------------------------
def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean {close[0]}? " if close else ""


def _reject_unknown(table: Mapping, known: list[str], loc: Locator) -> None:
    for key in table:
        if key not in known:
            raise loc.error(key, f"unknown key '{key}' in {loc.name()}",
                            f"{_suggest(key, known)}known keys: {', '.join(sorted(known))}")


def _string(table: Mapping, key: str, loc: Locator, pattern: re.Pattern | None = None,
            example: str = "") -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise loc.error(key, f"{loc.name(key)} must be a non-empty string, not {value!r}", f'write {key} = "{example}"')
    if pattern is not None and not pattern.match(value):
        raise loc.error(key, f"{loc.name(key)} = {value!r} is not valid", f'write e.g. {key} = "{example}"')
    return value


def _strings(table: Mapping, key: str, loc: Locator, example: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise loc.error(key, f"{loc.name(key)} must be a list of strings", f'write {key} = ["{example}"]')
    return tuple(value)


def _otp(table: Mapping, loc: Locator) -> str | None:
    """An OTP request as the build takes it: `27`, `27.3` or `27.3.4.1` (an `OTP-` prefix is dropped)."""
    value = _string(table, "otp", loc, OTP_VERSION, "27.3.4.1")
    return value[4:] if value and value.upper().startswith("OTP-") else value


def _source(table: Mapping, loc: Locator) -> str | None:
    """A runtime source as `--source` takes it: `debian`, `path:/opt/otp`, ..."""
    from xrel.runtimes.base import REGISTRY

    value = _string(table, "source", loc, None, "debian")
    if value and value.split(":", 1)[0] not in REGISTRY:
        raise loc.error("source", f"unknown runtime source {value!r}", f"choose one of {', '.join(sorted(REGISTRY))}")
    return value


# -- the targets list and its [target.<name>] tables ---------------------------------------------
@dataclass(frozen=True)
class TargetPin:
    """One pinned target and what it overrides of the project's settings."""

    target: Target  # with the glibc floor applied when `glibc` is given
    source: str | None = None
    otp: str | None = None
    sysroot_packages: tuple[str, ...] = ()
    without_apps: tuple[str, ...] = ()  # source = "build": OTP applications the runtime leaves out


PIN_KEYS = ["source", "otp", "glibc", "sysroot_packages", "without_apps"]


def _parse_target(name: str, loc: Locator, key: str | None, line: int | None = None) -> Target:
    try:
        return Target.parse(name)
    except UsageError as e:
        raise loc.error(key, e.message, e.hint, line) from None


def _listed_targets(names: object, loc: Locator) -> list[Target]:
    """The `targets` array, parsed, each target once."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise loc.error("targets", "targets must be a list of target names",
                        'write targets = ["aarch64-linux-gnu"]; per-target settings go in [target.<name>] tables')
    parsed: dict[str, tuple[str, Target]] = {}
    for i, name in enumerate(names):
        line = loc.item_line("targets", name, names[:i].count(name))
        target = _parse_target(name, loc, "targets", line)
        if target.name in parsed:
            raise loc.error("targets", f"'{name}' repeats target {target.name} (listed as '{parsed[target.name][0]}')",
                            "list each target once", line)
        parsed[target.name] = (name, target)
    return [target for _, target in parsed.values()]


def _pin(target: Target, table: Mapping, loc: Locator) -> TargetPin:
    """One [target.<name>] table applied to its listed target."""
    _reject_unknown(table, PIN_KEYS, loc)
    glibc = _string(table, "glibc", loc, GLIBC_FLOOR, "2.28")
    if glibc:
        if target.glibc and target.glibc != glibc:
            raise loc.error("glibc", f"glibc = {glibc!r} contradicts the floor of {target.id} in targets",
                            "give the floor in one place")
        target = _parse_target(f"{target.name}.{glibc}", loc, "glibc")
    source = _source(table, loc)
    without_apps = _strings(table, "without_apps", loc, "megaco")
    if without_apps and (source or "").split(":")[0] != "build":
        raise loc.error("without_apps", "without_apps needs source = \"build\" (only a runtime built from "
                        "source can leave OTP applications out)", 'add source = "build" to the table')
    try:
        from xrel.otpbuild.recipe import checked_without_apps

        without_apps = checked_without_apps(without_apps)
    except UsageError as e:
        raise loc.error("without_apps", e.message, e.hint) from None
    return TargetPin(target, source, _otp(table, loc), _strings(table, "sysroot_packages", loc, "libsqlite3-dev"),
                     without_apps)


def _pins(listed: list[Target], tables: object, loc: Locator) -> tuple[TargetPin, ...]:
    """A TargetPin per listed target, in list order, with its [target.<name>] table applied."""
    loc = loc.within("target")
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise loc.error(None, "target must hold one [target.<name>] table per target",
                        'write [target.arm64] then source = "debian"')
    by_name = {t.name: t for t in listed}
    pins: dict[str, TargetPin] = {}
    for key, table in tables.items():
        target_loc = loc.within(key)
        target = _parse_target(key, target_loc, None)
        if target.glibc:
            raise target_loc.error(None, f"[target.{key}] names a glibc floor",
                                   f'write [target.{target.name}] with glibc = "{target.glibc}"')
        if target.name not in by_name:
            raise target_loc.error(None, f"[target.{key}] is for {target.name}, which targets does not list",
                                   "add it to targets or remove the table")
        if target.name in pins:
            raise target_loc.error(None, f"[target.{key}] is a second table for {target.name}", "merge the two tables")
        pins[target.name] = _pin(by_name[target.name], table, target_loc)
    return tuple(pins.get(t.name, TargetPin(t)) for t in listed)


# -- the file --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectConfig:
    """What xrel.toml pins; None fields fall back to the command line or xrel's defaults."""

    path: Path  # the xrel.toml file
    otp: str | None = None
    elixir: str | None = None
    targets: tuple[TargetPin, ...] = ()
    release: str | None = None
    mix_env: str | None = None
    out: Path | None = None  # resolved against the project dir
    sections: Mapping[str, object] = field(default_factory=dict)  # parsed later tables: [signing], [publish], ...

    def pin_for(self, target: Target) -> TargetPin | None:
        """The pin of `target` (matched by canonical name, whatever its floor), or None when not listed."""
        name = Target.parse(target).name
        return next((pin for pin in self.targets if pin.target.name == name), None)


# table name -> parser of that table (its dict and a Locator within it); the result lands in ProjectConfig.sections
SECTIONS: dict[str, Callable[[dict, Locator], object]] = {}


def _publish_section(table: dict, loc: Locator) -> object:
    """[publish] to = "github:OWNER/REPO" | "dir:PATH" (parsed by xrel.publish)."""
    from xrel.publish.destination import parse_publish_table

    return parse_publish_table(table, loc)


SECTIONS["publish"] = _publish_section


def _signing(table: dict, loc: Locator) -> object:
    from xrel.signing.section import parse_signing  # imported late: xrel.signing is not needed to build

    return parse_signing(table, loc)


SECTIONS["signing"] = _signing


def _node(table: dict, loc: Locator) -> object:
    from xrel.node.section import parse_node

    return parse_node(table, loc)


SECTIONS["node"] = _node

TOP_KEYS = ["otp", "elixir", "targets", "release", "mix_env", "out"]


def _check_tables(data: Mapping, loc: Locator) -> dict[str, object]:
    """Unknown top-level keys and tables are errors; each registered section is parsed by its own parser."""
    tables = ["target", *SECTIONS]
    sections: dict[str, object] = {}
    for key, value in data.items():
        if key in TOP_KEYS or key == "target":
            continue
        if key not in SECTIONS:
            if isinstance(value, dict):
                raise loc.error(key, f"unknown table [{key}]",
                                f"{_suggest(key, tables)}known tables: {', '.join(f'[{t}]' for t in tables)}")
            _reject_unknown({key: value}, TOP_KEYS, loc)
        if not isinstance(value, dict):
            raise loc.error(key, f"{key} must be a table", f"write [{key}] on a line of its own")
        sections[key] = SECTIONS[key](value, loc.within(key))
    return sections


def _parse_toml(text: str, loc: Locator) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        at = _SYNTAX_AT.search(message)
        line = int(at.group(1)) if at and at.group(1) else max(len(loc.lines), 1)
        misplaced = next((n for n, s in enumerate(loc.lines, 1) if re.match(r"\s*\[\s*targets\s*\.", s)), None)
        if misplaced and "'targets'" in message:
            raise loc.error(None, "per-target settings cannot go in [targets.<name>] (targets is the list of names)",
                            "rename the table to [target.<name>]", misplaced) from None
        what = _SYNTAX_AT.sub("", message)
        raise loc.error(None, f"not valid TOML: {what[:1].lower()}{what[1:]}", "fix the syntax", line) from None


def _out_dir(project_dir: Path, data: Mapping, loc: Locator) -> Path | None:
    out = _string(data, "out", loc, None, "_build/xrel")
    return (project_dir / out).resolve() if out else None


def load_config(project_dir: Path) -> ProjectConfig | None:
    """The project's xrel.toml, checked and typed; None when it has none. ConfigError on any mistake."""
    path = Path(project_dir) / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}", "make it a readable UTF-8 file") from None
    loc = Locator.of(path, text)
    data = _parse_toml(text, loc)
    sections = _check_tables(data, loc)
    listed = _listed_targets(data.get("targets", []), loc)
    return ProjectConfig(
        path=path,
        otp=_otp(data, loc),
        elixir=_string(data, "elixir", loc, ELIXIR_VERSION, "1.18.3"),
        targets=_pins(listed, data.get("target", {}), loc),
        release=_string(data, "release", loc, NAME, "myapp"),
        mix_env=_string(data, "mix_env", loc, NAME, "prod"),
        out=_out_dir(Path(project_dir), data, loc),
        sections=MappingProxyType(sections),
    )
