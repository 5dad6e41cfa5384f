"""C-family native code of every kind real packages ship, cross-built by `xrel build` with real
mix, rebar3, make, CMake and zig for armhf and arm64, and run under qemu-user.

native_zoo's own NIF is a CMake build driven from an elixir_make Makefile; its path deps are a C++
NIF, a port driver, a rebar3 app with C built from hooks, an erlang.mk-style `manager: :make`
dep, a Makefile that always asks the host `erl` for headers, and a NIF linking the target's
libsqlite3. recipe_zoo's deps only build for a target through recipes/packages.toml entries.
Each project is built once per module (both targets in one call); the tests read the results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import xrel
from conftest import have, needs_apt, needs_make, needs_mix
from helpers import FIXTURES, XREL, copy_fixtures, marker, runnable, tree_digest
from xrel import recipes
from xrel.errors import InspectionError, UsageError
from xrel.inspection import binaries
from xrel.release.mix import load_project
from xrel.release.native import classify
from xrel.release.workspace import project_key
from xrel.storage import cache

pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow,
              pytest.mark.skipif(not have("cmake"), reason="cmake is not installed: apt-get install cmake"),
              pytest.mark.skipif(not have("rebar3"), reason="rebar3 is not installed: apt-get install rebar3")]

TARGETS = ["arm-linux-gnueabihf", "aarch64-linux-gnu"]
LONG = {"arm-linux-gnueabihf": "4", "aarch64-linux-gnu": "8"}
MACHINE = {"arm-linux-gnueabihf": 40, "aarch64-linux-gnu": 183}
ZOO_DEPS = ("cpp_nif", "port_driver", "rebar_c", "mk_dep", "erl_headers", "sqlite_nif")
# each NIF of the zoo: (release path glob, marker kind)
ZOO_NIFS = {"cmake": "lib/native_zoo-*/priv/zoo_cmake_nif.so", "cpp": "lib/cpp_nif-*/priv/cpp_nif.so",
            "rebar": "lib/rebar_c-*/priv/rebar_c_nif.so", "make": "lib/mk_dep-*/priv/mk_dep.so",
            "host_erl": "lib/erl_headers-*/priv/erl_headers_nif.so", "sqlite": "lib/sqlite_nif-*/priv/sqlite_nif.so"}


def require_runnable(target: str) -> None:
    """Skip (saying why) when this machine cannot run the target."""
    mark = runnable(target).mark
    if mark.name == "skip":
        pytest.skip(mark.kwargs["reason"])


def run_on_targets(releases: dict[str, Path], code: str, out_dir: Path) -> dict[str, list[str]]:
    """Target -> output lines of `xrel.run(release, eval CODE)`, run on the target's CPU."""
    lines = {}
    for target in TARGETS:
        require_runnable(target)
        out = out_dir / f"{target}.txt"
        with open(out, "w") as f:
            status = xrel.run(releases[target], ["eval", code], stdout=f, stderr=subprocess.STDOUT, timeout=600)
        assert status == 0, out.read_text()
        lines[target] = out.read_text().splitlines()
    return lines


def cc_calls(log: Path, dep: str) -> list[dict]:
    """The compiler calls xrel's cc wrapper logged while building `dep` (by working directory)."""
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return [c for c in calls if f"/{dep}/" in c["cwd"] + "/"]


def workspaces(project: Path) -> dict[str, list[Path]]:
    """Target -> the per-target build trees xrel made for the project."""
    base = cache.area("builds") / project_key(project, "prod") / "prod"
    return {t: sorted(p / "root" for p in base.glob(f"{t}-*")) for t in TARGETS}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """native_zoo compiled on the host first (so the user's path deps hold host objects and .so
    files, as they do on a developer machine), then one xrel build for both targets with a cc log."""
    root = copy_fixtures(tmp_path_factory.mktemp("zoo"), "native_zoo", *ZOO_DEPS)
    project = root / "native_zoo"
    host = subprocess.run(["mix", "compile"], cwd=project, capture_output=True, text=True,
                          env={**xrel_free_env(), "MIX_ENV": "prod", "MIX_REBAR3": shutil.which("rebar3")})
    assert host.returncode == 0, host.stdout + host.stderr
    before = tree_digest(root, exclude=("native_zoo/_build/xrel",))
    log = tmp_path_factory.mktemp("logs") / "cc.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XREL_CC_LOG", str(log))
        result = xrel.build(project, TARGETS, sysroot_packages=["libsqlite3-dev"])
    after = tree_digest(root, exclude=("native_zoo/_build/xrel",))
    releases = {t.target: Path(t.release_dir) for t in result.targets}
    return SimpleNamespace(root=root, project=project, result=result, releases=releases, log=log,
                           changed={k for k in before.keys() | after.keys() if before.get(k) != after.get(k)})


