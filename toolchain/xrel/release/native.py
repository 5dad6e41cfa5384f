"""Which apps of a project carry native code or bake target facts in at compile time."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from xrel import recipes
from xrel.errors import UsageError
from xrel.targets import Target

BUILD_FILES = ("Makefile", "makefile", "GNUmakefile", "CMakeLists.txt", "Cargo.toml", "build.zig", "configure",
               "Makefile.win", "erlang.mk")
NATIVE_DIRS = ("c_src", "native", "cpp_src", "csrc")
# C/C++ sources at the top or one level down (e.g. src/*.c built by port_compiler's defaults)
NATIVE_SOURCES = ("*.c", "*.cc", "*.cpp", "*.cxx", "*/*.c", "*/*.cc", "*/*.cpp", "*/*.cxx")
# compiled to BEAM code only: no native build reads them (their changes leave native outputs as they are)
BEAM_SOURCES = (".ex", ".erl")
_NOT_BUILT = ("test", "tests", "example", "examples", "doc", "docs", "bench", "deps", "_build")
# rebar3: hooks, port_compiler (`{plugins, [pc]}`, `{pc, compile}`) and its port_* settings
_REBAR_NATIVE = re.compile(r"\b(port_specs|port_sources|pre_hooks|post_hooks|port_env|pc_compile|pc)\b")
_USES = {
    "rustler_precompiled": re.compile(r"use\s+RustlerPrecompiled\b"),
    "cc_precompiler": re.compile(r"make_precompiler:\s*\{\s*:nif\s*,\s*CCPrecompiler\s*\}"),
    "rustler": re.compile(r"use\s+Rustler\b"),
    "elixir_make": re.compile(r"compilers:[^\]]*:elixir_make\b"),
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
        env.update(self.recipe_env(target))
        return env

    def recipe_env(self, target: Target) -> dict[str, str]:
        """The recipe's `env` (with {target.<field>} expanded) and `drop_flags` (for xrel's cc)."""
        env = {key: str(value).format(target=target) for key, value in self.recipe.get("env", {}).items()}
        if self.recipe.get("drop_flags"):
            env["XREL_DROP_FLAGS"] = json.dumps([str(f) for f in self.recipe["drop_flags"]])
        return env

    def broken_reason(self, target: Target) -> str | None:
        """The recipe's reason why this app does not build for `target` (None: no known problem)."""
        for name, reason in self.recipe.get("broken_targets", {}).items():
            if Target.parse(name).name == target.name:
                return str(reason)
        return None


def local_deps_env(deps: list[App], target: Target) -> dict[str, str]:
    """The recipe environments of path deps, for every mix run: mix compiles a fetched (hex, git)
    dep once, but recompiles path deps on each run (their Makefiles run again). Precompiler
    TARGET_* variables stay per dep (GNU make's implicit rules read TARGET_ARCH)."""
    env: dict[str, str] = {}
    drop: list[str] = []
    for app in deps:
        if app.scm.endswith("SCM.Path"):
            own = app.recipe_env(target)
            drop += json.loads(own.pop("XREL_DROP_FLAGS", "[]"))
            env.update(own)
    if drop:
        env["XREL_DROP_FLAGS"] = json.dumps(sorted(set(drop)))
    return env


def own_env_compile_order(deps: list[App], tree: list[dict], target: Target) -> list[App]:
    """The deps to compile one at a time, before the rest, for `target`: each that has its own
    environment (a precompiler's TARGET_*, a recipe's env or drop_flags) and, before it, every dep
    it needs (compiling a dep alone does not build its children first), in mix's order.
    `tree` is mix's deps in compile order with their children (xrel.info's deps_tree)."""
    by_name = {a.name: a for a in deps}
    children = {str(d["app"]): [str(c) for c in d.get("children", [])] for d in tree}
    needed: set[str] = set()
    todo = [a.name for a in deps if a.env_for(target)]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += children.get(name, [])
    order = [str(d["app"]) for d in tree] or [a.name for a in deps]
    return [by_name[n] for n in order if n in needed and n in by_name]


def refuse_broken_targets(apps: list[App], targets: list[Target]) -> None:
    """A UsageError naming each app a recipe marks broken for one of `targets`, before any work."""
    broken = [f"{app.name} does not build for {t.name}: {reason}" for t in targets for app in apps
              if (reason := app.broken_reason(t))]
    if broken:
        raise UsageError("; ".join(broken), "build for other targets, or fix the package and its entry in "
                         "recipes/packages.toml (broken_targets)")


def _sources(path: Path):
    for pattern in ("mix.exs", "lib/**/*.ex"):
        for p in path.glob(pattern):
            try:
                yield p.read_text(errors="replace")
            except OSError:
                continue


def _c_sources(path: Path) -> bool:
    return any(p.parts[0] not in _NOT_BUILT for pattern in NATIVE_SOURCES for p in
               (q.relative_to(path) for q in path.glob(pattern)))


def package_recipe(name: str) -> dict:
    return recipes.load("packages").get("packages", {}).get(name, {})


def classify(name: str, path: Path, scm: str = "") -> App:
    """Inspect an app's source tree for native code and precompiled-NIF use."""
    path = Path(path)
    recipe = package_recipe(name)
    kinds = [f for f in BUILD_FILES if (path / f).is_file()]
    kinds += [d + "/" for d in NATIVE_DIRS if (path / d).is_dir()]
    if not kinds and _c_sources(path):
        kinds.append("C/C++ sources")
    for rebar in (path / "rebar.config", path / "rebar.config.script"):
        if rebar.is_file() and _REBAR_NATIVE.search(rebar.read_text(errors="replace")):
            kinds.append(f"{rebar.name} hooks")
            break
    uses = set()
    for text in _sources(path):
        for lib, pattern in _USES.items():
            if pattern.search(text):
                uses.add(lib)
    uses -= set(recipe.get("ignore_uses", ()))  # e.g. the library's own docs and generated code
    precompiler = recipe.get("precompiler") or next(
        (lib for lib in ("rustler_precompiled", "cc_precompiler") if lib in uses), None)
    kinds += [lib for lib in ("rustler", "elixir_make") if lib in uses]
    recompile = bool(recipe.get("recompile_per_target")) or bool(uses & {"rustler_precompiled", "rustler"})
    native = bool(kinds) or bool(recipe.get("native")) or precompiler is not None
    return App(name, path, scm, native, kinds, precompiler, recompile, recipe)
