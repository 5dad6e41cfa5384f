"""The OTP/Elixir/glibc compatibility rules of `xrel build` (release/compat.py), as a table: no mix, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from xrel.errors import UsageError
from xrel.host import HostErlang
from xrel.release.compat import check_requested_otp, check_runtime
from xrel.runtimes import Runtime
from xrel.targets import Target


def host(otp: int = 25, elixir: str | None = "1.14.0") -> HostErlang:
    return HostErlang(Path("/usr/lib/erlang"), str(otp), "13.0", "x86_64-pc-linux-gnu", elixir)


def runtime(otp: str, glibc_floor: str | None = "2.28") -> Runtime:
    major = int(otp.split(".")[0])
    return Runtime(Path("/nonexistent"), {"target": "aarch64-linux-gnu", "otp_version": otp, "otp_major": major,
                                          "erts_version": "14.0", "nif_version": "2.17", "source": "debian",
                                          "glibc_floor": glibc_floor})


# (host OTP, host Elixir, runtime OTP, runtime glibc floor, target) -> notes, or the refusal's words
CASES = [
    pytest.param(25, "1.14.0", "25.3", "2.28", "aarch64-linux-gnu", [], id="same-otp"),
    pytest.param(25, "1.14.0", "26.2", "2.28", "aarch64-linux-gnu", [], id="host+1"),
    pytest.param(25, "1.18.1", "27.1", "2.28", "aarch64-linux-gnu", [], id="host+2"),
    pytest.param(25, "1.14.0", "24.3", "2.28", "aarch64-linux-gnu", "older than this machine's OTP 25",
                 id="older-than-host"),
    pytest.param(25, "1.18.1", "28.0", "2.28", "aarch64-linux-gnu", "more than two releases newer",
                 id="host+3"),
    pytest.param(25, "1.14.0", "27.1", "2.28", "aarch64-linux-gnu",
                 ["warning: Elixir 1.14.0 supports OTP 23-26, the target runs OTP 27"], id="elixir-too-old"),
    pytest.param(25, "9.9.0", "27.1", "2.28", "aarch64-linux-gnu", [], id="elixir-unknown"),
    pytest.param(25, None, "27.1", "2.28", "aarch64-linux-gnu", [], id="no-elixir"),
    pytest.param(25, "1.14.0", "25.3", "2.34", "aarch64-linux-gnu.2.28", "needs glibc 2.34, above the requested "
                 "floor 2.28", id="runtime-above-glibc-floor"),
    pytest.param(25, "1.14.0", "25.3", "2.28", "aarch64-linux-gnu.2.28", [], id="runtime-at-glibc-floor"),
    pytest.param(25, "1.14.0", "25.3", "2.34", "aarch64-linux-gnu", [], id="no-glibc-floor-asked"),
    pytest.param(25, "1.14.0", "25.3", None, "x86_64-linux-gnu.2.17", [], id="runtime-without-glibc"),
]


@pytest.mark.parametrize("host_otp,elixir,otp,glibc,target,expected", CASES)
def test_rules_on_a_fetched_runtime(host_otp, elixir, otp, glibc, target, expected):
    checking = lambda: check_runtime(runtime(otp, glibc), host(host_otp, elixir), Target.parse(target))  # noqa: E731
    if isinstance(expected, str):
        with pytest.raises(UsageError, match=expected):
            checking()
    else:
        assert checking() == expected


@pytest.mark.parametrize("request_,refusal", [
    ("25", None), ("27.1", None), ("OTP-26.2.5", None),
    ("24", "OTP 24 is older than this machine's OTP 25"),
    ("28.0", "OTP 28.0 is more than two releases newer than this machine's OTP 25"),
])
def test_requested_otp_is_checked_against_the_same_window(request_, refusal):
    if refusal is None:
        check_requested_otp(request_, host(25))
    else:
        with pytest.raises(UsageError, match=refusal):
            check_requested_otp(request_, host(25))