def xrel_free_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("XREL_CC", "MIX_", "CC", "CXX"))}


@pytest.fixture(scope="module")
def zoo_reports(zoo, tmp_path_factory):
    """Target -> {kind: value} from NativeZoo.report() run on the target CPU."""
    output = run_on_targets(zoo.releases, "IO.puts(NativeZoo.report())", tmp_path_factory.mktemp("run"))
    return {target: dict(line.split(" ", 2)[1:] for line in lines if line.startswith("zoo "))
            for target, lines in output.items()}


def nif(zoo, target: str, kind: str) -> Path:
    return next(zoo.releases[target].glob(ZOO_NIFS[kind]))


@pytest.mark.parametrize("target", TARGETS)
def test_every_nif_driver_and_library_works_on_the_target(zoo_reports, target):
    report = zoo_reports[target]
    for kind in ZOO_NIFS:  # header's SIZEOF_LONG == the compiler's sizeof(long) == the target's
        assert report[kind] == f"{LONG[target]} {LONG[target]}", (kind, report)
    assert report["cpp_sort"] == "apple,fig,pear"  # std::sort through a C++ NIF
    assert report["driver"] == f"driver:{LONG[target]}:{LONG[target]}:ping"  # erl_ddll + port
    assert report["ei_bytes"] == "6"  # the target's libei, linked by erlang.mk's -lei
    assert report["sqlite_query"] == "3.40.1 42"  # bookworm's libsqlite3 of the target, via the run sysroot
    assert report["system"].startswith(target.split("-")[0])


@pytest.mark.parametrize("target", TARGETS)
def test_smoke_loads_every_nif_of_the_zoo(zoo, target):
    require_runnable(target)
    smoke = xrel.smoke(zoo.releases[target])
    assert smoke.ok, smoke.to_dict()
    loaded = set(smoke.nifs_loaded)
    for kind in ZOO_NIFS:
        assert str(nif(zoo, target, kind).relative_to(zoo.releases[target])) in loaded, kind
    assert not smoke.failures


@pytest.mark.parametrize("target", TARGETS)
def test_every_native_file_is_the_targets_and_compiled_against_its_headers(zoo, target):
    for kind in ZOO_NIFS:
        path = nif(zoo, target, kind)
        assert binaries.read(path).machine == MACHINE[target], path
        assert marker(path).endswith(f"header_sizeof_long={LONG[target]}"), (kind, marker(path))
    driver = next(zoo.releases[target].glob("lib/port_driver-*/priv/zoo_drv.so"))
    info = binaries.read(driver)
    assert (info.machine, info.kind) == (MACHINE[target], "shared")
    assert marker(driver) == f"xrel-fixture:kind=driver:header_sizeof_long={LONG[target]}"


def test_cmake_nif_is_configured_per_target_from_the_environment(zoo):
    trees = workspaces(zoo.project)
    for target in TARGETS:
        (tree,) = trees[target]
        cache_file = next(tree.rglob("native_zoo/_build/prod/lib/native_zoo/cmake_build/CMakeCache.txt")).read_text()
        # CMake took CMAKE_TOOLCHAIN_FILE from the environment: the target's zig wrappers, even
        # for the archiver CMake would otherwise look for next to a Clang (the host's llvm-ar)
        for tool in ("CMAKE_AR", "CMAKE_C_COMPILER_AR", "CMAKE_RANLIB"):
            line = next(entry for entry in cache_file.splitlines() if entry.startswith(f"{tool}:"))
            assert f"/toolchains/{target}-" in line, line
        assert str(tree) in cache_file  # configured in this target's tree, not the seed's
    cmake_calls = [c for c in cc_calls(zoo.log, "cmake_build") if any(a.endswith("zoo_cmake_nif.c") for a in c["argv"])]
    assert {c["cmd"][3].split(".")[0] for c in cmake_calls} == set(TARGETS)  # zig -target <triple>


