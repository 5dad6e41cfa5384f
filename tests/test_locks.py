"""Cache entry locks between processes and threads: waiting, timeouts, a killed holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from xrel.errors import XrelError
from xrel.storage import cache
from xrel.storage.locks import LockTimeout, hold

HOLDER = """
import sys, time
from xrel.storage import cache
with cache.locked("runtimes", "entry"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path, monkeypatch):
    """Another process holding the lock of runtimes/entry in a scratch cache."""
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], env=os.environ.copy(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_held_lock_times_out_and_names_the_entry_in_use(holder):
    started = time.monotonic()
    with pytest.raises(LockTimeout), cache.locked("runtimes", "entry", timeout=0.3):
        pass
    assert time.monotonic() - started >= 0.3
    entry = cache.Entry("runtimes", "entry", cache.area("runtimes") / "entry", 0, 0.0)
    entry.path.mkdir()
    with pytest.raises(XrelError, match="in use by another xrel process"):
        cache.remove_entry(entry, timeout=0)
    assert entry.path.is_dir()
    (cache.area("runtimes") / ".tmp-entry~x").mkdir()
    assert cache.prune() == []  # a leftover of an entry being written is not touched


def test_a_killed_holder_leaves_the_lock_free(holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with cache.locked("runtimes", "entry", timeout=0):
        pass


def test_threads_of_one_process_take_turns(tmp_path):
    inside, overlaps = [], []

    def work() -> None:
        for _ in range(5):
            with hold(tmp_path / "x.lock"):
                inside.append(1)
                overlaps.append(len(inside))
                time.sleep(0.01)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(overlaps) == 15 and max(overlaps) == 1
