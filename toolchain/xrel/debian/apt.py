"""Debian packages for any architecture through the system's apt client, with private state.

The system's apt and dpkg configuration is never changed: every call passes its own state,
cache and source list, reusing the system's mirror and keyrings so apt still checks signatures.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from debian import deb822

from xrel import progress, recipes
from xrel.errors import DownloadError, MissingToolError, NotAvailableError
from xrel.storage import cache

SOURCES_FILES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources")
INDEX_MAX_AGE = 6 * 3600
OFFICIAL_MIRROR = "http://deb.debian.org/debian"  # the fallback; apt checks the signed indexes


@dataclass(frozen=True)
class Mirror:
    uri: str
    keyring: str
    security: bool


def _entries_from_line_file(path: str) -> list[dict]:
    entries = []
    for line in Path(path).read_text(errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)", line)
        if m:
            opts = dict(o.split("=", 1) for o in (m.group("opts") or "").split() if "=" in o)
            entries.append({"Types": "deb", "URIs": m.group("uri"), "Suites": m.group("suite"),
                            "Signed-By": opts.get("signed-by", "")})
    return entries


def _entries_from_deb822(path: str) -> list[Mapping[str, str]]:
    with open(path, errors="replace") as f:
        return list(deb822.Deb822.iter_paragraphs(f))


def default_keyring() -> str:
    """Debian's archive keyring (recipes/sources.toml [debian] keyring), for sources naming none."""
    return recipes.sources().debian.keyring


def system_mirrors() -> list[Mirror]:
    """Debian mirrors configured on this system (deb822 and one-line formats)."""
    mirrors = []
    for pattern in SOURCES_FILES:
        for path in sorted(glob.glob(pattern)):
            entries = _entries_from_deb822(path) if path.endswith(".sources") else _entries_from_line_file(path)
            for e in entries:
                if "deb" not in e.get("Types", "").split() or e.get("Enabled", "yes").lower() == "no":
                    continue
                signed_by = e.get("Signed-By", "").strip()
                suites = e.get("Suites", "").split()
                uris = e.get("URIs", "").split()
                official = "debian-archive" in signed_by if signed_by else any("/debian" in u for u in uris)
                if not official:
                    continue  # third-party repositories
                keyring = signed_by if signed_by.startswith("/") else default_keyring()
                for uri in e.get("URIs", "").split():
                    security = any(s.endswith("-security") for s in suites) or "security" in uri
                    mirrors.append(Mirror(uri.rstrip("/"), keyring, security))
    return mirrors


def mirror(security: bool = False) -> Mirror:
    """The Debian mirror to use: XREL_DEBIAN_URL / XREL_DEBIAN_SECURITY_URL, else the system's."""
    override = os.environ.get("XREL_DEBIAN_SECURITY_URL" if security else "XREL_DEBIAN_URL")
    if override:
        return Mirror(override.rstrip("/"), os.environ.get("XREL_DEBIAN_KEYRING") or default_keyring(), security)
    for m in system_mirrors():
        if m.security == security:
            return m
    if security:
        main = mirror(False)
        return Mirror(main.uri.rsplit("/", 1)[0] + "/debian-security", main.keyring, True)
    return _official_mirror()


def _official_mirror() -> Mirror:
    """Debian's own mirror, for hosts whose apt sources name none (Ubuntu, a Debian derivative)."""
    keyring = default_keyring()
    if not Path(keyring).is_file():
        raise MissingToolError(f"no Debian mirror in the system's apt sources, and no Debian archive keyring at "
                               f"{keyring} to verify {OFFICIAL_MIRROR}",
                               "install it (apt-get install debian-archive-keyring), or set XREL_DEBIAN_URL "
                               "and XREL_DEBIAN_KEYRING")
    _note_once(f"xrel: note: no Debian mirror in the system's apt sources; using {OFFICIAL_MIRROR} "
               "(set XREL_DEBIAN_URL to choose another)")
    return Mirror(OFFICIAL_MIRROR, keyring, False)


@functools.cache
def _note_once(message: str) -> None:
    progress.note(message)


def require_apt() -> str:
    path = shutil.which("apt-get")
    if not path:
        raise MissingToolError("apt-get is not installed: Debian runtimes and sysroots need a Debian or Ubuntu host",
                               "use another --source, or run xrel on Debian/Ubuntu")
    return path


@dataclass(frozen=True)
class DebFile:
    package: str
    version: str
    url: str
    filename: str
    size: int
    sha256: str


