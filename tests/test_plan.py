"""Resolving a build from xrel.toml, the command line and xrel.lock: which targets, which OTP each
asks for and why, and which OTP compiles the BEAM code (pure parts; the fetching is in test_project_build)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xrel.errors import UsageError
from xrel.project.config import load_config
from xrel.project.lock import Lock
from xrel.project.plan import Request, _compile_otp, _target_plans


def config(tmp_path, text: str):
    (tmp_path / "xrel.toml").write_text(text)
    return load_config(tmp_path)


def test_targets_and_otp_requests_from_the_file(tmp_path):
    cfg = config(tmp_path, 'otp = "25"\ntargets = ["armhf", "riscv64"]\n[target.riscv64]\notp = "27"\n'
                           'sysroot_packages = ["libsqlite3-dev"]\n')
    plans = _target_plans(cfg, Request())
    assert [(p.target.id, p.otp, p.sysroot_packages) for p in plans] == [
        ("arm-linux-gnueabihf", "25", ()), ("riscv64-linux-gnu", "27", ("libsqlite3-dev",))]
    assert plans[0].why == "pinned in xrel.toml" and plans[1].why == "pinned in xrel.toml [target.riscv64-linux-gnu]"


def test_the_command_line_wins_over_the_file(tmp_path):
    cfg = config(tmp_path, 'otp = "25"\ntargets = ["armhf"]\n[target.armhf]\nsource = "debian"\n')
    plans = _target_plans(cfg, Request(targets=("arm64",), otp="27", source="hexbuilds"))
    assert [(p.target.id, p.otp, p.source, p.why) for p in plans] == [
        ("aarch64-linux-gnu", "27", "hexbuilds", "--otp 27")]


def test_a_glibc_floor_pinned_in_the_file_rides_along(tmp_path):
    cfg = config(tmp_path, 'targets = ["arm64"]\n[target.arm64]\nglibc = "2.36"\n')
    assert [p.target.id for p in _target_plans(cfg, Request())] == ["aarch64-linux-gnu.2.36"]


def test_no_target_anywhere_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="pass --target.*xrel init"):
        _target_plans(None, Request())


@pytest.mark.parametrize("text,lock_otp,expected", [
    ('otp = "25"\ntargets = ["armhf"]\n', None, "25"),
    ('otp = "25.2.3"\ntargets = ["armhf"]\n', None, "25.2.3"),  # exact when the file is
    ('otp = "27"\ntargets = ["armhf", "riscv64"]\n[target.armhf]\notp = "25"\n', None, "25"),  # the lowest major
    ('targets = ["armhf"]\n', None, None),  # nothing pinned: the installed OTP
    ('otp = "25"\ntargets = ["armhf"]\n', "25.2.3", "25.2.3"),  # the lock's exact version
    ('otp = "26"\ntargets = ["armhf"]\n', "25.2.3", "26"),  # a lock of another major is stale
])
def test_the_otp_that_compiles_the_code(tmp_path, text, lock_otp, expected):
    cfg = config(tmp_path, text)
    lock = Lock({}, {"otp": {"source": "debian", "version": lock_otp}}) if lock_otp else None
    assert _compile_otp(_target_plans(cfg, Request()), cfg, lock) == expected


def test_doctor_says_what_compiles_the_code(tmp_path):
    from xrel.host import host_erlang

    major = host_erlang().otp_major
    cfg_dir = tmp_path / "p"
    cfg_dir.mkdir()
    (cfg_dir / "xrel.toml").write_text(f'otp = "{major + 1}"\nelixir = "1.99"\ntargets = ["armhf"]\n')
    out = subprocess.run([sys.executable, "-m", "xrel", "doctor", str(cfg_dir), "--json"], capture_output=True,
                         text=True, timeout=300)
    row = next(r for r in json.loads(out.stdout) if r["name"] == "compile with")
    assert row["detail"].startswith(f"OTP {major + 1} + Elixir 1.99 provided by xrel on the next build")
    assert f"does not match pin {major + 1}" in row["detail"]
