"""Elixir's own precompiled release zips: `v<V>/elixir-otp-<M>.zip` beside `<...>.zip.sha256sum`.

There is no index of them: offered are the versions in recipes/elixir.toml, those cached and an
exact version asked for; of a version, the builds for each OTP major the Elixir minor supports
(recipes/compat.toml), the highest not above the host's first. A checksum file that does not
exist upstream rules that build out."""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

from xrel import recipes
from xrel.errors import VerificationError
from xrel.hosttools.sources import ElixirOffer, Options, cached, mirror, settings
from xrel.runtimes.normalize import move_contents
from xrel.storage.archive import extract_zip
from xrel.storage.cache import remove
from xrel.storage.download import fetch_index, fetch_verified
from xrel.storage.files import is_sha256
from xrel.versions import release


def built_for(version: str, host_otp: int) -> list[int]:
    """The OTP majors an Elixir version may have builds for (its supported range, else the host's)."""
    minor = ".".join(map(str, release(version)[:2]))
    low, high = recipes.compat().elixir_otp.get(minor, (host_otp, host_otp))
    return list(range(low, high + 1))


def parse_checksum(text: str, filename: str, url: str) -> str:
    """The sha256 of a `<sha256>  <file>` checksum file that names `filename`."""
    fields = text.split()
    if not fields or not is_sha256(fields[0]) or (len(fields) > 1 and fields[1].lstrip("*") != filename):
        raise VerificationError(f"{url} is not a `<sha256>  {filename}` checksum file",
                                "the upstream layout changed; report it to xrel")
    return fields[0].lower()


def unpack_elixir_zip(archive: Path, dest: Path, what: str) -> None:
    """Extract a zip whose Elixir root (bin/, lib/) is at its top or in one top folder into `dest`."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    try:
        try:
            extract_zip(archive, staging)
        except zipfile.BadZipFile as e:
            raise VerificationError(f"{what} is not a readable zip: {e}", "the download is corrupt") from None
        root = staging
        children = list(staging.iterdir())
        if not (staging / "bin").is_dir() and len(children) == 1 and children[0].is_dir():
            root = children[0]
        move_contents(root, dest)
    finally:
        remove(staging)


class ElixirZips:
    name = "elixir_zips"

    def offers(self, request: tuple[int, ...] | None, options: Options) -> list[ElixirOffer]:
        cfg = settings(self.name)
        versions = set(cfg["known_versions"])
        versions |= {meta["version"] for _root, meta in cached(None, [self.name], 10**6)}
        if request and len(request) == 3:
            versions.add(".".join(map(str, request)))
        base = mirror(self.name)
        return [ElixirOffer(self.name, v, m, url=f"{base}/{cfg['asset'].format(version=v, otp=m)}",
                            details={"checksum_url": f"{base}/{cfg['checksum'].format(version=v, otp=m)}"})
                for v in versions for m in built_for(v, options.host_otp)]

    def resolve(self, offer: ElixirOffer, options: Options) -> ElixirOffer:
        url = offer.details["checksum_url"]
        filename = offer.url.rsplit("/", 1)[-1]
        text = fetch_index(url, f"elixir_zips-v{offer.version}-{filename}.sha256sum", options.offline)
        return replace(offer, sha256=parse_checksum(text.decode(errors="replace"), filename, url))

    def install(self, offer: ElixirOffer, dest: Path, options: Options) -> dict:
        archive = fetch_verified(offer.url, offer.sha256)
        unpack_elixir_zip(archive, dest, offer.url)
        return {"urls": [offer.url, offer.details["checksum_url"]],
                "sha256": {offer.url.rsplit("/", 1)[-1]: offer.sha256}, "trust": "sha256sum"}


SOURCE = ElixirZips()
