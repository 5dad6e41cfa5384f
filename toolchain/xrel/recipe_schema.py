"""Build frozen dataclasses from parsed TOML, checking every key and type against the class.

An unknown key, a missing one or a value of the wrong type is a one-line UsageError naming the
file, the table and the key. Arrays become tuples; a table declared as a tuple of pairs becomes
its (key, value) pairs sorted by key; `dict[int, ...]` keys are written as strings in TOML.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, Union

from xrel.errors import UsageError

_NONE = type(None)
_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def build(cls: type, data: Any, file: str, table: str = "", *, exclude: tuple[str, ...] = ()) -> Any:
    """An instance of the dataclass `cls` from the TOML table `data` found at `table` in `file`."""
    if not isinstance(data, dict):
        raise _wrong(file, table, "a table", data)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in exclude}
    for key in data:
        if key not in fields:
            raise UsageError(f"{file}: unknown key '{key}' in {_where(table)}",
                             f"fix the spelling; known keys there: {', '.join(sorted(fields))}")
    for name, f in fields.items():
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise UsageError(f"{file}: {_where(table)} lacks the key '{name}'", "add it")
    hints = _hints(cls)
    return cls(**{key: convert(value, hints[key], file, _join(table, key)) for key, value in data.items()})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The class's resolved annotations (evaluating them is slow, and every target is built from one class)."""
    return typing.get_type_hints(cls)


def convert(value: Any, hint: Any, file: str, where: str) -> Any:
    """`value` checked against the type `hint` (and converted: arrays to tuples, int keys)."""
    if type(value) is hint and hint in _KINDS:  # most values: a string where a string belongs
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        return convert(value, next(a for a in args if a is not _NONE), file, where)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, file, where)
    if hint is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise UsageError(f"{file}: '{where}' is {value!r}", f"write one of {', '.join(map(repr, args))}")
        return value
    if origin is dict:
        return _convert_table(value, args, file, where)
    if origin is tuple:
        return _convert_array(value, args, file, where)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise _wrong(file, where, _KINDS.get(hint, hint.__name__), value)
    return value


def _convert_table(value: Any, args: tuple, file: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise _wrong(file, where, "a table", value)
    key_type, value_type = args
    out = {}
    for key, item in value.items():
        if key_type is int:
            if not key.isdigit():
                raise UsageError(f"{file}: key '{key}' in {_where(where)} is not a number", "write it as e.g. \"27\"")
            key = int(key)
        out[key] = convert(item, value_type, file, _join(where, str(key)))
    return out


def _convert_array(value: Any, args: tuple, file: str, where: str) -> tuple:
    if isinstance(value, dict) and args[-1] is Ellipsis and typing.get_origin(args[0]) is tuple:
        value = sorted(value.items())  # a table kept as hashable pairs
    if not isinstance(value, (list, tuple)):
        raise _wrong(file, where, "an array", value)
    if args[-1] is Ellipsis:
        kinds = [args[0]] * len(value)
    elif len(value) != len(args):
        raise UsageError(f"{file}: '{where}' has {len(value)} items", f"write exactly {len(args)}")
    else:
        kinds = list(args)
    return tuple(convert(item, kind, file, f"{where}[{i}]") for i, (kind, item) in enumerate(zip(kinds, value)))


def _join(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _where(table: str) -> str:
    return f"[{table}]" if table else "the top level"


def _wrong(file: str, where: str, expected: str, value: Any) -> UsageError:
    got = {dict: "a table", list: "an array", bool: "true or false"}.get(type(value), type(value).__name__)
    return UsageError(f"{file}: '{where or 'the top level'}' must be {expected}, not {got}", "fix the recipe")
