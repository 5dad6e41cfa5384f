"""`xrel build` for macOS, Windows and musl targets, with their runtimes served by a local server
in the exact upstream layouts (erlef/otp_builds, erlang/otp Windows zips, a signed Alpine
repository), whose native files are real zig-built binaries for the target."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import upstream_layouts as layouts
import xrel
from alpine_repo import Package, Signer, alpine_layout, index
from conftest import needs_make, needs_mix
from helpers import cannot_run, copy_fixtures
from runtime_fixtures import MAC_TRIPLE, installed_tree, otp_builds_tarball, windows_zip
from xrel.inspection import binaries

pytestmark = [needs_mix, needs_make, pytest.mark.slow]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_fixtures(tmp_path_factory.mktemp("other-os"), "nif_make") / "nif_make"


def publish_full_runtimes(server, target: str, version: str) -> None:
    """Runtimes with every app a release needs (the source tests use smaller ones)."""
    if target == "x86_64-windows":
        server.publish(f"windows/OTP-{version}/otp_win64_{version}.zip", windows_zip(version, small=False))
        return
    triple = MAC_TRIPLE[target]
    data = otp_builds_tarball(target, version, small=False)
    server.publish(f"otp_builds/{triple}.csv",
                   layouts.checksums_csv([(version, hashlib.sha256(data).hexdigest())]).encode())
    server.publish(f"otp_builds/OTP-{version}/otp-{triple}.tar.gz", data)


def natives(release: Path) -> dict[str, binaries.BinaryInfo]:
    return {p.name: binaries.read(p) for p in release.glob("lib/nif_make-*/priv/*")}


@pytest.mark.parametrize("target,machine", [("x86_64-macos", 0x01000007), ("aarch64-macos", 0x0100000C)])
def test_macos_release(project, upstream, target, machine):
    publish_full_runtimes(upstream, target, "25.2.3")
    result = xrel.build(project, [target], out=project.parent / "out-mac")
    t = result.targets[0]
    assert t.runtime.source == "otp_builds"
    release = Path(t.release_dir)
    found = natives(release)
    assert found["fixture_nif.so"].format == "macho" and found["fixture_nif.so"].kind == "shared"
    assert found["port_prog"].kind == "executable"
    assert {i.machine for i in found.values()} == {machine}
    assert found["fixture_nif.so"].macos_min == "11.0.0"
    # Mach-O files are shipped exactly as linked (arm64 code signatures must stay valid)
    from xrel.release.workspace import project_key
    from xrel.storage.cache import cache_root

    trees = cache_root() / "builds" / project_key(project, "prod") / "prod"
    built = next(trees.glob(f"{t.target}-otp_builds-*/root/**/_build/prod/lib/nif_make/priv/fixture_nif.so"))
    assert hashlib.sha256(built.read_bytes()).digest() == hashlib.sha256(
        (release / "lib/nif_make-0.1.0/priv/fixture_nif.so").read_bytes()).digest()


def test_windows_release(project, upstream):
    publish_full_runtimes(upstream, "x86_64-windows", "27.1.3")
    result = xrel.build(project, ["x86_64-windows"], otp="27.1.3", out=project.parent / "out-win")
    release = Path(result.targets[0].release_dir)
    priv = release / "lib" / "nif_make-0.1.0" / "priv"
    names = sorted(p.name for p in priv.iterdir())
    assert names == ["fixture_nif.dll", "port_prog.exe"], names  # load_nif/Port.open names; no .pdb/.lib
    found = natives(release)
    assert found["fixture_nif.dll"].format == "pe" and found["fixture_nif.dll"].kind == "shared"
    assert found["port_prog.exe"].kind == "executable" and found["fixture_nif.dll"].machine == 0x8664
    assert (release / "bin" / "nif_make.bat").is_file()
    assert list(release.glob("erts-*/bin/erl.exe")) or list(release.glob("erts-*/bin/beam.smp.exe"))


def _alpine_repo(server, tmp_path: Path, monkeypatch) -> Signer:
    signer = Signer(rsa.generate_private_key(public_exponent=65537, key_size=2048), "xrel-test.rsa.pub")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / signer.name).write_bytes(signer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    monkeypatch.setenv("XREL_ALPINE_KEYS", str(keys))
    monkeypatch.setenv("XREL_ALPINE_URL", server.url_for("/").rstrip("/"))
    server.no_handler_status_code = 404
    main, dev = alpine_layout(installed_tree("x86_64-linux-musl"), tmp_path / "alpine")
    packages = [Package("erlang27", "27.3.4-r1", main, ["so:libc.musl-x86_64.so.1"], ["cmd:erl=27.3.4-r1"]),
                Package("erlang27-dev", "27.3.4-r1", dev, ["erlang27=27.3.4-r1"])]
    built = [(p, p.build(signer)) for p in packages]
    base = "/v3.22/community/x86_64"
    server.expect_request(f"{base}/APKINDEX.tar.gz").respond_with_data(index([p.record(d) for p, d in built], signer))
    for p, data in built:
        server.expect_request(f"{base}/{p.filename}").respond_with_data(data)
    return signer


def test_musl_release(project, httpserver, tmp_path, monkeypatch):
    _alpine_repo(httpserver, tmp_path, monkeypatch)
    result = xrel.build(project, ["x86_64-linux-musl"], otp="27", out=project.parent / "out-musl")
    t = result.targets[0]
    assert t.runtime.source == "alpine"  # (the test tree carries the host OTP_VERSION file)
    found = natives(Path(t.release_dir))
    assert found["fixture_nif.so"].machine == 62 and found["fixture_nif.so"].libc in (None, "musl")
    assert found["port_prog"].libc in (None, "musl") and found["port_prog"].glibc_floor is None
    # it runs here: the host's CPU with Debian's musl loader (the fixture's programs are stubs that exit 0)
    if cannot_run("x86_64-linux-musl"):
        pytest.skip(f"built and inspected; not run: {cannot_run('x86_64-linux-musl')}")
    assert xrel.run(t.release_dir, ["eval", "1"]) == 0
