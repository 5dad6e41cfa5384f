"""tarball.ustar_header: the bytes tarfile's PAX format writes, for every member that needs no pax
record, and None (tarfile's own path) for every member that does."""

from __future__ import annotations

import io
import tarfile

import pytest

from xrel.release.tarball import ustar_header

MTIME = 1_700_000_000
PLAIN = [
    ("lib/app-1.0/ebin/Elixir.App.beam", 0o644, 48_213, tarfile.REGTYPE, ""),
    ("lib/app-1.0/priv/port_prog", 0o755, 0, tarfile.REGTYPE, ""),
    ("lib/app-1.0/", 0o755, 0, tarfile.DIRTYPE, ""),
    ("bin/link", 0o777, 0, tarfile.SYMTYPE, "../erts-13.1.5/bin/erl"),
    ("n" * 100, 0o644, 8 ** 11 - 1, tarfile.REGTYPE, ""),  # both limits, just inside
]
NEEDS_PAX = [
    ("n" * 101, 0o644, 1, tarfile.REGTYPE, ""),
    ("lib/ünïcode.beam", 0o644, 1, tarfile.REGTYPE, ""),
    ("big", 0o644, 8 ** 11, tarfile.REGTYPE, ""),
    ("link", 0o777, 0, tarfile.SYMTYPE, "t" * 101),
]


def tarfile_header(name, mode, size, kind, link) -> bytes:
    info = tarfile.TarInfo(name)
    info.mode, info.size, info.type, info.linkname, info.mtime = mode, size, kind, link, MTIME
    info.uname = info.gname = "root"
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@pytest.mark.parametrize("member", PLAIN, ids=[m[0][:24] for m in PLAIN])
def test_the_header_is_tarfiles_byte_for_byte(member):
    name, mode, size, kind, link = member
    assert ustar_header(name, mode, size, MTIME, kind, link) == tarfile_header(*member)


@pytest.mark.parametrize("member", NEEDS_PAX, ids=[m[0][:24] for m in NEEDS_PAX])
def test_a_member_needing_a_pax_record_is_left_to_tarfile(member):
    name, mode, size, kind, link = member
    assert ustar_header(name, mode, size, MTIME, kind, link) is None
    assert len(tarfile_header(*member)) > tarfile.BLOCKSIZE  # tarfile does write one


def test_tar_reads_it_back():
    data = b"hello"
    blob = ustar_header("dir/f.txt", 0o644, len(data), MTIME, tarfile.REGTYPE) + data.ljust(512, b"\0")
    with tarfile.open(fileobj=io.BytesIO(blob + b"\0" * 1024)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mode, member.mtime, member.uname) == ("dir/f.txt", 0o644, MTIME, "root")
        assert tar.extractfile(member).read() == data
