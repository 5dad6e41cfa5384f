"""How a derived release's files are put in place (derive._put): links to shared files, copies of
the target's own, and a copy the target's last release made taken over while its source is unchanged;
and how two runtimes' files are compared once (derive._Comparisons)."""

from __future__ import annotations

import os
import shutil

from xrel.release import derive
from xrel.release.derive import _Comparisons, _put


def test_a_copy_of_an_unchanged_source_is_taken_over_from_the_last_release(tmp_path):
    source, last, new = tmp_path / "beam.smp", tmp_path / "last", tmp_path / "new"
    source.write_bytes(b"A" * 4096)
    source.chmod(0o755)
    last.mkdir(), new.mkdir()
    _put(str(source), last / "beam.smp", False, tmp_path / "no-such-release" / "beam.smp")
    assert (last / "beam.smp").stat().st_ino != source.stat().st_ino  # a copy, never the runtime's inode
    _put(str(source), new / "beam.smp", False, last / "beam.smp")
    assert (new / "beam.smp").stat().st_ino == (last / "beam.smp").stat().st_ino  # no bytes copied


def test_a_changed_source_is_copied_again_even_at_the_same_size(tmp_path):
    source, last, new = tmp_path / "nif.so", tmp_path / "last", tmp_path / "new"
    last.mkdir(), new.mkdir()
    source.write_bytes(b"old!")
    shutil.copy2(source, last / "nif.so")
    source.write_bytes(b"new!")
    os.utime(source, ns=(source.stat().st_atime_ns, (last / "nif.so").stat().st_mtime_ns + 1000))
    _put(str(source), new / "nif.so", False, last / "nif.so")
    assert (new / "nif.so").read_bytes() == b"new!"
    assert (new / "nif.so").stat().st_ino != (last / "nif.so").stat().st_ino


def test_a_changed_mode_is_copied_again(tmp_path):
    source, last, new = tmp_path / "prog", tmp_path / "last", tmp_path / "new"
    last.mkdir(), new.mkdir()
    source.write_bytes(b"#!/bin/sh\n")
    shutil.copy2(source, last / "prog")
    source.chmod(0o755)
    _put(str(source), new / "prog", False, last / "prog")
    assert (new / "prog").stat().st_mode & 0o777 == 0o755


def test_a_shared_file_is_a_hard_link_to_its_source(tmp_path):
    source, dest = tmp_path / "m.beam", tmp_path / "rel" / "m.beam"
    source.write_bytes(b"FOR1")
    dest.parent.mkdir()
    _put(str(source), dest, True, tmp_path / "last" / "m.beam")
    assert dest.stat().st_ino == source.stat().st_ino


def test_two_files_are_compared_once_until_one_changes(tmp_path, monkeypatch):
    a, b, memo = tmp_path / "a.beam", tmp_path / "b.beam", tmp_path / "state" / "comparisons.json"
    a.write_bytes(b"FOR1 same")
    b.write_bytes(b"FOR1 same")
    reads = []
    real = derive.same_bytes
    monkeypatch.setattr(derive, "same_bytes", lambda x, y: reads.append(x) or real(x, y))
    first = _Comparisons(memo)
    assert first.same(str(a), str(b)) and len(reads) == 1
    first.save()
    assert _Comparisons(memo).same(str(a), str(b)) and len(reads) == 1  # a later build: from the state dir
    b.write_bytes(b"FOR1 diff")  # same size, new mtime
    assert not _Comparisons(memo).same(str(a), str(b)) and len(reads) == 2


def test_same_bytes_compares_past_the_first_chunk_and_the_length(tmp_path):
    from xrel.storage.files import same_bytes

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * 100 + b"1")
    b.write_bytes(b"x" * 100 + b"2")
    assert same_bytes(a, a, chunk=10) and not same_bytes(a, b, chunk=10)
    b.write_bytes(b"x" * 100 + b"1" + b"more")
    assert not same_bytes(a, b, chunk=10) and not same_bytes(b, a, chunk=10)
