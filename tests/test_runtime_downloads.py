"""The download and cache discipline under real trouble: a connection cut short, two processes
fetching the same runtime, a process killed mid-download, a stale partial file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import runtime_fixtures as rf
from xrel.runtimes import cached_runtime, fetch_runtime
from xrel.storage import cache
from xrel.storage.download import verified_path

TARGET = "x86_64-linux-gnu"
TARBALL = "hexbuilds/amd64/ubuntu-22.04/OTP-27.3.tar.gz"
FETCH = """
import json, sys
from xrel.runtimes import fetch_runtime
runtime = fetch_runtime(sys.argv[1], otp=sys.argv[2], source=sys.argv[3])
print(json.dumps({"root": str(runtime.root), "sha256": runtime.meta["sha256"]}))
"""


def start_fetch(version: str = "27.3") -> subprocess.Popen:
    """`fetch_runtime` in another process (the environment points it at the test's cache and server)."""
    return subprocess.Popen([sys.executable, "-c", FETCH, TARGET, version, "hexbuilds"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def publish(server, **serving) -> bytes:
    """builds.txt with OTP 27.3 and its tarball, served with `serving` (truncate_first, chunk_delay)."""
    data = rf.publish_hex(server, TARGET, {"27.3": True})["27.3"]
    server.publish(TARBALL, data, **serving)
    return data


def test_truncated_download_is_resumed_with_a_range(upstream, isolated_cache):
    cut = len(rf.hex_tarball(TARGET, "27.3")) // 3
    data = publish(upstream, truncate_first=cut)
    runtime = fetch_runtime(TARGET, otp="27.3", source="hexbuilds")
    ranges = upstream.ranges(TARBALL)
    assert len(ranges) == 2 and ranges[0] is None and ranges[1].startswith("bytes=")
    assert 0 < int(ranges[1][len("bytes="):-1]) <= cut
    assert runtime.meta["sha256"] == {"OTP-27.3.tar.gz": rf.sha256(data)}
    assert not list((isolated_cache / "downloads").glob("*.part"))


def test_stale_partial_file_from_another_upload_is_fetched_again(upstream, isolated_cache):
    data = publish(upstream)
    stale = verified_path(upstream.url(TARBALL), rf.sha256(data))
    stale.with_name(stale.name + ".part").write_bytes(b"garbage from an older upload" * 100)
    assert fetch_runtime(TARGET, otp="27.3", source="hexbuilds").otp_version == "27.3"
    assert [r is None for r in upstream.ranges(TARBALL)] == [False, True]  # resumed, then from zero


@pytest.mark.slow
def test_two_processes_fetch_the_same_runtime_once(upstream, isolated_cache):
    publish(upstream, chunk_delay=0.02)
    first, second = start_fetch(), start_fetch()
    results = [p.communicate(timeout=120) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], results
    roots = {json.loads(out)["root"] for out, _err in results}
    assert len(roots) == 1 and Path(roots.pop()).is_dir()
    assert upstream.count(TARBALL) == 1


@pytest.mark.slow
def test_killed_fetch_leaves_nothing_taken_as_good(upstream, isolated_cache):
    data = publish(upstream, chunk_delay=0.05)
    proc = start_fetch()
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 0 for p in isolated_cache.glob("downloads/*.part")):
        assert time.monotonic() < deadline and proc.poll() is None, "the download never started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert cached_runtime(TARGET, "27.3", "hexbuilds") is None
    assert not list((isolated_cache / "runtimes").glob("otp-*/"))  # only a .tmp- staging dir, if any
    upstream.publish(TARBALL, data)  # full speed now
    runtime = fetch_runtime(TARGET, otp="27.3", source="hexbuilds")
    assert runtime.meta["sha256"] == {"OTP-27.3.tar.gz": rf.sha256(data)}
    assert upstream.ranges(TARBALL)[-1] is not None  # the second fetch resumed the partial file
    leftovers = cache.prune()
    assert [p.name for p in leftovers if p.parent.name == "runtimes"][0].startswith(".tmp-otp-27.3-")
    assert not list((isolated_cache / "runtimes").glob(".tmp-*"))
