"""OTP's bootstrap system, for cross-building a release of another major than the host's erl.

OTP's documented way (HOWTO/INSTALL-CROSS.md): in a copy of the same source, `./configure
--enable-bootstrap-only && make` for the build machine; the cross build then runs with that
copy's bootstrap/bin first on PATH. The compiler is zig for the host. One bootstrap per source
tarball (any target reuses it), in the cache's builds/ area, locked; complete only once its
stamp is written (a killed bootstrap is built again from scratch).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from xrel.errors import BuildError
from xrel.otpbuild import recipe
from xrel.otpbuild.debsrc import SourcePackage
from xrel.otpbuild.tools import write_tools
from xrel.storage import cache
from xrel.targets import host_target

STAMP = "bootstrap.json"
Runner = Callable[[list[str], Path, dict[str, str]], None]  # (argv, cwd, env): one logged command


def directory(otp: SourcePackage) -> Path:
    """Where the bootstrap of this OTP source lives (shared by every target's build)."""
    return cache.area("builds") / f"otp-bootstrap-{otp.upstream}-{otp.orig.sha256[:12]}-{host_target().name}"


def bin_dir(root: Path) -> Path:
    """The bin dir that goes first on the cross build's PATH (erl, erlc, escript)."""
    return root / "src" / "bootstrap" / "bin"


def ensure(otp: SourcePackage, archive: Path, zig: str, jobs: int, run: Runner) -> Path:
    """The bootstrap's bin dir, built now unless a complete one is cached."""
    root = directory(otp)
    with cache.locked("builds", root.name):
        if (root / STAMP).is_file():
            return bin_dir(root)
        cache.remove(root)
        src = root / "src"
        src.mkdir(parents=True)
        start = time.monotonic()
        run(["tar", "-xf", str(archive), "-C", str(src), "--strip-components=1"], root, {})
        host = recipe.for_target(host_target())
        tools = write_tools(root / "tools", zig, host)
        env = {"CC": tools["cc"], "CXX": tools["c++"], "LD": tools["cc"], "AR": tools["ar"],
               "RANLIB": tools["ranlib"], "LDFLAGS": " ".join(host.ldflags), "ERL_TOP": str(src)}
        run(["./configure", *recipe.load().bootstrap.configure], src, env)
        run(["make", f"-j{jobs}"], src, env)
        release = check(bin_dir(root), otp.upstream)
        (root / STAMP).write_text(json.dumps({"otp": otp.upstream, "otp_release": release,
                                              "seconds": round(time.monotonic() - start, 1)}) + "\n")
        return bin_dir(root)


def check(bin_path: Path, version: str) -> str:
    """The bootstrap erl's OTP release, which must be the source's major."""
    erl = bin_path / "erl"
    out = subprocess.run([str(erl), "-noshell", "-eval", "io:put_chars(erlang:system_info(otp_release)), halt()."],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120) \
        if erl.is_file() else None
    major = version.split(".")[0]
    if out is None or out.returncode or out.stdout.strip() != major:
        said = "no bin/erl" if out is None else (out.stdout + out.stderr).strip()[:160]
        raise BuildError(f"the OTP {version} bootstrap built in {bin_path.parent.parent} does not run ({said})",
                         "see the bootstrap log in the build's logs/ dir; fix it and run again")
    return out.stdout.strip()
