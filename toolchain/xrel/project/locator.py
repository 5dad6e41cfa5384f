"""Where things are in xrel.toml (tomllib gives no line numbers), and errors located there:
`xrel.toml:<line>: <what> (<fix>)`. Section parsers of other packages ([signing], [publish]) use it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from xrel.errors import UsageError


class ConfigError(UsageError):
    """A mistake in xrel.toml, located: `xrel.toml:<line>: <what> (<fix>)`."""


# -- where things are in the text (tomllib gives no line numbers) ----------------------------------
_KEY = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)"""
_HEADER_LINE = re.compile(rf"^\s*\[\[?\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*\]\]?\s*(#.*)?$")
_KEY_LINE = re.compile(rf"^\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=")
_KEY_PART = re.compile(r""""((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+)""")
_SYNTAX_AT = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")


def _key_parts(text: str) -> tuple[str, ...]:
    return tuple(next(g for g in m.groups() if g is not None) for m in _KEY_PART.finditer(text))


def _index_lines(lines: list[str]) -> dict[tuple[str, ...], int]:
    """Full key path -> the line (1-based) that first names it: table headers and `key =` lines."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_multiline = False
    for number, line in enumerate(lines, 1):
        if in_multiline:
            in_multiline = (line.count('"""') + line.count("'''")) % 2 == 0
            continue
        if header := _HEADER_LINE.match(line):
            table = _key_parts(header.group(1))
            found.setdefault(table, number)
        elif key := _KEY_LINE.match(line):
            parts = _key_parts(key.group(1))
            for end in range(1, len(parts) + 1):  # a dotted key names each of its prefixes too
                found.setdefault(table + parts[:end], number)
            in_multiline = (line.count('"""') + line.count("'''")) % 2 == 1
    return found


@dataclass(frozen=True)
class Locator:
    """Finds the line of a key within one table of the file, and makes located errors."""

    path: Path
    lines: tuple[str, ...]
    index: Mapping[tuple[str, ...], int]
    table: tuple[str, ...] = ()

    @classmethod
    def of(cls, path: Path, text: str) -> Locator:
        lines = text.splitlines()
        return cls(path, tuple(lines), MappingProxyType(_index_lines(lines)))

    def within(self, name: str) -> Locator:
        """The locator of a sub-table."""
        return Locator(self.path, self.lines, self.index, (*self.table, name))

    def line(self, key: str | None = None) -> int:
        """The line of `key` in this table (of the table itself for None), else of the nearest enclosing name."""
        keys = (*self.table, key) if key is not None else self.table
        while keys:
            if keys in self.index:
                return self.index[keys]
            keys = keys[:-1]
        return 1

    def item_line(self, key: str, item: str, occurrence: int = 0) -> int:
        """The line of one string in the array `key` (arrays may span lines)."""
        start = self.line(key)
        quoted = re.compile(rf"""["']{re.escape(item)}["']""")
        seen = 0
        for number in range(start, len(self.lines) + 1):
            for _ in quoted.finditer(self.lines[number - 1]):
                if seen == occurrence:
                    return number
                seen += 1
        return start

    def error(self, key: str | None, what: str, fix: str | None = None, line: int | None = None) -> ConfigError:
        return ConfigError(f"{self.path.name}:{line or self.line(key)}: {what}", fix)

    def name(self, key: str | None = None) -> str:
        """How the user writes a key or table: `otp`, `[target.arm64]`, `glibc in [target.arm64]`."""
        table = f"[{'.'.join(self.table)}]" if self.table else ""
        if key is None:
            return table or "the file"
        return f"{key} in {table}" if table else key
