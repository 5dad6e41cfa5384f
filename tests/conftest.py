"""Shared test setup: one xrel cache per session (real runtimes are reused across tests), zig's
global cache shared with the machine, and helpers to build real binaries with zig."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# One cache for the whole session, unless the developer points XREL_TEST_CACHE at a lasting one.
_SESSION_CACHE = os.environ.get("XREL_TEST_CACHE") or tempfile.mkdtemp(prefix="xrel-test-cache-")
os.environ["XREL_CACHE_DIR"] = _SESSION_CACHE


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """An empty xrel cache for tests of the cache discipline itself."""
    root = tmp_path / "cache"
    monkeypatch.setenv("XREL_CACHE_DIR", str(root))
    return root


def have(program: str) -> bool:
    return shutil.which(program) is not None


def apt_reachable() -> bool:
    """Can apt reach the Debian mirror? (checked once)"""
    global _APT
    try:
        return _APT
    except NameError:
        pass
    _APT = False
    if have("apt-get"):
        try:
            from xrel import apt

            m = apt.mirror()
            import requests

            requests.head(f"{m.uri}/dists/bookworm/InRelease", timeout=10)
            _APT = True
        except Exception:
            _APT = False
    return _APT


needs_apt = pytest.mark.skipif("not apt_reachable()", reason="the Debian mirror is not reachable through apt")
needs_mix = pytest.mark.skipif(not have("mix"), reason="mix (Elixir) is not installed: apt-get install elixir")
needs_make = pytest.mark.skipif(not have("make"), reason="make is not installed")


def zig_cc(target: str, source: Path, output: Path, *extra: str, cxx: bool = False) -> Path:
    """Build `source` for `target` through xrel's own wrappers (real zig)."""
    import xrel

    env = xrel.toolchain(target, otp_root=extra_otp_root()).env()
    cc = env["CXX" if cxx else "CC"]
    subprocess.run([cc, *extra, str(source), "-o", str(output)], check=True)
    return output


def extra_otp_root():
    return None
