"""glibc Linux runtimes assembled from Debian's erlang-* packages (bookworm: OTP 25, trixie: OTP 27)."""

from __future__ import annotations

from pathlib import Path

from debian.debian_support import Version

from xrel.debian import apt, suites
from xrel.debian.suites import suites_for
from xrel.errors import NotAvailableError
from xrel.runtimes.base import FetchOptions, Offer, settings
from xrel.runtimes.normalize import adopt_system_root
from xrel.storage.archive import extract_deb
from xrel.storage.download import fetch_verified
from xrel.targets import Target


def _newest(stanzas: list[dict]) -> dict:
    """The stanza with the highest version, in dpkg's order."""
    return max(stanzas, key=lambda s: Version(s["Version"]))


def _wanted_or_newest(stanzas: list[dict], wanted: str | None) -> str:
    """`wanted` (an exact revision, e.g. a lock's) when the index lists it, else the newest."""
    listed = {s["Version"] for s in stanzas}
    return wanted if wanted in listed else _newest(stanzas)["Version"]


def _source_name(stanza: dict) -> str:
    return stanza.get("Source", stanza.get("Package", "")).split()[0]


class DebianSource:
    name = "debian"

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        cfg = settings("debian")
        offers = []
        # only the suites whose OTP can match; all of them when none can (the error lists them)
        for suite in suites_for(target, otp=options.request[0] if options.request else None):
            repo = suites.repo(suite, target)
            repo.update(offline=options.offline)
            index = repo.packages()
            if "erlang-base" not in index:
                continue
            version = _wanted_or_newest(index["erlang-base"], options.revision)
            members = sorted(
                name for name in index
                if name.startswith("erlang-") and name not in cfg.left_out
                and any(_source_name(s) == cfg.source_package and s["Version"] == version for s in index[name])
            )
            offers.append(Offer(
                source=self.name, target=target.name, version=apt.debian_version_to_upstream(version),
                note=f"Debian {suite.name}; its ERTS needs glibc >= {suite.glibc} on the target",
                details={"suite": suite.name, "debian_version": version, "packages": members,
                         "glibc": suite.glibc},
            ))
        return offers

    def install(self, offer: Offer, target: Target, dest: Path, options: FetchOptions) -> dict:
        found = suites_for(target, name=offer.details["suite"])
        if not found or found[0].name != offer.details["suite"]:
            raise NotAvailableError(f"Debian suite {offer.details['suite']} is not in recipes/sources.toml")
        suite = found[0]
        repo = suites.repo(suite, target)
        repo.update(offline=options.offline)
        version = offer.details["debian_version"]
        files = repo.resolve([f"{p}={version}" for p in offer.details["packages"]])
        unpacked = dest / ".packages"
        for deb in files:
            path = fetch_verified(deb.url, deb.sha256, deb.filename)
            extract_deb(path, unpacked)
        adopt_system_root(unpacked, dest, f"the Debian packages for {offer.target}")
        return {
            "suite": suite.name,
            "debian_version": version,
            "packages": {d.package: d.version for d in files},
            "urls": [d.url for d in files],
            "sha256": {d.filename: d.sha256 for d in files},
            "gui_apps_left_out": list(settings("debian").gui_apps_left_out),
            "debian_glibc": suite.glibc,
        }


SOURCE = DebianSource()
