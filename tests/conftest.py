"""Shared test setup: one xrel cache per session (real runtimes are reused across tests), zig's
global cache shared with the machine, and helpers to build real binaries with zig."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# the local upstream server fixture (`upstream`) for runtime-source tests
pytest_plugins = ["runtime_fixtures"]

# One cache for the whole session, unless the developer points XREL_TEST_CACHE at a lasting one.
_SESSION_CACHE = os.environ.get("XREL_TEST_CACHE") or tempfile.mkdtemp(prefix="xrel-test-cache-")
os.environ["XREL_CACHE_DIR"] = _SESSION_CACHE
# no mix VM kept between builds (from a terminal each build would leave one for 10 minutes);
# test_early_mix.py turns it on where it tests it
os.environ["XREL_KEEP_MIX"] = "0"


def pytest_collection_finish(session):
    """Start the slow OTP build of test_otp_build_e2e now, in the background (otp_build_cache.py)."""
    from otp_build_cache import start_in_background

    start_in_background(session.items)


def pytest_sessionfinish(session):
    """The background OTP build stopped, and the session's own cache deleted (~1.7 GB a run)."""
    from otp_build_cache import stop_background

    stop_background()
    if not os.environ.get("XREL_TEST_CACHE"):
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def httpserver_listen_address():
    """pytest-httpserver on 127.0.0.1 (its default, "localhost", needs an /etc/hosts entry)."""
    return ("127.0.0.1", 0)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """An empty xrel cache for tests of the cache discipline itself."""
    root = tmp_path / "cache"
    monkeypatch.setenv("XREL_CACHE_DIR", str(root))
    return root


def have(program: str) -> bool:
    return shutil.which(program) is not None


def apt_reachable() -> bool:
    """Can this machine reach the Debian mirror its apt sources name?"""
    if not have("apt-get"):
        return False
    try:
        import requests

        from xrel.debian import apt

        return requests.head(f"{apt.mirror().uri}/dists/bookworm/InRelease", timeout=10).status_code < 500
    except Exception:
        return False


needs_apt = pytest.mark.skipif(not apt_reachable(), reason="the Debian mirror (from the apt sources) is not reachable")
needs_mix = pytest.mark.skipif(not have("mix"), reason="mix (Elixir) is not installed: apt-get install elixir")
needs_make = pytest.mark.skipif(not have("make"), reason="make is not installed")
