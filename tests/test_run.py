"""`xrel run` and `xrel smoke`: real releases built by xrel, booted under real qemu-user (or in a
private mount namespace for i386 and newer-glibc x86_64), with Debian sysroots."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import xrel
from conftest import needs_apt, needs_make, needs_mix
from helpers import XREL, copy_fixtures, runnable
from xrel.errors import EmulationError
from xrel.targets import Target

pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow]

REPORT = "IO.puts(Fixture.report())"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_fixtures(tmp_path_factory.mktemp("run"), "nif_make") / "nif_make"


_built: dict = {}


def release_for(project: Path, target: str, otp: str = "25") -> Path:
    """Build (once per module) and return the release dir for target/otp."""
    key = (target, otp)
    if key not in _built:
        result = xrel.build(project, [target], otp=otp, out=project.parent / f"out-{otp}", tarball=True)
        _built[key] = Path(result.targets[0].release_dir)
    return _built[key]


def run_report(release: Path) -> dict:
    out = subprocess.run([*XREL, "-q", "run", str(release), "eval", REPORT], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("nif_arch="))
    return dict(kv.split("=", 1) for kv in line.split())


CASES = [
    ("arm-linux-gnueabihf", "25", "arm", "4"),
    ("aarch64-linux-gnu", "25", "aarch64", "8"),
    ("aarch64-linux-gnu", "27", "aarch64", "8"),
    ("riscv64-linux-gnu", "27", "riscv64", "8"),
    ("x86-linux-gnu", "25", "x86", "4"),
]


@pytest.mark.parametrize("target,otp,arch,pointer", [pytest.param(*c, marks=runnable(c[0])) for c in CASES],
                         ids=[f"{c[0]}-otp{c[1]}" for c in CASES])
def test_release_runs_its_nif_port_and_crypto_on_the_target_cpu(project, target, otp, arch, pointer):
    release = release_for(project, target, otp)
    report = run_report(release)
    assert report["nif_arch"] == arch and report["pointer_bytes"] == pointer
    assert report["header_sizeof_long"] == report["sizeof_long"]  # target headers, target compiler
    assert report["port"] == f"{arch}:ping"
    assert report["sha256"] == "beb3cfaf5d10b249"  # sha256("xrel"), computed by the target's crypto NIF
    assert report["otp"] == otp
    smoke = xrel.smoke(release)
    assert smoke.ok, smoke.to_dict()
    assert "lib/nif_make-0.1.0/priv/fixture_nif.so" in smoke.nifs_loaded
    assert any(p.endswith("crypto.so") for p in smoke.nifs_loaded)
    assert smoke.executables == ["lib/nif_make-0.1.0/priv/port_prog"]
    assert smoke.crypto.status == "ok" and smoke.system.wordsize == int(pointer)
    assert smoke.modules > 500 and not smoke.failures


@runnable("aarch64-linux-gnu")
def test_arm64_jit_flag_is_added_under_emulation_only(project):
    release = release_for(project, "aarch64-linux-gnu", "25")
    from xrel.emulate.runner import plan

    p = plan(release)
    assert "+JPperf true" in p.env["ELIXIR_ERL_OPTIONS"]
    shipped = "".join(f.read_text(errors="replace") for f in release.rglob("*") if f.is_file() and
                      f.suffix in ("", ".args", ".sh", ".bat", ".eex", ".data"))
    assert "JPperf" not in shipped and "JMsingle" not in shipped


@runnable("arm-linux-gnueabihf")
def test_exit_code_and_stdin_pass_through(project):
    release = release_for(project, "arm-linux-gnueabihf", "25")
    halt = subprocess.run([*XREL, "-q", "run", str(release), "--", "eval", "System.halt(7)"], capture_output=True)
    assert halt.returncode == 7
    echo = subprocess.run([*XREL, "-q", "run", str(release), "eval", 'IO.write(String.upcase(IO.read(:line)))'],
                          input="from stdin\n", capture_output=True, text=True, timeout=300)
    assert echo.stdout.strip() == "FROM STDIN"


@runnable("arm-linux-gnueabihf")
def test_run_accepts_the_tarball_and_the_target_from_the_marker(project):
    release = release_for(project, "arm-linux-gnueabihf", "25")
    tarball = release.parent.parent / "nif_make-0.1.0-arm-linux-gnueabihf.tar.gz"
    assert run_report(tarball)["nif_arch"] == "arm"
    marker = release / "releases" / "xrel.json"
    saved = marker.read_text()
    marker.unlink()  # no marker: the target comes from beam.smp itself
    try:
        from xrel.emulate.runner import release_target

        assert release_target(release).name == "arm-linux-gnueabihf"
    finally:
        marker.write_text(saved)


def _copy_release(release: Path, dest: Path) -> Path:
    shutil.copytree(release, dest, symlinks=True)
    return dest


@runnable("arm-linux-gnueabihf")
def test_smoke_names_a_nif_of_the_wrong_arch(project, tmp_path):
    arm = release_for(project, "arm-linux-gnueabihf", "25")
    arm64 = release_for(project, "aarch64-linux-gnu", "25")
    broken = _copy_release(arm, tmp_path / "broken")
    nif = next(broken.glob("lib/nif_make-*/priv/fixture_nif.so"))
    shutil.copy2(next(arm64.glob("lib/nif_make-*/priv/fixture_nif.so")), nif)
    report = xrel.smoke(broken, target="arm-linux-gnueabihf")
    assert not report.ok
    failure = next(f for f in report.failures if "Fixture.Nif" in f.module)
    assert "fixture_nif" in failure.loader_error
    cli = subprocess.run([*XREL, "smoke", str(broken), "-t", "arm-linux-gnueabihf"], capture_output=True, text=True,
                         timeout=600)
    assert cli.returncode == 9 and "Fixture.Nif" in cli.stderr and "Traceback" not in cli.stderr


@runnable("arm-linux-gnueabihf")
def test_smoke_names_a_library_the_target_lacks(project, tmp_path):
    arm = release_for(project, "arm-linux-gnueabihf", "25")
    broken = _copy_release(arm, tmp_path / "needs-lib")
    env = xrel.zig_toolchain("arm-linux-gnueabihf").env()
    (tmp_path / "missing.c").write_text("int xrel_missing(void) { return 1; }\n")
    subprocess.run([env["CC"], "-shared", "-fPIC", "-Wl,-soname,libxrelmissing.so.1", str(tmp_path / "missing.c"),
                    "-o", str(tmp_path / "libxrelmissing.so")], check=True)
    nif_src = Path(__file__).parent / "fixtures" / "nif_make" / "c_src" / "fixture_nif.c"
    (tmp_path / "use.c").write_text(nif_src.read_text() + "\nint xrel_missing(void);\n"
                                    "int xrel_use_missing(void) { return xrel_missing(); }\n")
    root = xrel.fetch_runtime("arm-linux-gnueabihf", otp="25").root
    env = xrel.zig_toolchain("arm-linux-gnueabihf", otp_root=root).env()
    nif = next(broken.glob("lib/nif_make-*/priv/fixture_nif.so"))
    subprocess.run([env["CC"], "-shared", "-fPIC", f"-I{env['ERTS_INCLUDE_DIR']}", f"-I{nif_src.parent}",
                    str(tmp_path / "use.c"),
                    f"-L{tmp_path}", "-lxrelmissing", "-o", str(nif)], check=True)
    report = xrel.smoke(broken)
    assert not report.ok
    failure = next(f for f in report.failures if "Fixture.Nif" in f.module)
    assert "libxrelmissing.so.1" in failure.loader_error
    assert any("libxrelmissing.so.1" in n for n in report.notes)


@pytest.mark.parametrize("target,why", [  # musl releases run here now (tests/test_otp_build.py)
    ("aarch64-macos", "macos binaries cannot run on this machine"),
    ("x86_64-windows", "windows binaries cannot run on this machine"),
])
def test_macos_and_windows_releases_are_refused_clearly(tmp_path, target, why):
    from xrel.emulate.runner import plan

    with pytest.raises(EmulationError) as err:
        plan(tmp_path, Target.parse(target))
    assert str(err.value).startswith(f"cannot run a {target} release here: {why}"), str(err.value)