def test_cpp_nif_carries_its_cxx_runtime(zoo, tmp_path):
    for target in TARGETS:
        report = xrel.inspect(zoo.releases[target], target)
        cpp = next(f for f in report.files if f.path.endswith("cpp_nif.so"))
        assert cpp.info["needed"], cpp.info
        assert not [n for n in cpp.info["needed"] if n.startswith(("libstdc++", "libc++", "libgcc_s"))], cpp.info
        assert b"_ZNSt3__1" in nif(zoo, target, "cpp").read_bytes()  # LLVM libc++, linked in statically
    out = subprocess.run([*XREL, "inspect", str(zoo.releases["aarch64-linux-gnu"]), "--json"], capture_output=True,
                         text=True, check=True)
    listed = {f["path"]: f["info"]["needed"] for f in json.loads(out.stdout)["files"]}
    assert "libc.so.6" in listed["lib/cpp_nif-0.1.0/priv/cpp_nif.so"]
    assert "libsqlite3.so.0" in listed["lib/sqlite_nif-0.1.0/priv/sqlite_nif.so"]
    notes = {n for c in cc_calls(zoo.log, "cpp_nif") for n in c["notes"]}
    assert "dropped -static-libstdc++" in notes  # zig's libc++ is static already


def test_rebar3_hooks_get_port_compiler_variables(zoo):
    for target in TARGETS:
        assert marker(nif(zoo, target, "rebar")) == (f"xrel-fixture:kind=rebar:rebar_target_arch={target}:"
                                                     f"header_sizeof_long={LONG[target]}")
    calls = cc_calls(zoo.log, "rebar_c")
    compiles = [c for c in calls if "-c" in c["argv"]]
    assert len(compiles) == 2
    for call in compiles:  # ERL_CFLAGS from xrel: the target's include dirs, nothing to rewrite
        assert not [n for n in call["notes"] if n.startswith("rewrote")], call["notes"]
        assert any("/runtimes/otp-25" in a and a.endswith("/include") for a in call["argv"]), call["argv"]


def test_make_dep_links_the_targets_libei(zoo):
    for target in TARGETS:
        assert binaries.read(nif(zoo, target, "make")).machine == MACHINE[target]
    links = [c for c in cc_calls(zoo.log, "mk_dep") if "-shared" in c["argv"]]
    why = [(c["cwd"], c["argv"][-4:]) for c in links], [t.notes for t in zoo.result.targets]
    trees = workspaces(zoo.project)
    linked = {t for t in TARGETS for c in links if c["cwd"].startswith(str(trees[t][0]))}
    assert linked == set(TARGETS) and all("-lei" in c["argv"] for c in links), why  # in each target's tree
    # (mix runs make for a path dep on each compile: make may link again when it finds it stale)
    for call in links:  # ERL_INTERFACE_LIB_DIR from xrel wins over env.mk's host value (?=)
        assert not [n for n in call["notes"] if n.startswith("rewrote")], call["notes"]


def test_host_erl_headers_are_rewritten_to_the_targets(zoo):
    assert marker(nif(zoo, "arm-linux-gnueabihf", "host_erl")) == "xrel-fixture:kind=host_erl:header_sizeof_long=4"
    host_root = subprocess.run(["erl", "-noshell", "-eval", 'io:format("~s", [code:root_dir()]), halt().'],
                               capture_output=True, text=True, check=True).stdout
    for call in cc_calls(zoo.log, "erl_headers"):
        assert not [a for a in call["cmd"] if host_root in a], call["cmd"]
        rewrote = [n for n in call["notes"] if n.startswith(f"rewrote -I{host_root}/erts-")]
        assert rewrote and "/runtimes/otp-25" in rewrote[0]


