"""The TOML data in recipes/, as frozen dataclasses: targets, runtime sources, package quirks,
sonames, version facts. Every file is checked on load: an unknown key or a value of the wrong
type is an error naming the file and the key (see xrel.recipe_schema). Each file's classes live in
xrel.schemas.<file>, imported when that file is first read (`xrel targets` defines none of the
runtime sources' classes)."""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from xrel.errors import UsageError
from xrel.recipe_schema import build

if TYPE_CHECKING:
    from xrel.schemas.compat import Compat
    from xrel.schemas.packages import PackageRecipe
    from xrel.schemas.sonames import SonamesRecipe
    from xrel.schemas.sources import Sources
    from xrel.schemas.targets import TargetsRecipe


def recipes_dir() -> Path:
    """$XREL_RECIPES, else the checkout's recipes/, else the copy shipped inside the wheel."""
    override = os.environ.get("XREL_RECIPES")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "recipes"
    if (checkout / "targets.toml").is_file():
        return checkout
    return Path(__file__).resolve().parent / "_recipes"  # where the wheel installs recipes/


# -- loading -------------------------------------------------------------------------------------

# recipe file -> the class of its whole contents, in xrel.schemas.<file>
SCHEMAS: dict[str, str] = {
    "targets": "TargetsRecipe",
    "sources": "Sources",
    "packages": "PackagesRecipe",
    "sonames": "SonamesRecipe",
    "compat": "Compat",
}


@functools.cache
def _parse(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"recipe file {path} is missing", "reinstall xrel or unset XREL_RECIPES") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"recipe file {path} is not valid TOML: {e}", "fix its syntax") from None


@functools.cache
def _typed(path: str, name: str) -> Any:
    module = importlib.import_module(f"xrel.schemas.{name}")
    return build(getattr(module, SCHEMAS[name]), _parse(path), path)


def _path(name: str) -> str:
    return str(recipes_dir() / f"{name}.toml")


def load(name: str) -> dict[str, Any]:
    """Parsed contents of recipes/<name>.toml (cached), checked like the typed accessors below."""
    path = _path(name)
    if name in SCHEMAS:
        _typed(path, name)
    return _parse(path)


def targets() -> TargetsRecipe:
    return _typed(_path("targets"), "targets")


def sources() -> Sources:
    return _typed(_path("sources"), "sources")


def packages() -> dict[str, PackageRecipe]:
    return _typed(_path("packages"), "packages").packages


def package(name: str) -> PackageRecipe:
    """The quirks of one mix package (all defaults when packages.toml does not name it)."""
    from xrel.schemas.packages import PackageRecipe

    return packages().get(name, PackageRecipe())


def sonames() -> SonamesRecipe:
    return _typed(_path("sonames"), "sonames")


def compat() -> Compat:
    return _typed(_path("compat"), "compat")
