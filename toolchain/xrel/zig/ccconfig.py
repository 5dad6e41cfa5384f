"""The compiler wrapper's types: its configuration and what a filter rule decides.

Standard library only (see ccfilter.py: the wrapper runs these files as plain scripts), and only
modules Python has loaded already: a build makes thousands of compiler calls, and importing json
cost each ~17 ms, typing (for NamedTuple) ~6 ms, collections ~4 ms (measured). So these are plain
classes, and the configuration travels in the wrapper as marshal data (Python's own, built in).
"""

from __future__ import annotations

import marshal
import os


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


class CcConfig:
    """What the wrapper knows about its target; written by ZigToolchain, read by `main`."""

    __slots__ = ("os", "arch", "mode", "zig", "target", "cpu", "path_map", "drop_paths", "extra", "drop_args",
                 "prefix_maps")

    def __init__(self, os: str, arch: str = "", mode: str = "cc", zig: str = "zig", target: str = "",
                 cpu: str | None = None, path_map: tuple = (), drop_paths: tuple[str, ...] = (),
                 extra: tuple[str, ...] = (), drop_args: tuple[str, ...] = (), prefix_maps: tuple = ()) -> None:
        self.os = os
        self.arch = arch
        self.mode = mode  # "cc" or "c++"
        self.zig = zig
        self.target = target  # zig's -target triple
        self.cpu = cpu  # zig's -mcpu, when the target needs one
        # host dir -> target dirs it stands for ((): drop it; None: keep it), longest host dir first
        self.path_map = tuple((host, None if to is None else tuple(to)) for host, to in path_map)
        self.drop_paths = tuple(drop_paths)  # host-only prefixes, dropped when no mapping matched
        self.extra = tuple(extra)  # arguments after -target/-mcpu (sysroot search paths)
        self.drop_args = tuple(drop_args)  # a package recipe's drop_flags (XREL_DROP_FLAGS)
        # machine dir -> the fixed name compiled objects get for it (-ffile-prefix-map), most general first
        self.prefix_maps = tuple((old, new) for old, new in prefix_maps)

    def _asdict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def _replace(self, **changes) -> CcConfig:
        return CcConfig(**{**self._asdict(), **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CcConfig) and self._asdict() == other._asdict()

    def __repr__(self) -> str:
        return f"CcConfig({self._asdict()!r})"

    def to_arg(self) -> str:
        """The configuration as one command-line argument of the wrapper (marshal data, in hex)."""
        return marshal.dumps(self._asdict()).hex()

    @classmethod
    def from_arg(cls, text: str) -> CcConfig:
        if text.startswith("{"):  # a wrapper written by an earlier xrel (JSON), still in a user's CC
            import json

            return cls(**json.loads(text))
        return cls(**marshal.loads(bytes.fromhex(text)))

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


class Decision:
    """What a rule makes of the argument under the cursor."""

    __slots__ = ("out", "consumed", "note", "host_path")

    def __init__(self, out: tuple[str, ...], consumed: int = 1, note: str | None = None,
                 host_path: bool = False) -> None:
        self.out = out  # what zig gets instead
        self.consumed = consumed  # arguments covered, the cursor's included (2: the next one is its value)
        self.note = note
        self.host_path = host_path  # the argument pointed into the build machine


class Note:
    """One change to the command line, for the log; host_path ones also warn on stderr."""

    __slots__ = ("text", "host_path")

    def __init__(self, text: str, host_path: bool = False) -> None:
        self.text = text
        self.host_path = host_path


def next_arg(args: list[str], i: int) -> str | None:
    """The argument after the cursor, if any (a flag's separate value)."""
    return args[i + 1] if i + 1 < len(args) else None


def drop(note: str, consumed: int = 1, host_path: bool = False) -> Decision:
    """Nothing for zig, with why."""
    return Decision((), consumed, note, host_path)


def translate(arg: str, new: str) -> Decision:
    """One argument spelled another way for zig."""
    return Decision((new,), 1, f"translated {arg} -> {new}")
