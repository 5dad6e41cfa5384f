"""ccfilter.filter_args: one table of gcc-style command lines and what zig gets instead.

Every rule was measured against zig 0.17 (`zig cc` rejecting or misreading the original) or comes
from cargo-zigbuild's filter (rust-cross/cargo-zigbuild, src/zig.rs); the docstring of each rule in
ccfilter.RULES says which. Removing any rule from RULES fails at least one row of CASES.
test_zig_builds.py runs the same rules through real builds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xrel.host import host_erlang
from xrel.targets import host_target
from xrel.zig import ccfilter
from xrel.zig.ccconfig import CcConfig
from xrel.zig.host_paths import HOST_ONLY_PREFIXES
from xrel.zig.toolchain import ZigToolchain, zig_lib_dir

HOST = "/usr/lib/erlang"
T = "/xrel/rt"  # a target OTP root


def _config(os_name: str, arch: str, root: bool = True, **extra) -> CcConfig:
    """A config like ZigToolchain.cc_config's: host Erlang under /usr/lib/erlang, x86_64 host."""
    if root:
        path_map = [
            (f"{HOST}/erts-13.1.5", (f"{T}/erts-14.2",)),
            (f"{HOST}/lib/erl_interface-5.3", (f"{T}/lib/erl_interface-5.5",)),
            (f"{HOST}/usr", (f"{T}/usr",)),
            (HOST, (T,)),
            ("/usr/include/x86_64-linux-gnu", ()),
            ("/usr/lib/x86_64-linux-gnu", ()),
            ("/usr/include", (f"{T}/usr/include",)),
            ("/usr/lib", (f"{T}/usr/lib",)),
        ]
    else:
        path_map = [(HOST, ()), ("/usr/include/x86_64-linux-gnu", ()), ("/usr/lib/x86_64-linux-gnu", ()),
                    ("/usr/include", ()), ("/usr/lib", ())]
    path_map.sort(key=lambda item: len(item[0]), reverse=True)
    return CcConfig(os=os_name, arch=arch, path_map=tuple(path_map), drop_paths=HOST_ONLY_PREFIXES, **extra)


CONFIGS = {
    "linux": _config("linux", "aarch64"),
    "linux-noroot": _config("linux", "aarch64", root=False),
    "host": _config("linux", "x86_64")._replace(path_map=((HOST, None), ("/usr/include", ()), ("/usr/lib", ()))),
    "recipe": _config("linux", "arm", drop_args=("-msse2", "-mfpmath=sse", "-Wl,--no-keep-memory")),
    "armhf": _config("linux", "arm"),
    "x86_64": _config("linux", "x86_64"),
    "riscv64": _config("linux", "riscv64"),
    "ppc64le": _config("linux", "powerpc64le"),
    "s390x": _config("linux", "s390x"),
    "macos": _config("macos", "aarch64"),
    "windows": _config("windows", "x86_64"),
}
UNDEF = "-Wl,-undefined,dynamic_lookup"

