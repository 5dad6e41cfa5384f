"""`xrel build-erts` / `--source build` without building: the recipe, the compiler wrappers, the
phases' stamps and resumption, the source's offers and its one-line refusals (fast)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xrel.errors import BuildError, NotAvailableError, UsageError, VerificationError
from xrel.otpbuild import debsrc, depend, phases, recipe, source
from xrel.otpbuild.tools import write_tools
from xrel.targets import Target

MUSL = Target.parse("x86_64-linux-musl")


def _pkg(package: str, version: str, sha: str = "a" * 64) -> debsrc.SourcePackage:
    orig = f"{package}_{debsrc.apt.debian_version_to_upstream(version)}.orig.tar.xz"
    dsc = debsrc.SourceFile(f"{package}.dsc", f"http://m/{package}.dsc", "d" * 64)
    return debsrc.SourcePackage(package, version, dsc, debsrc.SourceFile(orig, f"http://m/{orig}", sha))


# -- the recipe ------------------------------------------------------------------------------------

def test_recipe_resolves_per_target_flags():
    musl, glibc = recipe.for_target(MUSL), recipe.for_target(Target.parse("aarch64-linux-gnu.2.28"))
    assert "-dynamic" in musl.ldflags and "-dynamic" not in glibc.ldflags  # a static beam loads no NIFs
    assert musl.compile_cflags == ("-fPIE",) and not glibc.compile_cflags  # no copy relocation of environ
    assert musl.openssl_target == "linux-x86_64" and glibc.openssl_target == "linux-aarch64"
    assert glibc.zig_triple == "aarch64-linux-gnu.2.28" and glibc.target == "aarch64-linux-gnu.2.28"
    assert glibc.host_triple == "aarch64-unknown-linux-gnu"  # never the build machine's canonical triple
    assert musl.host_triple == "x86_64-linux-musl"
    assert "--disable-dynamic-ssl-lib" in musl.configure
    assert any(p.endswith("jquery-latest.js") for p in musl.dfsg_dropped)
    assert musl.key != glibc.key and len(musl.key) == 12
    assert musl.flags()["ldflags"] == list(musl.ldflags)


@pytest.mark.parametrize("name", ["x86_64-macos", "x86_64-windows"])
def test_a_target_the_recipe_cannot_build_is_one_line(name):
    with pytest.raises(UsageError) as err:
        recipe.for_target(Target.parse(name))
    assert "cannot build OTP for" in str(err.value) and "\n" not in str(err.value)


# -- the compiler wrappers --------------------------------------------------------------------------

@pytest.fixture
def fake_zig(tmp_path) -> Path:
    """A `zig` that logs each call's arguments, one call per line."""
    zig = tmp_path / "zig"
    zig.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\necho "dep:$#"\n')
    zig.chmod(0o755)
    return zig


def test_wrapper_adds_target_and_recipe_flags(tmp_path, fake_zig):
    tools = write_tools(tmp_path / "tools", str(fake_zig), recipe.for_target(MUSL))
    subprocess.run([tools["cc"], "-c", "a.c", "-o", "a.o"], check=True, capture_output=True)
    subprocess.run([tools["cc"], "-shared", "a.o", "-o", "a.so"], check=True, capture_output=True)
    assert (tmp_path / "calls").read_text().splitlines() == [  # -fPIE for compiles only: zig refuses a PIE .so
        "cc -target x86_64-linux-musl -fno-sanitize=undefined -fPIE -c a.c -o a.o",
        "cc -target x86_64-linux-musl -fno-sanitize=undefined -shared a.o -o a.so"]


def test_wrapper_writes_an_empty_precompiled_header(tmp_path, fake_zig):
    tools = write_tools(tmp_path / "tools", str(fake_zig), recipe.for_target(MUSL))
    gch = tmp_path / "asmjit.hpp.gch"
    subprocess.run([tools["c++"], "-x", "c++-header", "asmjit.hpp", "-o", str(gch)], check=True)
    assert gch.read_bytes() == b"" and not (tmp_path / "calls").exists()


def test_wrapper_runs_a_dependency_call_once_per_source(tmp_path, fake_zig):
    tools = write_tools(tmp_path / "tools", str(fake_zig), recipe.for_target(MUSL))
    out = subprocess.run([tools["cc"], "-MM", "-I", "inc.c", "-DX", "a.c", "b.cpp"], check=True,
                         capture_output=True, text=True)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[-1] for c in calls] == ["a.c", "b.cpp"] and all("-I inc.c" in c for c in calls)
    assert out.stdout.count("dep:") == 2


