"""Which apps of a project carry native code or bake target facts in at compile time."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import recipes
from ..targets import Target

BUILD_FILES = ("Makefile", "makefile", "GNUmakefile", "CMakeLists.txt", "Cargo.toml", "build.zig", "configure",
               "Makefile.win")
NATIVE_DIRS = ("c_src", "native", "cpp_src", "csrc")
_REBAR_NATIVE = re.compile(r"\b(port_specs|pre_hooks|post_hooks|port_env|pc_compile)\b")
_USES = {
    "rustler_precompiled": re.compile(r"use\s+RustlerPrecompiled\b"),
    "cc_precompiler": re.compile(r"make_precompiler:\s*\{\s*:nif\s*,\s*CCPrecompiler\s*\}"),
    "rustler": re.compile(r"use\s+Rustler\b"),
}


@dataclass
class App:
    """A dependency (or the project itself) as xrel sees it."""

    name: str
    path: Path
    scm: str = ""
    native: bool = False
    kinds: list[str] = field(default_factory=list)  # what native build markers were found
    precompiler: str | None = None  # rustler_precompiled | cc_precompiler
    recompile_per_target: bool = False
    recipe: dict = field(default_factory=dict)

    def env_for(self, target: Target) -> dict[str, str]:
        """Variables set only while this app compiles (precompiler spellings, recipe env)."""
        env = {}
        if self.precompiler:
            env.update(target.precompiler_env(self.precompiler))
        for key, value in self.recipe.get("env", {}).items():
            env[key] = str(value).format(target=target)
        return env


def _sources(path: Path):
    for pattern in ("mix.exs", "lib/**/*.ex"):
        for p in path.glob(pattern):
            try:
                yield p.read_text(errors="replace")
            except OSError:
                continue


def package_recipe(name: str) -> dict:
    return recipes.load("packages").get("packages", {}).get(name, {})


def classify(name: str, path: Path, scm: str = "") -> App:
    """Inspect an app's source tree for native code and precompiled-NIF use."""
    path = Path(path)
    recipe = package_recipe(name)
    kinds = [f for f in BUILD_FILES if (path / f).is_file()]
    kinds += [d + "/" for d in NATIVE_DIRS if (path / d).is_dir()]
    rebar = path / "rebar.config"
    if rebar.is_file() and _REBAR_NATIVE.search(rebar.read_text(errors="replace")):
        kinds.append("rebar.config hooks")
    uses = set()
    for text in _sources(path):
        for lib, pattern in _USES.items():
            if pattern.search(text):
                uses.add(lib)
    uses -= set(recipe.get("defines", ()))  # a library's own docs show `use` of its macro
    precompiler = recipe.get("precompiler") or next(
        (lib for lib in ("rustler_precompiled", "cc_precompiler") if lib in uses), None)
    if "rustler" in uses:
        kinds.append("rustler")
    recompile = bool(recipe.get("recompile_per_target")) or bool(uses & {"rustler_precompiled", "rustler"})
    native = bool(kinds) or bool(recipe.get("native")) or precompiler is not None
    return App(name, path, scm, native, kinds, precompiler, recompile, recipe)
