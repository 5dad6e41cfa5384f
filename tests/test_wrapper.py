"""The MIX_EXS wrapper rests on Mix.ProjectStack (internal API): these tests pin its behaviour on
the Elixir installed here, so an Elixir upgrade that changes it fails loudly."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

import xrel
from conftest import needs_make, needs_mix
from helpers import copy_fixtures
from otp_tree import build_otp_tree
from xrel.errors import BuildError
from xrel.host import host_erlang
from xrel.release.mix import WRAPPER, mix_env_vars

pytestmark = [needs_mix]


def test_info_task_reads_the_project_without_building(tmp_path):
    project = copy_fixtures(tmp_path, "nif_make") / "nif_make"
    out = tmp_path / "info.json"
    env = mix_env_vars(project, "prod", {"XREL_INFO_OUT": str(out), "MIX_BUILD_PATH": str(tmp_path / "b")})
    subprocess.run(["mix", "xrel.info"], cwd=project, env=env, check=True, capture_output=True)
    info = json.loads(out.read_text())
    assert info["app"] == "nif_make" and info["releases"] == ["nif_make"] and not info["umbrella"]
    assert info["deps"] == [{"app": "elixir_make", "exists": True, "path": str((tmp_path / "elixir_make").resolve()),
                             "scm": "Mix.SCM.Path"}]
    assert not (project / "_build").exists()


def test_release_takes_erts_and_otp_apps_from_the_given_root(tmp_path):
    """The wrapper sets include_erts in memory: mix copies that ERTS and that root's OTP apps."""
    project = copy_fixtures(tmp_path, "pure_app") / "pure_app"
    host = host_erlang()
    root = tmp_path / "root"
    shutil.copytree(host.root / f"erts-{host.erts_version}", root / f"erts-{host.erts_version}")
    shutil.copytree(host.root / "lib", root / "lib", symlinks=True)
    marker = root / f"erts-{host.erts_version}" / "bin" / "xrel-marker"
    marker.write_text("from the given root\n")
    info = tmp_path / "release.json"
    env = mix_env_vars(project, "prod", {"XREL_INCLUDE_ERTS": str(root / f"erts-{host.erts_version}"),
                                         "XREL_RELEASE_INFO": str(info)})
    out = tmp_path / "rel"
    subprocess.run(["mix", "release", "--overwrite", "--path", str(out)], cwd=project, env=env, check=True,
                   capture_output=True)
    assert (out / f"erts-{host.erts_version}" / "bin" / "xrel-marker").read_text() == "from the given root\n"
    apps = json.loads(info.read_text())["applications"]
    assert apps["kernel"]["otp_app"] and apps["kernel"]["path"].startswith(str(root / "lib"))
    assert not apps["pure_app"]["otp_app"]
    assert "include_erts" not in (project / "mix.exs").read_text()  # nothing written to the user's file
    assert WRAPPER.name == "wrapper.exs"


@needs_make
@pytest.mark.slow
def test_an_otp_app_missing_from_the_target_root_is_an_error_naming_it(tmp_path):
    project = copy_fixtures(tmp_path, "pure_app") / "pure_app"
    tree = build_otp_tree("x86_64-linux-gnu", tmp_path / "otp", apps=("kernel", "stdlib", "sasl", "crypto"))
    with pytest.raises(BuildError) as err:
        xrel.build(project, ["x86_64-linux-gnu"], source=f"path:{tree}")
    assert "compiler" in str(err.value) and "missing from the target runtime" in str(err.value)


def test_mix_keeps_the_code_paths_xrel_prepends(tmp_path):
    """Mix >= 1.15 prunes code paths it was not told about (the helpers', the node agent's): the
    wrapper turns that off in memory unless the project chose; `mix run` prints what mix sees."""
    project = copy_fixtures(tmp_path, "pure_app") / "pure_app"
    env = mix_env_vars(project, "prod", {"MIX_BUILD_PATH": str(tmp_path / "b")})
    probe = "IO.puts(inspect(Mix.Project.config()[:prune_code_paths]))"
    out = subprocess.run(["mix", "run", "--no-start", "--no-compile", "-e", probe], cwd=project, env=env,
                         check=True, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "false"
    mix_exs = project / "mix.exs"
    mix_exs.write_text(mix_exs.read_text().replace("version:", "prune_code_paths: true, version:", 1))
    out = subprocess.run(["mix", "run", "--no-start", "--no-compile", "-e", probe], cwd=project, env=env,
                         check=True, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "true"


PROBED_MIX_EXS = """
defmodule Probed.MixProject do
  use Mix.Project
  def project, do: [app: :probed, version: "0.1.0", compilers: [:probe] ++ Mix.compilers()]
end

defmodule Mix.Tasks.Compile.Probe do
  use Mix.Task.Compiler

  def run(_args) do
    File.write!(System.fetch_env!("PROBE_OUT") <> ".native", inspect(File.exists?(System.fetch_env!("XREL_BEAM_MARK"))))
    :ok
  end
end
"""

PROBED_MODULE = """
defmodule Probed do
  File.write!(System.fetch_env!("PROBE_OUT") <> ".beam", inspect(File.exists?(System.fetch_env!("XREL_BEAM_MARK"))))
end
"""


def test_the_beam_compile_mark_comes_after_the_projects_earlier_compilers_and_before_its_elixir(tmp_path):
    """XREL_BEAM_MARK: written once the compilers before Elixir's ran (a native one among them),
    before any module compiles: xrel boots its compile VM then (build.build_all)."""
    project = tmp_path / "probed"
    (project / "lib").mkdir(parents=True)
    (project / "mix.exs").write_text(PROBED_MIX_EXS)
    (project / "lib" / "probed.ex").write_text(PROBED_MODULE)
    probe, mark = tmp_path / "seen", tmp_path / "beam-compile-started"
    env = mix_env_vars(project, "prod", {"MIX_BUILD_PATH": str(tmp_path / "b"), "PROBE_OUT": str(probe),
                                         "XREL_BEAM_MARK": str(mark)})
    subprocess.run(["mix", "compile"], cwd=project, env=env, check=True, capture_output=True)
    # (mutations: the mark written as the project loads: "true" for the native compiler; none: "false")
    assert (probe.with_suffix(".native").read_text(), probe.with_suffix(".beam").read_text()) == ("false", "true")
