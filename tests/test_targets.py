"""The target model: name parsing, the glibc floor, and the real recipes/targets.toml.

The spellings other tools use are checked against those tools where they are here (zig's own
target list, `rustc --print target-list`, pyelftools/LIEF machine constants) and against the
conventions of cc_precompiler (elixir-lang/cc_precompiler) and rustler_precompiled
(philss/rustler_precompiled), modelled below.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

import lief
import pytest
from elftools.elf.enums import ENUM_E_MACHINE

from xrel import recipes
from xrel.errors import UsageError
from xrel.targets import Target, all_targets, host_target
from xrel.zig.locate import find_zig

TARGETS = all_targets()
NAMES = [t.name for t in TARGETS]

# Issue 3's list: every one of these must exist.
REQUIRED = [
    "x86_64-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf", "x86-linux-gnu", "riscv64-linux-gnu",
    "s390x-linux-gnu", "powerpc64le-linux-gnu", "x86_64-linux-musl", "aarch64-linux-musl", "x86_64-macos",
    "aarch64-macos", "x86_64-windows",
]

# Names users type, from the issue: Rust triples, Erlang system_architecture strings, Docker
# platforms, Debian architectures.
TYPED = [
    ("aarch64-unknown-linux-gnu", "aarch64-linux-gnu"),
    ("armv7-unknown-linux-gnueabihf", "arm-linux-gnueabihf"),
    ("aarch64-apple-darwin", "aarch64-macos"),
    ("x86_64-pc-windows-msvc", "x86_64-windows"),
    ("x86_64-pc-windows-gnu", "x86_64-windows"),
    ("aarch64-unknown-linux-musl", "aarch64-linux-musl"),
    ("arm-unknown-linux-gnueabihf", "arm-linux-gnueabihf"),
    ("armv7l-unknown-linux-gnueabihf", "arm-linux-gnueabihf"),
    ("x86_64-pc-linux-gnu", "x86_64-linux-gnu"),
    ("x86_64-alpine-linux-musl", "x86_64-linux-musl"),
    ("armv7-unknown-linux-musleabihf", "arm-linux-musleabihf"),
    ("armv7-alpine-linux-musleabihf", "arm-linux-musleabihf"),
    ("riscv64gc-unknown-linux-musl", "riscv64-linux-musl"),
    ("aarch64-apple-darwin23.4.0", "aarch64-macos"),
    ("x86_64-apple-darwin21.6.0", "x86_64-macos"),
    ("arm64-apple-darwin22", "aarch64-macos"),
    ("win32", "x86_64-windows"),
    ("linux/arm64", "aarch64-linux-gnu"),
    ("linux/arm/v7", "arm-linux-gnueabihf"),
    ("linux/amd64", "x86_64-linux-gnu"),
    ("arm64", "aarch64-linux-gnu"),
    ("armhf", "arm-linux-gnueabihf"),
    ("amd64", "x86_64-linux-gnu"),
    ("i386", "x86-linux-gnu"),
    ("riscv64", "riscv64-linux-gnu"),
    ("s390x", "s390x-linux-gnu"),
    ("ppc64el", "powerpc64le-linux-gnu"),
    ("  AArch64-Unknown-Linux-GNU ", "aarch64-linux-gnu"),
]


def test_required_targets_exist():
    assert set(REQUIRED) <= set(NAMES), set(REQUIRED) - set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_canonical_name_round_trips(name):
    t = Target.parse(name)
    assert t.name == name
    assert t.id == name and t.glibc is None
    assert Target.parse(t.id) == t
    assert Target.parse(t) is t


@pytest.mark.parametrize("alias,name", [(a, t.name) for t in TARGETS for a in t.aliases])
def test_every_alias_parses_to_its_target(alias, name):
    assert Target.parse(alias).name == name
    assert Target.parse(alias.upper()).name == name


@pytest.mark.parametrize("typed,name", TYPED)
def test_names_users_type(typed, name):
    assert Target.parse(typed).name == name


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_other_spellings_of_a_target_parse_back_to_it(target):
    """The Rust triple, Erlang arch string and Debian arch of a target are names users type."""
    spellings = [target.rust, target.erlang]
    spellings += [s for s in (target.debian,) if s]
    if target.libc == "glibc":
        spellings += [s for s in (target.docker, target.multiarch) if s]
    for spelling in spellings:
        assert Target.parse(spelling).name == target.name, spelling
    if target.docker:
        # a Docker platform names a CPU, not a libc: musl targets share their glibc twin's platform
        assert Target.parse(target.docker).arch == target.arch


def test_aliases_are_unique_across_targets():
    seen: dict[str, str] = {}
    for t in TARGETS:
        for key in (t.name, *t.aliases):
            assert seen.setdefault(key.lower(), t.name) == t.name, f"{key} names {seen[key.lower()]} and {t.name}"


# -- glibc floor -------------------------------------------------------------------------------
def test_glibc_floor_suffix_is_kept():
    t = Target.parse("aarch64-linux-gnu.2.28")
    assert t.name == "aarch64-linux-gnu"
    assert t.glibc == "2.28"
    assert t.id == "aarch64-linux-gnu.2.28"
    assert str(t) == t.id
    assert t.zig_triple == "aarch64-linux-gnu.2.28"
    assert Target.parse(t.id) == t


def test_glibc_floor_on_an_alias_and_a_different_floor():
    t = Target.parse("aarch64-unknown-linux-gnu.2.17")
    assert (t.name, t.glibc, t.id) == ("aarch64-linux-gnu", "2.17", "aarch64-linux-gnu.2.17")
    assert t.zig_triple == "aarch64-linux-gnu.2.17"
    armhf = Target.parse("armhf.2.31")
    assert armhf.zig_triple == "arm-linux-gnueabihf.2.31"


def test_targets_with_and_without_a_floor_differ():
    plain = Target.parse("aarch64-linux-gnu")
    floored = Target.parse("aarch64-linux-gnu.2.28")
    assert plain != floored
    assert floored.with_glibc(None) == plain
    # without a floor, zig still gets the recipe's default (zig's own default is its newest glibc)
    assert plain.zig_triple == f"aarch64-linux-gnu.{plain.default_glibc_floor}"


@pytest.mark.parametrize("name", ["x86_64-linux-musl.2.28", "aarch64-macos.2.28", "aarch64-apple-darwin.2.28",
                                  "x86_64-windows.2.28"])
def test_glibc_floor_on_a_non_glibc_target_is_a_usage_error(name):
    with pytest.raises(UsageError) as e:
        Target.parse(name)
    assert "glibc" in e.value.message
    assert e.value.hint  # names the fix


# -- host and unknown names --------------------------------------------------------------------
def test_host_is_this_machine():
    t = Target.parse("host")
    assert t == host_target()
    assert Target.parse("HOST") == t
    if t.libc == "glibc":
        assert Target.parse("host.2.28") == t.with_glibc("2.28")
    import platform

    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
    assert t.rust.startswith(arch) or t.arch == arch


@pytest.mark.parametrize("typo,suggested", [
    ("aarch64-linx-gnu", "aarch64-linux-gnu"),
    ("arm-linux-gnueabi", "arm-linux-gnueabihf"),
    ("x86_64-linux-mus", "x86_64-linux-musl"),
    ("aarch64-macos-11", "aarch64-macos"),
    ("risc64-linux-gnu", "riscv64-linux-gnu"),
])
def test_unknown_names_suggest_close_targets(typo, suggested):
    with pytest.raises(UsageError) as e:
        Target.parse(typo)
    assert e.value.exit_code == 2
    assert typo in e.value.message
    assert suggested in e.value.hint
    assert "xrel targets" in e.value.hint
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("bad", ["", "   ", "zzzz", "aarch64-linux-gnu.3.0", "mips-linux-gnu"])
def test_bad_names_are_usage_errors(bad):
    with pytest.raises(UsageError) as e:
        Target.parse(bad)
    assert e.value.hint and "xrel targets" in e.value.hint


# -- the recipe file: every field later steps need, spelled as the tools spell it --------------
def test_recipe_file_loads_and_every_entry_becomes_a_target():
    data = recipes.load("targets")["targets"]
    assert list(data) == NAMES
    for name, entry in data.items():
        for key in ("zig", "rust", "erlang", "format", "machine", "bits", "sources", "cmake_system",
                    "cc_precompiler", "rustler_precompiled", "aliases"):
            assert key in entry, f"{name} lacks {key}"


def test_unknown_recipe_key_is_refused():
    from xrel.targets import _from_recipe

    with pytest.raises(UsageError, match=r"targets.toml: unknown key 'zgi' in \[targets.x\]"):
        _from_recipe("x", {"zgi": "x86_64-linux-gnu"}, "targets.toml")


def test_rebar_target_arch_is_a_gnu_triple():
    """port_compiler reads REBAR_TARGET_ARCH: "darwin" selects its macOS flags, mingw32 Windows."""
    for t in TARGETS:
        arch = "i686" if t.arch == "x86" else t.arch
        expected = {"macos": f"{arch}-apple-darwin", "windows": f"{arch}-w64-mingw32"}.get(
            t.os, t.multiarch or f"{arch}-linux-{t.abi}")
        assert t.rebar == expected, t.name


def test_runtime_sources_exist_in_sources_toml():
    known = set(recipes.load("sources")) | {"build"}  # build's settings: recipes/otp_build.toml
    for t in TARGETS:
        assert t.sources, t.name
        for s in t.sources:
            assert s in known, f"{t.name}: source {s} is not in recipes/sources.toml"


def _elf(name: str) -> int:
    return ENUM_E_MACHINE[name]


# What binaries of each arch look like, from the parsing libraries' own constants.
MACHINE = {
    ("elf", "x86_64"): (_elf("EM_X86_64"), 64),
    ("elf", "aarch64"): (_elf("EM_AARCH64"), 64),
    ("elf", "arm"): (_elf("EM_ARM"), 32),
    ("elf", "x86"): (_elf("EM_386"), 32),
    ("elf", "riscv64"): (_elf("EM_RISCV"), 64),
    ("elf", "s390x"): (_elf("EM_S390"), 64),
    ("elf", "powerpc64le"): (_elf("EM_PPC64"), 64),
    ("macho", "x86_64"): (int(lief.MachO.Header.CPU_TYPE.X86_64.value), 64),
    ("macho", "aarch64"): (int(lief.MachO.Header.CPU_TYPE.ARM64.value), 64),
    ("pe", "x86_64"): (int(lief.PE.Header.MACHINE_TYPES.AMD64.value), 64),
}


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_binary_facts_match_the_parsers_constants(target):
    assert target.format == {"linux": "elf", "macos": "macho", "windows": "pe"}[target.os]
    assert (target.machine, target.bits) == MACHINE[(target.format, target.arch)]
    assert target.endian == ("big" if target.arch == "s390x" else "little")
    if target.arch == "arm":
        assert target.float_abi == ("hard" if target.abi.endswith("hf") else "soft")
    else:
        assert target.float_abi is None


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_linux_targets_know_their_libc_debian_and_qemu(target):
    if target.os != "linux":
        assert target.libc is None and target.qemu is None and target.default_glibc_floor is None
        if target.os == "macos":
            assert target.macos_min
        return
    assert target.qemu
    if target.libc == "glibc":
        assert target.debian and target.multiarch and target.default_glibc_floor
    else:
        assert target.libc == "musl" and target.default_glibc_floor is None


@functools.cache
def _zig_targets() -> tuple[set[str], set[str]]:
    """(libc triples zig can provide, glibc versions it knows) from `zig targets`."""
    out = subprocess.run([str(find_zig().path), "targets"], capture_output=True, text=True, check=True).stdout

    def block(name):
        m = re.search(r"\n    \." + name + r" = \.\{\n(.*?)\n    \},", out, re.S)
        assert m, f"`zig targets` has no .{name} list"
        return set(re.findall(r'"([^"]+)"', m.group(1)))

    return block("libc"), block("glibc")


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_zig_can_provide_the_targets_libc(target):
    libcs, glibcs = _zig_targets()
    assert target.zig in libcs or f"{target.zig}-none" in libcs, target.zig
    if target.default_glibc_floor:
        assert f"{target.default_glibc_floor}.0" in glibcs or target.default_glibc_floor in glibcs


@functools.cache
def _rustc_targets() -> set[str]:
    out = subprocess.run(["rustc", "--print", "target-list"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.skipif(not shutil.which("rustc"), reason="rustc is not installed (https://rustup.rs)")
@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_rust_triples_are_rustc_targets(target):
    assert target.rust in _rustc_targets()
    assert target.precompiler_triple("rustler_precompiled") in _rustc_targets()


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_rust_triple_links_with_zig(target):
    """CARGO_TARGET_<TRIPLE>_LINKER points at zig cc, which only speaks the GNU driver: an msvc
    triple would hand it link.exe arguments."""
    if target.os == "windows":
        assert target.rust.endswith("-windows-gnu")
        assert target.zig.endswith("-windows-gnu")
    assert target.rust.split("-")[0] in (target.arch, "i686", "armv7", "riscv64gc")


# cc_precompiler's default compiler table keys (notes section 2.2): the target names its
# users publish artifacts under.
CC_PRECOMPILER_KEYS = {
    "x86_64-linux-gnu", "i686-linux-gnu", "aarch64-linux-gnu", "armv7l-linux-gnueabihf", "riscv64-linux-gnu",
    "powerpc64le-linux-gnu", "s390x-linux-gnu", "x86_64-apple-darwin", "aarch64-apple-darwin",
    "x86_64-windows-msvc",
}
# rustler_precompiled's default target list (notes section 3.1).
RUSTLER_DEFAULT_TARGETS = {
    "aarch64-apple-darwin", "aarch64-unknown-linux-gnu", "aarch64-unknown-linux-musl",
    "arm-unknown-linux-gnueabihf", "riscv64gc-unknown-linux-gnu", "x86_64-apple-darwin",
    "x86_64-pc-windows-gnu", "x86_64-pc-windows-msvc", "x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl",
}


def cc_precompiler_current_target(env: dict[str, str]) -> str:
    """cc_precompiler's current_target/0 with TARGET_* set (notes 2.1): arch-os-abi, unset = ''."""
    return "-".join(env.get(k, "") for k in ("TARGET_ARCH", "TARGET_OS", "TARGET_ABI"))


