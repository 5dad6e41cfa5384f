"""`xrel build-erts` for real: x86_64-linux-musl OTP 25.2.3 built from Debian's sources with zig,
then a project with a C NIF, a port program and crypto built on it (`--source build`) and booted
through `xrel run` / `xrel smoke` (Debian's musl loader: natively, or in a mount namespace).

Cost: the build (leaving out 15 OTP applications the project does not use: ~7 min of CPU on 2 cores
instead of ~9) happens once per recipe per machine, in a lasting cache, started in the background
when the tests are collected (otp_build_cache.py); every later run finds it there in seconds.
With XREL_TEST_OTP_BOOTSTRAP=1 the same runs for OTP 27.3.4.1 too, another major than the host's
erl (OTP's bootstrap system is built first: ~25 more minutes, once; not in the default suite).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import needs_apt, needs_make, needs_mix
from helpers import XREL, copy_fixtures, runnable
from otp_build_cache import OTHER_MAJOR, OTP, SHORT, TARGET, build_cache, build_erts_args

OTPS = [OTP, pytest.param(OTHER_MAJOR, marks=pytest.mark.skipif(
    not os.environ.get("XREL_TEST_OTP_BOOTSTRAP"), reason="set XREL_TEST_OTP_BOOTSTRAP=1 (a second ~25 min build)"))]
pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow, runnable(TARGET)]


def xrel(*args: str, cache: Path, timeout: float = 3600) -> subprocess.CompletedProcess:
    out = subprocess.run([*XREL, "-q", *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "XREL_CACHE_DIR": str(cache)})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out


@pytest.fixture(scope="session", params=OTPS)
def built(request) -> tuple[Path, dict]:
    """(cache, runtime metadata) of x86_64-linux-musl OTP 25.2.3 (27.3.4.1) built by xrel (once per recipe)."""
    cache = build_cache(request.param)
    meta = json.loads(xrel(*build_erts_args(request.param), cache=cache).stdout)  # waits for a background build
    return cache, meta


def test_the_built_runtime_is_musl_and_records_its_sources_and_flags(built):
    _cache, meta = built
    root = Path(meta["path"])
    otp = meta["otp_version"]
    assert (meta["target"], meta["source"], otp in (OTP, OTHER_MAJOR)) == (TARGET, "build", True)
    assert {f"erlang_{otp}+dfsg.orig.tar.xz", "build-flags.json"} <= set(meta["sha256"])
    assert any(name.startswith("openssl_3.0.") for name in meta["sha256"])
    assert "-dynamic" in meta["build"]["ldflags"] and set(meta["build"]["seconds"]) >= {"make", "release"}
    assert ("bootstrap" in meta["build"]["seconds"]) == (otp == OTHER_MAJOR)  # the host erl is OTP 25
    full = json.loads((root / "xrel-runtime.json").read_text())
    libcs = {f["libc"] for f in full["native_files"] if f.get("libc")}
    assert libcs == {"musl"}, libcs
    beam = next(f for f in full["native_files"] if f["path"].endswith("/beam.smp"))
    assert "ld-musl-x86_64.so.1" in (beam.get("interpreter") or beam.get("interp") or json.dumps(beam))
    crypto = next(root.glob("lib/crypto-*/priv/lib/crypto.so")).read_bytes()
    assert b'OPENSSLDIR: "/etc/ssl"' in crypto  # the node's CA dir and openssl.cnf, not the build's
    assert b'ENGINESDIR: "/usr/lib/engines-3"' in crypto and b'MODULESDIR: "/usr/lib/ossl-modules"' in crypto
    assert not list((root.parent).glob(".tmp-*"))
    assert meta["build"]["without_apps"] == list(SHORT) and not list(root.glob("lib/megaco-*"))
    assert list(root.glob("lib/ssl-*/ebin/ssl.app")) and list(root.glob("lib/sasl-*/ebin/sasl.app"))


def test_a_nif_project_built_on_it_boots_through_xrel_run(built, tmp_path):
    cache, meta = built
    otp = meta["otp_version"]
    project = copy_fixtures(tmp_path, "nif_make") / "nif_make"
    pins = (f'otp = "{otp}"\ntargets = ["{TARGET}"]\n\n[target.{TARGET}]\nsource = "build"\n'
            f'without_apps = {json.dumps(list(SHORT))}\n')
    (project / "xrel.toml").write_text(pins)
    result = json.loads(xrel("build", str(project), "--json", cache=cache).stdout)
    release = Path(result["targets"][0]["release_dir"])
    lock = (project / "xrel.lock").read_text()
    assert 'source = "build"' in lock and "build-flags.json" in lock and f"erlang_{otp}%2bdfsg.orig.tar.xz" in lock
    xrel("build", str(project), "--locked", cache=cache)  # the same tarballs and flags
    out = xrel("run", str(release), "eval", "IO.puts(Fixture.report())", cache=cache, timeout=600)
    line = next(line for line in out.stdout.splitlines() if line.startswith("nif_arch="))
    report = dict(kv.split("=", 1) for kv in line.split())
    assert report["nif_arch"] == "x86_64" and report["pointer_bytes"] == "8"
    assert report["port"] == "x86_64:ping" and report["sha256"] == "beb3cfaf5d10b249"  # crypto NIF, static OpenSSL
    smoke = json.loads(xrel("smoke", str(release), "--json", cache=cache, timeout=600).stdout)
    assert smoke["ok"], smoke
    assert "lib/nif_make-0.1.0/priv/fixture_nif.so" in smoke["nifs_loaded"]
    assert "musl" in smoke["system"]["architecture"]
