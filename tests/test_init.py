"""`xrel init` as a user runs it: a commented starter xrel.toml that load_config reads back, and one-line refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xrel.cli.project import DEFAULT_ELIXIR, DEFAULT_OTP, mix_release_name
from xrel.project.config import load_config
from xrel.targets import host_target

MIX_EXS = """\
defmodule MyApp.MixProject do
  use Mix.Project

  def project do
    [app: :my_app, version: "0.1.0", elixir: "~> 1.14", deps: []]
  end
end
"""


def xrel_init(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrel", "init", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "mix.exs").write_text(MIX_EXS)
    return tmp_path


def host_otp_version() -> str:
    from xrel.host import host_erlang

    erlang = host_erlang()
    version_file = erlang.root / "releases" / erlang.otp_release / "OTP_VERSION"
    return version_file.read_text().strip() if version_file.is_file() else erlang.otp_release


def test_writes_a_starter_that_loads(project):
    out = xrel_init(str(project))
    assert out.returncode == 0, out.stderr
    path = project / "xrel.toml"
    assert out.stdout.strip() == str(path)
    text = path.read_text()
    assert text.startswith("# xrel.toml")
    for key in ("otp", "elixir", "targets", "release", "mix_env", "out", "[target.", "source", "glibc",
                "sysroot_packages"):
        assert f"\n# {key}" in text or f"\n{key}" in text, key  # every key is shown, and explained
    config = load_config(project)
    assert config.release == "my_app"
    assert [pin.target for pin in config.targets] == [host_target()]
    assert not list(project.glob(".xrel.toml.*"))  # no temp file left beside it


@pytest.mark.skipif(not (shutil.which("erl") and shutil.which("elixir")), reason="no host Erlang/Elixir")
def test_pins_the_host_otp_and_elixir(project):
    from xrel.host import elixir_version

    assert xrel_init(str(project)).returncode == 0
    config = load_config(project)
    assert config.otp == host_otp_version()
    assert config.elixir == ".".join(elixir_version().split(".")[:2])


def test_defaults_without_erlang(project, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty-bin")
    out = xrel_init(str(project), env=dict(os.environ, PATH=str(empty)))
    assert out.returncode == 0, out.stderr
    config = load_config(project)
    assert (config.otp, config.elixir) == (DEFAULT_OTP, DEFAULT_ELIXIR) == ("25", "1.14")


def test_current_directory_and_json(project):
    out = xrel_init("--json", cwd=project)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["path"] == str((project / "xrel.toml").resolve())
    assert data["release"] == "my_app" and data["targets"] == [host_target().id]


def test_refuses_an_existing_file_unless_forced(project):
    (project / "xrel.toml").write_text('otp = "26"\n')
    out = xrel_init(str(project))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "already exists" in out.stderr and "--force" in out.stderr
    assert (project / "xrel.toml").read_text() == 'otp = "26"\n'
    forced = xrel_init(str(project), "--force")
    assert forced.returncode == 0, forced.stderr
    assert load_config(project).release == "my_app"


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_refuses_a_directory_without_mix_exs(tmp_path, where):
    target = tmp_path / "proj"
    if where == "empty":
        target.mkdir()
    out = xrel_init(str(target))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "has no mix.exs" in out.stderr and "Traceback" not in out.stderr
    assert not (target / "xrel.toml").exists()


@pytest.mark.parametrize(("mix_exs", "release"), [
    (MIX_EXS, "my_app"),
    ("def project, do: [\n  app: :web,\n  releases: [\n    edge: [applications: [web: :permanent]]]]", "edge"),
    ("[app: :web, default_release: :b, releases: [a: [], b: []]]", "b"),
    ("[app: :web, releases: releases()]", None),
    ("[apps_path: \"apps\"]", None),
])
def test_release_name_from_mix_exs(tmp_path, mix_exs, release):
    (tmp_path / "mix.exs").write_text(mix_exs)
    assert mix_release_name(tmp_path / "mix.exs") == release


def test_no_release_found_leaves_it_commented(tmp_path):
    (tmp_path / "mix.exs").write_text('defmodule U.MixProject do\n  def project, do: [apps_path: "apps"]\nend\n')
    assert xrel_init(str(tmp_path)).returncode == 0
    assert '# release = "myapp"' in (tmp_path / "xrel.toml").read_text()
    assert load_config(tmp_path).release is None
