"""`xrel ci github`: the release workflow it writes parses, and validates against GitHub's workflow schema
(SchemaStore's, as vendored by check-jsonschema: offline); a broken one fails that validation."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from check_jsonschema.builtin_schemas import get_builtin_schema
from ruamel.yaml import YAML

from xrel import __version__
from xrel.ci import render
from xrel.project.lock import Lock, LockedRuntime, write_lock

TARGETS = ("aarch64-linux-gnu", "x86_64-linux-musl")
XREL_TOML = """\
otp = "25"
elixir = "1.14"
targets = ["aarch64-linux-gnu", "x86_64-linux-musl"]
"""


def xrel(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrel", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def write_project(path: Path, toml: str = XREL_TOML, lock: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "mix.exs").write_text("defmodule App.MixProject do\nend\n")
    (path / "xrel.toml").write_text(toml)
    if lock:
        write_lock(path, Lock({t: LockedRuntime(t, "debian", "25.2.3", (("erlang-base.deb", "ab" * 32),))
                               for t in TARGETS}, {}))
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git work tree (a .git dir is all repository_root looks for) whose root is the mix project."""
    (tmp_path / ".git").mkdir()
    return write_project(tmp_path)


def load_yaml(text: str):
    """YAML 1.2, as GitHub reads it (PyYAML's YAML 1.1 would turn the `on:` key into True)."""
    return YAML(typ="safe").load(text)


def schema_errors(workflow) -> list[str]:
    schema = get_builtin_schema("vendor.github-workflows")
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(workflow)]


