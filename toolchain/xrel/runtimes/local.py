"""Runtimes the user provides: `--source path:<OTP root dir, or a .tar.gz/.zip of one>` and
`--source url:<https URL of such an archive>` (which needs --sha256).

A directory is copied, never changed; symlinks in it that point outside it are left out (and
listed in the metadata). Archives go through the same safe extraction as upstream ones. An
uninstalled `make release` tree (a hex builds tarball) is installed as hexbuilds does. Each
distinct directory or archive gets its own cache entry (`...-local-<hash>`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

from xrel import progress
from xrel.errors import NotAvailableError, UsageError, VerificationError
from xrel.runtimes.base import FetchOptions, Offer
from xrel.runtimes.normalize import otp_version
from xrel.runtimes.otp_install import install_minimal, is_uninstalled
from xrel.runtimes.unpack import archive_otp_version, unpack_otp_archive
from xrel.runtimes.windows import remove_installer_files
from xrel.storage.cache import stat_fingerprint
from xrel.storage.download import fetch_verified, verified_path
from xrel.storage.files import sha256_file
from xrel.targets import Target


def _version_or_fail(version: str | None, what: str) -> str:
    if not version:
        raise UsageError(f"{what} is not an OTP root: it has no releases/<major>/OTP_VERSION",
                         "point at the directory holding erts-<V>/, lib/ and releases/ (or an archive of it)")
    return version


def copy_otp_dir(src: Path, dest: Path) -> list[str]:
    """Copy `src` into `dest` (symlinks as links); returns the links left out for pointing outside."""
    src = src.resolve()
    left_out = []

    def outside_links(directory: str, names: list[str]) -> list[str]:
        skipped = []
        for name in names:
            path = Path(directory, name)
            if path.is_symlink():
                target = Path(os.path.normpath(path.parent / os.readlink(path)))
                if target != src and src not in target.parents:
                    skipped.append(name)
                    left_out.append(f"{path.relative_to(src)} -> {os.readlink(path)}")
        return skipped

    shutil.copytree(src, dest, symlinks=True, ignore=outside_links, dirs_exist_ok=True)
    _relativize_links(src, dest)
    if left_out:
        progress.note(f"left out {len(left_out)} link(s) pointing outside {src}: {', '.join(left_out[:3])}")
    return left_out


def _relativize_links(src: Path, dest: Path) -> None:
    """Absolute links to somewhere inside `src` would keep using the user's directory: make them
    relative links to the same place inside the copy."""
    for dirpath, dirs, files in os.walk(dest):
        for name in dirs + files:
            link = Path(dirpath, name)
            if link.is_symlink() and os.path.isabs(os.readlink(link)):
                inside = dest / Path(os.readlink(link)).relative_to(src)
                link.unlink()
                os.symlink(os.path.relpath(inside, link.parent), link)


def _finish(dest: Path, target: Target) -> dict:
    """What the upstream sources do after unpacking: install an uninstalled tree; drop the
    Windows installer's files (erl.ini with its build path, 32-bit installer programs)."""
    if target.os == "windows":
        return {"removed_installer_files": remove_installer_files(dest)}
    return {"installed_by_xrel": install_minimal(dest) if is_uninstalled(dest) else []}


class LocalSource:
    """`path:` — a directory or archive on this machine."""

    name = "local"

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        if not options.location:
            raise UsageError("the local source needs a location", "write --source path:/path/to/otp-root")
        path = Path(options.location).expanduser().resolve()
        if path.is_dir():
            version = _version_or_fail(otp_version(path), str(path))
            variant, sha256 = stat_fingerprint(path)[:12], None
        elif path.is_file():
            sha256 = sha256_file(path)
            version = _version_or_fail(archive_otp_version(path), str(path))
            variant = sha256[:12]
        else:
            raise UsageError(f"{path} does not exist", "give an OTP root directory or a .tar.gz/.zip of one")
        return [Offer(source=self.name, target=target.name, version=version, sha256=sha256,
                      note=f"provided: {path}", details={"local": True, "path": str(path), "variant": variant})]

    def install(self, offer: Offer, target: Target, dest: Path, options: FetchOptions) -> dict:
        path = Path(offer.details["path"])
        if path.is_dir():
            left_out = copy_otp_dir(path, dest)
            return {"location": str(path), "urls": [], "sha256": {}, "links_left_out": left_out,
                    "trust": "local directory", **_finish(dest, target)}
        actual = sha256_file(path)
        if actual != offer.sha256:
            raise VerificationError(f"{path} changed while xrel was reading it (sha256 {actual}, "
                                    f"was {offer.sha256})", "run the command again")
        unpack_otp_archive(path, dest)
        return {"location": str(path), "urls": [path.as_uri()], "sha256": {path.name: actual},
                "trust": "local archive", **_finish(dest, target)}


class UrlSource:
    """`url:` — an archive anywhere on the web, checked against the --sha256 the user gives."""

    name = "url"

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        url = options.location or ""
        if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
            raise UsageError(f"'{url}' is not an http(s) URL", "write --source url:https://host/otp.tar.gz")
        if not options.sha256:
            raise UsageError(f"--source url:{url} needs --sha256 <sha256 of the file>",
                             "xrel does not install a runtime it cannot verify")
        sha256 = options.sha256.lower()
        if options.offline and not verified_path(url, sha256).is_file():
            raise NotAvailableError(f"offline, and {url} is not in the cache",
                                    f"run once online, or put that file at {verified_path(url, sha256)}")
        archive = fetch_verified(url, sha256)
        version = _version_or_fail(archive_otp_version(archive), url)
        return [Offer(source=self.name, target=target.name, version=version, url=url, sha256=sha256,
                      note=f"provided: {url}", details={"variant": sha256[:12]})]

    def install(self, offer: Offer, target: Target, dest: Path, options: FetchOptions) -> dict:
        archive = fetch_verified(offer.url, offer.sha256)
        unpack_otp_archive(archive, dest, what=offer.url)
        return {"location": offer.url, "urls": [offer.url],
                "sha256": {offer.url.rsplit("/", 1)[-1]: offer.sha256},
                "trust": "--sha256", **_finish(dest, target)}


SOURCE = LocalSource()
URL_SOURCE = UrlSource()
