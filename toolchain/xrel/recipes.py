"""Load the TOML data in recipes/: targets, runtime sources, package quirks."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from xrel.errors import UsageError


def recipes_dir() -> Path:
    """$XREL_RECIPES, else the checkout's recipes/, else the copy shipped inside the wheel."""
    override = os.environ.get("XREL_RECIPES")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "recipes"
    if (checkout / "targets.toml").is_file():
        return checkout
    return Path(__file__).resolve().parent / "_recipes"  # where the wheel installs recipes/


@functools.cache
def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"recipe file {path} is missing", "reinstall xrel or unset XREL_RECIPES")
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"recipe file {path} is not valid TOML: {e}")


def load(name: str) -> dict[str, Any]:
    """Parsed contents of recipes/<name>.toml (cached)."""
    return _load(str(recipes_dir() / f"{name}.toml"))
