"""`xrel dist` twice, at two times with the sources touched between, gives byte-identical tarballs and
manifest; from two different directories too (native code does not embed the build tree's path);
`xrel dist --check` rebuilds from nothing and names what differs (real mix, zig and a Debian runtime)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import needs_apt, needs_make, needs_mix
from helpers import XREL, copy_fixtures
from xrel.dist.check import mismatches

pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow, pytest.mark.network]
CONFIG = 'otp = "25"\nelixir = "1.14"\ntargets = ["armhf"]\n'


@pytest.fixture(scope="module", autouse=True)
def signing_key(tmp_path_factory):
    """Every dist here is signed: Ed25519 is deterministic and the trusted comment has no timestamp,
    so the signatures must be byte-identical too."""
    keys = tmp_path_factory.mktemp("keys")
    made = subprocess.run([*XREL, "keygen", "--unencrypted", "--out", str(keys), "--name", "ci"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    os.environ["XREL_SIGNING_KEY"] = str(keys / "ci.key")
    yield keys
    os.environ.pop("XREL_SIGNING_KEY", None)


def run_dist(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*XREL, "dist", *args], cwd=project, capture_output=True, text=True, timeout=1800)


def dist(project: Path, *args: str) -> Path:
    done = run_dist(project, *args)
    assert done.returncode == 0, done.stderr
    return next((project / "dist").glob("[0-9]*"))


def touch_all(root: Path) -> None:
    now = time.time() + 3600
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (now, now))


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def project(root: Path, name: str = "nif_make") -> Path:
    path = copy_fixtures(root, name) / name
    (path / "xrel.toml").write_text(CONFIG)
    return path


def same(a: Path, b: Path) -> None:
    """Byte-identical dists; else the files and tarball members that differ (what a flaky run must say)."""
    assert files(a) == files(b), f"differ: {mismatches(a, b)}"


def test_same_commit_later_with_touched_sources_gives_the_same_bytes(tmp_path):
    app = project(tmp_path / "a")
    first = files(dist(app))
    assert "releases/COOKIE" not in subprocess.run(["tar", "tzf", *[str(p) for p in (app / "dist/0.1.0").glob(
        "*.tar.gz")]], capture_output=True, text=True).stdout
    touch_all(app)
    (app / "_build").rename(tmp_path / "old_build")  # a fresh `mix release` into a new _build/xrel
    (app / "dist").rename(tmp_path / "old_dist")
    again = dist(app)
    same(tmp_path / "old_dist" / "0.1.0", again)
    assert files(again) == first


def test_two_directories_give_the_same_bytes(tmp_path):
    a, b = dist(project(tmp_path / "a")), dist(project(tmp_path / "elsewhere" / "b"))
    assert {"SHA256SUMS.minisig", "xrel-manifest.json.minisig"} <= files(a).keys()
    same(a, b)


def test_check_rebuilds_from_nothing_and_names_the_members_that_differ(tmp_path):
    app = project(tmp_path, "pure_app")
    assert "rebuilt and identical" in run_dist(app, "--check").stdout
    mix_exs = app / "mix.exs"  # a release step that writes a random value: no two builds agree
    mix_exs.write_text(mix_exs.read_text().replace(
        '"built by a custom step\\n"', '"built #{Base.encode16(:crypto.strong_rand_bytes(8))}\\n"'))
    refused = run_dist(app, "--check", "--force")
    assert refused.returncode == 6, refused.stderr
    assert "not reproducible" in refused.stderr and "(members: STAMP)" in refused.stderr
    assert "xrel-manifest.json" in refused.stderr and "SHA256SUMS" in refused.stderr


def test_check_of_a_nif_project(tmp_path):
    done = run_dist(project(tmp_path), "--check")
    assert done.returncode == 0, done.stderr
