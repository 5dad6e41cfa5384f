"""`xrel build` writes release dirs only (the edit loop), and a tarball when asked: `--tarball`, or a
release whose mix steps include :tar; a later build without one takes the tarball away again."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

import xrel
from helpers import XREL, copy_fixtures

pytestmark = pytest.mark.slow
TARGET = "arm-linux-gnueabihf"


def cli_build(project: Path, out: Path, *flags: str) -> dict:
    proc = subprocess.run([*XREL, "-q", "build", "--json", "-t", TARGET, f"--out={out}", *flags, str(project)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["targets"][0]


def test_tarballs_only_when_asked_and_never_stale(tmp_path):
    project = copy_fixtures(tmp_path, "pure_app") / "pure_app"
    out = tmp_path / "out"
    tarball = Path(xrel.build(project, TARGET, out=out, tarball=True).targets[0].tarball)
    assert tarball.is_file() and len(list(out.glob("*.tar.gz*"))) == 5  # tarball, .sha256, .content, old names

    dropped = cli_build(project, out)  # the default: no tarball
    assert dropped["tarball"] is None and dropped["sha256"] is None
    assert any("tarball removed" in n for n in dropped["notes"])  # the release itself was up to date
    assert list(out.glob("*.tar.gz*")) == []  # no stale tarball beside the release
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(a["file"], a["sha256"]) for a in manifest["artifacts"]] == [(None, None)]

    source = project / "lib" / "pure_app.ex"
    source.write_text(source.read_text().rstrip()[:-3] + "  def edited, do: :yes\nend\n")
    edited = cli_build(project, out, "--no-tarball")  # (the explicit spelling)
    assert edited["tarball"] is None and not any("up to date" in n for n in edited["notes"])
    assert list(out.glob("*.tar.gz*")) == []
    beams = list(Path(edited["release_dir"]).glob("lib/pure_app-*/ebin/*.beam"))
    assert any(b"edited" in b.read_bytes() for b in beams)

    again = cli_build(project, out, "--tarball")  # nothing changed: only the tarball is written
    assert any("tarball written" in n for n in again["notes"])
    assert again["tarball"] == str(tarball) and tarball.is_file()
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == again["sha256"]
    assert again["sha256"] in Path(again["tarball"] + ".sha256").read_text()
    assert json.loads((out / "manifest.json").read_text())["artifacts"][0]["sha256"] == again["sha256"]


def test_a_release_with_mix_tar_step_gets_xrels_tarball_and_not_mixs(tmp_path):
    project = copy_fixtures(tmp_path, "pure_app") / "pure_app"
    mix_exs = project / "mix.exs"
    mix_exs.write_text(mix_exs.read_text().replace("stamp/1]", "stamp/1, :tar]"))
    out = tmp_path / "out"
    built = cli_build(project, out)  # no flag: the release asks mix for a tarball, so xrel writes its own
    tarball = Path(built["tarball"])
    assert tarball.is_file() and hashlib.sha256(tarball.read_bytes()).hexdigest() == built["sha256"]
    release = Path(built["release_dir"])
    assert (release / "STAMP").is_file()  # the user's other steps still run
    # mix's own tar (with the build's secret COOKIE) is neither in the release dir nor in the tarball
    assert not list(release.rglob("*.tar.gz"))
    with tarfile.open(tarball) as tar:
        assert not [n for n in tar.getnames() if n.endswith(".tar.gz")] and "releases/COOKIE" not in tar.getnames()
    assert cli_build(project, out, "--no-tarball")["tarball"] is None and not tarball.exists()
