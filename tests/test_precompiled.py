"""Precompiled NIFs cross-built by xrel: deps following rustler_precompiled's and elixir_make +
cc_precompiler's contracts fetch the TARGET's artifact, from a local server in GitHub release
layout, checked against the checksum files they ship.

Fixtures: stand-ins for rustler_precompiled 0.8.4, cc_precompiler 0.1.11 and elixir_make 0.9
(hex is unreachable) with their env spellings, artifact names, checksum files and module-attribute
baking; `rp_nif` (rustler_precompiled, its crate builds when forced), `ccp_nif` (cc_precompiler,
a Makefile for source builds), `hp_nif` (a home-grown download for the compiling machine, which
ignores TARGET_*). The published artifacts are real NIF libraries zig builds here for each target
against that target's OTP headers.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import xrel
from conftest import needs_apt, needs_make, needs_mix
from helpers import HOST_STD, XREL, copy_fixtures, has_rust_std, runnable
from otp_tree import RELEASE_APPS, build_otp_tree
from runtime_server import Upstream
from xrel.errors import DownloadError, InspectionError, MissingToolError, NotAvailableError, VerificationError
from xrel.inspection import binaries
from xrel.storage import cache
from xrel.targets import Target
from xrel.zig.toolchain import ZigToolchain

pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow]

FIXTURES = ("rustler", "rustler_precompiled", "cc_precompiler", "rust_nif", "rp_nif", "ccp_nif", "hp_nif",
            "uses_precompiled", "uses_host_only", "uses_ccp")
NIF_VERSION = "2.16"  # OTP 25 on this host (rustler_precompiled and elixir_make use the host VM's)
GITHUB = "https://github.com/xrel-fixtures"
LINUX = ["arm-linux-gnueabihf", "aarch64-linux-gnu"]


@dataclass
class Published:
    server: Upstream
    root: Path

    def url(self, path: str) -> str:
        return self.server.url(f"gh/{path}")


@functools.cache
def nif_library(target: Target, module: str, origin: str, otp_root: Path, out: Path) -> bytes:
    """A NIF library for `target` (ccp_nif.c, reporting `origin`), built by zig like a publisher's CI
    (once per session: a published artifact never changes)."""
    env = ZigToolchain(target, otp_root=otp_root).env()
    src = Path(__file__).parent / "fixtures" / "ccp_nif" / "c_src" / "ccp_nif.c"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([env["CC"], "-O2", "-fPIC", "-shared", f"-I{env['ERTS_INCLUDE_DIR']}", f"-DNIF_MODULE={module}",
                    f'-DNIF_ORIGIN="{origin}"', str(src), "-o", str(out)], check=True)
    return out.read_bytes()


def tar_gz(member: str, data: bytes) -> bytes:
    """A release asset is published once: the same bytes every time (no timestamps)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(member)
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def write_checksums(path: Path, archives: dict[str, bytes]) -> None:
    """The libraries' own format: sorted `"<file>" => "sha256:<hex>",` lines in a map literal."""
    lines = [f'  "{name}" => "sha256:{hashlib.sha256(data).hexdigest()}",\n' for name, data in sorted(archives.items())]
    path.write_text("%{\n" + "".join(lines) + "}\n")


def publish(pub: Published, project: Path, targets: list[str], otp_roots: dict[str, Path], *,
            rp_version: str = "0.1.0", ccp_version: str = "0.3.0", damaged: tuple[str, ...] = ()) -> None:
    """Build and serve rp_nif's and ccp_nif's artifacts for `targets`, write their checksum files
    into the copies of the deps; archives named in `damaged` are served with bytes flipped."""
    rp, ccp = {}, {}
    for name in targets:
        t = Target.parse(name)
        work = pub.root / "artifacts" / t.id
        rp_triple, cc_triple = t.precompiler_triple("rustler_precompiled"), t.precompiler_triple("cc_precompiler")
        windows = t.os == "windows"
        lib = f"{'' if windows else 'lib'}rp_nif-v{rp_version}-nif-{NIF_VERSION}-{rp_triple}"
        ext = ".dll" if windows else ".so"
        rp[f"{lib}{ext}.tar.gz"] = tar_gz(lib + ext, nif_library(t, "Elixir.RpNif.Native", f"precompiled:{rp_triple}",
                                                                  otp_roots[name], work / f"rp{ext}"))
        ccp[f"ccp_nif-nif-{NIF_VERSION}-{cc_triple}-{ccp_version}.tar.gz"] = tar_gz(
            "ccp_nif" + ext, nif_library(t, "Elixir.CcpNif", f"precompiled:{cc_triple}", otp_roots[name],
                                         work / f"c{ext}"))
    for archives, dep, version in ((rp, "rp_nif", rp_version), (ccp, "ccp_nif", ccp_version)):
        for file, data in archives.items():
            served = bytes(b ^ 0xFF for b in data[:64]) + data[64:] if file in damaged else data
            pub.server.publish(f"gh/{dep}/releases/download/v{version}/{file}", served)
    write_checksums(project.parent / "rp_nif" / "checksum-Elixir.RpNif.Native.exs", rp)
    write_checksums(project.parent / "ccp_nif" / "checksum.exs", ccp)