# (id, config, args, expected args for zig (without the relaxed-warning prefix))
CASES = [
    # -- the target is xrel's ----------------------------------------------------------------
    ("target-pair", "linux", ["-target", "x86_64-linux-gnu", "-c", "a.c"], ["-c", "a.c"]),
    ("target-eq", "linux", ["--target=aarch64-unknown-linux-gnu", "-c", "a.c"], ["-c", "a.c"]),
    ("m64", "linux", ["-m64", "-c", "a.c"], ["-c", "a.c"]),
    ("arch-apple", "macos", ["-arch", "arm64", "-c", "a.c"], ["-c", "a.c"]),
    ("fuse-ld", "linux", ["-fuse-ld=gold", "a.o"], ["a.o"]),
    ("specs", "linux", ["-specs=/usr/share/dpkg/no-pie-compile.specs", "-c", "a.c"], ["-c", "a.c"]),
    # -- CPU names ---------------------------------------------------------------------------------
    ("march-native", "linux", ["-march=native", "-O2", "-c", "a.c"], ["-O2", "-c", "a.c"]),
    ("mtune-native", "x86_64", ["-mtune=native", "-c", "a.c"], ["-c", "a.c"]),
    ("mcpu-native", "linux", ["-mcpu=native", "-c", "a.c"], ["-c", "a.c"]),
    ("mtune-generic", "x86_64", ["-mtune=generic", "-c", "a.c"], ["-c", "a.c"]),
    ("march-x86-64", "x86_64", ["-march=x86-64-v2", "-c", "a.c"], ["-march=x86_64_v2", "-c", "a.c"]),
    ("march-haswell", "x86_64", ["-march=haswell", "-c", "a.c"], ["-march=haswell", "-c", "a.c"]),
    ("march-armv8", "linux", ["-march=armv8-a+crc", "-c", "a.c"], ["-mcpu=baseline+crc", "-c", "a.c"]),
    ("march-armv8-plain", "linux", ["-march=armv8.2-a", "-c", "a.c"], ["-mcpu=baseline", "-c", "a.c"]),
    ("mcpu-cortex", "linux", ["-mcpu=cortex-a72", "-c", "a.c"], ["-mcpu=cortex_a72", "-c", "a.c"]),
    ("march-host-leak", "linux", ["-march=x86-64", "-c", "a.c"], ["-c", "a.c"]),
    ("march-armv7", "armhf", ["-march=armv7-a", "-mfpu=neon", "-c", "a.c"], ["-mfpu=neon", "-c", "a.c"]),
    ("march-rv64gc", "riscv64", ["-march=rv64gc", "-mabi=lp64d", "-c", "a.c"], ["-mabi=lp64d", "-c", "a.c"]),
    ("mcpu-power8", "ppc64le", ["-mcpu=power8", "-c", "a.c"], ["-mcpu=pwr8", "-c", "a.c"]),
    ("march-z13", "s390x", ["-march=z13", "-c", "a.c"], ["-march=z13", "-c", "a.c"]),
    # -- host hardening flags for another CPU ---------------------------------------------------------
    ("cf-protection-arm", "linux", ["-fcf-protection", "-c", "a.c"], ["-c", "a.c"]),
    ("cf-protection-x86", "x86_64", ["-fcf-protection=full", "-c", "a.c"], ["-fcf-protection=full", "-c", "a.c"]),
    ("branch-protection-x86", "x86_64", ["-mbranch-protection=standard", "-c", "a.c"], ["-c", "a.c"]),
    ("branch-protection-arm64", "linux", ["-mbranch-protection=standard", "-c", "a.c"],
     ["-mbranch-protection=standard", "-c", "a.c"]),
    # -- LTO and -Wp, ----------------------------------------------------------------------------------
    ("flto-auto", "linux", ["-flto=auto", "-ffat-lto-objects", "-c", "a.c"],
     ["-flto", "-ffat-lto-objects", "-c", "a.c"]),
    ("flto-n", "linux", ["-flto=4", "a.o", "-shared"], ["-flto", "a.o", "-shared"]),
    ("flto-thin", "linux", ["-flto=thin", "-c", "a.c"], ["-flto=thin", "-c", "a.c"]),
    ("flto-macos", "macos", ["-flto", "-c", "a.c"], ["-c", "a.c"]),
    ("wp-fortify", "linux", ["-Wp,-D_FORTIFY_SOURCE=2", "-Wp,-D_GLIBCXX_ASSERTIONS", "-c", "a.c"],
     ["-D_FORTIFY_SOURCE=2", "-D_GLIBCXX_ASSERTIONS", "-c", "a.c"]),
    ("wp-undef", "linux", ["-Wp,-U_FORTIFY_SOURCE,-D_FORTIFY_SOURCE=3", "-c", "a.c"],
     ["-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=3", "-c", "a.c"]),
    ("wp-md", "linux", ["-Wp,-MD,a.d", "-c", "a.c"], ["-Wp,-MD,a.d", "-c", "a.c"]),
    ("wp-other", "linux", ["-Wp,-v", "-c", "a.c"], ["-c", "a.c"]),
    # -- shared objects and macOS's undefined-symbol convention ----------------------------------------
    ("macos-shared-adds-undefined", "macos", ["a.o", "-shared", "-o", "x.so"], ["a.o", "-shared", "-o", "x.so", UNDEF]),
    ("macos-undefined-given", "macos", ["a.o", "-shared", "-undefined", "dynamic_lookup", "-o", "x.so"],
     ["a.o", "-shared", "-undefined", "dynamic_lookup", "-o", "x.so"]),
    ("macos-wl-undefined-given", "macos", ["a.o", "-shared", UNDEF], ["a.o", "-shared", UNDEF]),
    ("macos-wl-undefined-eq-given", "macos", ["a.o", "-shared", "-Wl,-undefined=dynamic_lookup"],
     ["a.o", "-shared", "-Wl,-undefined=dynamic_lookup"]),
    ("macos-compile-only", "macos", ["-shared", "-c", "a.c", "-o", "a.o"], ["-shared", "-c", "a.c", "-o", "a.o"]),
    ("macos-executable", "macos", ["a.c", "-o", "prog"], ["a.c", "-o", "prog"]),
    ("macos-dynamiclib", "macos", ["a.o", "-dynamiclib"], ["a.o", "-dynamiclib", UNDEF]),
    ("macos-bundle", "macos", ["a.o", "-bundle", "-o", "x.so"], ["a.o", "-shared", "-o", "x.so", UNDEF]),
    ("macos-flat-namespace-alone", "macos", ["a.o", "-shared", "-flat_namespace"], ["a.o", "-shared", UNDEF]),
    ("port-compiler-darwin", "macos", ["-bundle", "-flat_namespace", "-undefined", "suppress", "a.o"],
     ["-shared", "-undefined", "dynamic_lookup", "a.o"]),
    ("macos-wl-suppress", "macos", ["a.o", "-shared", "-Wl,-undefined,suppress"], ["a.o", "-shared", UNDEF]),
    ("macos-wl-dylib", "macos", ["a.o", "-shared", "-Wl,-dylib", UNDEF], ["a.o", "-shared", UNDEF]),
    ("macos-wl-flat", "macos", ["a.o", "-shared", "-Wl,-flat_namespace,-undefined,dynamic_lookup"],
     ["a.o", "-shared", UNDEF]),
    ("macos-elf-options", "macos", ["a.o", "-shared", "-Wl,-soname,libx.so", "-Wl,-z,now", "-Wl,--as-needed"],
     ["a.o", "-shared", UNDEF]),
    ("macos-rt", "macos", ["a.o", "-lrt", "-lm"], ["a.o", "-lm"]),
    ("linux-undefined", "linux", ["a.o", "-shared", "-undefined", "dynamic_lookup", "-flat_namespace", "-o", "x.so"],
     ["a.o", "-shared", "-o", "x.so"]),
    ("linux-wl-undefined", "linux", ["a.o", "-shared", UNDEF, "-Wl,-flat_namespace"], ["a.o", "-shared"]),
    ("linux-dynamiclib", "linux", ["a.o", "-dynamiclib", "-o", "x.so"], ["a.o", "-shared", "-o", "x.so"]),
    ("linux-bundle", "linux", ["a.o", "-bundle", "-o", "x.so"], ["a.o", "-shared", "-o", "x.so"]),
    ("linux-mixed-wl", "linux", ["a.o", "-shared", "-Wl,-soname,libx.so,-install_name,@rpath/x"],
     ["a.o", "-shared", "-Wl,-soname,libx.so"]),
    ("linux-mach-o-only", "linux", ["a.o", "-Wl,-exported_symbols_list,syms.txt", "-Wl,-headerpad_max_install_names"],
     ["a.o"]),
    ("linux-elf-kept", "linux", ["a.o", "-shared", "-Wl,-z,relro,-z,now", "-Wl,--as-needed"],
     ["a.o", "-shared", "-Wl,-z,relro,-z,now", "-Wl,--as-needed"]),
    ("fix-cortex", "linux", ["a.o", "-Wl,--fix-cortex-a53-843419,-O1"], ["a.o", "-Wl,-O1"]),
    ("exclude-libs", "linux", ["a.o", "-Wl,--exclude-libs,ALL"], ["a.o"]),
    ("exclude-libs-eq", "linux", ["a.o", "-Wl,--exclude-libs=ALL,--gc-sections"], ["a.o", "-Wl,--gc-sections"]),
    ("wl-value-in-next-arg", "macos", ["a.o", "-shared", "-Wl,-soname", "-Wl,libx.so", "-Wl,-rpath,@loader_path"],
     ["a.o", "-shared", "-Wl,-rpath,@loader_path", UNDEF]),
    ("xlinker", "macos", ["a.o", "-shared", "-Xlinker", "-soname", "-Xlinker", "libx.so"], ["a.o", "-shared", UNDEF]),
    ("xlinker-linux", "linux", ["a.o", "-Xlinker", "--as-needed"], ["a.o", "-Wl,--as-needed"]),
    # -- Windows ---------------------------------------------------------------------------------------
    ("windows-posix-libs", "windows", ["a.o", "-shared", "-ldl", "-lpthread", "-lrt", "-lutil", "-lws2_32"],
     ["a.o", "-shared", "-lws2_32"]),
    ("windows-msvcrt", "windows", ["a.o", "-shared", "-lmsvcrt"], ["a.o", "-shared"]),
    ("windows-elf-options", "windows", ["a.o", "-shared", "-Wl,-soname,x.dll", "-Wl,-z,defs",
                                        "-Wl,--version-script=v.map", "-Wl,-rpath,/opt/x", "-Wl,--as-needed",
                                        "-Wl,--build-id"], ["a.o", "-shared"]),
    ("windows-mingw-options", "windows", ["a.o", "-shared", "-Wl,--enable-auto-import", "-Wl,--large-address-aware",
                                          "-Wl,--out-implib,libx.a"], ["a.o", "-shared", "-Wl,--out-implib,libx.a"]),
    ("windows-shared-no-undefined", "windows", ["a.o", "-shared"], ["a.o", "-shared"]),
    # -- host Erlang paths: rewritten to the target root ------------------------------------------------
    ("erts-include-joined", "linux", [f"-I{HOST}/erts-13.1.5/include", "-c", "a.c"],
     [f"-I{T}/erts-14.2/include", "-c", "a.c"]),
    ("erts-include-spaced", "linux", ["-I", f"{HOST}/erts-13.1.5/include/", "-c", "a.c"],
     ["-I", f"{T}/erts-14.2/include", "-c", "a.c"]),
    ("erts-isystem", "linux", ["-isystem", f"{HOST}/erts-13.1.5/include", "-c", "a.c"],
     ["-isystem", f"{T}/erts-14.2/include", "-c", "a.c"]),
    ("erts-isystem-joined", "linux", [f"-isystem{HOST}/erts-13.1.5/include", "-c", "a.c"],
     [f"-isystem{T}/erts-14.2/include", "-c", "a.c"]),
    ("ei-include", "linux", [f"-I{HOST}/lib/erl_interface-5.3/include", "-c", "a.c"],
     [f"-I{T}/lib/erl_interface-5.5/include", "-c", "a.c"]),
    ("ei-lib-dir", "linux", [f"-L{HOST}/lib/erl_interface-5.3/lib", "-lei"],
     [f"-L{T}/lib/erl_interface-5.5/lib", "-lei"]),
    ("ei-lib-bare", "linux", ["a.o", f"{HOST}/lib/erl_interface-5.3/lib/libei.a"],
     ["a.o", f"{T}/lib/erl_interface-5.5/lib/libei.a"]),
    ("usr-include-of-root", "linux", [f"-I{HOST}/usr/include", "-c", "a.c"], [f"-I{T}/usr/include", "-c", "a.c"]),
    ("root-itself", "linux", [f"-I{HOST}", "-c", "a.c"], [f"-I{T}", "-c", "a.c"]),
    # Debian's erlang-dev links erl_nif.h & co. into /usr/include: that dir means the root's usr/include
    ("usr-include", "linux", ["-I/usr/include", "-c", "a.c"], [f"-I{T}/usr/include", "-c", "a.c"]),
    ("usr-lib", "linux", ["-L", "/usr/lib", "-lei"], ["-L", f"{T}/usr/lib", "-lei"]),
    ("host-multiarch", "linux", ["-I/usr/include/x86_64-linux-gnu", "-L/usr/lib/x86_64-linux-gnu", "-c", "a.c"],
     ["-c", "a.c"]),
    # /usr/local's include/lib dirs are the host's own installs; the rest of /usr/local is anybody's
    ("usr-local-include", "linux", ["-I/usr/local/include", "-L/usr/local/lib", "-c", "a.c"], ["-c", "a.c"]),
    ("usr-local-project", "linux", ["-I/usr/local/src/app/c_src", "-c", "/usr/local/src/app/c_src/a.c",
                                    "-o", "/usr/local/src/app/priv/a.so"],
     ["-I/usr/local/src/app/c_src", "-c", "/usr/local/src/app/c_src/a.c", "-o", "/usr/local/src/app/priv/a.so"]),
    ("homebrew", "macos", ["-I/opt/homebrew/include", "-L/opt/homebrew/lib", "-c", "a.c"], ["-c", "a.c"]),
    ("output-not-a-path-flag", "linux", ["a.o", "-o", "/usr/lib/x.so", "-MF", "/usr/include/x.d"],
     ["a.o", "-o", "/usr/lib/x.so", "-MF", "/usr/include/x.d"]),
    ("project-paths-kept", "linux", ["-I", "c_src", "-I/home/u/my app/include", "-L../lib", "-c", "a.c"],
     ["-I", "c_src", "-I/home/u/my app/include", "-L../lib", "-c", "a.c"]),
    # -- no target root: host Erlang paths are dropped, never used --------------------------------------
    ("noroot-erts", "linux-noroot", [f"-I{HOST}/erts-13.1.5/include", "-c", "a.c"], ["-c", "a.c"]),
    ("noroot-erts-spaced", "linux-noroot", ["-I", f"{HOST}/erts-13.1.5/include", "-c", "a.c"], ["-c", "a.c"]),
    ("noroot-libei", "linux-noroot", ["a.o", f"{HOST}/lib/erl_interface-5.3/lib/libei.a", "-shared"],
     ["a.o", "-shared"]),
    ("noroot-usr-include", "linux-noroot", ["-I/usr/include", "-L/usr/lib", "-c", "a.c"], ["-c", "a.c"]),
    # -- building for the host itself: its Erlang is the right one ----------------------------------------
    ("host-keeps-its-erlang", "host", [f"-I{HOST}/erts-13.1.5/include", "-c", "a.c"],
     [f"-I{HOST}/erts-13.1.5/include", "-c", "a.c"]),
    # -- gcc's runtime libraries ----------------------------------------------------------------------
    ("stdcxx", "linux", ["a.o", "-lstdc++", "-lm"], ["a.o", "-lc++", "-lm"]),
    ("stdcxx-once", "linux", ["a.o", "-lstdc++", "-lstdc++"], ["a.o", "-lc++"]),
    ("gcc-s", "linux", ["a.o", "-lgcc_s", "-static-libgcc", "-static-libstdc++"], ["a.o", "-lunwind"]),
    ("gcc-eh", "linux", ["a.o", "-lgcc_eh"], ["a.o"]),
    # -- a package recipe's drop_flags (XREL_DROP_FLAGS) -------------------------------------------------
    ("recipe-drop-flags", "recipe", ["-msse2", "-mfpmath=sse", "-O2", "-c", "a.c"], ["-O2", "-c", "a.c"]),
    ("recipe-drop-xlinker", "recipe", ["a.o", "-Xlinker", "--no-keep-memory", "-shared"], ["a.o", "-shared"]),
    ("recipe-drop-only-listed", "linux", ["-msse2", "-c", "a.c"], ["-msse2", "-c", "a.c"]),
    # -- untouched -----------------------------------------------------------------------------------
    ("plain", "linux", ["-O2", "-Wall", "-fPIC", "-DNDEBUG", "-c", "a.c", "-o", "a.o"],
     ["-O2", "-Wall", "-fPIC", "-DNDEBUG", "-c", "a.c", "-o", "a.o"]),
    ("linux-lrt-kept", "linux", ["a.o", "-lrt", "-ldl", "-lpthread"], ["a.o", "-lrt", "-ldl", "-lpthread"]),
]


