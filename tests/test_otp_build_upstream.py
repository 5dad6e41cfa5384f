"""`--source build` from upstream's OTP release tarballs, against a local server with the release
layout (OTP-<V>/otp_src_<V>.tar.gz + OTP-<V>/SHA256.txt): offers, checksum refusals, and the
unpacked tree the build phases use as ERL_TOP (fast: nothing is compiled)."""

from __future__ import annotations

import io
import tarfile

import pytest

import runtime_fixtures as rf
from xrel.errors import NotAvailableError, UsageError, VerificationError
from xrel.otpbuild import debsrc, phases, recipe, source, upstream
from xrel.runtimes.base import FetchOptions
from xrel.targets import Target

MUSL = Target.parse("x86_64-linux-musl")
V = "26.2.5.7"
TOP_FILES = {"otp_build": "#!/bin/sh\necho otp_build \"$@\"\n", "configure": "#!/bin/sh\n", "OTP_VERSION": f"{V}\n",
             "erts/configure": "#!/bin/sh\n", "lib/crypto/c_src/crypto.c": "", "make/otp.mk.in": ""}


def otp_src_tarball(version: str = V) -> bytes:
    """A small tree with the release tarball's layout: everything under otp_src_<V>/, configure generated."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in TOP_FILES.items():
            info = tarfile.TarInfo(f"otp_src_{version}/{name}")
            data = text.replace(V, version).encode()
            info.size, info.mode = len(data), 0o755 if text.startswith("#!") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def publish(server, version: str = V, *, listed: str | None = None, checksums: bool = True) -> bytes:
    """The release's tarball and (unless `checksums` is False) its SHA256.txt, which also lists the
    doc tarballs as upstream's does; `listed` replaces the tarball's published hash."""
    data = otp_src_tarball(version)
    server.publish(f"otp_src/OTP-{version}/otp_src_{version}.tar.gz", data)
    if checksums:
        lines = [f"{'1' * 64}  otp_doc_html_{version}.tar.gz", f"{listed or rf.sha256(data)}  otp_src_{version}.tar.gz",
                 f"{'2' * 64}  otp_doc_man_{version}.tar.gz"]
        server.publish(f"otp_src/OTP-{version}/SHA256.txt", ("\n".join(lines) + "\n").encode())
    return data


class FakeRepo:
    """Debian's side: erlang 27.3.4.1 and 25.2.3, OpenSSL 3.0."""

    def versions(self, package):
        return {"erlang": ["1:27.3.4.1+dfsg-1", "1:25.2.3+dfsg-1"], "openssl": ["3.0.22-1"]}[package]

    def resolve(self, package, version):
        name = f"{package}_{debsrc.apt.debian_version_to_upstream(version)}.orig.tar.xz"
        return debsrc.SourcePackage(package, version, debsrc.SourceFile(f"{package}.dsc", "http://m/d", "d" * 64),
                                    debsrc.SourceFile(name, f"http://m/{name}", "a" * 64))


@pytest.fixture
def server(request, monkeypatch, isolated_cache):
    upstream_server = request.getfixturevalue("upstream")  # runtime_fixtures' local server
    monkeypatch.setenv(upstream.ENV_URL, upstream_server.url("otp_src"))
    monkeypatch.setattr(source, "_repo", lambda offline: FakeRepo())
    return upstream_server


def offer(request: tuple[int, ...], origin: str | None = None):
    offers = source.SOURCE.offers(MUSL, FetchOptions(request=request, location=origin))
    return next(o for o in offers if o.url)


def test_the_recipe_holds_the_upstream_url_template():
    s = recipe.load().sources
    assert s.upstream_url.endswith("/erlang/otp/releases/download")
    assert s.upstream_tarball.format(version=V) == f"OTP-{V}/otp_src_{V}.tar.gz"
    assert s.upstream_checksums.format(version=V) == f"OTP-{V}/SHA256.txt"


def test_sha256_txt_lines_are_read_as_sha256sum_writes_them():
    text = f"{'A' * 64}  otp_src_{V}.tar.gz\n{'b' * 64} *otp_doc_man_{V}.tar.gz\n"
    assert upstream.listed_sha256(text, f"otp_src_{V}.tar.gz") == "a" * 64
    assert upstream.listed_sha256(text, f"otp_doc_man_{V}.tar.gz") == "b" * 64
    assert upstream.listed_sha256(text, "otp_src_1.tar.gz") is None