def copy_project(pub: Published, dest: Path, name: str = "uses_precompiled") -> Path:
    """The fixtures, with the packages' GitHub release URLs pointing at the local server."""
    copy_fixtures(dest, *FIXTURES)
    for path in (dest / "rp_nif/lib/rp_nif.ex", dest / "ccp_nif/mix.exs", dest / "hp_nif/lib/hp_nif.ex"):
        path.write_text(path.read_text().replace(GITHUB, pub.server.url("gh")))
    return dest / name


def set_version(project: Path, dep: str, old: str, new: str) -> None:
    """A new version in the dep's mix.exs, written in a later second than anything before the call:
    Mix compares whole-second mtimes, and a dep compiled in the same second would not be stale."""
    time.sleep(1.01 - time.time() % 1)
    mix = project.parent / dep / "mix.exs"
    mix.write_text(mix.read_text().replace(f'"{old}"', f'"{new}"'))


def debian_roots(targets: list[str]) -> dict[str, Path]:
    return {t: Path(xrel.fetch_runtime(t, otp="25").root) for t in targets}


def run_report(release: Path, module: str = "UsesPrecompiled") -> str:
    out = subprocess.run([*XREL, "-q", "run", str(release), "eval", f"IO.puts({module}.report())"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()[-1]


# What each library makes of the TARGET_* xrel sets for a target (the rest of the triple comes
# from this x86_64 Linux VM): rustler_precompiled's Rust triple and cc_precompiler's arch-os-abi.
# macOS: rustler_precompiled keeps the host's ABI, so no TARGET_* spelling reaches its triple.
SPELLINGS = {
    "x86_64-linux-gnu": ("x86_64-unknown-linux-gnu", "x86_64-linux-gnu"),
    "aarch64-linux-gnu": ("aarch64-unknown-linux-gnu", "aarch64-linux-gnu"),
    "arm-linux-gnueabihf": ("arm-unknown-linux-gnueabihf", "armv7l-linux-gnueabihf"),
    "x86-linux-gnu": ("i686-unknown-linux-gnu", "i686-linux-gnu"),
    "riscv64-linux-gnu": ("riscv64gc-unknown-linux-gnu", "riscv64-linux-gnu"),
    "s390x-linux-gnu": ("s390x-unknown-linux-gnu", "s390x-linux-gnu"),
    "powerpc64le-linux-gnu": ("powerpc64le-unknown-linux-gnu", "powerpc64le-linux-gnu"),
    "x86_64-linux-musl": ("x86_64-unknown-linux-musl", "x86_64-linux-musl"),
    "aarch64-linux-musl": ("aarch64-unknown-linux-musl", "aarch64-linux-musl"),
    "arm-linux-musleabihf": ("arm-unknown-linux-musleabihf", "armv7l-linux-musleabihf"),
    "riscv64-linux-musl": ("riscv64gc-unknown-linux-musl", "riscv64-linux-musl"),
    "x86_64-macos": ("x86_64-apple-darwin-gnu", "x86_64-apple-darwin"),
    "aarch64-macos": ("aarch64-apple-darwin-gnu", "aarch64-apple-darwin"),
    "x86_64-windows": ("x86_64-pc-windows-msvc", "x86_64-windows-msvc"),
}


def test_each_library_reads_xrels_target_variables_as_intended(tmp_path):
    """For every target: classify the fixture deps as xrel does, take the env App.env_for gives
    each, and let the libraries' own code compute the triple (no mix project needed)."""
    from xrel.release.native import classify
    from xrel.targets import all_targets

    root = copy_fixtures(tmp_path, "rp_nif", "ccp_nif", "rustler_precompiled", "cc_precompiler", "rustler")
    rp, ccp = classify("rp_nif", root / "rp_nif"), classify("ccp_nif", root / "ccp_nif")
    assert (rp.precompiler, ccp.precompiler) == ("rustler_precompiled", "cc_precompiler")
    for lib in ("rustler_precompiled", "cc_precompiler", "rustler"):  # the libraries are not their own users
        app = classify(lib, root / lib)
        assert app.precompiler is None and "rustler" not in app.kinds and not app.recompile_per_target, app
    assert {t.name for t in all_targets()} == set(SPELLINGS)
    env_line = lambda app, t: " ".join(f"{k}={v}" for k, v in sorted(app.env_for(t).items()))  # noqa: E731
    cases = "\n".join(f"{t.name};{env_line(rp, t)};{env_line(ccp, t)}" for t in all_targets())
    out = subprocess.run(["elixir", str(Path(__file__).with_name("precompiler_targets.exs"))], capture_output=True,
                         text=True, env={**os.environ, "FIXTURES": str(root), "CASES": cases}, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {r[0]: r[1:] for r in (line.split("\t") for line in out.stdout.splitlines())}
    for t in all_targets():
        rust_triple, rp_default, cc_triple, cc_default = rows[t.name]
        assert (rust_triple, cc_triple) == SPELLINGS[t.name], t.name
        if t.os != "macos":  # what xrel expects the artifacts to be named
            assert rust_triple == t.precompiler_triple("rustler_precompiled")
        assert cc_triple == t.precompiler_triple("cc_precompiler")
        # rustler_precompiled's default targets / cc_precompiler's default table know these names
        assert rp_default == ("default" if t.name in ("x86_64-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf",
                                                      "riscv64-linux-gnu", "x86_64-linux-musl", "aarch64-linux-musl",
                                                      "x86_64-windows") else "not-default"), t.name
        assert cc_default == ("not-default" if "musl" in t.name else "default"), t.name


@pytest.fixture(scope="module")
def pub(tmp_path_factory):
    server = Upstream()
    yield Published(server, tmp_path_factory.mktemp("precompiled"))
    server.server.stop()


@pytest.fixture(scope="module")
def linux_build(pub):
    """One xrel build of uses_precompiled for armhf and arm64."""
    project = copy_project(pub, pub.root / "linux")
    publish(pub, project, LINUX, debian_roots(LINUX))
    return project, xrel.build(project, LINUX)


def test_each_target_gets_its_own_artifacts(pub, linux_build):
    _project, result = linux_build
    machines = {"arm-linux-gnueabihf": 40, "aarch64-linux-gnu": 183}
    for t in result.targets:
        target = Target.parse(t.target)
        release = Path(t.release_dir)
        triple = target.precompiler_triple("rustler_precompiled")
        rp = release / f"lib/rp_nif-0.1.0/priv/native/librp_nif-v0.1.0-nif-{NIF_VERSION}-{triple}.so"
        ccp = release / "lib/ccp_nif-0.3.0/priv/ccp_nif.so"
        for nif in (rp, ccp):
            assert binaries.read(nif).machine == machines[t.target], nif
        # downloaded, not built from source (a target's own `mix release` instead of a derived one is
        # noted too: rustler_precompiled names priv/native's file after the target)
        assert [n for n in t.notes if not n.startswith(("runtime: ", "its own mix release"))] == [], t.notes
        cc_triple = target.precompiler_triple("cc_precompiler")
        assert pub.server.count(f"gh/rp_nif/releases/download/v0.1.0/{rp.name}.tar.gz") == 1
        ccp_file = f"ccp_nif-nif-{NIF_VERSION}-{cc_triple}-0.3.0.tar.gz"
        assert pub.server.count(f"gh/ccp_nif/releases/download/v0.3.0/{ccp_file}") == 1
    # the precompilers ran in the targets' trees: the user's copies of the deps got nothing
    assert not list((pub.root / "linux").glob("*/priv")) and not list((pub.root / "linux").glob("rp_nif/_build"))


@pytest.mark.parametrize("target,arch,pointer", [
    pytest.param("arm-linux-gnueabihf", "arm", 4, marks=runnable("arm-linux-gnueabihf")),
    pytest.param("aarch64-linux-gnu", "aarch64", 8, marks=runnable("aarch64-linux-gnu")),
])
def test_artifacts_load_on_the_emulated_cpu(linux_build, target, arch, pointer):
    _project, result = linux_build
    release = Path(next(t.release_dir for t in result.targets if t.target == target))
    t = Target.parse(target)
    rp, cc = t.precompiler_triple("rustler_precompiled"), t.precompiler_triple("cc_precompiler")
    # the baked load path (@rustler_precompiled_load_from) names the target's artifact
    assert run_report(release) == f"rp=precompiled:{rp}:{arch}:{pointer}:42 ccp=precompiled:{cc}:{arch}:{pointer}:42"
    smoke = xrel.smoke(release)
    assert smoke.ok, smoke.to_dict()
    assert f"lib/rp_nif-0.1.0/priv/native/librp_nif-v0.1.0-nif-{NIF_VERSION}-{rp}.so" in smoke.nifs_loaded
    assert "lib/ccp_nif-0.3.0/priv/ccp_nif.so" in smoke.nifs_loaded


def test_no_artifact_for_the_target_is_named_then_forced_from_source(pub, monkeypatch):
    """rp_nif publishes nothing for x86_64 Linux: a clear error; forced, Rustler builds its crate
    for the target; ccp_nif has no x86_64 artifact either and elixir_make builds it from source."""
    project = copy_project(pub, pub.root / "x86_64")
    publish(pub, project, LINUX, debian_roots(LINUX))
    with pytest.raises(NotAvailableError) as err:
        xrel.build(project, ["x86_64-linux-gnu"])
    message = str(err.value)
    assert "rp_nif" in message and "x86_64-linux-gnu" in message and "x86_64-unknown-linux-gnu" in message
    assert "RUSTLER_PRECOMPILED_FORCE_BUILD_ALL=1" in message and len(message.splitlines()) == 1
    if not has_rust_std(HOST_STD):
        pytest.skip(f"forcing builds rp_nif's crate, which needs cargo and the {HOST_STD} Rust std")
    monkeypatch.setenv("RUSTLER_PRECOMPILED_FORCE_BUILD_ALL", "1")
    project = copy_project(pub, pub.root / "x86_64-forced")  # a fresh tree: ccp_nif compiles (and is noted) again
    publish(pub, project, LINUX, debian_roots(LINUX))
    result = xrel.build(project, ["x86_64-linux-gnu"])
    t = result.targets[0]
    assert any("ccp_nif publishes no precompiled NIF for x86_64-linux-gnu" in n for n in t.notes), t.notes
    assert run_report(Path(t.release_dir)) == "rp=rust:x86_64:8:42 ccp=source:x86_64:8:42"


def test_damaged_artifacts(pub):
    """elixir_make falls back to a source build (noted); rustler_precompiled fails, naming the dep,
    and xrel drops the damaged archive from its cache."""
    project = copy_project(pub, pub.root / "damaged")
    set_version(project, "ccp_nif", "0.3.0", "0.3.1")
    publish(pub, project, ["arm-linux-gnueabihf"], debian_roots(["arm-linux-gnueabihf"]), ccp_version="0.3.1",
            damaged=(f"ccp_nif-nif-{NIF_VERSION}-armv7l-linux-gnueabihf-0.3.1.tar.gz",))
    result = xrel.build(project, ["arm-linux-gnueabihf"])
    t = result.targets[0]
    assert any("ccp_nif: its precompiled NIF could not be installed" in n and "does not match its checksum" in n
               for n in t.notes), t.notes
    assert binaries.read(Path(t.release_dir) / "lib/ccp_nif-0.3.1/priv/ccp_nif.so").machine == 40  # zig, from source
    set_version(project, "rp_nif", "0.1.0", "0.1.1")
    bad = f"librp_nif-v0.1.1-nif-{NIF_VERSION}-arm-unknown-linux-gnueabihf.so.tar.gz"
    publish(pub, project, ["arm-linux-gnueabihf"], debian_roots(["arm-linux-gnueabihf"]), rp_version="0.1.1",
            ccp_version="0.3.1", damaged=(bad,))
    with pytest.raises(VerificationError) as err:
        xrel.build(project, ["arm-linux-gnueabihf"])
    assert f"dependency rp_nif: the precompiled NIF {bad} for arm-linux-gnueabihf does not match its sha256 in " \
           "checksum-Elixir.RpNif.Native.exs" in str(err.value)
    assert not (cache.area("precompiled") / "rustler_precompiled" / bad).exists()


def test_a_dep_that_ignores_target_vars_is_caught_by_inspection(pub):
    project = copy_project(pub, pub.root / "host_only", "uses_host_only")
    host = Target.parse("x86_64-linux-gnu")
    pub.server.publish("gh/hp_nif/releases/download/v0.1.0/hp_nif-x86_64-pc-linux-gnu.so",
                       nif_library(host, "Elixir.HpNif", "precompiled:host", debian_roots([host.name])[host.name],
                                   pub.root / "artifacts" / "hp.so"))
    with pytest.raises(InspectionError) as err:
        xrel.build(project, ["aarch64-linux-gnu"])
    message = str(err.value)
    assert "lib/hp_nif-0.1.0/priv/hp_nif.so" in message and "dependency hp_nif" in message and "x86-64" in message


def test_windows_release_fetches_dll_artifacts(pub):
    """x86_64-windows (an OTP tree of zig-built PE files as its runtime): rp_nif's
    rp_nif-...-x86_64-pc-windows-msvc.dll and ccp_nif's x86_64-windows-msvc artifact; an artifact
    the server does not have is a download error naming the dep."""
    tree = build_otp_tree("x86_64-windows", pub.root / "otp-windows", apps=RELEASE_APPS)
    project = copy_project(pub, pub.root / "windows")
    publish(pub, project, ["x86_64-windows"], {"x86_64-windows": tree})
    rp_name = f"rp_nif-v0.1.0-nif-{NIF_VERSION}-x86_64-pc-windows-msvc.dll"
    missing = pub.server.files.pop(f"/gh/rp_nif/releases/download/v0.1.0/{rp_name}.tar.gz")  # not uploaded yet
    with pytest.raises(DownloadError, match=rf"dependency rp_nif: could not download its precompiled NIF for "
                                            rf"x86_64-windows from http\S+/{re.escape(rp_name)}.tar.gz \(HTTP 404\)"):
        xrel.build(project, ["x86_64-windows"], source=f"path:{tree}")
    pub.server.files[f"/gh/rp_nif/releases/download/v0.1.0/{rp_name}.tar.gz"] = missing
    result = xrel.build(project, ["x86_64-windows"], source=f"path:{tree}")
    release = Path(result.targets[0].release_dir)
    rp = release / f"lib/rp_nif-0.1.0/priv/native/{rp_name}"
    ccp = release / "lib/ccp_nif-0.3.0/priv/ccp_nif.dll"
    for nif in (rp, ccp):
        info = binaries.read(nif)
        assert (info.format, info.kind, info.machine) == ("pe", "shared", 0x8664), nif
    privs = [p.name for p in release.glob("lib/*_nif-*/priv/**/*") if p.is_file()]
    assert not [n for n in privs if n.endswith((".so", ".pdb", ".lib"))], privs
    assert (release / "bin" / "uses_precompiled.bat").is_file()


def test_macos(pub, monkeypatch):
    """x86_64-macos: ccp_nif fetches x86_64-apple-darwin; rustler_precompiled cannot name a macOS
    triple from Linux (a clear error), and forcing needs the macOS Rust std (named)."""
    tree = build_otp_tree("x86_64-macos", pub.root / "otp-macos", apps=RELEASE_APPS)
    project = copy_project(pub, pub.root / "macos", "uses_ccp")
    publish(pub, project, ["x86_64-macos"], {"x86_64-macos": tree})
    result = xrel.build(project, ["x86_64-macos"], source=f"path:{tree}")
    nif = Path(result.targets[0].release_dir) / "lib/ccp_nif-0.3.0/priv/ccp_nif.so"
    info = binaries.read(nif)
    assert (info.format, info.kind, info.machine) == ("macho", "shared", 0x01000007)
    archive = _served(pub, f"ccp_nif-nif-{NIF_VERSION}-x86_64-apple-darwin-0.3.0.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(archive)) as served:
        assert served.extractfile("ccp_nif.so").read() == nif.read_bytes()  # shipped exactly as published
    both = project.parent / "uses_precompiled"
    with pytest.raises(NotAvailableError, match=r"rp_nif .*x86_64-macos \(it asked for x86_64-apple-darwin-gnu\).*"
                                                r"cannot fetch macOS artifacts"):
        xrel.build(both, ["x86_64-macos"], source=f"path:{tree}")
    if has_rust_std("x86_64-apple-darwin"):
        return
    monkeypatch.setenv("RUSTLER_PRECOMPILED_FORCE_BUILD_ALL", "true")
    # forced to build from source: the missing piece is named (cargo itself, or the target's Rust std)
    missing = r"rustup target add x86_64-apple-darwin" if shutil.which("cargo") else r"`cargo` is not on PATH \(rp_nif "
    with pytest.raises(MissingToolError, match=missing):
        xrel.build(both, ["x86_64-macos"], source=f"path:{tree}")


def _served(pub: Published, name: str) -> bytes:
    for path, answer in pub.server.files.items():
        if path.endswith("/" + name):
            return answer.args[0]
    raise KeyError(name)
