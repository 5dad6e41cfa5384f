"""A dist published to `[publish] to = "github:OWNER/REPO"`, fetched as a browser does (no REST API, no token).

`<server>/<owner>/<repo>/releases/latest/download/xrel-manifest.json` (GitHub redirects it to the latest
published, non-prerelease release's asset) names the version; that release's manifest, SHA256SUMS, their
.minisig and tarballs come from `releases/download/v<version>/<file>` (the tag `xrel publish` gives it), must
hold the same manifest bytes, and are verified (signatures against [signing]'s key, every sha256) before they go
into the cache's downloads area as `<manifest sha256>-<owner>-<repo>-<version>/`, where the next dist finds
them again (re-verified). <server> is $GITHUB_SERVER_URL (as GitHub Actions sets it), else github.com.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from xrel.errors import DownloadError, NotAvailableError, VerificationError
from xrel.publish.destination import GitHubDestination
from xrel.upgrade.source import MANIFEST, FromSource, read_dist

DEFAULT_SERVER = "https://github.com"
AREA = "downloads"
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,99}$")


def server_url() -> str:
    return (os.environ.get("GITHUB_SERVER_URL") or DEFAULT_SERVER).rstrip("/")


def releases_url(dest: GitHubDestination) -> str:
    return f"{server_url()}/{dest.owner}/{dest.repo}/releases"


def tag_of(version: str) -> str:
    """The tag `xrel publish` gives a version's release (its default; [publish] has no tag setting)."""
    return f"v{version}"


def manifest_bytes(url: str, dest: GitHubDestination) -> bytes | None:
    """The manifest at `url` (redirects followed); None when there is none (404)."""
    from xrel.storage.download import download

    with tempfile.TemporaryDirectory(prefix="xrel-manifest-") as tmp:
        try:
            return download(url, Path(tmp) / MANIFEST, label=f"{dest} {MANIFEST}").read_bytes()
        except NotAvailableError:
            return None
        except DownloadError as e:
            raise DownloadError(f"{dest}: the published release could not be read: {e.message}",
                                "check the network (and GITHUB_SERVER_URL), or pass --upgrade-from "
                                "(a dist dir, a tarball, or none)") from None


def _version_of(data: bytes, url: str) -> str:
    import json

    try:
        version = json.loads(data).get("version")
    except (ValueError, AttributeError):
        version = None
    if not isinstance(version, str) or not _VERSION.match(version):
        raise VerificationError(f"{url} names no valid version", "publish the dist again with xrel publish")
    return version


def _download_verified(base: str, dest: GitHubDestination, version: str, expected: bytes, into: Path,
                       public_key: Path | None) -> None:
    """The release's dist files checked (same manifest, signatures, SHA256SUMS) and moved into `into`."""
    from xrel.dist.manifest import read_manifest
    from xrel.dist.verify import check_signatures, check_sums, fetched

    where = f"{dest} {tag_of(version)}"
    try:
        with fetched(f"{base}/download/{tag_of(version)}") as root:
            if (root / MANIFEST).read_bytes() != expected:
                raise VerificationError(f"{where}: its {MANIFEST} differs from the latest release's",
                                        "publish again with xrel publish, or pass --upgrade-from")
            manifest = read_manifest(root / MANIFEST)
            if public_key:
                check_signatures(root, public_key, manifest.get("app", ""), version)
            check_sums(root, manifest)
            for path in root.iterdir():
                shutil.move(path, into / path.name)
    except NotAvailableError as e:
        raise NotAvailableError(f"{where} lacks a file of its dist: {e.message}",
                                "publish the dist again with xrel publish") from None
    except DownloadError as e:
        raise DownloadError(f"{where}: download failed: {e.message}", "check the network, then re-run") from None


def release_dist(dest: GitHubDestination, version: str, expected: bytes, public_key: Path | None) -> Path:
    """The cached, verified dist dir of `version` whose manifest is `expected` (downloaded when not cached)."""
    from xrel.storage import cache

    name = f"{hashlib.sha256(expected).hexdigest()[:16]}-{dest.owner}-{dest.repo}-{version}"
    final = cache.area(AREA) / name
    with cache.locked(AREA, name):
        if (final / MANIFEST).is_file() and (final / MANIFEST).read_bytes() == expected:
            return final
        with cache.staging(final) as tmp:  # nothing half-downloaded stays: the temp dir goes on failure
            _download_verified(releases_url(dest), dest, version, expected, tmp, public_key)
    return final


def latest_github(dest: GitHubDestination, new_version: str, public_key: Path | None) -> FromSource | None:
    """The version `dest` published last, verified, unless it is the one being built; None when none is."""
    from xrel import progress

    url = f"{releases_url(dest)}/latest/download/{MANIFEST}"
    data = manifest_bytes(url, dest)
    if data is None:
        progress.note(f"no upgrade packages: {dest} has no published release with {MANIFEST} yet")
        return None
    version = _version_of(data, url)
    if version == new_version:
        return None
    dist = release_dist(dest, version, data, public_key)
    return read_dist(dist, public_key, f"{dest} (latest: {version})")


def version_github(dest: GitHubDestination, version: str, public_key: Path | None) -> FromSource | None:
    """The release of `version` on `dest`, verified; None when it has no such release."""
    if not _VERSION.match(version):
        return None
    url = f"{releases_url(dest)}/download/{tag_of(version)}/{MANIFEST}"
    data = manifest_bytes(url, dest)
    if data is None:
        return None
    if _version_of(data, url) != version:
        raise VerificationError(f"{url} is the manifest of another version", "publish the dist again")
    return read_dist(release_dist(dest, version, data, public_key), public_key, f"{dest} {tag_of(version)}")
