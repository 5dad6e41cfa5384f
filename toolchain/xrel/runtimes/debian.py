"""glibc Linux runtimes assembled from Debian's erlang-* packages (bookworm: OTP 25, trixie: OTP 27)."""

from __future__ import annotations

import re
from pathlib import Path

from xrel.debian import apt
from xrel.errors import NotAvailableError
from xrel.runtimes.base import FetchOptions, Offer, settings
from xrel.runtimes.normalize import adopt_system_root
from xrel.storage.archive import extract_deb
from xrel.storage.download import fetch_verified
from xrel.targets import Target


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256 if c else 0


def _compare_part(a: str, b: str) -> int:
    while a or b:
        na = re.match(r"^\D*", a).group(0)
        nb = re.match(r"^\D*", b).group(0)
        for i in range(max(len(na), len(nb))):
            ca, cb = _order(na[i] if i < len(na) else ""), _order(nb[i] if i < len(nb) else "")
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(na):], b[len(nb):]
        da = re.match(r"^\d*", a).group(0)
        db = re.match(r"^\d*", b).group(0)
        if int(da or 0) != int(db or 0):
            return -1 if int(da or 0) < int(db or 0) else 1
        a, b = a[len(da):], b[len(db):]
    return 0


def compare_versions(a: str, b: str) -> int:
    """dpkg's version order: -1, 0 or 1."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), upstream, revision

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def _newest(stanzas: list[dict]) -> dict:
    best = stanzas[0]
    for s in stanzas[1:]:
        if compare_versions(s["Version"], best["Version"]) > 0:
            best = s
    return best


def _source_name(stanza: dict) -> str:
    return stanza.get("Source", stanza.get("Package", "")).split()[0]


class DebianSource:
    name = "debian"

    def _suites(self, target: Target) -> list[dict]:
        if target.libc != "glibc" or not target.debian:
            return []
        return [s for s in settings("debian")["suites"] if target.debian in s["arches"]]

    def _repo(self, suite: dict, target: Target) -> apt.AptRepo:
        return apt.AptRepo(suite["name"], target.debian, tuple(suite.get("also", ())))

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        cfg = settings("debian")
        offers = []
        suites = self._suites(target)
        # only the suites whose OTP can match; all of them when none can (the error lists them)
        suites = [s for s in suites if not options.request or options.request[0] == s["otp"]] or suites
        for suite in suites:
            repo = self._repo(suite, target)
            repo.update(offline=options.offline)
            index = repo.packages()
            if "erlang-base" not in index:
                continue
            base = _newest(index["erlang-base"])
            version = base["Version"]
            members = sorted(
                name for name, stanzas in index.items()
                if name.startswith("erlang-") and name not in cfg["left_out"]
                and any(_source_name(s) == cfg["source_package"] and s["Version"] == version for s in stanzas)
            )
            offers.append(Offer(
                source=self.name, target=target.name, version=apt.debian_version_to_upstream(version),
                note=f"Debian {suite['name']}; its ERTS needs glibc >= {suite['glibc']} on the target",
                details={"suite": suite["name"], "debian_version": version, "packages": members,
                         "glibc": suite["glibc"]},
            ))
        return offers

    def install(self, offer: Offer, dest: Path, options: FetchOptions) -> dict:
        suite = next((s for s in settings("debian")["suites"] if s["name"] == offer.details["suite"]), None)
        if suite is None:
            raise NotAvailableError(f"Debian suite {offer.details['suite']} is not in recipes/sources.toml")
        target = Target.parse(offer.target)
        repo = self._repo(suite, target)
        repo.update(offline=options.offline)
        version = offer.details["debian_version"]
        files = repo.resolve([f"{p}={version}" for p in offer.details["packages"]])
        unpacked = dest / ".packages"
        for deb in files:
            path = fetch_verified(deb.url, deb.sha256, deb.filename)
            extract_deb(path, unpacked)
        adopt_system_root(unpacked, dest, f"the Debian packages for {offer.target}")
        return {
            "suite": suite["name"],
            "debian_version": version,
            "packages": {d.package: d.version for d in files},
            "urls": [d.url for d in files],
            "sha256": {d.filename: d.sha256 for d in files},
            "gui_apps_left_out": settings("debian").get("gui_apps_left_out", []),
            "debian_glibc": suite["glibc"],
        }


SOURCE = DebianSource()