def rustler_precompiled_target(host_arch: str, env: dict[str, str]) -> str:
    """rustler_precompiled 0.8's target/3 on a Unix host (notes 3.2), as a model."""
    parts = host_arch.split("-")
    keys = {4: ["arch", "vendor", "os", "abi"], 3: ["arch", "vendor", "os"]}.get(len(parts), [])
    sys_arch = dict(zip(keys, parts))
    before = dict(sys_arch)
    for key, var in (("arch", "TARGET_ARCH"), ("vendor", "TARGET_VENDOR"), ("os", "TARGET_OS"), ("abi", "TARGET_ABI")):
        if var in env:
            sys_arch[key] = env[var]
    if sys_arch != before and sys_arch.get("vendor") == before.get("vendor") and sys_arch.get("os") == "linux":
        sys_arch["vendor"] = "unknown"
    os_name = sys_arch.get("os", "")
    if "darwin" in os_name:
        sys_arch["arch"] = "aarch64" if sys_arch["arch"] == "arm" else sys_arch["arch"]
        sys_arch["os"] = "darwin"
    elif "linux" in os_name:
        sys_arch["arch"] = {"amd64": "x86_64", "riscv64": "riscv64gc"}.get(sys_arch["arch"], sys_arch["arch"])
        if sys_arch.get("vendor") in ("pc", "redhat", "suse", "alpine"):
            sys_arch["vendor"] = "unknown"
    return "-".join(sys_arch[k] for k in ("arch", "vendor", "os", "abi") if k in sys_arch)


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_cc_precompiler_spelling(target):
    env = target.precompiler_env("cc_precompiler")
    assert set(env) == {"TARGET_ARCH", "TARGET_OS", "TARGET_ABI"}  # all three, or it builds "arch-os-"
    triple = target.precompiler_triple("cc_precompiler")
    assert cc_precompiler_current_target(env) == triple
    if target.libc != "musl":
        assert triple in CC_PRECOMPILER_KEYS
    else:  # no default key: the glibc twin's spelling, musl for gnu (armv7l-linux-musleabihf)
        assert triple == glibc_twin(target).precompiler_triple("cc_precompiler").replace("-gnu", "-musl")


