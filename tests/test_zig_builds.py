"""Real builds with zig through xrel's wrappers, checked by parsing the binaries (no `file`).

The nif_make fixture (an elixir_make-style Makefile with a C NIF and a C port program) is built
with `make` in the environment `eval "$(xrel zig-env TARGET --otp-root ROOT)"` gives, in a copy
of the fixture. ROOT is a cached runtime for the target when the session has one, else the
host's OTP (its headers are ABI-wrong for 32-bit targets, which is what the header marker in the
NIF records; the build itself is still for the target).

zig's global cache (~/.cache/zig) is shared with the machine: the first build for a target costs
~25 s (C) and ~65 s (C++) on 2 cores, later ones a second or two.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import lief
import pytest
from elftools.elf.elffile import ELFFile

import xrel
from conftest import FIXTURES, have, needs_make
from xrel.host import host_erlang
from xrel.inspection import binaries
from xrel.inspection.binaries import version_key
from xrel.inspection.check import check_binary
from xrel.targets import Target
from xrel.zig.locate import find_zig

pytestmark = [pytest.mark.slow, needs_make]
needs_erl = pytest.mark.skipif(not have("erl"), reason="no host Erlang: its headers stand in for a target runtime")

BUILD_TARGETS = ["aarch64-linux-gnu", "arm-linux-gnueabihf", "x86_64-linux-musl", "aarch64-linux-musl",
                 "x86_64-macos", "aarch64-macos", "x86_64-windows", "aarch64-linux-gnu.2.28",
                 "aarch64-linux-gnu.2.17"]
# The arch the C preprocessor sees, as the fixture's sources name it
PREPROCESSOR_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "arm": "arm", "x86": "x86"}
GLIBC_LOADER = {"aarch64": "/lib/ld-linux-aarch64.so.1", "arm": "/lib/ld-linux-armhf.so.3",
                "x86_64": "/lib64/ld-linux-x86-64.so.2"}
# Variables elixir_make would pass that must come from xrel, not from the developer's shell
ERLANG_VARS = ("ERTS_INCLUDE_DIR", "ERL_EI_INCLUDE_DIR", "ERL_EI_LIBDIR", "TARGET_ARCH", "TARGET_OS", "TARGET_ABI",
               "CC", "CXX", "CFLAGS", "LDFLAGS")


def otp_root_for(target: Target) -> tuple[Path, bool]:
    """(root whose headers to build against, whether it is the target's own).

    glibc targets get their real Debian runtime when the mirror is reachable; other targets'
    runtimes in this session's cache are test stand-ins carrying the host's headers."""
    from conftest import apt_reachable
    from xrel.runtimes import fetch_runtime

    if target.libc == "glibc" and target.debian and apt_reachable():
        runtime = fetch_runtime(target, otp=str(host_erlang().otp_major), source="debian")
        return Path(runtime.root), True
    return host_erlang().root, False


def build_env(toolchain_env: dict[str, str], log: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ERLANG_VARS}
    env.update(toolchain_env)
    if log is not None:
        env["XREL_CC_LOG"] = str(log)
    return env


def copy_fixture(dest: Path) -> Path:
    shutil.copytree(FIXTURES / "nif_make", dest, ignore=shutil.ignore_patterns("*.o", "_out", "_build"))
    return dest


def run_make(project: Path, env: dict[str, str], app_path: Path) -> subprocess.CompletedProcess:
    # MIX_APP_PATH as elixir_make passes it; make cannot name targets with spaces, so it has none
    return subprocess.run(["make", f"MIX_APP_PATH={app_path}"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)


def cc_log(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def marker(path: Path) -> dict[str, str]:
    """The fixture NIF's record of its arch and of the erl_int_sizes_config.h it saw."""
    m = re.search(rb"xrel-fixture:arch=(\w+):header_sizeof_long=(\d+);", path.read_bytes())
    assert m, f"{path} has no fixture marker"
    return {"arch": m.group(1).decode(), "sizeof_long": m.group(2).decode()}


def elf_symbols(path: Path) -> tuple[set[str], set[str]]:
    """(defined, undefined) dynamic symbols of an ELF file."""
    defined, undefined = set(), set()
    with open(path, "rb") as f:
        dynsym = ELFFile(f).get_section_by_name(".dynsym")
        for sym in dynsym.iter_symbols():
            if sym.name:
                (undefined if sym["st_shndx"] == "SHN_UNDEF" else defined).add(sym.name)
    return defined, undefined


@needs_erl
@pytest.mark.parametrize("name", BUILD_TARGETS)
def test_fixture_builds_for_target(name, tmp_path):
    target = Target.parse(name)
    root, own = otp_root_for(target)
    log = tmp_path / "cc.log"
    project = copy_fixture(tmp_path / "project")
    app = tmp_path / "app"
    env = build_env(xrel.zig_toolchain(target, otp_root=root).env(), log)
    assert "TARGET_ARCH" not in env  # GNU make's implicit rules would put it on the command line
    result = run_make(project, env, app)
    assert result.returncode == 0, result.stdout + result.stderr

    nif_path, prog_path = app / "priv" / "fixture_nif.so", app / "priv" / "port_prog"
    nif, prog = binaries.read(nif_path), binaries.read(prog_path)
    for info, kind in ((nif, "shared"), (prog, "executable")):
        assert check_binary(info, target) == [], info
        assert (info.format, info.kind, info.machine, info.bits) == (target.format, kind, target.machine, target.bits)

    seen = marker(nif_path)
    assert seen["arch"] == PREPROCESSOR_ARCH[target.arch]
    if own:  # the target's own headers: their SIZEOF_LONG is the target's
        long_size = 4 if target.bits == 32 or target.os == "windows" else 8
        assert seen["sizeof_long"] == str(long_size)

    if target.format == "elf":
        defined, undefined = elf_symbols(nif_path)
        assert "nif_init" in defined
        assert {"enif_make_tuple", "enif_make_int"} <= undefined  # resolved from the VM at load time
        if target.float_abi:
            assert nif.float_abi == prog.float_abi == target.float_abi == "hard"
        if target.libc == "glibc":
            floor = target.glibc or target.default_glibc_floor
            assert prog.libc == "glibc" and prog.interpreter == GLIBC_LOADER[target.arch]
            assert prog.glibc_floor and version_key(prog.glibc_floor) <= version_key(floor)
        else:
            assert "glibc" not in (nif.libc, prog.libc) and prog.glibc_floor is None and nif.glibc_floor is None
            assert prog.interpreter is None or "ld-musl" in prog.interpreter
    elif target.format == "macho":
        assert version_key(nif.macos_min) == version_key(prog.macos_min) == version_key(target.macos_min)
        macho = lief.parse(str(nif_path))  # keep it alive while its symbols are read
        imported = {s.name for s in macho.imported_symbols}
        assert {"_enif_make_tuple", "_enif_make_int"} <= imported
        # The Makefile's `uname -s` is Linux here, so only the wrapper can have made enif_* dynamic
        links = [entry for entry in cc_log(log) if "-shared" in entry["argv"]]
        assert links and all("-Wl,-undefined,dynamic_lookup" in e["cmd"] for e in links)
        assert "-undefined" not in " ".join(a for e in links for a in e["argv"])
    else:
        pe = lief.parse(str(nif_path))
        assert pe.header.has_characteristic(lief.PE.Header.CHARACTERISTICS.DLL)
        assert "nif_init" in {f.name for f in pe.exported_functions}
        assert not nif.needed or all(n.lower().endswith(".dll") for n in nif.needed)


@needs_erl
def test_without_a_root_host_erlang_headers_are_refused(tmp_path):
    """The Makefile asks the host `erl` for its include dir; cross-building, xrel-cc drops it and
    the compile fails loudly instead of building an ABI-wrong NIF against host headers."""
    host = host_erlang()
    log = tmp_path / "cc.log"
    project = copy_fixture(tmp_path / "project")
    env = build_env(xrel.zig_toolchain("arm-linux-gnueabihf").env(), log)
    assert "ERTS_INCLUDE_DIR" not in env
    result = run_make(project, env, tmp_path / "app")
    assert result.returncode != 0
    host_include = f"{host.root}/erts-{host.erts_version}/include"
    assert any(host_include in a.rstrip("/") for e in cc_log(log) for a in e["argv"])  # the Makefile passed it
    refused = [line for line in result.stderr.splitlines() if line.startswith("xrel-cc: dropped -I")]
    assert refused and host_include in refused[0] and "ERTS_INCLUDE_DIR" in refused[0]
    assert "erl_nif.h" in result.stderr
    assert not (tmp_path / "app" / "priv" / "fixture_nif.so").exists()


@needs_erl
def test_eval_zig_env_then_make(tmp_path):
    """The issue's one-liner, through the real CLI and a real shell."""
    project = copy_fixture(tmp_path / "project")
    root = host_erlang().root
    script = (f'eval "$({sys.executable} -m xrel zig-env arm-linux-gnueabihf --otp-root {root})" '
              f'&& make MIX_APP_PATH={tmp_path / "app"}')
    env = {k: v for k, v in os.environ.items() if k not in ERLANG_VARS}
    result = subprocess.run(["sh", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for name in ("fixture_nif.so", "port_prog"):
        info = binaries.read(tmp_path / "app" / "priv" / name)
        assert (info.machine, info.bits, info.float_abi) == (40, 32, "hard")


def test_glibc_floor_is_enforced(tmp_path):
    """reallocarray is GLIBC_2.26: fine under a 2.28 floor, a link error under 2.17."""
    source = tmp_path / "floor.c"
    source.write_text("#define _GNU_SOURCE\n#include <stdlib.h>\n#include <stdio.h>\n"
                      "int main(int argc, char **argv) { (void)argv; void *p = reallocarray(NULL, (size_t)argc, 16);"
                      " printf(\"%p\\n\", p); free(p); return 0; }\n")
    ok = tmp_path / "floor-2.28"
    cc = xrel.zig_toolchain("aarch64-linux-gnu.2.28").env()["CC"]
    subprocess.run([cc, str(source), "-o", str(ok)], check=True, capture_output=True)
    info = binaries.read(ok)
    assert info.glibc_floor == "2.26"
    assert check_binary(info, Target.parse("aarch64-linux-gnu.2.28")) == []
    assert check_binary(info, Target.parse("aarch64-linux-gnu.2.17")) != []  # inspection catches it too

    cc = xrel.zig_toolchain("aarch64-linux-gnu.2.17").env()["CC"]
    result = subprocess.run([cc, str(source), "-o", str(tmp_path / "floor-2.17")], capture_output=True, text=True)
    assert result.returncode != 0 and "reallocarray" in result.stderr


def test_relaxed_errors_for_old_c(tmp_path):
    """gcc 12 warns about implicit declarations and int conversions; zig's clang refuses them."""
    source = tmp_path / "old.c"
    source.write_text("int f(void) { return g(); }\nlong h(char *p) { int x = p; return x; }\n")
    cc = xrel.zig_toolchain("aarch64-linux-gnu").env()["CC"]
    ok = subprocess.run([cc, "-c", str(source), "-o", str(tmp_path / "old.o")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "implicit" in ok.stderr  # still reported, as a warning
    raw = subprocess.run([str(find_zig().path), "cc", "-target", "aarch64-linux-gnu", "-c", str(source),
                          "-o", str(tmp_path / "raw.o")], capture_output=True, text=True)
    assert raw.returncode != 0


@pytest.mark.parametrize("name,flags,kind", [
    # gcc/distro flags zig refuses, each rewritten by the filter (tests/test_zigcc_filter.py)
    ("aarch64-linux-gnu", ["-Wp,-D_FORTIFY_SOURCE=2", "-O2", "-flto=auto",
                           "-fcf-protection", "-specs=/usr/share/dpkg/no-pie-compile.specs", "-m64",
                           "--target=x86_64-linux-gnu", "-Wl,--fix-cortex-a53-843419", "-Wl,--exclude-libs,ALL",
                           "-Wl,-undefined,dynamic_lookup", "-flat_namespace"], "shared"),
    # rebar3 port_compiler's darwin defaults and a Linux-minded Makefile, for a Mac
    ("aarch64-macos", ["-bundle", "-flat_namespace", "-undefined", "suppress", "-flto", "-Wl,-dylib",
                       "-Wl,-soname,x.so", "-Wl,--as-needed", "-lrt"], "shared"),
    ("x86_64-windows", ["-ldl", "-lpthread", "-lmsvcrt", "-Wl,--enable-auto-import", "-Wl,--large-address-aware",
                        "-Wl,-soname,x.dll", "-Wl,-z,now"], "shared"),
])
def test_flags_zig_rejects_are_filtered(name, flags, kind, tmp_path):
    target = Target.parse(name)
    source = tmp_path / "nif.c"
    source.write_text("extern int enif_stand_in(int);\nint nif(int x) { return enif_stand_in(x) + 1; }\n")
    out = tmp_path / f"nif{target.shared_lib_suffix}"
    cc = xrel.zig_toolchain(target).env()["CC"]
    if target.os != "macos":  # only a Mac NIF may leave enif_* undefined
        source.write_text("int nif(int x) { return x + 1; }\n")
    flags = ["-shared" if f == "-bundle" and target.os != "macos" else f for f in flags]
    if "-bundle" not in flags:
        flags = ["-shared", *flags]
    result = subprocess.run([cc, "-fPIC", *flags, str(source), "-o", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    info = binaries.read(out)
    assert info.kind == kind and check_binary(info, target) == []


@pytest.mark.parametrize("name,flags", [
    ("x86_64-linux-musl", ["-march=x86-64-v2", "-mtune=generic"]),
    ("aarch64-linux-gnu", ["-march=armv8-a+crc", "-mtune=cortex-a72"]),
    ("aarch64-linux-gnu", ["-mcpu=cortex-a72", "-march=x86-64"]),
    ("arm-linux-gnueabihf", ["-march=armv7-a", "-mfpu=vfpv3-d16", "-mfloat-abi=hard"]),
    ("riscv64-linux-gnu", ["-march=rv64gc", "-mabi=lp64d"]),
    ("powerpc64le-linux-gnu", ["-mcpu=power8"]),
    ("s390x-linux-gnu", ["-march=z13"]),
])
def test_gcc_cpu_names_are_spelled_for_zig(name, flags, tmp_path):
    """Compile only: a CPU other than the baseline makes zig rebuild libc for it at link time."""
    target = Target.parse(name)
    source = tmp_path / "a.c"
    source.write_text("int f(int x) { return x * 3; }\n")
    cc = xrel.zig_toolchain(target).env()["CC"]
    result = subprocess.run([cc, *flags, "-c", str(source), "-o", str(tmp_path / "a.o")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    info = binaries.read(tmp_path / "a.o")
    assert (info.kind, info.machine, info.bits) == ("object", target.machine, target.bits)


@pytest.mark.parametrize("name", ["aarch64-linux-gnu"])
def test_cxx_links_libcxx_statically(name, tmp_path):
    source = tmp_path / "nif.cpp"
    source.write_text(
        "#include <string>\n#include <vector>\n#include <stdexcept>\n"
        'extern "C" int xrel_cxx_len(const char *s) {\n'
        '  std::vector<std::string> parts{std::string(s), "x"};\n'
        '  try { if (parts.size() > 5) throw std::runtime_error("no"); }\n'
        '  catch (const std::exception &) { return -1; }\n'
        "  return (int)(parts[0].size() + parts[1].size());\n}\n")
    out = tmp_path / "libcxx_nif.so"
    cxx = xrel.zig_toolchain(name).env()["CXX"]
    # -lstdc++ as a Makefile written for gcc passes it
    subprocess.run([cxx, "-shared", "-fPIC", "-O2", str(source), "-o", str(out), "-lstdc++"], check=True,
                   capture_output=True, timeout=900)
    info = binaries.read(out)
    assert check_binary(info, Target.parse(name)) == [] and info.kind == "shared"
    assert not [n for n in info.needed if "stdc++" in n or "c++" in n or "gcc_s" in n], info.needed
    defined, _ = elf_symbols(out)
    assert "xrel_cxx_len" in defined


@pytest.mark.skipif(not have("cmake"), reason="cmake is not installed (apt-get install cmake)")
@pytest.mark.parametrize("name", ["aarch64-linux-gnu", "aarch64-macos"])
def test_cmake_toolchain_file_from_paths_with_spaces(name, tmp_path, monkeypatch):
    """A SHARED and a MODULE library (CMake links a MODULE with -bundle on Darwin)."""
    target = Target.parse(name)
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "xrel cache"))
    src = tmp_path / "cmake project"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(xrelcm C)\nadd_library(xrelcm SHARED nif.c)\n"
        "add_library(xrelmod MODULE nif.c)\n")
    (src / "nif.c").write_text("extern int enif_stand_in(int);\nint xrel_cm(int x) { return enif_stand_in(x) * 2; }\n")
    env = build_env(xrel.zig_toolchain(target).env())
    assert " " in env["CMAKE_TOOLCHAIN_FILE"]
    build = tmp_path / "build dir"
    # CMAKE_TOOLCHAIN_FILE comes from the environment, as after `eval "$(xrel zig-env ...)"`
    configure = subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"], env=env,
                               capture_output=True, text=True, timeout=600)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compile_ = subprocess.run(["cmake", "--build", str(build)], env=env, capture_output=True, text=True, timeout=600)
    assert compile_.returncode == 0, compile_.stdout + compile_.stderr
    shared = "libxrelcm.dylib" if target.os == "macos" else "libxrelcm.so"
    for output in (build / shared, build / "libxrelmod.so"):
        info = binaries.read(output)
        assert (info.format, info.kind, info.machine, info.bits) == (target.format, "shared", target.machine, 64)
        assert check_binary(info, target) == []
    cache = (build / "CMakeCache.txt").read_text()
    assert str(tmp_path / "xrel cache") in cache  # the compilers are xrel's wrappers


def test_wrappers_work_from_a_cache_dir_with_spaces(tmp_path, monkeypatch):
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "my xrel cache"))
    env = xrel.zig_toolchain("aarch64-macos").env()
    assert " " in env["CC"]
    source = tmp_path / "a nif.c"
    source.write_text("extern int enif_x(void);\nint nif(void) { return enif_x(); }\n")
    out = tmp_path / "out dir" / "a nif.so"
    out.parent.mkdir()
    subprocess.run([env["CC"], "-shared", "-I", str(tmp_path / "inc dir"), str(source), "-o", str(out)], check=True,
                   capture_output=True)
    assert binaries.read(out).kind == "shared"
    for tool in ("ar", "ranlib"):
        assert Path(env[tool.upper()]).parent == Path(env["CC"]).parent
    lib = tmp_path / "lib a.a"
    subprocess.run([env["AR"], "rcs", str(lib), str(out)], check=True, capture_output=True)
    assert binaries.read(lib).format == "ar"


@needs_erl
def test_project_and_otp_root_with_spaces(tmp_path):
    """A project dir and an OTP root whose paths have spaces (MIX_APP_PATH: make cannot)."""
    host = host_erlang()
    root = tmp_path / "target otp"
    erts = f"erts-{host.erts_version}"
    shutil.copytree(host.root / erts / "include", root / erts / "include")
    shutil.copytree(host.root / "usr" / "include", root / "usr" / "include")
    (root / "lib").mkdir()
    project = copy_fixture(tmp_path / "my project")
    log = tmp_path / "cc.log"
    env = build_env(xrel.zig_toolchain("x86_64-linux-musl", otp_root=root).env(), log)
    assert env["ERTS_INCLUDE_DIR"] == str(root / erts / "include")
    result = run_make(project, env, tmp_path / "app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert binaries.read(tmp_path / "app" / "priv" / "fixture_nif.so").kind == "shared"
    assert any(f"-I{root}/{erts}/include" in e["cmd"] for e in cc_log(log))


def _snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in sorted(directory.iterdir()) if p.is_file()}


def test_wrappers_are_rewritten_only_when_their_content_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "cache"))
    first = xrel.zig_toolchain("aarch64-linux-gnu").env()
    directory = Path(first["CC"]).parent
    before = _snapshot(directory)
    assert {"cc", "c++", "ar", "ranlib", "strip", "toolchain.cmake"} <= set(before)
    os.utime(directory / "cc", ns=(1_000_000_000, 1_000_000_000))  # an old mtime any rewrite would change
    before["cc"] = (1_000_000_000, before["cc"][1])

    again = xrel.zig_toolchain("aarch64-linux-gnu").env()
    assert again == first
    assert _snapshot(directory) == before

    (directory / "ranlib").write_text("#!/bin/sh\nexit 1\n")  # stale content from an older xrel
    xrel.zig_toolchain("aarch64-linux-gnu").env()
    after = _snapshot(directory)
    assert after["ranlib"][1] == before["ranlib"][1]
    assert {k: v for k, v in after.items() if k != "ranlib"} == {k: v for k, v in before.items() if k != "ranlib"}
    # a different configuration gets its own directory instead of rewriting this one
    other = xrel.zig_toolchain("aarch64-linux-gnu.2.17").env()
    assert Path(other["CC"]).parent != directory
