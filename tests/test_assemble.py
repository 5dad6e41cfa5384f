"""Release packaging: the pigz-style gzip writer, deterministic tarballs, Windows names."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile

import pytest

from conftest import have
from xrel.release.assemble import parallel_gzip, write_tarball


@pytest.mark.parametrize("size", [0, 1, 1000, (1 << 20) - 1, 1 << 20, 3 * (1 << 20) + 12345])
def test_parallel_gzip_is_one_valid_member(size):
    data = os.urandom(size // 2) + b"xrel" * (size // 8) + bytes(size - size // 2 - 4 * (size // 8))
    out = io.BytesIO()
    parallel_gzip(memoryview(data), out)
    blob = out.getvalue()
    assert gzip.decompress(blob) == data
    assert blob[:3] == b"\x1f\x8b\x08"
    if have("gzip"):
        proc = subprocess.run(["gzip", "-t"], input=blob, capture_output=True)
        assert proc.returncode == 0, proc.stderr


def test_tarball_is_deterministic_and_reused(tmp_path):
    rel = tmp_path / "rel"
    (rel / "bin").mkdir(parents=True)
    (rel / "bin" / "app").write_text("#!/bin/sh\n")
    (rel / "bin" / "app").chmod(0o755)
    (rel / "lib" / "a-1" / "ebin").mkdir(parents=True)
    (rel / "lib" / "a-1" / "ebin" / "a.app").write_text("{application,a,[]}.\n")
    os.symlink("app", rel / "bin" / "alias")
    first = write_tarball(rel, tmp_path / "out" / "a.tar.gz")
    blob = (tmp_path / "out" / "a.tar.gz").read_bytes()
    (tmp_path / "out" / "a.tar.gz.content").unlink()  # force a rewrite
    assert write_tarball(rel, tmp_path / "out" / "a.tar.gz") == first
    assert (tmp_path / "out" / "a.tar.gz").read_bytes() == blob
    with tarfile.open(tmp_path / "out" / "a.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/app"].mode & 0o111 and members["bin/alias"].issym()
    assert {m.uname for m in members.values()} == {"root"}
    assert (tmp_path / "out" / "a.tar.gz.sha256").read_text() == f"{first}  a.tar.gz\n"