def glibc_twin(target: Target) -> Target:
    """The glibc target of the same CPU and float ABI."""
    return next(t for t in TARGETS if t.libc == "glibc" and (t.arch, t.float_abi) == (target.arch, target.float_abi))


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_rustler_precompiled_spelling(target):
    triple = target.precompiler_triple("rustler_precompiled")
    if target.libc == "musl" and target.arch in ("arm", "riscv64"):  # not in the default list
        assert triple == glibc_twin(target).precompiler_triple("rustler_precompiled").replace("-gnu", "-musl")
    elif target.arch in ("x86_64", "aarch64", "arm", "riscv64") and target.os != "windows":
        assert triple in RUSTLER_DEFAULT_TARGETS
    if target.os == "windows":
        # what rustler_precompiled picks on a Windows host, where the official OTP is MSVC-built
        assert triple == "x86_64-pc-windows-msvc"
    env = target.precompiler_env("rustler_precompiled")
    assert "" not in env.values(), "an empty TARGET_* still counts as set: it leaves a trailing '-'"
    # From a Linux host every Linux and Windows target is reachable through TARGET_*.
    if target.os != "macos":
        assert rustler_precompiled_target("x86_64-pc-linux-gnu", env) == triple
        assert rustler_precompiled_target("aarch64-unknown-linux-gnu", env) == triple
    # From a Mac, every target is (the host's arch string has no ABI part to leak).
    assert rustler_precompiled_target("aarch64-apple-darwin23.4.0", env) == triple


