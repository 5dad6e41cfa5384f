"""The Debian runtime source, live: real apt (private state), real packages from the mirror."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import xrel
from conftest import needs_apt
from helpers import XREL
from xrel.errors import NotAvailableError
from xrel.inspection import binaries

pytestmark = [needs_apt, pytest.mark.slow]

CASES = [("arm-linux-gnueabihf", "25", 40, 32, "bookworm"), ("aarch64-linux-gnu", "25", 183, 64, "bookworm"),
         ("arm-linux-gnueabihf", "27", 40, 32, "trixie"), ("aarch64-linux-gnu", "27", 183, 64, "trixie")]


@pytest.mark.parametrize("target,otp,machine,bits,suite", CASES, ids=[f"{c[0]}-otp{c[1]}" for c in CASES])
def test_fetch_normalizes_a_debian_runtime(target, otp, machine, bits, suite):
    rt = xrel.fetch_runtime(target, otp=otp, source="debian")
    assert rt.otp_version.split(".")[0] == otp and rt.meta["suite"] == suite
    beam = binaries.read(rt.erts_dir / "bin" / "beam.smp")
    assert (beam.machine, beam.bits, beam.libc) == (machine, bits, "glibc")
    if bits == 32:
        assert beam.float_abi == "hard"
    # the target's own NIF headers: sizes of the target's ABI
    sizes = (rt.erts_dir / "include" / "erl_int_sizes_config.h").read_text()
    assert f"#define SIZEOF_LONG {bits // 8}" in sizes
    assert (rt.root / "usr" / "include" / "erl_nif.h").is_file() and (rt.root / "usr" / "lib" / "libei.a").is_file()
    # no script may point at the host's /usr/lib/erlang (it would run the host VM)
    for script in [*rt.root.glob("bin/*"), *rt.erts_dir.glob("bin/*")]:
        if script.is_file() and not script.is_symlink() and script.read_bytes()[:2] == b"#!":
            assert "/usr/lib/erlang" not in script.read_text(errors="replace"), script
    meta = json.loads((rt.root / "xrel-runtime.json").read_text())
    assert meta["glibc_floor"] == {"bookworm": "2.34", "trixie": "2.38"}[suite]
    assert "erlang-base" in meta["packages"] and "erlang-crypto" in meta["packages"] \
        and "erlang-dev" in meta["packages"]
    assert all(len(h) == 64 for h in meta["sha256"].values()) and len(meta["urls"]) == len(meta["packages"])
    assert "libcrypto.so.3" in meta["needed_libraries"] and "libc.so.6" in meta["needed_libraries"]
    apps = {a.rsplit("-", 1)[0] for a in meta["apps"]}
    assert {"kernel", "stdlib", "crypto", "ssl", "public_key", "asn1", "runtime_tools", "os_mon", "mnesia"} <= apps
    assert "wx" not in apps and "wx" in meta["gui_apps_left_out"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="cutting the network needs root + unshare")
def test_cached_fetch_works_with_the_network_cut():
    xrel.fetch_runtime("arm-linux-gnueabihf", otp="25", source="debian")  # cached by now, or fetched
    code = ("import xrel, json; r = xrel.fetch_runtime('armhf', otp='25'); print(json.dumps(r.to_dict()))")
    out = subprocess.run(["unshare", "--net", sys.executable, "-c", code], capture_output=True, text=True,
                         env=os.environ, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["otp_version"].startswith("25.")
    cli = subprocess.run(["unshare", "--net", *XREL, "fetch-erts", "armhf", "--otp", "25", "--offline"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and Path(cli.stdout.strip()).is_dir()


def test_a_version_debian_lacks_names_what_it_has():
    with pytest.raises(NotAvailableError) as err:
        xrel.fetch_runtime("aarch64-linux-gnu", otp="26", source="debian")
    assert "debian has" in str(err.value) and "25.2" in str(err.value) and "27.3" in str(err.value)


def test_otp_versions_lists_both_suites_with_their_glibc():
    out = subprocess.run([*XREL, "otp-versions", "arm64", "--source", "debian", "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "bookworm" in text and "trixie" in text and "2.38" in text
