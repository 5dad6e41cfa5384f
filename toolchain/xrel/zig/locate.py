"""Find the zig binary: $XREL_ZIG, then the ziglang package, then `zig` on PATH."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from xrel.errors import MissingToolError
from xrel.storage import cache
from xrel.storage.files import atomic_write, file_identity

MINIMUM = Version("0.12.0")
INSTALL_HINT = "run `pip install ziglang`, or set XREL_ZIG to a zig binary"


@dataclass(frozen=True)
class Zig:
    path: Path
    version: Version
    origin: str  # "XREL_ZIG", "ziglang package" or "PATH"


def _version(path: Path) -> Version:
    """The version `path` reports, remembered by the binary's identity: starting zig costs ~20 ms,
    on every command that compiles, for an answer that changes only with the file."""
    memo = cache.area("toolchains") / "zig-versions.json"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    resolved = path.resolve()
    st = resolved.stat()
    key, ident = str(resolved), f"{file_identity(st)}:{st.st_ctime_ns}"
    entry = known.get(key)
    if isinstance(entry, dict) and entry.get("ident") == ident:
        try:
            return Version(entry["version"])
        except (InvalidVersion, KeyError, TypeError):
            pass
    version = _run_version(resolved)
    atomic_write(memo, json.dumps({**known, key: {"ident": ident, "version": str(version)}}))
    return version


def _run_version(path: Path) -> Version:
    try:
        out = subprocess.run([str(path), "version"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise MissingToolError(f"zig at {path} does not run: {e.strerror}", INSTALL_HINT) from None
    text = out.stdout.strip()
    try:
        return Version(text.split("-")[0])
    except InvalidVersion:
        raise MissingToolError(f"zig at {path} printed an unknown version {text!r}", INSTALL_HINT) from None


def _candidates() -> list[tuple[str, Path]]:
    found = []
    explicit = os.environ.get("XREL_ZIG")
    if explicit:
        return [("XREL_ZIG", Path(explicit))]
    try:
        import ziglang

        found.append(("ziglang package", Path(ziglang.__file__).parent / "zig"))
    except ImportError:
        pass
    on_path = shutil.which("zig")
    if on_path:
        found.append(("PATH", Path(on_path)))
    return found


@functools.cache
def find_zig() -> Zig:
    """The zig to use, version-checked; MissingToolError naming the fix when there is none."""
    candidates = _candidates()
    for origin, path in candidates:
        if not path.is_file():
            if origin == "XREL_ZIG":
                raise MissingToolError(f"XREL_ZIG={path} is not a file", INSTALL_HINT)
            continue
        version = _version(path)
        if version < MINIMUM:
            raise MissingToolError(f"zig {version} at {path} ({origin}) is older than {MINIMUM}", INSTALL_HINT)
        return Zig(path=path.resolve(), version=version, origin=origin)
    raise MissingToolError("zig was not found", INSTALL_HINT)
