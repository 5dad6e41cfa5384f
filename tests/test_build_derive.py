"""Extra targets' releases taken from the first target's (derive.py) are byte for byte what their
own `mix release` makes: a pure project and a NIF project on two targets, fresh and after an edit."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import xrel
from conftest import needs_apt, needs_make, needs_mix
from helpers import copy_fixtures
from xrel.release import build as build_module
from xrel.release import derive

pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow]

TWO = ["arm-linux-gnueabihf", "aarch64-linux-gnu"]
PURE_MIX = """defmodule Plain.MixProject do
  use Mix.Project
  def project, do: [app: :plain, version: "0.3.0", elixir: "~> 1.14", deps: []]
  def application, do: [extra_applications: [:logger, :crypto]]
end
"""


def content(root: Path) -> dict[str, str]:
    """Path -> mode and sha256 (or link target) of every file under `root` but mix's random COOKIE."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "link:" + os.readlink(path)
            elif rel != "releases/COOKIE":
                found[rel] = f"{oct(path.stat().st_mode)}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    return found


def protocols_the_old_way_lost(rel: str, old: dict, new: dict, first: dict) -> bool:
    """A consolidated protocol that an extra target's own `mix release` in a seeded tree left out
    (the old way's bug: its release ran unconsolidated), the same as the first target's."""
    return "/consolidated/" in rel and rel not in old and new[rel] == first.get(rel)


def build_way(project: Path, out: Path, monkeypatch, derive_them: bool):
    monkeypatch.setattr(build_module, "DERIVE_EXTRA_TARGETS", derive_them)
    return xrel.build(project, TWO, out=out / ("new" if derive_them else "old"))


def after_change(project: Path, out: Path, monkeypatch, derived: list, change) -> None:
    """After `change`, build TWO the new way (the second target derived) and then the old way
    (each target's own mix release): every file of every release must be the same."""
    if change is not None:  # else: from fresh trees
        build_way(project, out, monkeypatch, True)
        change()
    derived.clear()
    new = build_way(project, out, monkeypatch, True)
    assert derived == [None], "the second target's release was not derived"
    old = build_way(project, out, monkeypatch, False)
    first = content(Path(old.targets[0].release_dir))
    for a, b in zip(old.targets, new.targets):
        assert a.target == b.target
        old_files, new_files = content(Path(a.release_dir)), content(Path(b.release_dir))
        differing = sorted(k for k in old_files.keys() | new_files.keys() if old_files.get(k) != new_files.get(k)
                           and not protocols_the_old_way_lost(k, old_files, new_files, first))
        assert not differing, f"{a.target}: {differing[:10]}"
        assert (Path(b.release_dir) / "releases" / "COOKIE").read_text().strip()
        assert a.native_files == b.native_files


@pytest.fixture
def derived(monkeypatch) -> list:
    """What each derive_release call returned (None: derived)."""
    calls: list = []
    real = derive.derive_release

    def spy(*args):
        calls.append(real(*args))
        return calls[-1]

    monkeypatch.setattr(derive, "derive_release", spy)
    return calls


def edit(module: Path, n: int):
    """A change to one module: a new function."""
    def change() -> None:
        text = module.read_text().rstrip()
        module.write_text(text[:-3] + f"  def derive_edit_{n}, do: {n}\nend\n")
    return change


def test_pure_project_release_is_the_same_derived(tmp_path, monkeypatch, derived):
    project = tmp_path / "plain"
    (project / "lib").mkdir(parents=True)
    (project / "mix.exs").write_text(PURE_MIX)
    (project / "lib" / "plain.ex").write_text("defmodule Plain do\n  def hi, do: :hi\nend\n")
    after_change(project, tmp_path / "out", monkeypatch, derived, None)
    after_change(project, tmp_path / "out", monkeypatch, derived, edit(project / "lib" / "plain.ex", 1))


def test_nif_project_release_is_the_same_derived(tmp_path, monkeypatch, derived):
    project = copy_fixtures(tmp_path, "nif_make") / "nif_make"
    after_change(project, tmp_path / "out", monkeypatch, derived, None)
    # one module edited: the second target's tree is not compiled again (its native inputs did not change)
    after_change(project, tmp_path / "out", monkeypatch, derived, edit(project / "lib" / "fixture.ex", 1))
    # a changed C source (other bytes in the NIF): the second target compiles its native outputs again
    # (in the build's compile VM) before deriving, or its release would keep the NIF of before
    source = project / "c_src" / "fixture_nif.c"
    after_change(project, tmp_path / "out", monkeypatch, derived,
                 lambda: source.write_text(source.read_text() + '\nconst char xrel_changed[] = "changed";\n'))
