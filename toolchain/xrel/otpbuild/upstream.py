"""Upstream OTP release tarballs: `otp_src_<V>.tar.gz` checked against the release's SHA256.txt.

There is no index to list: a release is found by fetching its SHA256.txt (sha256sum format, one
`<hex>  <file>` line per asset). A release without one is refused (never an unverified build).
"""

from __future__ import annotations

import hashlib
import os
import re

from xrel.errors import NotAvailableError, VerificationError
from xrel.otpbuild import debsrc, recipe
from xrel.storage.download import fetch_index, url_exists

ENV_URL = "XREL_OTP_SRC_URL"
PACKAGE = "otp_src"


def base_url() -> str:
    """The release download URL (XREL_OTP_SRC_URL overrides the recipe's)."""
    return (os.environ.get(ENV_URL) or recipe.load().sources.upstream_url).rstrip("/")


def tarball_url(version: str) -> str:
    return f"{base_url()}/{recipe.load().sources.upstream_tarball.format(version=version)}"


def checksums_url(version: str) -> str:
    return f"{base_url()}/{recipe.load().sources.upstream_checksums.format(version=version)}"


def listed_sha256(text: str, name: str) -> str | None:
    """The sha256 a sha256sum-format text lists for `name` (binary-mode `*name` too), else None."""
    for m in re.finditer(r"^([0-9a-fA-F]{64}) [ *](\S+)\s*$", text, re.MULTILINE):
        if m.group(2) == name:
            return m.group(1).lower()
    return None


def release(version: str, offline: bool = False) -> debsrc.SourcePackage:
    """OTP `version`'s upstream tarball with the sha256 its SHA256.txt lists; a version with no
    release, or a release without a SHA256.txt naming the tarball, is a one-line error."""
    url, tarball = checksums_url(version), tarball_url(version)
    name = tarball.rsplit("/", 1)[-1]
    try:
        data = fetch_index(url, f"otp_src-{version}-SHA256.txt", offline)
    except NotAvailableError:
        if offline or not url_exists(tarball):
            raise NotAvailableError(f"no upstream OTP {version} release ({tarball} does not exist)",
                                    f"ask for a released version (OTP-<V> tags), or set {ENV_URL} to a mirror "
                                    "that has it") from None
        raise VerificationError(f"upstream OTP {version} publishes no SHA256.txt ({url}), and xrel builds only "
                                "verified sources", "build a version that has one, or one Debian has "
                                "(`xrel otp-versions TARGET --source build:debian`)") from None
    sha256 = listed_sha256(data.decode(errors="replace"), name)
    if sha256 is None:
        raise VerificationError(f"{url} lists no sha256 for {name}", "the release is incomplete upstream; "
                                "build another version, or one Debian has (--source build:debian)")
    checksums = debsrc.SourceFile("SHA256.txt", url, hashlib.sha256(data).hexdigest())
    return debsrc.SourcePackage(PACKAGE, version, checksums, debsrc.SourceFile(name, tarball, sha256), "upstream")
