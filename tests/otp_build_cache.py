"""The OTP runtime the suite builds from source (test_otp_build_e2e), and its build started in the
background as soon as the tests are collected.

The build takes minutes of CPU, while the rest of the suite mostly waits (emulated CPUs, servers,
timeouts) and leaves cores idle. So when the e2e tests are among those to run, the build starts at
once at nice 19 and takes that idle time; the e2e fixture later asks for the same runtime and waits
for the build's lock (or finds it cached). The runtime lives outside the session cache, in a
directory keyed by the recipe's flags ($XREL_TEST_OTP_BUILD_CACHE, else
<user cache>/xrel-tests/otp-build-<key>): built once per recipe per machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import platformdirs

from helpers import XREL
from xrel.otpbuild import recipe
from xrel.targets import Target

TARGET, OTP = "x86_64-linux-musl", "25.2.3"
OTHER_MAJOR = "27.3.4.1"  # built through OTP's bootstrap (the host erl is OTP 25)
# left out: apps the nif_make release does not use, the slowest of OTP's to build
SHORT = ("common_test", "dialyzer", "diameter", "edoc", "eldap", "erl_docgen", "eunit", "ftp", "megaco", "mnesia",
         "reltool", "snmp", "ssh", "tftp", "xmerl")
MODULE = "test_otp_build_e2e.py"
_started: list[subprocess.Popen] = []


def build_cache(otp: str = OTP) -> Path:
    """The lasting cache of an OTP this suite builds, named by the recipe's flags for it."""
    key = recipe.for_target(Target.parse(TARGET), SHORT).key + ("" if otp == OTP else f"-{otp}")
    explicit = os.environ.get("XREL_TEST_OTP_BUILD_CACHE")
    return Path(explicit) if explicit else Path(platformdirs.user_cache_dir("xrel-tests")) / f"otp-build-{key}"


def build_erts_args(otp: str) -> list[str]:
    """`xrel` arguments that build (or find cached) the suite's OTP `otp`."""
    return ["build-erts", TARGET, "--otp", otp, "--without-app", ",".join(SHORT), "--json"]


def _will_run(item) -> bool:
    """Is `item` an e2e test of the default OTP that no skip marker stops?"""
    if not item.nodeid.split("::")[0].endswith(MODULE) or OTP not in item.nodeid:
        return False
    if any(True for _ in item.iter_markers("skip")):
        return False
    return not any(m.args and m.args[0] is True for m in item.iter_markers("skipif"))


def start_in_background(items) -> None:
    """Start building the suite's OTP at nice 19 when an e2e test of it is about to run."""
    if _started or not any(_will_run(item) for item in items):
        return
    cache = build_cache(OTP)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "background-build.log", "w") as log:
        _started.append(subprocess.Popen([*XREL, "-q", *build_erts_args(OTP)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env={**os.environ, "XREL_CACHE_DIR": str(cache)},
                                         preexec_fn=lambda: os.nice(19)))


def stop_background() -> None:
    """At the end of the session: a build still running is stopped (it resumes next time)."""
    for proc in _started:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