@pytest.mark.parametrize("name", ["x86_64-macos", "aarch64-macos"])
def test_rustler_precompiled_cannot_select_macos_from_a_linux_host(name):
    """A known limit of rustler_precompiled (notes 3.2): the Linux host's ABI part survives, so
    the build step must fetch the macOS artifact itself or force a source build."""
    target = Target.parse(name)
    got = rustler_precompiled_target("x86_64-pc-linux-gnu", target.precompiler_env("rustler_precompiled"))
    assert got == target.precompiler_triple("rustler_precompiled") + "-gnu"


@pytest.mark.parametrize("target", TARGETS, ids=NAMES)
def test_cmake_and_suffixes(target):
    system, processor = target.cmake_system
    assert system == {"linux": "Linux", "macos": "Darwin", "windows": "Windows"}[target.os]
    assert processor
    assert target.shared_lib_suffix == (".dll" if target.os == "windows" else ".so")
    assert target.exe_suffix == (".exe" if target.os == "windows" else "")


def test_erlang_arch_of_alpine_targets_is_alpines():
    """Alpine's erlang package is configured with --host=<arch>-alpine-linux-musl, which is what
    its VM reports (rustler_precompiled normalises that vendor for this reason)."""
    for t in TARGETS:
        if t.libc == "musl":  # Alpine names 32-bit hard-float ARM armv7
            assert t.erlang == f"{ {'arm': 'armv7'}.get(t.arch, t.arch)}-alpine-linux-{t.abi}"
