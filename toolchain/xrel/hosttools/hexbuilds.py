"""hex's Elixir builds: `<base>/builds.txt` lines `v1.18.3-otp-27 <git sha> <date> [<sha256>]` and
the zips `<base>/v1.18.3-otp-27.zip`. A build without a published sha256 is refused."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from xrel.errors import VerificationError
from xrel.hosttools.sources import ElixirOffer, Options, mirror, settings
from xrel.hosttools.zips import unpack_elixir_zip
from xrel.runtimes.hexbuilds import builds_txt_lines
from xrel.storage.download import fetch_index, fetch_verified

_BUILD = re.compile(r"^v(\d+\.\d+\.\d+)-otp-(\d+)$")


@dataclass(frozen=True)
class Build:
    version: str
    otp: int
    git_sha: str
    built_at: str
    sha256: str | None


def parse_builds_txt(text: str) -> list[Build]:
    """The tagged releases of builds.txt (branches such as main-otp-27, pre-releases, junk skipped)."""
    return [Build(m.group(1), int(m.group(2)), sha, date, sha256) for tag, sha, date, sha256 in builds_txt_lines(text)
            if (m := _BUILD.match(tag))]


class HexBuilds:
    name = "hexbuilds"

    def offers(self, request: tuple[int, ...] | None, options: Options) -> list[ElixirOffer]:
        cfg = settings(self.name)
        base = mirror(self.name)
        text = fetch_index(f"{base}/{cfg['index']}", "hex_builds-elixir-builds.txt", options.offline)
        return [ElixirOffer(self.name, b.version, b.otp, sha256=b.sha256,
                            url=f"{base}/{cfg['asset'].format(version=b.version, otp=b.otp)}",
                            details={"git_sha": b.git_sha, "built_at": b.built_at})
                for b in parse_builds_txt(text.decode(errors="replace"))]

    def resolve(self, offer: ElixirOffer, options: Options) -> ElixirOffer:
        if not offer.sha256:
            name = offer.url.rsplit("/", 1)[-1]
            raise VerificationError(f"builds.txt publishes no sha256 for {name}, and xrel does not install "
                                    "unverified Elixir builds", "pin a newer Elixir, or another Elixir source")
        return offer

    def install(self, offer: ElixirOffer, dest: Path, options: Options) -> dict:
        archive = fetch_verified(offer.url, offer.sha256)
        unpack_elixir_zip(archive, dest, offer.url)
        return {"urls": [offer.url], "sha256": {offer.url.rsplit("/", 1)[-1]: offer.sha256}, "trust": "builds.txt",
                "git_sha": offer.details["git_sha"], "built_at": offer.details["built_at"]}


SOURCE = HexBuilds()
