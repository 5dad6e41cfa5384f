"""The GitHub Actions release workflow of a project: a YAML template in this package, filled from xrel.toml.

Everything the workflow does lives in the templates (github-release.yml, github-release-split.yml); this
module only computes the few values they name (xrel's version, the project's directory in the repository,
the cache key on xrel.lock, the targets) and checks the project can be built by them.
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from xrel import __version__
from xrel.errors import UsageError
from xrel.project.config import FILE_NAME, ProjectConfig, load_config
from xrel.project.lock import LOCK_FILE, read_lock
from xrel.storage.files import atomic_write

DEFAULT_OUTPUT = Path(".github/workflows/release.yml")
TEMPLATES = {False: "github-release.yml", True: "github-release-split.yml"}
PYTHON_VERSION = "3.12"
# xrel's cache dir on ubuntu-latest (platformdirs' user cache dir; XREL_CACHE_DIR is not set there)
CACHE_DIR = "~/.cache/xrel"
# ubuntu-latest has make, cmake and git; Debian's keyring checks the Debian runtime source (Ubuntu lacks it)
APT_PACKAGES = ("debian-archive-keyring", "make", "cmake")


class _Template(string.Template):
    """`%{name}` placeholders: `$` is GitHub's own expression syntax (`${{ ... }}`)."""

    delimiter = "%"


@dataclass(frozen=True)
class Workflow:
    text: str
    path: Path  # where it goes when not given --output: the repository's .github/workflows/release.yml
    split: bool
    targets: tuple[str, ...]


def repository_root(project: Path) -> Path:
    """The git work tree holding `project` (the nearest parent with .git), else `project` itself."""
    for candidate in (project, *project.parents):
        if (candidate / ".git").exists():
            return candidate
    return project


def _checked_config(project: Path) -> ProjectConfig:
    """xrel.toml and xrel.lock as `xrel dist --locked` on a fresh runner needs them; UsageError otherwise."""
    if not project.is_dir():
        raise UsageError(f"{project} is not a directory", "name the mix project's directory")
    config = load_config(project)
    if config is None:
        raise UsageError(f"{project} has no {FILE_NAME}", "run `xrel init` there first")
    if not config.targets:
        raise UsageError(f"{config.path} lists no targets", 'add them: targets = ["aarch64-linux-gnu", ...]')
    if not config.elixir or not (config.otp or all(pin.otp for pin in config.targets)):
        raise UsageError(f"{config.path} must pin otp and elixir for CI",
                         "a runner has no Erlang, xrel provides the pinned ones: write otp = and elixir =")
    lock = read_lock(project)
    if lock is None:
        raise UsageError(f"{project / LOCK_FILE} does not exist", "run `xrel lock` and commit xrel.lock")
    missing = [pin.target.id for pin in config.targets if lock.for_target(pin.target.id) is None]
    if missing:
        raise UsageError(f"{LOCK_FILE} lacks {', '.join(missing)}", "run `xrel lock` and commit xrel.lock")
    return config


def _yaml_string(value: str) -> str:
    """A double-quoted YAML scalar (JSON's string syntax is a subset of YAML's)."""
    return json.dumps(value)


def _expression_string(value: str) -> str:
    """A single-quoted string literal inside a GitHub expression."""
    return "'" + value.replace("'", "''") + "'"


def template_text(split: bool) -> str:
    return resources.files("xrel.ci").joinpath(TEMPLATES[split]).read_text(encoding="utf-8")


def render(project_dir: Path, split: bool = False) -> Workflow:
    """The release workflow of the mix project at `project_dir`, as text."""
    project = Path(project_dir).resolve()
    config = _checked_config(project)
    root = repository_root(project)
    within = Path(os.path.relpath(project, root)).as_posix()
    lock_path = LOCK_FILE if within == "." else f"{within}/{LOCK_FILE}"
    out = Path(os.path.relpath(config.out, root)).as_posix() if config.out else f"{within}/_build/xrel"
    prefix = f"xrel-{__version__}-${{{{ runner.os }}}}-"
    targets = tuple(pin.target.id for pin in config.targets)
    text = _Template(template_text(split)).substitute(
        xrel_version=__version__,
        python_version=PYTHON_VERSION,
        project_dir=_yaml_string(within),
        apt_packages=" ".join(APT_PACKAGES),
        cache_dir=CACHE_DIR,
        cache_key=_yaml_string(f"{prefix}${{{{ hashFiles({_expression_string(lock_path)}) }}}}"),
        cache_prefix=prefix,
        targets=json.dumps(list(targets)),
        build_out=_yaml_string(out.removeprefix("./")),
    )
    return Workflow(text, root / DEFAULT_OUTPUT, split, targets)


def write(workflow: Workflow, output: Path | None = None, force: bool = False) -> Path:
    """Write the workflow to `output` (default: its repository's .github/workflows/release.yml).
    UsageError when the file exists and not `force`."""
    path = Path(output) if output is not None else workflow.path
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", "pass --force to write over it, or --stdout to see the new one")
    return atomic_write(path, workflow.text)