def test_each_targets_tree_holds_only_its_own_objects(zoo):
    """Native deps that build inside their own directory (rebar hooks, erlang.mk, Makefiles
    writing priv/) got a copy per target: no host object from the user's tree, and no object of
    the other target, anywhere in a target's tree."""
    user_objects = list((zoo.root / "mk_dep").rglob("*.o"))
    assert user_objects and binaries.read(user_objects[0]).machine == 62  # the host build's
    for target, trees in workspaces(zoo.project).items():
        (tree,) = trees
        found = list(binaries.native_files(tree))
        assert len(found) > 10
        wrong = [str(p) for p in found if binaries.read(p).machine not in (MACHINE[target], None)]
        assert not wrong, wrong


def test_users_tree_is_untouched(zoo):
    assert not zoo.changed, f"xrel changed the user's files: {sorted(zoo.changed)[:10]}"


def test_native_detection_of_each_kind():
    kinds = {name: classify(name, FIXTURES / name).kinds for name in ("native_zoo", *ZOO_DEPS, "gen_nif")}
    assert {"Makefile", "c_src/", "elixir_make"} <= set(kinds["native_zoo"])
    assert "rebar.config hooks" in kinds["rebar_c"] and "erlang.mk" in kinds["mk_dep"]
    assert all(kinds[d] for d in ZOO_DEPS)
    assert kinds["gen_nif"] == []  # its C is generated by a Mix compiler: only a recipe can tell


# --- recipes/packages.toml: one test per key, with a recipes dir holding entries for fixtures ---

RECIPES = """
[packages.quirky]
env = { QUIRKY_TARGET = "{target.name}" }
drop_flags = ["-msse2", "-mfpmath=sse"]

[packages.gen_nif]
native = true

[packages.sqlite_nif]
sysroot_packages = ["libsqlite3-dev"]
"""


def recipes_with(dest: Path, extra: str) -> Path:
    """A copy of xrel's recipes with `extra` appended to packages.toml (for XREL_RECIPES)."""
    shutil.copytree(recipes.recipes_dir(), dest)
    with open(dest / "packages.toml", "a") as f:
        f.write(extra)
    return dest


@pytest.fixture(scope="module")
def recipe_zoo(tmp_path_factory):
    root = copy_fixtures(tmp_path_factory.mktemp("recipes"), "recipe_zoo", "quirky", "gen_nif", "sqlite_nif")
    project = root / "recipe_zoo"
    log = root / "cc.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XREL_RECIPES", str(recipes_with(root / "recipes", RECIPES)))
        mp.setenv("XREL_CC_LOG", str(log))
        result = xrel.build(project, TARGETS)
    return SimpleNamespace(root=root, project=project, log=log,
                           releases={t.target: Path(t.release_dir) for t in result.targets})


@pytest.fixture(scope="module")
def recipe_reports(recipe_zoo, tmp_path_factory):
    """Target -> {dep: value} from RecipeZoo.report() run on the target CPU."""
    output = run_on_targets(recipe_zoo.releases, "IO.puts(RecipeZoo.report())", tmp_path_factory.mktemp("run"))
    return {target: dict(kv.split("=", 1)
                         for kv in next(ln for ln in lines if ln.startswith("quirky=")).split(" ", 2))
            for target, lines in output.items()}


def test_recipe_env_reaches_that_packages_build(recipe_zoo, recipe_reports):
    for target in TARGETS:
        assert recipe_reports[target]["quirky"] == target
        so = next(recipe_zoo.releases[target].glob("lib/quirky-*/priv/quirky_nif.so"))
        assert marker(so) == f"xrel-fixture:kind=quirky:target={target}"