def _respelled(args: list[str]) -> list[str]:
    """`args` with -Xlinker X written -Wl,X (a re-spelling that needs no note)."""
    out, i = [], 0
    while i < len(args):
        if args[i] == "-Xlinker" and i + 1 < len(args) and "," not in args[i + 1]:
            out.append("-Wl," + args[i + 1])
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def _strip_relaxed(out: list[str]) -> list[str]:
    n = len(ccfilter.RELAXED_ERRORS)
    assert out[:n] == list(ccfilter.RELAXED_ERRORS), out
    return out[n:]


@pytest.mark.parametrize("config,args,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_filter(config, args, expected):
    out, notes = ccfilter.filter_args(list(args), CONFIGS[config])
    assert _strip_relaxed(out) == expected
    if out[len(ccfilter.RELAXED_ERRORS):] != _respelled(args):
        assert notes, "every change is explained"


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_filter_does_not_change_its_input():
    args = ["-target", "x", "-bundle", "a.o"]
    ccfilter.filter_args(args, CONFIGS["macos"])
    assert args == ["-target", "x", "-bundle", "a.o"]


def test_macos_dynamic_lookup_is_added_exactly_once():
    for args in (["a.o", "-shared"], ["a.o", "-shared", "-shared"], ["a.o", "-dynamiclib", "-shared"]):
        out, _ = ccfilter.filter_args(args, CONFIGS["macos"])
        assert out.count(UNDEF) == 1


@pytest.mark.parametrize("config", ["linux", "macos", "windows"])
def test_relaxed_errors_only_for_c(config):
    cxx = CONFIGS[config]._replace(mode="c++")
    out, _ = ccfilter.filter_args(["-c", "a.cpp"], cxx)
    assert out == ["-c", "a.cpp"]
    assert not any(a.startswith("-Wno-error=") for a in out)
    out, _ = ccfilter.filter_args(["-c", "a.c"], CONFIGS[config])
    assert set(ccfilter.RELAXED_ERRORS) <= set(out)


@pytest.mark.parametrize("args", [["-E", "a.c"], ["-M", "a.c"], ["-MM", "a.c"]])
def test_no_relaxed_errors_for_preprocessing_only(args):
    out, _ = ccfilter.filter_args(args, CONFIGS["linux"])
    assert out == args


def test_host_path_notes_say_why():
    _, notes = ccfilter.filter_args([f"-I{HOST}/erts-13.1.5/include", "-c", "a.c"], CONFIGS["linux-noroot"])
    assert len(notes) == 1
    assert f"{HOST}/erts-13.1.5/include" in notes[0].text and "host path" in notes[0].text
    assert notes[0].host_path


def test_command_puts_the_target_first():
    config = CONFIGS["armhf"]._replace(zig="/z/zig", target="arm-linux-gnueabihf.2.28", cpu="generic+v7a+vfp3d16",
                                       extra=("-idirafter", "/s/usr/include"))
    cmd, _ = ccfilter.command(config, ["-target", "x86_64-linux-gnu", "-c", "a.c"])
    assert cmd[:6] == ["/z/zig", "cc", "-target", "arm-linux-gnueabihf.2.28", "-mcpu=generic+v7a+vfp3d16", "-idirafter"]
    assert cmd.count("-target") == 1
    assert cmd[-2:] == ["-c", "a.c"]
    cmd, _ = ccfilter.command(config._replace(mode="c++"), ["-c", "a.cpp"])
    assert cmd[1] == "c++"


# -- the configuration the real ZigToolchain hands the wrapper (host Erlang asked from `erl`) ---------
needs_erl = pytest.mark.skipif(shutil.which("erl") is None, reason="no host Erlang: nothing of it can leak in")


def _fake_root(base: Path) -> Path:
    root = base / "target otp"
    for d in ("erts-99.1/include", "lib/erl_interface-9.9/lib", "lib/erl_interface-9.9/include", "lib/kernel-99",
              "usr/include", "usr/lib"):
        (root / d).mkdir(parents=True)
    return root


@needs_erl
def test_real_config_rewrites_host_erlang_to_the_target_root(tmp_path):
    host = host_erlang()
    root = _fake_root(tmp_path)
    config = ZigToolchain("aarch64-linux-gnu", otp_root=root).cc_config("cc")
    erts = host.root / f"erts-{host.erts_version}" / "include"
    ei = host.app_dirs()["erl_interface"]
    out, _ = ccfilter.filter_args([f"-I{erts}", "-I", str(host.root / "usr/include"), "a.o", str(ei / "lib/libei.a")],
                               config)
    assert _strip_relaxed(out) == [f"-I{root}/erts-99.1/include", "-I", f"{root}/usr/include", "a.o",
                                   f"{root}/lib/erl_interface-9.9/lib/libei.a"]


@needs_erl
def test_real_config_without_a_root_drops_host_erlang(tmp_path):
    host = host_erlang()
    config = ZigToolchain("arm-linux-gnueabihf").cc_config("cc")
    erts = host.root / f"erts-{host.erts_version}" / "include"
    out, notes = ccfilter.filter_args([f"-I{erts}", "-c", "a.c"], config)
    assert _strip_relaxed(out) == ["-c", "a.c"]
    assert any(n.host_path for n in notes)


@needs_erl
def test_real_config_for_the_host_keeps_host_erlang():
    host = host_erlang()
    config = ZigToolchain(host_target()).cc_config("cc")
    erts = host.root / f"erts-{host.erts_version}" / "include"
    out, _ = ccfilter.filter_args([f"-I{erts}", "-c", "a.c"], config)
    assert _strip_relaxed(out) == [f"-I{erts}", "-c", "a.c"]


def test_real_config_maps_host_multiarch_dirs_into_a_sysroot(tmp_path):
    sysroot = tmp_path / "sysroot"
    (sysroot / "usr/include/aarch64-linux-gnu").mkdir(parents=True)
    config = ZigToolchain("aarch64-linux-gnu", sysroot=sysroot).cc_config("cc")
    host_multiarch = host_target().multiarch
    if not host_multiarch:
        pytest.skip("the host has no Debian multiarch tuple")
    args = [f"-I/usr/include/{host_multiarch}", f"-L/usr/lib/{host_multiarch}", "-c", "a.c"]
    out, _ = ccfilter.filter_args(args, config)
    assert _strip_relaxed(out) == [f"-I{sysroot}/usr/include/aarch64-linux-gnu",
                                   f"-L{sysroot}/usr/lib/aarch64-linux-gnu", "-c", "a.c"]
    assert config.arch == "aarch64" and config.os == "linux"


def test_config_survives_its_wrapper_argument():
    config = _config("macos", "aarch64", root=False)._replace(zig="/z/zig", cpu=None, extra=("-L/x",),
                                                              prefix_maps=(("/c", "/xrel-cache"),))
    assert CcConfig.from_arg(config.to_arg()) == config
    assert config != config._replace(cpu="x")
    assert CcConfig.from_arg(json.dumps(config._asdict())) == config  # as earlier versions wrote it


def test_the_filter_imports_only_what_python_starts_with(tmp_path):
    """Every compiler call starts the filter: a module such as json (~17 ms), typing or collections
    imported on its way would cost each call more than zig's own start."""
    config = CONFIGS["linux"]._replace(zig=shutil.which("true") or "/bin/true", target="aarch64-linux-gnu")
    run = subprocess.run([sys.executable, "-S", "-E", "-X", "importtime", ccfilter.__file__, config.to_arg(),
                          "-O2", f"-I{HOST}/erts-13.1.5/include", "-c", "a.c"], capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", "")})
    assert run.returncode == 0, run.stderr
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert {"ccconfig", "cclinker"} <= imported
    assert not imported & {"json", "re", "typing", "collections", "dataclasses", "enum", "functools"}, imported


def test_every_rule_says_why():
    assert all(rule.__doc__ for rule in ccfilter.RULES)
    assert len(set(ccfilter.RULES)) == len(ccfilter.RULES)


def test_wrapper_runs_the_filter_as_a_plain_script(tmp_path):
    """The wrapper runs ccfilter.py under `python -S -E` (no xrel on the path): here with echo as zig."""
    config = CONFIGS["linux-noroot"]._replace(zig=shutil.which("echo") or "/bin/echo", target="aarch64-linux-gnu")
    log = tmp_path / "cc.jsonl"
    env = {"PATH": os.environ.get("PATH", ""), "XREL_CC_LOG": str(log), "XREL_DROP_FLAGS": json.dumps(["-msse2"])}
    run = subprocess.run([sys.executable, "-S", "-E", ccfilter.__file__, config.to_arg(), "-msse2",
                          f"-I{HOST}/erts-13.1.5/include", "-c", "a.c"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[:3] == ["cc", "-target", "aarch64-linux-gnu"]
    assert run.stdout.split()[-2:] == ["-c", "a.c"] and "-msse2" not in run.stdout
    assert "host path" in run.stderr and "ERTS_INCLUDE_DIR" in run.stderr
    record = json.loads(log.read_text())
    assert "dropped -msse2 (recipe drop_flags)" in record["notes"]


def test_compiles_map_the_build_trees_project_dir_to_dot():
    config = CONFIGS["linux"]
    compile_cmd, _ = ccfilter.command(config, ["-c", "a.c", "-o", "a.o"], "/cache/builds/k/root/home/u/app")
    assert "-ffile-prefix-map=/cache/builds/k/root/home/u/app=." in compile_cmd
    link_cmd, _ = ccfilter.command(config, ["a.o", "-shared", "-o", "a.so"], "/cache/builds/k/root/home/u/app")
    assert not any(a.startswith("-ffile-prefix-map") for a in link_cmd)
    assert not any(a.startswith("-ffile-prefix-map") for a in ccfilter.command(config, ["-c", "a.c"])[0])
    one_step, _ = ccfilter.command(config, ["p.c", "-o", "p"], "/t/app")  # compile and link in one call
    assert "-ffile-prefix-map=/t/app=." in one_step


def _maps(cmd: list[str]) -> list[str]:
    return [a for a in cmd if a.startswith("-ffile-prefix-map=")]


def test_compiles_map_the_machines_dirs_to_fixed_names(isolated_cache, tmp_path):
    """Issue 13: xrel's cache (the runtime's headers, the build trees), zig's lib dir, the sysroot and
    the OTP root become fixed names in every compile (C, C++, assembler), the build tree's project
    dir last (clang applies the last map that matches); link-only calls get none."""
    real_runtimes = tmp_path / "shared" / "runtimes"  # an area linked in, as `dist --check`'s scratch cache has it
    real_runtimes.mkdir(parents=True)
    isolated_cache.mkdir()
    (isolated_cache / "runtimes").symlink_to(real_runtimes)
    otp, sysroot = _fake_root(isolated_cache / "runtimes"), isolated_cache / "sysroots" / "s"
    (sysroot / "usr/include/aarch64-linux-gnu").mkdir(parents=True)
    tc = ZigToolchain("aarch64-linux-gnu", otp_root=otp, sysroot=sysroot)
    lib = zig_lib_dir(tc.zig.path)
    assert lib is not None and (lib / "std/std.zig").is_file()
    project = f"{isolated_cache}/builds/k/root/home/u/app"
    for mode, args in (("cc", ["-c", "a.c"]), ("c++", ["-c", "a.cpp"]), ("cc", ["-c", "start.S"]),
                       ("cc", ["p.c", "-o", "p"])):
        cmd, _ = ccfilter.command(tc.cc_config(mode), args, project)
        maps = _maps(cmd)
        assert {f"-ffile-prefix-map={isolated_cache}=/xrel-cache", f"-ffile-prefix-map={lib}=/zig-lib",
                f"-ffile-prefix-map={real_runtimes}=/xrel-cache/runtimes", f"-ffile-prefix-map={otp}=/xrel-otp",
                f"-ffile-prefix-map={real_runtimes / otp.name}=/xrel-otp",
                f"-ffile-prefix-map={sysroot}=/xrel-sysroot"} <= set(maps), (mode, args)
        assert maps[-1] == f"-ffile-prefix-map={project}=."
        olds = [m.split("=")[1] for m in maps]
        assert all(not olds[j].startswith(olds[i] + "/") for i in range(len(olds)) for j in range(i)), olds
        assert cmd.index(maps[-1]) < cmd.index(args[0])  # the build system's own maps come after, and win
    link, _ = ccfilter.command(tc.cc_config("cc"), ["a.o", "-shared", "-o", "a.so"], project)
    assert _maps(link) == []


def test_the_wrapper_script_passes_the_prefix_maps(tmp_path):
    """As run by the cc wrapper (a plain script, XREL_SOURCE_PREFIX from the build), with echo as zig."""
    config = CONFIGS["linux"]._replace(zig=shutil.which("echo") or "/bin/echo", target="aarch64-linux-gnu",
                                       prefix_maps=(("/home/u/.cache/xrel", "/xrel-cache"), ("/z/lib", "/zig-lib")))
    env = {"PATH": os.environ.get("PATH", ""), "XREL_SOURCE_PREFIX": "/home/u/.cache/xrel/builds/k/root/app"}
    run = subprocess.run([sys.executable, "-S", "-E", ccfilter.__file__, config.to_arg(), "-c", "a.c"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert _maps(run.stdout.split()) == ["-ffile-prefix-map=/home/u/.cache/xrel=/xrel-cache",
                                         "-ffile-prefix-map=/z/lib=/zig-lib",
                                         "-ffile-prefix-map=/home/u/.cache/xrel/builds/k/root/app=."]


def test_one_toolchain_for_every_spelling_of_the_interpreter(isolated_cache, tmp_path, monkeypatch):
    """`xrel` (a venv's bin/python3) and `python -m xrel` (bin/python, a link to it) name one toolchain
    dir, else every switch between them rebuilt the whole release (the C compiler looked new)."""
    link = tmp_path / "bin" / "python"
    link.parent.mkdir()
    link.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(link))
    via_link = ZigToolchain("aarch64-linux-gnu")
    linked_dir = via_link.directory
    via_link.write()
    monkeypatch.setattr(sys, "executable", os.path.realpath(sys.executable))
    assert ZigToolchain("aarch64-linux-gnu").directory == linked_dir
    wrapper = (linked_dir / "cc").read_text()
    assert f"exec {os.path.realpath(link)} -S -E " in wrapper, wrapper
