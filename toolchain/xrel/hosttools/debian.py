"""Debian's `elixir` package (bookworm: 1.14.0, trixie: 1.18.3) through the private apt; the
.deb's sha256 comes from the suite's signed index. Its Elixir root is usr/lib/elixir."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from debian.debian_support import Version

from xrel.debian import suites
from xrel.errors import NotAvailableError, VerificationError
from xrel.hosttools.sources import ElixirOffer, Options, settings
from xrel.runtimes.normalize import move_contents
from xrel.storage.archive import extract_deb
from xrel.storage.cache import remove
from xrel.storage.download import fetch_verified
from xrel.targets import host_target


def upstream_version(debian_version: str) -> str:
    """`1.14.0.dfsg-2` -> `1.14.0`; `1:1.18.3.dfsg-1` -> `1.18.3`."""
    m = re.match(r"\d+(?:\.\d+){0,2}", debian_version.split(":", 1)[-1])
    if not m:
        raise VerificationError(f"Debian's elixir version '{debian_version}' is not understood")
    return m.group(0)


def _suite(name: str):
    found = [s for s in suites.suites_for(host_target()) if s.name == name]
    if not found:
        raise NotAvailableError(f"Debian suite {name} is not in recipes/sources.toml for this host")
    return found[0]


class DebianElixir:
    name = "debian"

    def offers(self, request: tuple[int, ...] | None, options: Options) -> list[ElixirOffer]:
        package = settings(self.name)["package"]
        offers = []
        for suite in suites.suites_for(host_target()):
            repo = suites.repo(suite, host_target())
            repo.update(offline=options.offline)
            stanzas = repo.packages().get(package) or []
            if not stanzas:
                continue
            version = max((s["Version"] for s in stanzas), key=Version)
            offers.append(ElixirOffer(self.name, upstream_version(version), suite.otp,
                                      details={"suite": suite.name, "debian_version": version}))
        return offers

    def resolve(self, offer: ElixirOffer, options: Options) -> ElixirOffer:
        suite = _suite(offer.details["suite"])
        repo = suites.repo(suite, host_target())
        deb = repo.resolve([f"{settings(self.name)['package']}={offer.details['debian_version']}"])[0]
        return replace(offer, url=deb.url, sha256=deb.sha256, details={**offer.details, "filename": deb.filename})

    def install(self, offer: ElixirOffer, dest: Path, options: Options) -> dict:
        filename = offer.details["filename"]
        path = fetch_verified(offer.url, offer.sha256, filename)
        unpacked = dest / ".package"
        extract_deb(path, unpacked)
        root = unpacked / settings(self.name)["root"]
        if not (root / "bin").is_dir():
            raise VerificationError(f"{filename} has no {settings(self.name)['root']}/bin",
                                    "Debian changed the package's layout; report it to xrel")
        move_contents(root, dest)
        remove(unpacked)
        return {"suite": offer.details["suite"], "debian_version": offer.details["debian_version"],
                "urls": [offer.url], "sha256": {filename: offer.sha256}, "trust": "Debian signed index"}


SOURCE = DebianElixir()
