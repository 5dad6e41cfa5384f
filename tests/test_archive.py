"""Archive safety for every format xrel unpacks: tar, zip, deb (ar + data.tar.*), apk (gzip members)."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
import zipfile
from pathlib import Path

import pytest

from xrel.storage.archive import UnsafeArchive, extract_deb, extract_tar, extract_zip, gunzip, gzip_members


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            if isinstance(m, tuple):
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
            else:
                tar.addfile(m)
    return buf.getvalue()


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info


HOSTILE = {
    "dotdot": [("../evil", b"x")],
    "absolute": [("/etc/evil", b"x")],
    "symlink-out": [link("lnk", "../../outside")],
    "symlink-abs": [link("lnk", "/etc/passwd")],
    "through-link": [link("d", "/tmp"), ("d/evil", b"x")],
    "hardlink-out": [link("hl", "/etc/passwd", tarfile.LNKTYPE)],
    "device": [device("dev/null")],
}


def deb(data_tar: bytes, compress=lzma.compress, member: str = "data.tar.xz") -> bytes:
    """A .deb: an ar archive of debian-binary, control.tar.gz and the data tarball."""
    def entry(name: str, body: bytes) -> bytes:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n".encode()
        return header + body + (b"\n" if len(body) % 2 else b"")

    control = gzip.compress(tar_bytes([("./control", b"Package: x\nVersion: 1\n")]))
    return (b"!<arch>\n" + entry("debian-binary", b"2.0\n") + entry("control.tar.gz", control)
            + entry(member, compress(data_tar)))


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_tar_refuses(case, tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(tar_bytes(HOSTILE[case]))
    with pytest.raises(UnsafeArchive):
        extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_deb_refuses(case, tmp_path):
    package = tmp_path / "x.deb"
    package.write_bytes(deb(tar_bytes(HOSTILE[case])))
    if case in ("symlink-abs", "through-link"):
        # system packages carry absolute links: re-rooted, so what goes through them stays inside
        extract_deb(package, tmp_path / "out")
        assert not Path("/tmp/evil").exists() and not (tmp_path / "evil").exists()
        assert all((tmp_path / "out") in p.resolve().parents or p.is_symlink() for p in (tmp_path / "out").rglob("*"))
        return
    with pytest.raises(UnsafeArchive):
        extract_deb(package, tmp_path / "out")


def test_deb_absolute_links_are_rerooted_inside(tmp_path):
    package = tmp_path / "x.deb"
    members = [("./usr/lib/real.so.1", b"ELF"), link("./usr/lib/alias.so", "/usr/lib/real.so.1")]
    package.write_bytes(deb(tar_bytes(members),
                            compress=lambda b: b, member="data.tar"))
    out = tmp_path / "out"
    extract_deb(package, out)
    alias = out / "usr/lib/alias.so"
    assert alias.is_symlink() and not Path(alias.readlink()).is_absolute() and alias.read_bytes() == b"ELF"


def test_deb_with_zstd_data(tmp_path):
    import zstandard

    package = tmp_path / "x.deb"
    package.write_bytes(deb(tar_bytes([("./usr/share/doc/x", b"hello")]), compress=zstandard.compress,
                            member="data.tar.zst"))
    extract_deb(package, tmp_path / "out")
    assert (tmp_path / "out/usr/share/doc/x").read_bytes() == b"hello"


def zip_bytes(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, body)
    return buf.getvalue()


@pytest.mark.parametrize("entries", [
    [("../evil", b"x", 0o100644)],
    [("/abs/evil", b"x", 0o100644)],
    [("C:/evil", b"x", 0o100644)],
    [("lnk", b"../../outside", 0o120777)],
    [("fifo", b"", 0o010644)],
], ids=["dotdot", "absolute", "drive", "symlink-out", "fifo"])
def test_zip_refuses(entries, tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes(entries))
    with pytest.raises(UnsafeArchive):
        extract_zip(archive, tmp_path / "out")


def test_apk_members_split_and_hostile_data_refused(tmp_path):
    signature = gzip.compress(tar_bytes([(".SIGN.RSA.key.rsa.pub", b"sig")])[:-1024])  # no end blocks
    control = gzip.compress(tar_bytes([(".PKGINFO", b"pkgname = x\n")])[:-1024])
    data = gzip.compress(tar_bytes([("../../evil", b"x")]))
    members = gzip_members(signature + control + data)
    assert [gunzip(m)[:100].split(b"\0")[0] for m in members] == [b".SIGN.RSA.key.rsa.pub", b".PKGINFO", b"../../evil"]
    with pytest.raises(UnsafeArchive):
        extract_tar(io.BytesIO(gunzip(members[2])), tmp_path / "out", reroot_absolute_links=True, name="x.apk")
    with pytest.raises(UnsafeArchive):
        gzip_members(signature + control + data[:-10])  # truncated


def test_a_good_tar_with_a_top_folder(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes([("OTP-27.0/bin/erl", b"#!/bin/sh\n"), link("OTP-27.0/bin/e", "erl")])))
    extract_tar(archive, tmp_path / "out", strip_components=1)
    assert (tmp_path / "out/bin/erl").read_bytes() == b"#!/bin/sh\n" and (tmp_path / "out/bin/e").is_symlink()


EXTRACT_UNDER_DEV_MODE = """
import sys
from pathlib import Path
from xrel.storage.archive import extract_tar
for archive in sys.argv[2:]:
    extract_tar(Path(archive), Path(sys.argv[1]) / Path(archive).name)
"""


def test_extracting_a_tar_file_closes_it(tmp_path):
    """`python -X dev -W error`: an unclosed file would be a ResourceWarning, and then an error."""
    import subprocess
    import sys

    import zstandard

    plain = tar_bytes([("bin/erl", b"#!/bin/sh\n")])
    (tmp_path / "a.tar.gz").write_bytes(gzip.compress(plain))
    (tmp_path / "a.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(plain))
    out = subprocess.run([sys.executable, "-X", "dev", "-W", "error", "-c", EXTRACT_UNDER_DEV_MODE,
                          str(tmp_path / "out"), str(tmp_path / "a.tar.gz"), str(tmp_path / "a.tar.zst")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Warning" not in out.stderr, out.stderr
    assert (tmp_path / "out/a.tar.zst/bin/erl").read_bytes() == b"#!/bin/sh\n"