def test_recipe_drop_flags_make_the_package_build(recipe_zoo, tmp_path):
    quirky = cc_calls(recipe_zoo.log, "quirky")
    assert len(quirky) == 2
    for call in quirky:
        assert {"dropped -msse2 (recipe drop_flags)", "dropped -mfpmath=sse (recipe drop_flags)"} <= set(call["notes"])
        assert "-msse2" not in call["cmd"]
    # without the recipe, zig refuses the flags: the entry is what makes the package build
    cc = xrel.zig_toolchain("arm-linux-gnueabihf").env()["CC"]
    (tmp_path / "x.c").write_text("int x;\n")
    args = [cc, "-msse2", "-mfpmath=sse", "-c", str(tmp_path / "x.c"), "-o", str(tmp_path / "x.o")]
    plain = subprocess.run(args, capture_output=True, text=True)
    assert plain.returncode != 0 and "sse" in plain.stderr
    dropped = subprocess.run(args, capture_output=True, text=True,
                             env={**os.environ, "XREL_DROP_FLAGS": json.dumps(["-msse2", "-mfpmath=sse"])})
    assert dropped.returncode == 0, dropped.stderr


def test_recipe_native_rebuilds_an_undetectable_native_dep(recipe_zoo, recipe_reports, tmp_path):
    for target in TARGETS:
        so = next(recipe_zoo.releases[target].glob("lib/gen_nif-*/priv/gen_nif.so"))
        assert binaries.read(so).machine == MACHINE[target]
        assert recipe_reports[target]["gen"] == "42,7"
    # without the entry, the second target keeps the first target's build of gen_nif: caught
    plain = RECIPES.replace("[packages.gen_nif]\nnative = true\n", "")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XREL_RECIPES", str(recipes_with(tmp_path / "recipes", plain)))
        with pytest.raises(InspectionError) as err:
            xrel.build(recipe_zoo.project, TARGETS, out=tmp_path / "out")
    assert "gen_nif.so" in str(err.value) and "dependency gen_nif" in str(err.value)


def test_recipe_sysroot_packages_give_the_build_its_library(recipe_zoo, recipe_reports):
    for target in TARGETS:
        so = next(recipe_zoo.releases[target].glob("lib/sqlite_nif-*/priv/sqlite_nif.so"))
        assert "libsqlite3.so.0" in binaries.read(so).needed
        assert recipe_reports[target]["sqlite"] == "3.40.1 ok"
    smoke = xrel.smoke(recipe_zoo.releases["arm-linux-gnueabihf"])
    assert smoke.ok and "lib/sqlite_nif-0.1.0/priv/sqlite_nif.so" in smoke.nifs_loaded, smoke.to_dict()


def test_recipe_broken_targets_refuse_before_building(recipe_zoo, tmp_path):
    broken = RECIPES.replace('drop_flags = ["-msse2", "-mfpmath=sse"]',
                             'drop_flags = ["-msse2", "-mfpmath=sse"]\nbroken_targets = { armhf = "needs SSE" }')
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XREL_RECIPES", str(recipes_with(tmp_path / "recipes", broken)))
        with pytest.raises(UsageError) as err:
            xrel.build(recipe_zoo.project, ["aarch64-linux-gnu", "arm-linux-gnueabihf"], out=out)
        apps = load_project(recipe_zoo.project).apps
    assert "quirky does not build for arm-linux-gnueabihf: needs SSE" in str(err.value)
    assert not out.exists()  # refused before any target was built
    quirky = next(a for a in apps if a.name == "quirky")
    assert quirky.broken_reason(xrel.Target.parse("aarch64-linux-gnu")) is None


def test_shipped_recipes_use_only_documented_keys_and_known_targets():
    """Every key a shipped entry uses is described in the file's header, and every
    broken_targets name is a target xrel knows (a typo would break every build using the dep)."""
    path = recipes.recipes_dir() / "packages.toml"
    header = [line[2:] for line in path.read_text().splitlines()
              if line.startswith("# ") and not line.startswith("#  ")]
    documented = {line.split()[0] for line in header if line.split() and line.split()[0].islower()}
    packages = recipes.load("packages")["packages"]
    used = {key for entry in packages.values() for key in entry}
    assert used <= documented, used - documented
    assert {"env", "drop_flags", "broken_targets", "native", "sysroot_packages"} <= documented
    for entry in packages.values():
        for name in entry.get("broken_targets", {}):
            xrel.Target.parse(name)
        assert all(p.endswith("-dev") for p in entry.get("sysroot_packages", []))
