"""recipes/*.toml load as typed dataclasses; a misspelt key or a wrong type is a one-line error."""

from __future__ import annotations

import shutil

import pytest

from xrel import recipes
from xrel.errors import UsageError
from xrel.schemas.packages import PackageRecipe


def test_every_real_recipe_loads_typed():
    assert set(recipes.load("sources")) == {"debian", "hexbuilds", "otp_builds", "windows", "alpine"}
    sources = recipes.sources()
    assert sources.debian.suites[0].name == "bookworm" and isinstance(sources.debian.suites[0].otp, int)
    assert sources.windows.installer_leftovers and sources.debian.keyring.endswith(".gpg")
    assert recipes.package("exqlite").precompiler == "cc_precompiler"
    assert recipes.package("not-named-anywhere") == PackageRecipe()
    assert recipes.sonames().sonames["libc.so.6"] == "libc6" and "libc-bin" in recipes.sonames().sysroot.left_out
    assert recipes.targets().host.arches["amd64"] == "x86_64"
    compat = recipes.compat()
    assert compat.nif_version(27) == "2.17" and compat.elixir_otp["1.18"] == (25, 28)
    assert compat.jit_flags("aarch64", 27) == "+JMsingle true" and compat.rustler_minimum == "0.37"


@pytest.fixture
def recipe_copy(tmp_path, monkeypatch):
    """A copy of recipes/ that XREL_RECIPES points at."""
    copy = tmp_path / "recipes"
    shutil.copytree(recipes.recipes_dir(), copy)
    monkeypatch.setenv("XREL_RECIPES", str(copy))
    return copy


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("name,old,new,message", [
    ("packages", "native = true", "natvie = true",
     r"packages.toml: unknown key 'natvie' in \[packages.bcrypt_elixir\]"),
    ("packages", 'precompiler = "cc_precompiler"', 'precompiler = "cc_precompile"', r"'packages.exqlite.precompiler'"),
    ("sources", 'source_package = "erlang"', 'source_pkg = "erlang"', r"sources.toml: unknown key 'source_pkg'"),
    ("sources", "otp = 25", 'otp = "25"', r"sources.toml: 'debian.suites\[0\].otp' must be an integer, not str"),
    ("sonames", "[sysroot]", "[sysroots]", r"sonames.toml: unknown key 'sysroots' in the top level"),
    ("compat", '"22" = "2.15"', 'twenty-two = "2.15"', r"compat.toml: key 'twenty-two' in \[nif_versions\]"),
    ("compat", '"1.13" = [22, 25]', '"1.13" = [22]', r"compat.toml: 'elixir_otp.1.13' has 1 items"),
    ("targets", 'bits = 64', 'bitz = 64', r"targets.toml: unknown key 'bitz' in \[targets.x86_64-linux-gnu\]"),
])
def test_a_mistake_in_a_recipe_names_file_and_key(recipe_copy, name, old, new, message):
    _edit(recipe_copy / f"{name}.toml", old, new)
    with pytest.raises(UsageError, match=message) as e:
        if name == "targets":
            from xrel.targets import _from_recipe

            _from_recipe("x86_64-linux-gnu", recipes.targets().targets["x86_64-linux-gnu"],
                         str(recipe_copy / "targets.toml"))
        recipes.load(name)
    assert "\n" not in str(e.value) and e.value.hint


def test_recipes_follow_xrel_recipes(recipe_copy):
    _edit(recipe_copy / "compat.toml", 'minimum = "0.37"', 'minimum = "0.40"')
    assert recipes.compat().rustler_minimum == "0.40"
