"""Debian source packages through apt with private state: signed Release -> Sources -> .dsc.

apt checks the suites' signatures and each file's sha256 against the Sources index; the orig
tarball's sha256 is also checked against the (index-verified) .dsc's Checksums-Sha256.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from debian import deb822
from debian.debian_support import Version

from xrel import progress
from xrel.debian import apt
from xrel.errors import DownloadError, NotAvailableError, VerificationError
from xrel.storage import cache
from xrel.storage.download import fetch_verified


@dataclass(frozen=True)
class SourceFile:
    name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class SourcePackage:
    """One upload of a source package: its Debian version, .dsc and orig tarball (or, with origin
    "upstream", an upstream release: its version, SHA256.txt and tarball; see upstream.py)."""

    package: str
    version: str  # Debian version, e.g. 1:25.2.3+dfsg-1+deb12u4
    dsc: SourceFile
    orig: SourceFile
    origin: str = "debian"

    @property
    def upstream(self) -> str:
        return apt.debian_version_to_upstream(self.version)


class SourcesRepo(apt.AptRepo):
    """deb-src lines for several suites, in one private apt state (indexes kept compressed)."""

    def __init__(self, suites: tuple[str, ...]):
        super().__init__(suites[0], "amd64", suites[1:])
        digest = hashlib.sha256(" ".join(suites).encode()).hexdigest()[:8]
        self.suites = suites
        self.name = f"debian-src-{digest}"
        self.dir = cache.area("apt") / self.name

    def _sources_list(self) -> str:
        lines = []
        for suite in self.suites:
            m = apt.mirror(suite.endswith("-security"))
            lines.append(f"deb-src [signed-by={m.keyring}] {m.uri} {suite} main")
        return "\n".join(lines) + "\n"

    def _options(self) -> list[str]:
        return [*super()._options(), "-o", "Acquire::GzipIndexes=true"]

    def update(self, offline: bool = False, max_age: float = apt.INDEX_MAX_AGE) -> None:
        """Fetch the suites' signed Sources indexes unless fresh ones are cached."""
        with cache.locked("apt", self.name):
            sources = self._sources_list()
            listed = self.dir / "sources.list"
            same = listed.is_file() and listed.read_text() == sources
            fresh = self._stamp.exists() and time.time() - self._stamp.stat().st_mtime < max_age
            if offline and not self._stamp.exists():
                raise NotAvailableError("offline, and Debian's Sources indexes were never fetched", "run once online")
            if offline or (fresh and same):
                return
            for sub in ("state/lists/partial", "cache/archives/partial"):
                (self.dir / sub).mkdir(parents=True, exist_ok=True)
            (self.dir / "state" / "status").touch()
            listed.write_text(sources)
            with progress.step(f"Debian Sources indexes ({', '.join(self.suites)})"):
                failed = self._update_once() or self._update_once()
            if not list((self.dir / "state" / "lists").glob("*_Sources*")):
                raise DownloadError("no Debian Sources index could be fetched",
                                    "check the network and the Debian mirror (XREL_DEBIAN_URL)")
            if failed:
                progress.note(f"xrel: warning: Debian Sources of {', '.join(failed)} failed to download")
            self._stamp.touch()

    def versions(self, package: str) -> list[str]:
        """Every Debian version of the source package in the suites, highest first."""
        out = subprocess.run(["apt-cache", *self._options(), "showsrc", "--only-source", package],
                             capture_output=True, text=True, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
        stanzas = deb822.Sources.iter_paragraphs(out.stdout, use_apt_pkg=False)
        found = {p["Version"] for p in stanzas if p.get("Package") == package}
        return sorted(found, key=Version, reverse=True)

    def resolve(self, package: str, version: str) -> SourcePackage:
        """The .dsc and orig tarball of one upload, with the sha256s of the signed index."""
        out = self._run(["source", "--print-uris", "--only-source", f"{package}={version}"], cwd=self.dir)
        files = [SourceFile(m.group("file"), m.group("url"), m.group("sha"))
                 for m in re.finditer(r"^'(?P<url>[^']+)'\s+(?P<file>\S+)\s+\d+\s+SHA256:(?P<sha>[0-9a-f]{64})",
                                      out.stdout, re.MULTILINE)]
        dsc = [f for f in files if f.name.endswith(".dsc")]
        orig = [f for f in files if ".orig.tar." in f.name and not f.name.endswith(".asc")]
        if len(dsc) != 1 or len(orig) != 1:
            raise DownloadError(f"apt listed no single .dsc and orig tarball for {package} {version}",
                                "the Debian index may have changed; run again")
        return SourcePackage(package, version, dsc[0], orig[0])


def fetch(pkg: SourcePackage) -> Path:
    """Download the orig tarball (its sha256 from the signed Sources index) and check the .dsc
    names the same sha256; a .dsc the mirror lacks (a security upload past its snapshot) leaves the
    index's hash alone. The tarball's path in the downloads cache. An upstream release's sha256
    comes from its SHA256.txt (read when it was offered)."""
    if pkg.origin != "debian":
        return fetch_verified(pkg.orig.url, pkg.orig.sha256, pkg.orig.name)
    try:
        dsc_path = fetch_verified(pkg.dsc.url, pkg.dsc.sha256, pkg.dsc.name)
    except (DownloadError, NotAvailableError) as e:
        progress.note(f"xrel: note: {pkg.dsc.name} is not on the mirror ({e.message}); "
                      f"{pkg.orig.name} is checked against the signed Sources index only")
    else:
        dsc = deb822.Dsc(dsc_path.read_text(errors="replace"))
        named = {f["name"]: f["sha256"] for f in dsc.get("Checksums-Sha256", [])}
        if named.get(pkg.orig.name) != pkg.orig.sha256:
            raise VerificationError(f"{pkg.dsc.name} does not name {pkg.orig.name} with sha256 {pkg.orig.sha256}",
                                    "the Debian mirror is inconsistent; try again later or another mirror")
    return fetch_verified(pkg.orig.url, pkg.orig.sha256, pkg.orig.name)
