"""The compiler wrapper's types: its configuration and what a filter rule decides.

Standard library only (see ccfilter.py: the wrapper runs these files as plain scripts). NamedTuples,
not dataclasses: importing dataclasses costs ~11 ms per compiler call, typing ~4 ms (measured).
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


class CcConfig(NamedTuple):
    """What the wrapper knows about its target; written by ZigToolchain, read by `main`."""

    os: str
    arch: str = ""
    mode: str = "cc"  # "cc" or "c++"
    zig: str = "zig"
    target: str = ""  # zig's -target triple
    cpu: str | None = None  # zig's -mcpu, when the target needs one
    # host dir -> target dirs it stands for ((): drop it; None: keep it), longest host dir first
    path_map: tuple[tuple[str, tuple[str, ...] | None], ...] = ()
    drop_paths: tuple[str, ...] = ()  # host-only prefixes, dropped when no mapping matched
    extra: tuple[str, ...] = ()  # arguments after -target/-mcpu (sysroot search paths)
    drop_args: tuple[str, ...] = ()  # a package recipe's drop_flags (XREL_DROP_FLAGS)
    # machine dir -> the fixed name compiled objects get for it (-ffile-prefix-map), most general first
    prefix_maps: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> str:
        return json.dumps(self._asdict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CcConfig:
        data = json.loads(text)
        data["path_map"] = tuple((host, None if targets is None else tuple(targets))
                                 for host, targets in data.get("path_map", ()))
        for key in ("drop_paths", "extra", "drop_args"):
            data[key] = tuple(data.get(key, ()))
        data["prefix_maps"] = tuple((old, new) for old, new in data.get("prefix_maps", ()))
        return cls(**data)

    def map_path(self, path: str) -> list[str] | None:
        """Where a host path should point for the target: [mapped...], [] to drop, None to keep."""
        norm = os.path.normpath(path) if path else path
        for host, targets in self.path_map:
            if _under(norm, host):
                if targets is None:  # e.g. the host's own Erlang when building for the host
                    return None
                rest = norm[len(host):].lstrip("/")
                return [os.path.join(t, rest) if rest else t for t in targets]
        if any(_under(norm, prefix) for prefix in self.drop_paths):
            return []
        return None


class Decision(NamedTuple):
    """What a rule makes of the argument under the cursor."""

    out: tuple[str, ...]  # what zig gets instead
    consumed: int = 1  # arguments covered, the cursor's included (2: the next one is its value)
    note: str | None = None
    host_path: bool = False  # the argument pointed into the build machine


class Note(NamedTuple):
    """One change to the command line, for the log; host_path ones also warn on stderr."""

    text: str
    host_path: bool = False


def next_arg(args: list[str], i: int) -> str | None:
    """The argument after the cursor, if any (a flag's separate value)."""
    return args[i + 1] if i + 1 < len(args) else None


def drop(note: str, consumed: int = 1, host_path: bool = False) -> Decision:
    """Nothing for zig, with why."""
    return Decision((), consumed, note, host_path)


def translate(arg: str, new: str) -> Decision:
    """One argument spelled another way for zig."""
    return Decision((new,), 1, f"translated {arg} -> {new}")
