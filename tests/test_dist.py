"""xrel dist's layout and `xrel verify` on hand-made dists: reproducible tarballs without COOKIE,
SHA256SUMS as sha256sum reads it, signatures, a dist served over HTTP (fast; no mix)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from xrel.dist.layout import COOKIE, MANIFEST, SUMS, parse_sums, sums_text
from xrel.dist.make import differing, place
from xrel.dist.manifest import SCHEMA_VERSION, manifest_text
from xrel.dist.verify import verify_dist
from xrel.errors import UsageError, VerificationError
from xrel.release.tarball import write_tarball
from xrel.storage.files import sha256_file

TARGET = "aarch64-linux-gnu"


def release(root: Path, mtime: int = 1_700_000_000) -> Path:
    for rel, text in (("bin/app", "#!/bin/sh\n"), ("releases/COOKIE", "SECRET"), ("releases/0.1.0/vm.args", "-x\n"),
                      ("lib/app-0.1.0/ebin/app.app", "{}")):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, (mtime, mtime))
    (root / "bin/app").chmod(0o775)
    return root


def make_dist(tmp: Path, key=None) -> Path:
    out = tmp / "dist" / "0.1.0"
    out.mkdir(parents=True)
    name = f"app-0.1.0-otp27-{TARGET}.tar.gz"
    sha = write_tarball(release(tmp / "rel"), tmp / "build" / name, 315532800)  # as `xrel build` writes it
    shutil.copyfile(tmp / "build" / name, out / name)
    manifest = {"schema_version": SCHEMA_VERSION, "app": "app", "release": "app", "version": "0.1.0",
                "targets": [{"target": TARGET, "file": name, "size": (out / name).stat().st_size, "sha256": sha}]}
    (out / MANIFEST).write_text(manifest_text(manifest))
    (out / SUMS).write_text(sums_text({name: sha, MANIFEST: sha256_file(out / MANIFEST)}))
    if key is not None:
        from xrel.dist.make import sign_dist

        sign_dist(out, key, "app", "0.1.0")
    return out


def test_tarball_bytes_depend_on_content_only_and_leave_the_cookie_out(tmp_path):
    a, b = release(tmp_path / "a"), release(tmp_path / "b", mtime=1_800_000_000)
    (b / "releases/COOKIE").write_text("OTHER")
    (b / "releases/0.1.0/vm.args").chmod(0o664)
    sha_a = write_tarball(a, tmp_path / "a.tar.gz", 42)
    sha_b = write_tarball(b, tmp_path / "b.tar.gz", 42)
    assert sha_a == sha_b and (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = tar.getmembers()
    assert COOKIE not in [m.name for m in members]
    assert {m.mtime for m in members} == {42} and {(m.uid, m.gid, m.uname) for m in members} == {(0, 0, "root")}
    assert {m.name: m.mode for m in members}["bin/app"] == 0o755


def test_sums_are_what_sha256sum_checks(tmp_path):
    out = make_dist(tmp_path)
    assert parse_sums((out / SUMS).read_text(), SUMS).keys() == {MANIFEST, f"app-0.1.0-otp27-{TARGET}.tar.gz"}
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "-c", SUMS], cwd=out, capture_output=True).returncode == 0
    with pytest.raises(VerificationError, match="not a `sha256sum` line"):
        parse_sums("abc  ../etc/passwd\n", SUMS)


def test_verify_checks_hashes_and_refuses_a_cookie(tmp_path):
    out = make_dist(tmp_path)
    assert verify_dist(out, project_dir=tmp_path).targets == [TARGET]
    tarball = next(out.glob("*.tar.gz"))
    with tarfile.open(tarball, "w:gz") as tar:  # same name, now with the secret
        tar.add(tmp_path / "rel", arcname=".")
    with pytest.raises(VerificationError, match="sha256 does not match"):
        verify_dist(out, project_dir=tmp_path)
    sha = sha256_file(tarball)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["targets"][0].update(sha256=sha, size=tarball.stat().st_size)
    (out / MANIFEST).write_text(manifest_text(manifest))
    (out / SUMS).write_text(sums_text({tarball.name: sha, MANIFEST: sha256_file(out / MANIFEST)}))
    with pytest.raises(VerificationError, match="contains releases/COOKIE"):
        verify_dist(out, project_dir=tmp_path)


def test_signed_dist_verifies_with_its_key_only(tmp_path):
    signing = pytest.importorskip("xrel.signing")
    key, other = signing.generate_keypair(), signing.generate_keypair()
    signing.write_keypair(key, tmp_path / "k.key", tmp_path / "k.pub", None)
    signing.write_keypair(other, tmp_path / "o.key", tmp_path / "o.pub", None)
    out = make_dist(tmp_path, key)
    assert verify_dist(out, tmp_path / "k.pub").signed_by == str(tmp_path / "k.pub")
    with pytest.raises(VerificationError):
        verify_dist(out, tmp_path / "o.pub")
    again = make_dist(tmp_path / "again", key)
    assert differing(out, again) == []  # no timestamp in the trusted comment: Ed25519 signs to the same bytes
    if shutil.which("minisign"):
        checked = subprocess.run(["minisign", "-Vm", str(out / SUMS), "-p", str(tmp_path / "k.pub")],
                                 capture_output=True, text=True)
        assert checked.returncode == 0 and "xrel dist app 0.1.0 sha256sums" in checked.stdout


def test_verify_a_url(tmp_path, upstream):
    out = make_dist(tmp_path)
    for path in out.iterdir():
        upstream.publish(f"dist/0.1.0/{path.name}", path.read_bytes())
    result = verify_dist(upstream.url("dist/0.1.0"), project_dir=tmp_path)
    assert result.version == "0.1.0" and result.targets == [TARGET]


def test_place_keeps_identical_and_refuses_other_content(tmp_path):
    final = make_dist(tmp_path)
    same = make_dist(tmp_path / "s")
    assert place(same, final, force=False) is True and not same.exists()
    other = make_dist(tmp_path / "o")
    (other / SUMS).write_text("")
    with pytest.raises(UsageError, match="already exists with other content"):
        place(other, final, force=False)
    assert place(other, final, force=True) is False and (final / SUMS).read_text() == ""


def test_check_names_the_files_and_tarball_members_that_differ(tmp_path):
    from xrel.dist.check import mismatches

    a, b = make_dist(tmp_path / "a"), make_dist(tmp_path / "b")
    (a / "SHA256SUMS.minisig").write_text("signed")  # the rebuild is not signed: signatures are not compared
    assert mismatches(a, b) == []
    (tmp_path / "b/rel/releases/0.1.0/vm.args").write_text("-other\n")
    name = f"app-0.1.0-otp27-{TARGET}.tar.gz"
    write_tarball(tmp_path / "b/rel", tmp_path / "b/build" / name, 315532800)
    shutil.copyfile(tmp_path / "b/build" / name, b / name)
    assert mismatches(a, b) == [f"{name} (members: releases/0.1.0/vm.args)"]
    (b / MANIFEST).write_text("{}")
    assert mismatches(a, b)[-1] == MANIFEST


def test_check_rebuilds_with_the_dists_arguments_in_fresh_build_trees(tmp_path, isolated_cache):
    from xrel.dist.check import build_command, scratch_cache
    from xrel.storage import cache

    for name in ("runtimes", "builds", "downloads"):
        cache.area(name)
    root = scratch_cache(tmp_path / "scratch")
    assert sorted(p.name for p in root.iterdir()) == ["downloads", "runtimes"]  # no build trees: from nothing
    assert (root / "runtimes").resolve() == (isolated_cache / "runtimes").resolve()
    cmd = build_command({"project_dir": tmp_path, "targets": ("armhf", "arm64"), "otp": "27", "source": None,
                         "locked": True, "offline": False}, tmp_path / "out")
    assert cmd[cmd.index("build"):] == ["build", str(tmp_path), "--out", str(tmp_path / "out"), "--json",
                                        "--target", "armhf", "--target", "arm64", "--otp", "27", "--locked"]