def test_an_exact_version_debian_lacks_is_offered_from_upstream(server):
    data = publish(server)
    found = offer((26, 2, 5, 7))
    assert found.version == V and found.url == f"{server.url('otp_src')}/OTP-{V}/otp_src_{V}.tar.gz"
    assert found.sha256 == rf.sha256(data) and found.details["otp"].origin == "upstream"
    assert "upstream's otp_src_26.2.5.7.tar.gz" in found.note and found.details["openssl"].upstream == "3.0.22"
    debian = offer((25, 2, 3))  # Debian first when it has the version: upstream is not even asked
    assert debian.details["otp"].origin == "debian" and server.count("otp_src/OTP-25.2.3/SHA256.txt") == 0


def test_build_upstream_asks_upstream_only_and_needs_an_exact_version(server):
    publish(server, "25.2.3")
    assert offer((25, 2, 3), "upstream").details["otp"].origin == "upstream"
    with pytest.raises(UsageError, match="ask for an exact version"):
        offer((25,), "upstream")
    with pytest.raises(UsageError, match="build:debian or build:upstream"):
        offer((25, 2, 3), "alpine")


def test_a_version_with_no_release_is_one_line(server):
    with pytest.raises(NotAvailableError) as err:
        offer((26, 9, 9), "upstream")
    assert str(err.value).startswith("no upstream OTP 26.9.9 release") and "\n" not in str(err.value)
    from xrel.runtimes import fetch_runtime

    with pytest.raises(NotAvailableError, match="build has 27.3.4.1, 25.2.3"):  # plain build: what exists
        fetch_runtime(MUSL, otp="26.9.9", source="build")


def test_a_release_without_sha256_txt_is_refused(server, isolated_cache):
    publish(server, checksums=False)
    with pytest.raises(VerificationError) as err:
        offer((26, 2, 5, 7))
    assert "publishes no SHA256.txt" in str(err.value) and "\n" not in str(err.value)
    assert not any((isolated_cache / "runtimes").glob("*"))


def _build(tmp_path, otp, monkeypatch) -> phases.Build:
    """A Build whose OpenSSL tarball is a local stub (Debian's side is tested elsewhere)."""
    stub = tmp_path / "openssl.tar.gz"
    with tarfile.open(stub, "w:gz") as tar:
        info = tarfile.TarInfo("openssl-3.0.22/Configure")
        tar.addfile(info, io.BytesIO(b""))
    real = debsrc.fetch
    monkeypatch.setattr(debsrc, "fetch", lambda pkg: stub if pkg.package == "openssl" else real(pkg))
    inputs = phases.BuildInputs(recipe.for_target(MUSL), otp, FakeRepo().resolve("openssl", "3.0.22-1"), "zig", 2)
    build = phases.Build(inputs, tmp_path / "work")
    build.logs.mkdir(parents=True)
    return build


def test_a_tarball_other_than_the_listed_one_is_refused_and_deleted(server, tmp_path, monkeypatch, isolated_cache):
    publish(server, listed="f" * 64)
    build = _build(tmp_path, offer((26, 2, 5, 7)).details["otp"], monkeypatch)
    with pytest.raises(VerificationError, match="sha256 mismatch"):
        build._sources()
    assert not [p for p in (isolated_cache / "downloads").iterdir() if "otp_src" in p.name and "index" not in p.name]


def test_the_unpacked_release_is_the_erl_top_the_phases_use(server, tmp_path, monkeypatch):
    publish(server)
    otp = offer((26, 2, 5, 7)).details["otp"]
    build = _build(tmp_path, otp, monkeypatch)
    build._sources()
    assert (build.otp_src / "OTP_VERSION").read_text() == f"{V}\n"
    assert (build.otp_src / "otp_build").stat().st_mode & 0o111 and (build.otp_src / "erts" / "configure").is_file()
    assert not (build.otp_src / "lib" / "common_test").exists()  # Debian's dfsg fix-ups are not applied
    assert (build.openssl_src / "Configure").is_file()
    meta = source._provenance(build.inputs, build)
    assert meta["otp_source"] == {"origin": "upstream", "checksums": {upstream.checksums_url(V): otp.dsc.sha256}}
    assert otp.orig.url in meta["urls"] and meta["sha256"][f"otp_src_{V}.tar.gz"] == otp.orig.sha256
    assert "SHA256.txt" in meta["trust"] and list(meta["dsc"]) == ["openssl.dsc"]


def test_build_erts_from_upstream_reaches_the_source(server, monkeypatch):
    from click.testing import CliRunner

    from xrel.cli.build_erts import build_erts

    seen = {}

    def fetch_runtime(target, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr("xrel.runtimes.fetch_runtime", fetch_runtime)
    CliRunner().invoke(build_erts, ["x86_64-linux-musl", "--otp", V, "--from", "upstream"])
    assert seen["source"] == "build:upstream"
