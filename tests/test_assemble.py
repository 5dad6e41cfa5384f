"""Release packaging: the one reproducible tarball writer (pieces compressed on all cores and reused
when unchanged), a valid gzip any reader takes."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import have
from xrel.release import assemble
from xrel.release.assemble import COOKIE, write_tarball


def release(root: Path, big: int = 0) -> Path:
    """A small release tree: an executable, a link, a COOKIE, and optionally a big (several pieces) file."""
    for rel, text in (("bin/app", "#!/bin/sh\n"), (COOKIE, "SECRET"), ("lib/a-1/ebin/a.app", "{application,a,[]}.\n")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "bin/app").chmod(0o755)
    os.symlink("app", root / "bin/alias")
    if big:
        (root / "erts-1/bin").mkdir(parents=True)
        (root / "erts-1/bin/beam.smp").write_bytes(os.urandom(big // 2) + b"xrel" * (big // 8))
    return root


def members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.mark.parametrize("big", [0, 1, (1 << 20) - 1000, 3 * (1 << 20) + 12345])
def test_tarball_is_one_valid_gzip_member_of_a_whole_tar(tmp_path, big):
    rel = release(tmp_path / "rel", big)
    write_tarball(rel, tmp_path / "a.tar.gz", 42)
    blob = (tmp_path / "a.tar.gz").read_bytes()
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, no timestamp
    assert len(gzip.decompress(blob)) % tarfile.RECORDSIZE == 0
    if have("gzip"):
        proc = subprocess.run(["gzip", "-t"], input=blob, capture_output=True)
        assert proc.returncode == 0, proc.stderr
    if have("tar"):
        listed = subprocess.run(["tar", "tzvf", str(tmp_path / "a.tar.gz")], capture_output=True, text=True)
        assert listed.returncode == 0 and "bin/alias -> app" in listed.stdout
    if big:
        with tarfile.open(tmp_path / "a.tar.gz") as tar:
            assert tar.extractfile("erts-1/bin/beam.smp").read() == (rel / "erts-1/bin/beam.smp").read_bytes()


def test_tarball_is_deterministic_without_cookie_and_kept(tmp_path):
    rel = release(tmp_path / "rel")
    first = write_tarball(rel, tmp_path / "out" / "a.tar.gz", 42)
    found = members(tmp_path / "out" / "a.tar.gz")
    assert COOKIE not in found and found["bin/app"].mode == 0o755 and found["bin/alias"].issym()
    assert {m.mtime for m in found.values()} == {42} and {(m.uid, m.uname) for m in found.values()} == {(0, "root")}
    assert (tmp_path / "out" / "a.tar.gz.sha256").read_text() == f"{first}  a.tar.gz\n"
    inode = (tmp_path / "out" / "a.tar.gz").stat().st_ino
    assert write_tarball(rel, tmp_path / "out" / "a.tar.gz", 42) == first  # unchanged: kept as it is
    os.utime(rel / "bin/app", (1, 1))  # touched, same content: the same bytes, not written again
    assert write_tarball(rel, tmp_path / "out" / "a.tar.gz", 42) == first
    assert (tmp_path / "out" / "a.tar.gz").stat().st_ino == inode
    assert write_tarball(rel, tmp_path / "out" / "a.tar.gz", 43) != first  # another epoch: other bytes
    assert {m.mtime for m in members(tmp_path / "out" / "a.tar.gz").values()} == {43}


def test_reused_pieces_give_the_bytes_of_a_fresh_write(tmp_path, monkeypatch):
    rel = release(tmp_path / "rel", big=3 * (1 << 20))
    write_tarball(rel, tmp_path / "inc.tar.gz", 42)
    (rel / "lib/a-1/ebin/a.app").write_text("{application,a,[{vsn,\"2\"}]}.\n")  # one small member changed
    compressed = []
    real = assemble._deflate
    monkeypatch.setattr(assemble, "_deflate", lambda *a: compressed.append(a[0]) or real(*a))
    incremental = write_tarball(rel, tmp_path / "inc.tar.gz", 42)
    assert len(compressed) <= 3, "only the changed member and what follows it within 32 KiB is compressed again"
    assert write_tarball(rel, tmp_path / "fresh.tar.gz", 42) == incremental
    assert (tmp_path / "fresh.tar.gz").read_bytes() == (tmp_path / "inc.tar.gz").read_bytes()
    (tmp_path / "inc.tar.gz").write_bytes(b"garbage")  # a damaged previous tarball is never reused
    assert write_tarball(rel, tmp_path / "inc.tar.gz", 42) == incremental
    assert gzip.decompress((tmp_path / "inc.tar.gz").read_bytes()) == gzip.decompress(
        (tmp_path / "fresh.tar.gz").read_bytes())


def test_tarball_bytes_do_not_depend_on_mtimes_modes_or_the_cookie(tmp_path):
    a, b = release(tmp_path / "a"), release(tmp_path / "b")
    (b / COOKIE).write_text("OTHER")
    (b / "lib/a-1/ebin/a.app").chmod(0o664)
    os.utime(b / "bin/app", (1_800_000_000, 1_800_000_000))
    old = os.umask(0o077)
    try:
        (b / "lib/a-1/priv").mkdir()
        (a / "lib/a-1/priv").mkdir()
    finally:
        os.umask(old)
    (a / "lib/a-1/priv").chmod(0o755)
    assert write_tarball(a, tmp_path / "a.tar.gz", 7) == write_tarball(b, tmp_path / "b.tar.gz", 7)


def test_source_date_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234")
    assert assemble.source_date_epoch(tmp_path) == 1234
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert assemble.source_date_epoch(tmp_path) == assemble.DEFAULT_EPOCH  # not a git repository
    if have("git"):
        env = {**os.environ, "GIT_AUTHOR_DATE": "@1600000000 +0000", "GIT_COMMITTER_DATE": "@1600000000 +0000",
               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t"}
        for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
            subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env, capture_output=True)
        assert assemble.source_date_epoch(tmp_path) == 1600000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(Exception, match="not a number"):
        assemble.source_date_epoch(tmp_path)


def test_gzip_reader_of_python_streams_it(tmp_path):
    rel = release(tmp_path / "rel", big=2 * (1 << 20))
    write_tarball(rel, tmp_path / "a.tar.gz", 42)
    with tarfile.open(fileobj=io.BytesIO((tmp_path / "a.tar.gz").read_bytes()), mode="r|gz") as tar:
        assert sorted(m.name for m in tar) == sorted(members(tmp_path / "a.tar.gz"))
