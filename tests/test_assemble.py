"""Release packaging: the one reproducible tarball writer (pieces compressed on all cores and reused
when unchanged), a valid gzip any reader takes."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import have
from xrel.release import pieces, tarball
from xrel.release.tarball import COOKIE, write_tarball


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
    real = tarball._deflate
    monkeypatch.setattr(tarball, "_deflate", lambda *a: compressed.append(a[0]) or real(*a))
    incremental = write_tarball(rel, tmp_path / "inc.tar.gz", 42)
    assert len(compressed) <= 3, "only the changed member and what follows it within 32 KiB is compressed again"
    nothing_reused(monkeypatch, tmp_path)
    assert write_tarball(rel, tmp_path / "fresh.tar.gz", 42) == incremental
    assert (tmp_path / "fresh.tar.gz").read_bytes() == (tmp_path / "inc.tar.gz").read_bytes()
    (tmp_path / "inc.tar.gz").write_bytes(b"garbage")  # a damaged previous tarball is never reused
    assert write_tarball(rel, tmp_path / "inc.tar.gz", 42) == incremental
    assert gzip.decompress((tmp_path / "inc.tar.gz").read_bytes()) == gzip.decompress(
        (tmp_path / "fresh.tar.gz").read_bytes())


def test_another_targets_tarball_reuses_the_pieces_they_share(tmp_path, monkeypatch):
    monkeypatch.setattr(tarball, "_PACKED", {})
    first = release(tmp_path / "first", big=3 * (1 << 20))
    for i in range(40):  # BEAM files both targets share, after their ERTS
        (first / f"lib/a-1/ebin/m{i}.beam").write_bytes(os.urandom(4000))
    write_tarball(first, tmp_path / "first.tar.gz", 42)
    second = tmp_path / "second"
    shutil.copytree(first, second, symlinks=True)
    (second / "erts-1/bin/beam.smp").write_bytes(os.urandom(1 << 20))  # its own ERTS
    compressed = []
    real = tarball._deflate
    monkeypatch.setattr(tarball, "_deflate", lambda *a: compressed.append(a[0]) or real(*a))
    shared = write_tarball(second, tmp_path / "second.tar.gz", 42)
    # its ERTS (two pieces) and the members in the 32 KiB that follow it (~9 of the 4 KB files)
    assert 2 <= len(compressed) <= 14, len(compressed)
    monkeypatch.setattr(tarball, "_PACKED", {})
    assert write_tarball(second, tmp_path / "alone.tar.gz", 42) == shared
    assert len(compressed) > 14 + 40  # alone, every member is compressed


def nothing_reused(monkeypatch, tmp_path: Path) -> None:
    """As a new process with an empty cache: no piece compressed before is at hand."""
    monkeypatch.setattr(tarball, "_PACKED", {})
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / f"empty-cache-{len(list(tmp_path.iterdir()))}"))


def test_big_members_pieces_are_kept_for_later_runs_and_trimmed(tmp_path, monkeypatch):
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tarball, "_PACKED", {})
    rel = release(tmp_path / "rel", big=3 * (1 << 20))
    write_tarball(rel, tmp_path / "a.tar.gz", 42)
    monkeypatch.setattr(tarball, "_PACKED", {})  # a later xrel run, a clean output dir
    compressed = []
    real = tarball._deflate
    monkeypatch.setattr(tarball, "_deflate", lambda *a: compressed.append(a[0]) or real(*a))
    later = write_tarball(rel, tmp_path / "clean" / "a.tar.gz", 42)
    assert compressed and not [c for c in compressed if len(c) >= 1 << 19], "the ERTS pieces came from the cache"
    nothing_reused(monkeypatch, tmp_path)
    assert write_tarball(rel, tmp_path / "alone.tar.gz", 42) == later
    kept = tmp_path / "cache" / pieces.AREA
    assert len(list(kept.iterdir())) >= 3
    monkeypatch.setattr(pieces, "LIMIT", 1)
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "cache"))
    pieces.keep({"0" * 64: b"x"})
    assert len(list(kept.iterdir())) <= 1  # trimmed, least recently used first


def test_a_new_output_dir_takes_the_pieces_of_the_last_tarball_of_its_slot(tmp_path, monkeypatch):
    """A clean build (new build tree, new output dir) compresses only what changed since the last
    tarball of the same release and target, wherever that was written."""
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tarball, "_PACKED", {})
    rel = release(tmp_path / "rel")
    for i in range(60):  # small members: the kind the big members' piece cache does not keep
        (rel / f"lib/a-1/ebin/m{i}.beam").write_bytes(os.urandom(3000))
    write_tarball(rel, tmp_path / "out1" / "a.tar.gz", 42, slot="a-x86_64-linux-gnu")
    fresh = tmp_path / "fresh"
    shutil.copytree(rel, fresh, symlinks=True)  # mix writes every file anew
    (fresh / "lib/a-1/ebin/m30.beam").write_bytes(os.urandom(3000))  # one module changed
    monkeypatch.setattr(tarball, "_PACKED", {})  # a later xrel run
    compressed = []
    real = tarball._deflate
    monkeypatch.setattr(tarball, "_deflate", lambda *a: compressed.append(a[0]) or real(*a))
    sha = write_tarball(fresh, tmp_path / "out2" / "a.tar.gz", 42, slot="a-x86_64-linux-gnu")
    assert 1 <= len(compressed) <= 14, len(compressed)  # the changed member and those in its window
    compressed.clear()
    monkeypatch.setattr(tarball, "_PACKED", {})
    write_tarball(fresh, tmp_path / "out3" / "a.tar.gz", 42, slot="a-aarch64-linux-gnu")  # another slot
    assert len(compressed) > 60
    nothing_reused(monkeypatch, tmp_path)
    assert write_tarball(fresh, tmp_path / "alone.tar.gz", 42) == sha


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
    assert tarball.source_date_epoch(tmp_path) == 1234
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert tarball.source_date_epoch(tmp_path) == tarball.DEFAULT_EPOCH  # not a git repository
    if have("git"):
        env = {**os.environ, "GIT_AUTHOR_DATE": "@1600000000 +0000", "GIT_COMMITTER_DATE": "@1600000000 +0000",
               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t"}
        for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
            subprocess.run(["git", "-C", str(tmp_path), *args], check=True, env=env, capture_output=True)
        assert tarball.source_date_epoch(tmp_path) == 1600000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(Exception, match="not a number"):
        tarball.source_date_epoch(tmp_path)


def test_gzip_reader_of_python_streams_it(tmp_path):
    rel = release(tmp_path / "rel", big=2 * (1 << 20))
    write_tarball(rel, tmp_path / "a.tar.gz", 42)
    with tarfile.open(fileobj=io.BytesIO((tmp_path / "a.tar.gz").read_bytes()), mode="r|gz") as tar:
        assert sorted(m.name for m in tar) == sorted(members(tmp_path / "a.tar.gz"))


@pytest.mark.parametrize("racy", [True, False])
def test_a_file_rewritten_with_its_size_and_mtime_restored_is_read_again(tmp_path, monkeypatch, racy):
    rel = release(tmp_path / "rel", big=2 * (1 << 20))
    if not racy:  # found by its ctime, not because it was written within a clock tick of being read
        monkeypatch.setattr(tarball, "_RACY_NS", 0)
    write_tarball(rel, tmp_path / "a.tar.gz", 42)
    if not racy:
        time.sleep(0.05)
    beam = rel / "erts-1/bin/beam.smp"
    before = beam.stat()
    data = bytearray(beam.read_bytes())
    data[5] ^= 0xFF
    with open(beam, "r+b") as f:  # in place: the same inode and size
        f.write(data)
    os.utime(beam, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert beam.stat().st_mtime_ns == before.st_mtime_ns and beam.stat().st_ino == before.st_ino
    write_tarball(rel, tmp_path / "a.tar.gz", 42)
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        assert tar.extractfile("erts-1/bin/beam.smp").read() == bytes(data)
    assert (tmp_path / "a.tar.gz").read_bytes() == _fresh(rel, tmp_path / "fresh.tar.gz")


def test_unchanged_and_hard_linked_files_are_not_read(tmp_path, monkeypatch):
    rel = release(tmp_path / "rel", big=2 * (1 << 20))
    monkeypatch.setattr(tarball, "_RACY_NS", 0)
    time.sleep(0.05)
    write_tarball(rel, tmp_path / "a.tar.gz", 42)
    other = tmp_path / "other"
    shutil.copytree(rel, other, symlinks=True, copy_function=os.link)  # an extra target's: the same inodes
    write_tarball(other, tmp_path / "b.tar.gz", 42)
    (rel / "lib/a-1/ebin/a.app").write_text("{application,a,[{vsn,\"2\"}]}.\n")
    opened = []
    real = tarball._member_bytes
    monkeypatch.setattr(tarball, "_member_bytes", lambda rel_, *a: opened.append(rel_) or real(rel_, *a))
    write_tarball(rel, tmp_path / "a.tar.gz", 42)
    assert "erts-1/bin/beam.smp" not in opened and "lib/a-1/ebin/a.app" in opened
    opened.clear()
    write_tarball(other, tmp_path / "b.tar.gz", 42)  # its record's inodes got another link
    assert "erts-1/bin/beam.smp" not in opened and "bin/app" not in opened
    assert (tmp_path / "a.tar.gz").read_bytes() == _fresh(rel, tmp_path / "fresh-a.tar.gz")
    assert (tmp_path / "b.tar.gz").read_bytes() == _fresh(other, tmp_path / "fresh-b.tar.gz")


def _fresh(rel: Path, dest: Path) -> bytes:
    """The bytes of a tarball written from nothing (no record, nothing this process packed)."""
    tarball._SEEN.clear()
    write_tarball(rel, dest, 42)
    return dest.read_bytes()


def test_a_new_build_reuses_no_piece_of_an_earlier_build_in_the_process(tmp_path, monkeypatch):
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "cache"))
    rel = release(tmp_path / "rel")
    for i in range(20):
        (rel / f"lib/a-1/ebin/m{i}.beam").write_bytes(os.urandom(4000))
    write_tarball(rel, tmp_path / "first.tar.gz", 42)
    tarball.forget_earlier_builds()  # what build_all does first
    compressed = []
    real = tarball._deflate
    monkeypatch.setattr(tarball, "_deflate", lambda *a: compressed.append(a[0]) or real(*a))
    write_tarball(rel, tmp_path / "clean" / "first.tar.gz", 42)
    assert len(compressed) >= 20, "a clean build in the same process compresses like a new process"
