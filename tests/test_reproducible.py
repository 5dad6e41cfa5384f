"""`xrel dist` twice, at two times with the sources touched between, gives byte-identical tarballs and
manifest; from two different directories too, once native code stops embedding the build tree's path
(real mix, zig and a Debian runtime)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import needs_apt, needs_make, needs_mix
from helpers import XREL, copy_fixtures

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


def dist(project: Path, *args: str) -> Path:
    done = subprocess.run([*XREL, "dist", *args], cwd=project, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    return project / "dist" / "0.1.0"


def touch_all(root: Path) -> None:
    now = time.time() + 3600
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (now, now))


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def project(root: Path) -> Path:
    path = copy_fixtures(root, "nif_make") / "nif_make"
    (path / "xrel.toml").write_text(CONFIG)
    return path


def test_same_commit_later_with_touched_sources_gives_the_same_bytes(tmp_path):
    app = project(tmp_path / "a")
    first = files(dist(app))
    assert "releases/COOKIE" not in subprocess.run(["tar", "tzf", *[str(p) for p in (app / "dist/0.1.0").glob(
        "*.tar.gz")]], capture_output=True, text=True).stdout
    touch_all(app)
    (app / "_build").rename(tmp_path / "old_build")  # a fresh `mix release` into a new _build/xrel
    again = dist(app, "--check", "--force")
    assert files(again) == first


def test_two_directories_give_the_same_bytes(tmp_path):
    a = files(dist(project(tmp_path / "a")))
    b = files(dist(project(tmp_path / "elsewhere" / "b")))
    assert {"SHA256SUMS.minisig", "xrel-manifest.json.minisig"} <= a.keys()
    assert a == b