class AptRepo:
    """One Debian suite (with its -updates/-security companions) for one architecture."""

    def __init__(self, suite: str, arch: str, also: tuple[str, ...] = ()):
        self.suite = suite
        self.arch = arch
        self.also = tuple(also)
        self.name = f"{suite}-{arch}"
        self.dir = cache.area("apt") / self.name

    def _sources_list(self) -> str:
        main, security = mirror(False), mirror(True)
        lines = [f"deb [signed-by={main.keyring}] {main.uri} {self.suite} main"]
        for extra in self.also:
            m = security if extra.endswith("-security") else main
            lines.append(f"deb [signed-by={m.keyring}] {m.uri} {extra} main")
        return "\n".join(lines) + "\n"

    def _options(self) -> list[str]:
        d = self.dir
        return [
            "-o", f"Dir::State={d / 'state'}", "-o", f"Dir::State::status={d / 'state' / 'status'}",
            "-o", f"Dir::Cache={d / 'cache'}", "-o", f"Dir::Etc::SourceList={d / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null", "-o", "Dir::Etc::Preferences=/dev/null",
            "-o", "Dir::Etc::PreferencesParts=/dev/null",
            "-o", f"APT::Architecture={self.arch}", "-o", f"APT::Architectures::={self.arch}",
            "-o", "APT::Sandbox::User=root" if os.geteuid() == 0 else "APT::Sandbox::User=",
            "-o", "Acquire::Languages=none", "-o", "Debug::NoLocking=true",
            "-o", "Acquire::GzipIndexes=false",
        ]

    def _run(self, args: list[str], cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [require_apt(), "-q", *self._options(), *args]
        env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
        if check and out.returncode != 0:
            detail = " ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
            raise DownloadError(f"apt-get {args[0]} for {self.name} failed: {detail}",
                                "check the network and the Debian mirror (XREL_DEBIAN_URL)")
        return out

    def _update_once(self) -> list[str]:
        """Run apt-get update; returns the suites whose indexes failed."""
        out = self._run(["update"], check=False)
        failed = sorted({m.group(1) for m in re.finditer(r"dists/([^/\s]+)/", out.stderr)})
        if out.returncode != 0 and not failed:
            raise DownloadError(f"apt-get update for {self.name} failed: {out.stderr.strip()[-300:]}",
                                "check the network and the Debian mirror (XREL_DEBIAN_URL)")
        return failed

    @property
    def _stamp(self) -> Path:
        return self.dir / "updated"

    def update(self, offline: bool = False, max_age: float = INDEX_MAX_AGE) -> None:
        """Fetch the suite's signed indexes unless fresh ones are cached."""
        with cache.locked("apt", self.name):
            fresh = self._stamp.exists() and time.time() - self._stamp.stat().st_mtime < max_age
            sources = self._sources_list()
            same_sources = (self.dir / "sources.list").exists() and (self.dir / "sources.list").read_text() == sources
            if offline:
                if not self._stamp.exists():
                    raise NotAvailableError(f"offline, and the Debian index for {self.name} was never fetched",
                                            "run once online")
                return
            if fresh and same_sources:
                return
            for sub in ("state/lists/partial", "cache/archives/partial"):
                (self.dir / sub).mkdir(parents=True, exist_ok=True)
            (self.dir / "state" / "status").touch()
            (self.dir / "sources.list").write_text(sources)
            failed = self._update_once() or self._update_once()  # a mirror mid-sync: try once more
            if self.suite in failed or not list((self.dir / "state" / "lists").glob("*_Packages*")):
                raise DownloadError(f"the Debian index of {self.suite} for {self.arch} could not be fetched",
                                    "check the network and the Debian mirror (XREL_DEBIAN_URL)")
            if failed:
                progress.note(f"xrel: warning: Debian indexes of {', '.join(failed)} ({self.arch}) failed to "
                              "download; using the rest (security updates may be missing)")
            self._stamp.touch()

    def packages(self) -> PackagesIndex:
        """Every stanza of the suite's Packages indexes, by package name."""
        return PackagesIndex(_read_index(p) for p in sorted((self.dir / "state" / "lists").glob("*_Packages*")))

    def resolve(self, specs: list[str]) -> list[DebFile]:
        """URLs, sizes and sha256 (from the signed index) of exact `pkg=version` specs."""
        out = self._run(["download", "--print-uris", *specs], cwd=self.dir)
        files = []
        for line in out.stdout.splitlines():
            m = re.match(r"^'(?P<url>[^']+)'\s+(?P<file>\S+)\s+(?P<size>\d+)\s+SHA256:(?P<sha>[0-9a-f]{64})", line)
            if m:
                name, _, rest = m.group("file").partition("_")
                version = rest.rsplit("_", 1)[0].replace("%3a", ":")
                files.append(DebFile(name, version, m.group("url"), m.group("file"), int(m.group("size")),
                                     m.group("sha")))
        if len(files) != len(specs):
            raise DownloadError(f"apt resolved {len(files)} of {len(specs)} packages for {self.name}",
                                "the Debian index may have changed; run again")
        return files


class PackagesIndex(Mapping[str, list]):
    """Package name -> its stanzas (python-debian's deb822.Packages) in apt Packages indexes.

    Tens of thousands of stanzas, of which a few are read: each is parsed on first use."""

    def __init__(self, texts: Iterator[str]):
        self._raw: dict[str, list[str]] = {}
        self._parsed: dict[str, list[deb822.Packages]] = {}
        for text in texts:
            for stanza in text.split("\n\n"):
                first = stanza.lstrip("\n").partition("\n")[0]  # apt writes the Package field first
                if first.startswith("Package:"):
                    self._raw.setdefault(first.partition(":")[2].strip(), []).append(stanza)

    def __getitem__(self, name: str) -> list[deb822.Packages]:
        if name not in self._parsed:
            self._parsed[name] = [deb822.Packages(stanza) for stanza in self._raw[name]]
        return self._parsed[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, name: object) -> bool:
        return name in self._raw


def _read_index(path: Path) -> str:
    """An apt index file as text, whatever compression the system's apt config chose."""
    if path.suffix in ("", ".txt"):
        return path.read_text(errors="replace")
    helper = "/usr/lib/apt/apt-helper"
    out = subprocess.run([helper, "cat-file", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise DownloadError(f"cannot read apt index {path}: {out.stderr.strip()[:200]}")
    return out.stdout


def debian_version_to_upstream(version: str) -> str:
    """`1:25.2.3+dfsg-1+deb12u1` -> `25.2.3`."""
    v = version.split(":", 1)[-1]
    v = v.rsplit("-", 1)[0] if "-" in v else v
    return re.split(r"[+~]", v)[0]
