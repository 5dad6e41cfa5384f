"""What the gate and the package compare of a release on disk: its .rel, and content hashes of every
erts-* and lib/* directory, native file, consolidated protocols and boot-time file (never version strings)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from xrel.errors import UsageError

# Applications of OTP and of Elixir itself: a change in any of them (or in ERTS) takes the cold path.
_OTP_NAMES = """
asn1 common_test compiler crypto debugger dialyzer diameter edoc eldap erl_docgen erl_interface erts et eunit ftp
inets jinterface kernel megaco mnesia observer odbc os_mon otp_mibs parsetools public_key reltool runtime_tools sasl
snmp ssh ssl stdlib syntax_tools tftp tools wx xmerl
"""
OTP_APPS = frozenset(_OTP_NAMES.split())
ELIXIR_APPS = frozenset({"elixir", "eex", "ex_unit", "iex", "logger", "mix"})
PLATFORM_APPS = OTP_APPS | ELIXIR_APPS

_REL = re.compile(r'\{\s*release\s*,\s*\{\s*"([^"]+)"\s*,\s*"([^"]+)"\s*\}\s*,\s*\{\s*erts\s*,\s*"([^"]+)"\s*\}')
_REL_APP = re.compile(r'\{\s*([a-z][A-Za-z0-9_@]*|\'[^\']+\')\s*,\s*"([^"]+)"')


def tree_hash(root: Path) -> str:
    """sha256 over every entry under `root`: relative path, kind (file, executable, link) and content."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                digest.update(f"L {rel}\0{os.readlink(path)}\n".encode())
                continue
            digest.update(f"{'X' if os.access(path, os.X_OK) else 'F'} {rel}\0".encode())
            digest.update(file_hash(Path(path)).encode() + b"\n")
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
            else hashlib.sha256(f.read()).hexdigest()


def parse_rel(text: str, source: str) -> tuple[str, str, str, dict[str, str]]:
    """(release name, version, erts version, {app: version}) of a .rel file's text."""
    head = _REL.search(text)
    if not head:
        raise UsageError(f"{source} is not a release resource file (.rel)", "pass a release built by mix")
    apps = {m.group(1).strip("'"): m.group(2) for m in _REL_APP.finditer(text, head.end())}
    return head.group(1), head.group(2), head.group(3), apps


@dataclass
class Release:
    """A mix release unpacked at `root` (its releases/<vsn>/<name>.rel is the release of record)."""

    root: Path
    name: str
    version: str
    erts_version: str
    apps: dict[str, str]  # app -> version, as the .rel lists them
    target: str | None = None  # xrel's marker, None for a release xrel did not build
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, root: Path) -> Release:
        """The release at `root`: the version of releases/start_erl.data and its .rel."""
        from xrel.release.marker import ReleaseMarker

        root = Path(root)
        try:
            version = (root / "releases" / "start_erl.data").read_text().split()[1]
        except (OSError, IndexError):
            raise UsageError(f"{root} has no releases/start_erl.data", "pass a mix release (dir or tarball)") from None
        rels = sorted((root / "releases" / version).glob("*.rel"))
        if len(rels) != 1:
            raise UsageError(f"{root}/releases/{version} holds {len(rels)} .rel files, not one",
                             "pass a release built by mix release")
        name, vsn, erts, apps = parse_rel(rels[0].read_text(encoding="utf-8"), str(rels[0]))
        marker = ReleaseMarker.read(root)
        return cls(root, name, vsn, erts, apps, marker.target if marker else None)

    @property
    def rel_file(self) -> Path:
        return self.root / "releases" / self.version / f"{self.name}.rel"

    @property
    def release_dir(self) -> Path:
        """releases/<vsn>/"""
        return self.root / "releases" / self.version

    def lib(self, app: str) -> Path:
        return self.root / "lib" / f"{app}-{self.apps[app]}"

    @cached_property
    def erts_hash(self) -> str | None:
        """Content hash of erts-*/ (None without ERTS: a release built with include_erts: false)."""
        found = sorted(self.root.glob("erts-*"))
        return tree_hash(found[0]) if found else None

    @cached_property
    def app_hashes(self) -> dict[str, str]:
        """app -> content hash of its lib/<app>-<vsn>/ (missing dirs hash as 'missing')."""
        return {app: tree_hash(self.lib(app)) if self.lib(app).is_dir() else "missing" for app in self.apps}

    @cached_property
    def natives(self) -> dict[str, str]:
        """'<app>/<path in the app>' -> sha256 of every native file (NIF, port program, driver) of every app."""
        from xrel.inspection.binaries import native_files

        found = {}
        for app in self.apps:
            for path in native_files(self.lib(app)) if self.lib(app).is_dir() else []:
                found[f"{app}/{path.relative_to(self.lib(app))}"] = file_hash(path)
        return found

    def release_file_hash(self, rel: str) -> str | None:
        """Content hash of releases/<vsn>/<rel> (a file or a directory), None when absent."""
        path = self.release_dir / rel
        if path.is_dir():
            return tree_hash(path)
        return file_hash(path) if path.is_file() else None

    def release_text(self, rel: str) -> str | None:
        path = self.release_dir / rel
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