def test_depend_splits_sources_from_option_values():
    assert depend.split_sources(["-o", "x.c", "-MF", "d.c", "a.c", "-Wall", "b.S"]) == \
        (["-o", "x.c", "-MF", "d.c", "-Wall"], ["a.c", "b.S"])


# -- phases: stamps, resumption, crypto -------------------------------------------------------------

def _inputs() -> phases.BuildInputs:
    return phases.BuildInputs(recipe.for_target(MUSL), _pkg("erlang", "1:25.2.3+dfsg-1"),
                              _pkg("openssl", "3.0.22-1"), "zig", 2)


def test_a_killed_build_resumes_after_the_last_finished_phase(tmp_path, monkeypatch):
    ran: list[str] = []

    def phase(name):
        def run(self):
            ran.append(name)
            if name == "make" and ran.count("make") == 1:
                raise KeyboardInterrupt  # killed in the middle of make
        return run

    for name in phases.PHASES:
        monkeypatch.setattr(phases.Build, f"_{name}", phase(name))
    build = phases.Build(_inputs(), tmp_path / "work")
    with pytest.raises(KeyboardInterrupt):
        build.run()
    assert ran == ["sources", "openssl", "configure", "make"]
    assert [p for p in phases.PHASES if build.done(p)] == ["sources", "openssl", "configure"]
    assert build.run() == tmp_path / "work" / "release"
    assert ran[4:] == ["make", "release"] and set(build.seconds()) == set(build.phases)


def test_configure_that_skipped_crypto_fails_in_one_line(tmp_path, monkeypatch):
    build = phases.Build(_inputs(), tmp_path / "work")
    skip = build.otp_src / "lib" / "crypto" / "SKIP"
    skip.parent.mkdir(parents=True)
    skip.write_text("No usable OpenSSL found\n")
    monkeypatch.setattr(phases.Build, "_sh", lambda *a, **k: None)
    monkeypatch.setattr(phases.Build, "_tools", lambda self: {k: k for k in ("cc", "c++", "ar", "ranlib")})
    build.stamps.mkdir(parents=True)
    with pytest.raises(NotAvailableError) as err:
        build._configure()
    assert "configure left crypto out (No usable OpenSSL found)" in str(err.value) and "\n" not in str(err.value)
    assert not build.done("configure")


def test_a_failing_command_names_its_phase_and_log(tmp_path):
    build = phases.Build(_inputs(), tmp_path / "work")
    build.logs.mkdir(parents=True)
    with pytest.raises(BuildError) as err:
        build._sh("make", ["sh", "-c", "echo compiling; echo 'erl_nif.c:1: error: boom'; exit 2"], tmp_path)
    assert "make failed (exit 2): erl_nif.c:1: error: boom" in err.value.message
    assert str(build.logs / "make.log") in err.value.hint


FAKE_CONFIGURE = r"""#!/usr/bin/perl
# Records its arguments and writes a Makefile whose targets install an empty libcrypto.a (under DESTDIR).
open(my $args, ">", "configure.args"); print $args join("\n", @ARGV), "\n"; close $args;
my ($prefix) = map { /^--prefix=(.*)/ ? $1 : () } @ARGV;
open(my $mk, ">", "Makefile");
my $lib = "\$(DESTDIR)$prefix/lib";
print $mk "build_libs:\n\ttrue\ninstall_dev:\n\tmkdir -p $lib && : > $lib/libcrypto.a\n";
"""


def test_openssl_configure_gets_the_system_openssldir(tmp_path, monkeypatch):
    if not shutil.which("perl") or not shutil.which("make"):
        pytest.skip("needs perl and make")
    monkeypatch.setattr(phases.Build, "_tools", lambda self: {k: f"/t/{k}" for k in ("cc", "c++", "ar", "ranlib")})
    build = phases.Build(_inputs(), tmp_path / "work")
    build.logs.mkdir(parents=True)
    build.openssl_src.mkdir()
    (build.openssl_src / "Configure").write_text(FAKE_CONFIGURE)
    build._openssl()
    args = (build.openssl_src / "configure.args").read_text().splitlines()
    assert args[0] == "linux-x86_64" and "--openssldir=/etc/ssl" in args  # the node's CA dir, not the build dir's
    # the node's paths compiled in (ENGINESDIR, MODULESDIR), installed into the build's sysroot
    assert "--prefix=/usr" in args and (build.sysroot / "usr" / "lib" / "libcrypto.a").is_file()


