"""Issue 13: a NIF built in two different xrel caches is the same bytes, and names no path of either.

zig cc puts DWARF into every object it compiles (without -g too), and the debug info named the
runtime's include dir inside xrel's cache (<cache>/runtimes/otp-.../erts-*/include), zig's lib dir
and the build tree. The compiler wrapper now maps the cache, zig's lib dir, the sysroot, the OTP root
and the build tree's project dir to fixed names (-ffile-prefix-map). Built here with real mix, make
and zig for armhf: once in the session's cache, once in a second cache whose areas but builds are
links to the first (as `xrel dist --check`'s scratch cache is), so nothing is fetched twice.

What zig compiles itself for a link (compiler_rt, libc++) does not take the wrapper's flags (zig
issue 23821) and still names zig's lib dir and its global cache (xrel's <cache>/zig area, shared by
both builds here): the same in both builds, so not checked; nor is an executable's crt objects, which zig
compiles itself and whose debug info names the link's working directory (a build tree in the cache).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import needs_apt, needs_make, needs_mix
from helpers import XREL, copy_fixtures
from xrel.dist.check import scratch_cache
from xrel.storage import cache

pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow, pytest.mark.network]
CONFIG = 'otp = "25"\nelixir = "1.14"\ntargets = ["armhf"]\n'
PRIV = "arm-linux-gnueabihf/nif_make/lib/nif_make-0.1.0/priv"


def build(project: Path, out: Path, cache_dir: Path) -> Path:
    env = {**os.environ, "XREL_CACHE_DIR": str(cache_dir)}
    done = subprocess.run([*XREL, "-q", "build", str(project), "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    return out / PRIV


def strings(path: Path) -> str:
    """What `strings` shows: runs of 4+ printable bytes."""
    return "\n".join(m.decode() for m in re.findall(rb"[\x20-\x7e]{4,}", path.read_bytes()))


def test_a_nif_built_in_two_caches_is_the_same_bytes_and_names_neither(tmp_path):
    project = copy_fixtures(tmp_path / "src", "nif_make") / "nif_make"
    (project / "xrel.toml").write_text(CONFIG)
    first_cache = cache.cache_root()
    second_cache = scratch_cache(tmp_path / "second")  # every area but builds linked to the first cache's
    first = build(project, tmp_path / "out1", first_cache)
    second = build(project, tmp_path / "out2", second_cache)
    for name in ("fixture_nif.so", "port_prog"):
        a, b = first / name, second / name
        assert a.read_bytes() == b.read_bytes(), f"{name} differs between the two caches"
        text = strings(a)
        if name.endswith(".so"):  # the runtime's include dir, by its fixed name: the map applied
            assert "/xrel-otp/erts-" in text
        for zig_cache in {f"{first_cache}/zig", f"{os.path.realpath(first_cache)}/zig"}:  # compiler_rt: see above
            text = text.replace(zig_cache, "<zig global cache>")
        if name == "port_prog":  # an executable also links zig's own crt objects, whose DWARF names the
            continue              # link's working directory (a build tree in the cache): the same gap
        machine = [str(first_cache), os.path.realpath(first_cache), str(second_cache),
                   os.path.realpath(second_cache), str(tmp_path), os.path.realpath(tmp_path)]
        found = [p for p in machine if p in text]
        assert not found, f"{name} names {found}"
