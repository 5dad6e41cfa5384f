"""`xrel build` driven by xrel.toml, as a user runs it: the pinned targets and OTP, versions in the
artifact names, xrel.lock written once and held with --locked, and every runtime resolved before
anything compiles (real mix, zig and Debian runtimes)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import needs_apt, needs_make, needs_mix
from helpers import XREL, copy_fixtures

pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow, pytest.mark.network]


def xrel(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*XREL, *args], cwd=project, capture_output=True, text=True, timeout=1800)


@pytest.fixture
def project(tmp_path) -> Path:
    return copy_fixtures(tmp_path, "nif_make") / "nif_make"


def test_xrel_toml_pins_the_build_and_the_lock_holds_it(project):
    (project / "xrel.toml").write_text('otp = "25"\nelixir = "1.14"\ntargets = ["armhf"]\n')
    built = xrel(project, "build", "--tarball", "--json")
    assert built.returncode == 0, built.stderr
    result = json.loads(built.stdout)
    assert result["compiled_by"]["otp"].startswith("25.") and result["compiled_by"]["elixir"].startswith("1.14.")
    [target] = result["targets"]
    tarball = Path(target["tarball"])
    assert tarball.name == "nif_make-0.1.0-otp25-arm-linux-gnueabihf.tar.gz" and tarball.is_file()
    old = tarball.with_name("nif_make-0.1.0-arm-linux-gnueabihf.tar.gz")  # the name before versions were in it
    assert old.is_symlink() and old.resolve() == tarball.resolve()
    assert target["notes"][0] == "runtime: debian OTP 25.2.3 (pinned in xrel.toml)"
    manifest = json.loads((tarball.parent / "manifest.json").read_text())
    entry = manifest["artifacts"][0]
    assert entry["elixir"] == target["elixir_version"] and entry["libc"] == "glibc"

    lock = (project / "xrel.lock").read_text()
    assert '[runtimes.arm-linux-gnueabihf]' in lock and 'revision = "1:25.2.3+dfsg-1+deb12u' in lock
    assert str(project) not in lock and "/usr/lib/erlang" not in lock  # nothing of this machine's paths
    again = xrel(project, "build", "--locked")
    assert again.returncode == 0, again.stderr
    assert "locked in xrel.lock: debian OTP 25.2.3" in again.stdout
    assert (project / "xrel.lock").read_text() == lock

    (project / "xrel.toml").write_text('otp = "25"\nelixir = "1.14"\ntargets = ["armhf", "arm64"]\n')
    refused = xrel(project, "build", "--locked")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "aarch64-linux-gnu is not in xrel.lock, and --locked forbids adding it" in refused.stderr
    assert not (project / "_build" / "xrel" / "aarch64-linux-gnu").exists()
    assert (project / "xrel.lock").read_text() == lock


def test_a_target_no_source_offers_fails_before_anything_compiles(project):
    (project / "xrel.toml").write_text('otp = "25"\ntargets = ["armhf", "riscv64"]\n')
    started = time.monotonic()
    failed = xrel(project, "build")
    seconds = time.monotonic() - started
    assert failed.returncode == 4 and failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
    assert "OTP 25 is not available for riscv64-linux-gnu (debian has 27.3.4.1)" in failed.stderr
    assert '[target.riscv64-linux-gnu] otp = "..."' in failed.stderr
    assert not (project / "_build" / "xrel").exists(), "armhf was compiled before the plan was complete"
    assert not (project / "xrel.lock").exists()
    print(f"failed in {seconds:.1f} s")  # seconds, not minutes; not asserted (machines are noisy)


def test_a_per_target_pin_takes_another_major_within_the_window(project):
    (project / "xrel.toml").write_text('otp = "25"\ntargets = ["armhf", "riscv64"]\n[target.riscv64]\notp = "27"\n')
    locked = xrel(project, "lock", "--json")
    assert locked.returncode == 0, locked.stderr
    data = json.loads(locked.stdout)
    assert data["targets"][1] == {"target": "riscv64-linux-gnu", "source": "debian", "otp": "27.3.4.1",
                                  "why": "pinned in xrel.toml [target.riscv64-linux-gnu]"}
    assert data["host"]["otp"].startswith("25.")
    assert not (project / "_build").exists()  # `xrel lock` builds nothing
    assert "[runtimes.riscv64-linux-gnu]" in (project / "xrel.lock").read_text()