def test_otp_env_sets_the_three_ded_variables_together(tmp_path, monkeypatch):
    monkeypatch.setattr(phases.Build, "_tools", lambda self: {k: f"/t/{k}" for k in ("cc", "c++", "ar", "ranlib")})
    env = phases.Build(_inputs(), tmp_path).otp_env()
    assert env["DED_LD"] == env["CC"] == env["LD"] == "/t/cc"
    assert env["DED_LDFLAGS"] == "-shared -Wl,-Bsymbolic -s" and env["DED_LD_FLAG_RUNTIME_LIBRARY_PATH"] == "-Wl,-R"
    assert env["LDFLAGS"] == "-s -dynamic" and env["erl_xcomp_sysroot"] == str(tmp_path / "sysroot")


# -- the source: offers and refusals ------------------------------------------------------------------

class FakeRepo:
    def __init__(self, versions: dict[str, list[str]]):
        self._versions = versions

    def versions(self, package):
        return self._versions.get(package, [])

    def resolve(self, package, version):
        return _pkg(package, version)


@pytest.fixture
def repo(monkeypatch):
    fake = FakeRepo({"erlang": ["1:27.3.4.1+dfsg-1+deb13u4", "1:25.2.3+dfsg-1+deb12u4", "1:25.2.3+dfsg-1+deb12u1"],
                     "openssl": ["3.5.9-1~deb13u1", "3.0.22-1~deb12u2", "3.0.20-1~deb12u2"]})
    monkeypatch.setattr(source, "_repo", lambda offline: fake)
    return fake


def test_offers_every_debian_otp_with_the_newest_openssl_of_the_series(repo):
    from xrel.runtimes.base import FetchOptions

    offers = source.SOURCE.offers(MUSL, FetchOptions(request=(25,)))
    chosen = next(o for o in offers if o.url)
    assert [o.version for o in offers] == ["27.3.4.1", "25.2.3"] and chosen.version == "25.2.3"
    assert chosen.details["otp"].version == "1:25.2.3+dfsg-1+deb12u4"
    assert chosen.details["openssl"].version == "3.0.22-1~deb12u2"
    assert chosen.url.endswith("erlang_25.2.3.orig.tar.xz") and len(chosen.details["variant"]) == 12


def test_an_otp_version_no_source_has_names_what_exists(repo, isolated_cache):
    from xrel.runtimes import fetch_runtime

    with pytest.raises(NotAvailableError) as err:
        fetch_runtime(MUSL, otp="24", source="build")
    assert "build has 27.3.4.1, 25.2.3" in str(err.value) and "\n" not in str(err.value)
    assert not any((isolated_cache / "runtimes").glob("*"))


def test_a_missing_openssl_series_is_one_line(repo, monkeypatch):
    from xrel.runtimes.base import FetchOptions

    repo._versions["openssl"] = ["3.5.9-1~deb13u1"]
    with pytest.raises(NotAvailableError) as err:
        source.SOURCE.offers(MUSL, FetchOptions(request=(25,)))
    assert "no Debian openssl source of the 3.0 series" in str(err.value) and "3.5.9" in str(err.value)


def test_a_host_erl_of_another_major_means_a_bootstrap_build_first(monkeypatch):
    monkeypatch.setattr(source, "_host_major", lambda: 25)
    assert source.needs_bootstrap("27.3.4.1") and not source.needs_bootstrap("25.2.3")
    monkeypatch.setattr(source, "_host_major", lambda: None)  # no erl at all: the bootstrap does without
    assert source.needs_bootstrap("25.2.3")


def test_a_build_without_the_crypto_nif_is_refused(tmp_path):
    with pytest.raises(BuildError, match="has no crypto NIF"):
        source.require_crypto(tmp_path, MUSL)


def test_a_dsc_naming_another_orig_hash_is_refused(tmp_path, monkeypatch):
    pkg = _pkg("erlang", "1:25.2.3+dfsg-1", sha="b" * 64)
    dsc = tmp_path / "x.dsc"
    dsc.write_text(f"Source: erlang\nChecksums-Sha256:\n {'c' * 64} 10 {pkg.orig.name}\n")
    monkeypatch.setattr(debsrc, "fetch_verified", lambda url, sha, name: dsc)
    with pytest.raises(VerificationError, match="does not name"):
        debsrc.fetch(pkg)


