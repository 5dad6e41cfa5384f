"""Session-wide builders for runtime-source tests: each OTP tree and each upstream archive is
built once per test session (memoised here, so every test module shares them) and reused."""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from pathlib import Path

import pytest

import upstream_layouts as layouts
from otp_tree import RELEASE_APPS, build_otp_tree
from runtime_server import Upstream

SMALL_APPS = ("kernel", "stdlib", "sasl", "crypto")
_WORK = Path(tempfile.mkdtemp(prefix="xrel-runtime-tests-"))
atexit.register(shutil.rmtree, _WORK, True)

HEX_ARCH = {"x86_64-linux-gnu": "amd64", "aarch64-linux-gnu": "arm64"}
MAC_TRIPLE = {"x86_64-macos": "x86_64-apple-darwin", "aarch64-macos": "aarch64-apple-darwin"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fresh(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_WORK)) / "otp"


@functools.cache
def installed_tree(target: str, small: bool = False) -> Path:
    """An installed OTP root for `target` with zig-built binaries (do not modify it)."""
    return build_otp_tree(target, _fresh(f"tree-{target}"), apps=SMALL_APPS if small else RELEASE_APPS)


@functools.cache
def hex_tarball(target: str, version: str, small: bool = True) -> bytes:
    tree = layouts.hex_uninstalled(installed_tree(target, small), _fresh("hex"), version, target)
    return layouts.tar_gz(tree, top=f"OTP-{version}")


@functools.cache
def otp_builds_tarball(target: str, version: str, small: bool = True) -> bytes:
    tree = layouts.otp_builds_installed(installed_tree(target, small), _fresh("mac"), version, MAC_TRIPLE[target])
    return layouts.tar_gz(tree)


@functools.cache
def windows_zip(version: str, small: bool = True) -> bytes:
    tree = layouts.windows_installed(installed_tree("x86_64-windows", small), _fresh("win"), version)
    return layouts.zip_bytes(tree)


@functools.cache
def _server() -> Upstream:
    return Upstream()


@pytest.fixture
def upstream(monkeypatch) -> Upstream:
    """The local upstream, emptied, with every source's base URL pointing at it."""
    server = _server()
    server.reset()
    for source in ("hexbuilds", "otp_builds", "windows"):
        monkeypatch.setenv(f"XREL_{source.upper()}_URL", server.url(source))
    return server


def publish_hex(server: Upstream, target: str, builds: dict[str, bool], *, os_name: str = "ubuntu-22.04",
                tarball=hex_tarball, serve: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """builds.txt listing `builds` ({version: publish its sha256?}) and the tarballs of `serve`
    (default: all) under hexbuilds/<arch>/<os>/; returns {version: tarball}."""
    folder = f"hexbuilds/{HEX_ARCH[target]}/{os_name}"
    archives = {v: tarball(target, v) for v in (builds if serve is None else serve)}

    def published_hash(version: str) -> str | None:
        if not builds[version]:
            return None
        return sha256(archives[version]) if version in archives else "0" * 64

    lines = [(v, published_hash(v)) for v in builds]
    server.publish(f"{folder}/builds.txt", layouts.builds_txt(lines).encode())
    for version, data in archives.items():
        server.publish(f"{folder}/OTP-{version}.tar.gz", data)
    return archives


def publish_otp_builds(server: Upstream, target: str, versions: tuple[str, ...]) -> dict[str, bytes]:
    triple = MAC_TRIPLE[target]
    archives = {v: otp_builds_tarball(target, v) for v in versions}
    server.publish(f"otp_builds/{triple}.csv",
                   layouts.checksums_csv([(v, sha256(a)) for v, a in archives.items()]).encode())
    for version, data in archives.items():
        server.publish(f"otp_builds/OTP-{version}/otp-{triple}.tar.gz", data)
    return archives


def publish_windows(server: Upstream, version: str, data: bytes | None = None) -> bytes:
    data = data if data is not None else windows_zip(version)
    server.publish(f"windows/OTP-{version}/otp_win64_{version}.zip", data)
    return data
