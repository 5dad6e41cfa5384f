"""macOS runtimes from erlef/otp_builds (x86_64, aarch64): installed, relocatable trees.

Checksums come from `<checksums_url>/<triple>.csv` (header `ref_name,ref,datetime,sha256,...`),
the tarball from `<base_url>/OTP-<V>/otp-<triple>.tar.gz` (no top folder). With
XREL_OTP_BUILDS_URL set, both live under that one URL.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from xrel.runtimes.base import FetchOptions, Offer, expected_sha256, mirror, settings
from xrel.runtimes.unpack import unpack_otp_archive
from xrel.runtimes.versions import tag_version
from xrel.storage.download import fetch_index, fetch_verified
from xrel.storage.files import is_sha256
from xrel.targets import Target
from xrel.versions import version_key


def parse_checksums_csv(text: str) -> list[dict]:
    """Rows of a builds/<triple>.csv for tagged releases that have a sha256."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        version = tag_version(row.get("ref_name") or "")
        if version and is_sha256(row.get("sha256")):
            rows.append({**row, "version": version, "sha256": row["sha256"].lower()})
    return rows


class OtpBuildsSource:
    name = "otp_builds"

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        triple = settings(self.name).triples.get(target.name)
        if not triple:
            return []
        url = f"{mirror(self.name, 'checksums_url')}/{triple}.csv"
        text = fetch_index(url, f"otp_builds-{triple}.csv", options.offline).decode(errors="replace")
        offers = [
            Offer(source=self.name, target=target.name, version=row["version"],
                  url=f"{mirror(self.name)}/OTP-{row['version']}/otp-{triple}.tar.gz", sha256=row["sha256"],
                  note=f"erlef/otp_builds macOS build, OpenSSL linked statically ({row.get('openssl') or '?'})",
                  details={"triple": triple, "git_sha": row.get("ref"), "built_at": row.get("datetime"),
                           "openssl": row.get("openssl"), "checksums": url})
            for row in parse_checksums_csv(text)
        ]
        return sorted(offers, key=lambda o: version_key(o.version), reverse=True)

    def install(self, offer: Offer, target: Target, dest: Path, options: FetchOptions) -> dict:
        sha256 = expected_sha256(offer, options.sha256, f"{offer.details['triple']}.csv", offer.url)
        archive = fetch_verified(offer.url, sha256)
        unpack_otp_archive(archive, dest, what=offer.url)
        return {
            "urls": [offer.url],
            "sha256": {offer.url.rsplit("/", 1)[-1]: sha256},
            "trust": offer.details["checksums"],
            "git_sha": offer.details["git_sha"],
            "built_at": offer.details["built_at"],
            "openssl": offer.details["openssl"],
        }


SOURCE = OtpBuildsSource()