def test_cli_lists_build_erts_and_refuses_a_target_it_cannot_build(isolated_cache):
    env = {**os.environ, "XREL_CACHE_DIR": str(isolated_cache)}
    out = subprocess.run([sys.executable, "-m", "xrel", "build-erts", "x86_64-windows", "--otp", "25"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "cannot build OTP for x86_64-windows" in out.stderr
    assert not any((isolated_cache / "runtimes").glob("*"))


# -- running musl releases: Debian's musl package as the sysroot --------------------------------------

def test_musl_sysroot_links_are_made_relative(tmp_path):
    from xrel.emulate import musl

    (tmp_path / "usr" / "lib" / "aarch64-linux-musl").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "aarch64-linux-musl" / "libc.so").write_text("")
    (tmp_path / "lib").mkdir()
    os.symlink("/usr/lib/aarch64-linux-musl/libc.so", tmp_path / "lib" / "ld-musl-aarch64.so.1")
    musl.relative_links(tmp_path)
    assert os.readlink(tmp_path / "lib" / "ld-musl-aarch64.so.1") == "../usr/lib/aarch64-linux-musl/libc.so"
    assert (tmp_path / "lib" / "ld-musl-aarch64.so.1").exists()


def test_musl_targets_map_to_debian_arches_and_loaders():
    from xrel.emulate import musl

    aarch64 = Target.parse("aarch64-linux-musl")
    assert (musl.debian_arch(MUSL), musl.debian_arch(aarch64)) == ("amd64", "arm64")
    assert (musl.loader_name(MUSL), musl.loader_name(aarch64)) == ("ld-musl-x86_64.so.1", "ld-musl-aarch64.so.1")
    armhf, riscv64 = Target.parse("arm-linux-musleabihf"), Target.parse("riscv64-linux-musl")
    assert (musl.debian_arch(armhf), musl.debian_arch(riscv64)) == ("armhf", "riscv64")
    assert (musl.loader_name(armhf), musl.loader_name(riscv64)) == ("ld-musl-armhf.so.1", "ld-musl-riscv64.so.1")


def test_armhf_and_riscv64_musl_resolve_in_the_recipe():
    armhf = recipe.for_target(Target.parse("armv7-unknown-linux-musleabihf"))
    riscv64 = recipe.for_target(Target.parse("riscv64-linux-musl"))
    assert (armhf.host_triple, armhf.openssl_target) == ("arm-linux-musleabihf", "linux-armv4")
    assert "-mcpu=generic+v7a+vfp3d16" in armhf.cflags  # the same CPU NIFs are built for
    assert (riscv64.host_triple, riscv64.openssl_target) == ("riscv64-linux-musl", "linux64-riscv64")
    assert "-dynamic" in riscv64.ldflags and not any(f.startswith("-mcpu") for f in riscv64.cflags)


def test_musl_releases_are_no_longer_refused_here():
    from xrel.emulate import qemu
    from xrel.targets import host_target

    if host_target().arch != "x86_64" or sys.platform != "linux":
        pytest.skip("x86_64 Linux host only")
    assert qemu.emulation(MUSL).mode == "native"  # the host's musl loader, else Debian's in a namespace
    assert "Alpine" not in qemu.emulation(Target.parse("aarch64-linux-musl")).reason


def test_a_lock_pins_the_source_tarballs_and_the_build_flags(tmp_path):
    from xrel.project import lock
    from xrel.runtimes import Runtime

    inputs = _inputs()
    build = phases.Build(inputs, tmp_path)
    meta = {"target": MUSL.name, "otp_version": "25.2.3", "source": "build", **source._provenance(inputs, build)}
    locked = lock.locked_runtime_from(Runtime(tmp_path, meta))
    assert dict(locked.files)["http://m/erlang_25.2.3.orig.tar.xz"] == "a" * 64
    assert source.FLAGS_ENTRY in dict(locked.files) and locked.revision is None
    changed = {**meta["sha256"], source.FLAGS_ENTRY: "0" * 64}
    with pytest.raises(VerificationError, match="build-flags.json"):
        lock._check_files(locked, {"sha256": changed})
    lock._check_files(locked, meta)


def test_source_fixes_apply_to_the_versions_named_and_refuse_a_source_they_do_not_fit(tmp_path):
    fix = recipe.load().otp.source_fixes[0]
    dh = tmp_path / fix.file
    dh.parent.mkdir(parents=True)
    original = "\n".join(old for old, _new in fix.replace)
    dh.write_text(original)
    assert phases.apply_source_fixes(tmp_path, "27.3.4.1", (fix,)) == [] and dh.read_text() == original
    assert phases.apply_source_fixes(tmp_path, "25.2.3", (fix,)) == [fix.file]
    assert "ErlNifUInt64 len" in dh.read_text() and "enif_get_uint64(env, argv[3]" in dh.read_text()
    with pytest.raises(BuildError) as err:  # applied already: the old text is gone
        phases.apply_source_fixes(tmp_path, "25.2.3", (fix,))
    assert "does not fit OTP 25.2.3: its text occurs 0 times" in str(err.value) and "\n" not in str(err.value)
    assert recipe.for_target(MUSL).flags()["source_fixes"][0]["file"] == fix.file  # part of the build's key


# -- leaving OTP applications out (a shorter build) -----------------------------------------------

def test_apps_left_out_go_to_configure_and_make_a_build_of_their_own(tmp_path, monkeypatch):
    full, short = recipe.for_target(MUSL), recipe.for_target(MUSL, ["snmp", "megaco", "snmp"])
    assert short.without_apps == ("megaco", "snmp") and short.key != full.key
    assert "without_apps" not in full.flags()  # the flags (and keys) of builds made before it existed
    build = phases.Build(dataclasses.replace(_inputs(), build=short), tmp_path / "work")
    calls: list[list[str]] = []
    monkeypatch.setattr(phases.Build, "_sh", lambda self, phase, argv, *a, **k: calls.append(argv))
    monkeypatch.setattr(phases.Build, "_tools", lambda self: {k: k for k in ("cc", "c++", "ar", "ranlib")})
    build._configure()
    assert calls[0][-2:] == ["--without-megaco", "--without-snmp"]


@pytest.mark.parametrize("apps, message", [(["crypto"], "crypto cannot be left out"),
                                           (["kernel", "megaco"], "kernel cannot be left out"),
                                           (["Megaco;rm"], "is not an OTP application name")])
def test_an_app_that_cannot_be_left_out_is_one_line(apps, message):
    with pytest.raises(UsageError) as err:
        recipe.for_target(MUSL, apps)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_app_the_source_lacks_names_the_apps_it_has(tmp_path):
    for app in ("kernel", "megaco", "ssh"):
        (tmp_path / "lib" / app).mkdir(parents=True)
    phases.check_apps_exist(tmp_path, "25.2.3", ("megaco",))
    with pytest.raises(UsageError) as err:
        phases.check_apps_exist(tmp_path, "25.2.3", ("megaco", "megacoo"))
    assert "OTP 25.2.3 has no application megacoo to leave out (it has: kernel, megaco, ssh)" in str(err.value)


def _cached_runtime(cache: Path, name: str, source: str, without: list[str]) -> None:
    root = cache / "runtimes" / f"otp-25.2.3-{MUSL.name}-{name}"
    root.mkdir(parents=True)
    meta = {"target": MUSL.name, "otp_version": "25.2.3", "otp_major": 25, "source": source,
            "build": {"without_apps": without} if without else {}}
    (root / "xrel-runtime.json").write_text(json.dumps(meta))


def test_a_cached_build_is_used_only_for_the_same_apps_left_out(isolated_cache):
    from xrel.runtimes import fetch_runtime

    _cached_runtime(isolated_cache, "build-full", "build", [])
    _cached_runtime(isolated_cache, "build-short", "build", ["megaco", "snmp"])
    assert fetch_runtime(MUSL, otp="25.2.3", source="build").root.name.endswith("build-full")
    short = fetch_runtime(MUSL, otp="25.2.3", source="build", without_apps=["snmp", "megaco"])
    assert short.root.name.endswith("build-short")
    with pytest.raises(UsageError, match="only a runtime built from source can leave out"):
        fetch_runtime(MUSL, otp="25.2.3", source="alpine", without_apps=["megaco"])


def test_a_lock_finds_the_cached_build_it_names_whatever_it_left_out(isolated_cache):
    from xrel.project import lock
    from xrel.runtimes import cached_runtimes

    _cached_runtime(isolated_cache, "build-short", "build", ["megaco", "snmp"])
    short = cached_runtimes(MUSL, ["build"])[0]
    assert lock.fetch_locked(MUSL, lock.locked_runtime_from(short), without_apps=("megaco", "snmp")).root == short.root


def test_xrel_toml_leaves_apps_out_only_of_a_runtime_built_from_source(tmp_path):
    from xrel.project.config import load_config
    from xrel.project.locator import ConfigError

    def pins(table: str):
        (tmp_path / "xrel.toml").write_text(f'targets = ["x86_64-linux-musl"]\n\n[target.x86_64-linux-musl]\n{table}')
        return load_config(tmp_path).targets[0]

    assert pins('source = "build"\nwithout_apps = ["snmp", "megaco"]\n').without_apps == ("megaco", "snmp")
    with pytest.raises(ConfigError, match=r"xrel.toml:6: without_apps needs source = \"build\""):
        pins('source = "alpine"\n\nwithout_apps = ["megaco"]\n')
    with pytest.raises(ConfigError, match="xrel.toml:6: sasl cannot be left out"):
        pins('source = "build"\n\nwithout_apps = ["sasl"]\n')