def check_jsonschema_cli(path: Path) -> subprocess.CompletedProcess:
    """check-jsonschema's own command with its vendored schema (no download: --builtin-schema)."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True, timeout=120)


def steps_of(job: dict) -> list[dict]:
    return job["steps"]


def step_running(job: dict, command: str) -> dict:
    return next(s for s in steps_of(job) if command in s.get("run", ""))


def step_using(job: dict, action: str) -> dict:
    return next(s for s in steps_of(job) if s.get("uses", "").startswith(f"{action}@"))


@pytest.mark.parametrize("split", [False, True], ids=["one-job", "split"])
def test_written_workflow_parses_and_validates(repo, split):
    out = xrel("ci", "github", *(["--split"] if split else []), cwd=repo)
    assert out.returncode == 0, out.stderr
    path = repo / ".github" / "workflows" / "release.yml"
    assert out.stdout.strip() == str(path)
    workflow = load_yaml(path.read_text())
    assert schema_errors(workflow) == []
    cli = check_jsonschema_cli(path)
    assert cli.returncode == 0, cli.stdout + cli.stderr

    assert workflow["on"]["push"]["tags"] == ["v*"]
    assert workflow["permissions"] == {"contents": "write"}
    jobs = workflow["jobs"]
    assert all(job["runs-on"] == "ubuntu-latest" for job in jobs.values())
    built = jobs["build"] if split else jobs["release"]
    final = jobs["release"]
    cache = step_using(built, "actions/cache")["with"]
    assert "hashFiles('xrel.lock')" in cache["key"]
    assert cache["path"] == "~/.cache/xrel"
    assert f'"xrel=={__version__}"' in step_running(built, "pip install")["run"]
    dist = step_running(final, "xrel dist --locked")
    assert dist["env"] == {"XREL_SIGNING_KEY": "${{ secrets.XREL_SIGNING_KEY }}"}
    publish = step_running(final, "xrel publish")
    assert '"github:${{ github.repository }}" --tag "${{ github.ref_name }}"' in publish["run"]
    assert publish["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    assert publish["if"] == "startsWith(github.ref, 'refs/tags/')"  # a run by hand builds without publishing
    if split:
        assert built["strategy"]["matrix"]["target"] == list(TARGETS)
        assert final["needs"] == "build"
        assert step_using(built, "actions/upload-artifact")["with"]["name"] == "xrel-${{ matrix.target }}"
        assert "hashFiles('xrel.lock')" in step_using(final, "actions/cache")["with"]["key"]
        assert "XREL_SIGNING_KEY" not in path.read_text().split("\n  release:")[0]  # the key only where it signs
    else:
        assert list(jobs) == ["release"]


def test_broken_workflow_fails_validation(repo):
    """The validator is real: the same workflow with one mistake each is refused."""
    workflow = load_yaml(render(repo).text)
    breakages = {
        "no runs-on": lambda w: w["jobs"]["release"].pop("runs-on"),
        "unknown job key": lambda w: w["jobs"]["release"].__setitem__("run-on", "ubuntu-latest"),
        "step with uses and run": lambda w: w["jobs"]["release"]["steps"][0].__setitem__("run", "true"),
        "bad permission": lambda w: w["permissions"].__setitem__("contents", "everything"),
        "on: read as YAML 1.1": lambda w: w.__setitem__(True, w.pop("on")),
    }
    for what, breaking in breakages.items():
        broken = copy.deepcopy(workflow)
        breaking(broken)
        assert schema_errors(broken), what
    broken_file = repo / "broken.yml"
    broken_file.write_text(render(repo).text.replace("runs-on: ubuntu-latest", "runs-on: [[ubuntu-latest]]"))
    assert check_jsonschema_cli(broken_file).returncode == 1


def test_refuses_to_overwrite_without_force(repo):
    path = repo / ".github" / "workflows" / "release.yml"
    path.parent.mkdir(parents=True)
    path.write_text("# mine\n")
    out = xrel("ci", "github", cwd=repo)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "already exists" in out.stderr and "--force" in out.stderr
    assert path.read_text() == "# mine\n"
    out = xrel("ci", "github", "--force", cwd=repo)
    assert out.returncode == 0, out.stderr
    assert load_yaml(path.read_text())["name"] == "release"


def test_stdout_and_output(repo, tmp_path):
    out = xrel("ci", "github", "--stdout", cwd=repo)
    assert out.returncode == 0, out.stderr
    assert out.stdout == render(repo).text
    assert not (repo / ".github").exists()
    target = tmp_path / "elsewhere" / "wf.yml"
    out = xrel("ci", "github", "--split", "--output", str(target), cwd=repo)
    assert out.returncode == 0, out.stderr
    assert target.read_text() == render(repo, split=True).text


def test_project_in_a_subdirectory(tmp_path):
    """A mix project below the repository root: the workflow goes to the root, runs in the project's dir."""
    (tmp_path / ".git").mkdir()
    project = write_project(tmp_path / "apps" / "my app")
    out = xrel("ci", "github", "apps/my app", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    workflow = load_yaml((tmp_path / ".github" / "workflows" / "release.yml").read_text())
    assert schema_errors(workflow) == []
    job = workflow["jobs"]["release"]
    assert job["defaults"]["run"]["working-directory"] == "apps/my app"
    assert "hashFiles('apps/my app/xrel.lock')" in step_using(job, "actions/cache")["with"]["key"]
    assert not (project / ".github").exists()


@pytest.mark.parametrize(("toml", "lock", "message"), [
    (None, False, "has no xrel.toml"),
    ('elixir = "1.14"\ntargets = ["aarch64-linux-gnu"]\n', True, "must pin otp and elixir"),
    ('otp = "25"\ntargets = ["aarch64-linux-gnu"]\n', True, "must pin otp and elixir"),
    (XREL_TOML, False, "xrel.lock does not exist"),
    (XREL_TOML.replace('"x86_64-linux-musl"', '"x86_64-linux-musl", "riscv64-linux-gnu"'), True,
     "xrel.lock lacks riscv64-linux-gnu"),
], ids=["no-config", "no-otp", "no-elixir", "no-lock", "target-not-locked"])
def test_refuses_a_project_ci_cannot_build(tmp_path, toml, lock, message):
    project = write_project(tmp_path / "p", toml or "", lock=lock)
    if toml is None:
        (project / "xrel.toml").unlink()
    out = xrel("ci", "github", "--stdout", str(project), cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.strip().count("\n") == 0
