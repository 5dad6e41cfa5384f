"""`xrel --help`, `xrel targets` and a cached `xrel fetch-erts` stay fast to start: each runs in a fresh
process and must not import the heavy libraries (HTTP, binary parsers, crypto, progress bars) nor the
build/dist/publish machinery. No timing is asserted: the loaded modules are.

When one of these fails, an import moved back to the top of a module on the command's path: import
it inside the function that uses it (see cli/app.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xrel.cli import COMMANDS, main
from xrel.host import host_otp_major

# third-party modules none of the three commands needs
HEAVY = ("requests", "urllib3", "lief", "tqdm", "cryptography", "elftools", "filelock")
# xrel's own machinery none of the three commands needs
MACHINERY = ("xrel.release", "xrel.dist", "xrel.publish", "xrel.signing", "xrel.inspection", "xrel.doctor",
             "xrel.storage.download", "xrel.debian", "xrel.project", "xrel.ci", "xrel.hosttools")

# runs `python -m xrel ARGS` in this process, then writes the names of the loaded modules to a file
_PROBE = """
import json, runpy, sys
out, sys.argv = sys.argv[1], ["xrel", *sys.argv[2:]]
try:
    runpy.run_module("xrel", run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
else:
    code = 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def loaded_modules(tmp_path: Path, *args: str, env: dict | None = None) -> set[str]:
    """The modules a fresh `python -m xrel ARGS` has loaded when it exits (it must exit 0)."""
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["code"] in (0, None), proc.stderr
    return set(result["modules"])


def offenders(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The top-level names of `forbidden` that are loaded (`requests` for requests.api too)."""
    return sorted({f for f in forbidden for m in modules if m == f or m.startswith(f + ".")})


def test_help_loads_only_the_command_line(tmp_path):
    """--help needs click and the command modules: no library code beyond errors and progress."""
    modules = loaded_modules(tmp_path, "--help")
    allowed = {"xrel", "xrel.__main__", "xrel.launch", "xrel.errors", "xrel.progress"}
    library = sorted(m for m in modules if m.startswith("xrel.") and m not in allowed
                     and not m.startswith("xrel.cli"))
    assert library == [], f"`xrel --help` imports library modules: {library}"
    assert offenders(modules, HEAVY + ("packaging",)) == []


def test_targets_loads_no_heavy_module(tmp_path):
    modules = loaded_modules(tmp_path, "targets")
    assert offenders(modules, HEAVY + MACHINERY) == []
    assert offenders(modules, ("xrel.runtimes", "xrel.zig", "packaging")) == []
    # only the module of `targets` is loaded, not every command's
    assert sorted(m for m in modules if m.startswith("xrel.cli.")) == ["xrel.cli.app", "xrel.cli.commands"]
    # and of the recipes' classes only those of targets.toml
    assert sorted(m for m in modules if m.startswith("xrel.schemas.")) == ["xrel.schemas.targets"]


@pytest.mark.parametrize("otp", ["27", None], ids=["--otp 27", "the host's OTP"])
def test_cached_fetch_erts_loads_no_heavy_module(tmp_path, otp):
    """A runtime already in the cache is found without loading the download, unpack or check code,
    nor subprocess (~3 ms; only a probe of the host's Erlang, whose answer is cached, needs it)."""
    if otp is None:
        if not shutil.which("erl"):
            pytest.skip("needs Erlang (scripts/setup.sh installs it): the default OTP is the host's")
        otp = str(host_otp_major())
    root = tmp_path / "cache" / "runtimes" / f"otp-{otp}.3.4.1-aarch64-linux-gnu-debian"
    root.mkdir(parents=True)
    (root / "xrel-runtime.json").write_text(json.dumps(
        {"target": "aarch64-linux-gnu", "source": "debian", "otp_version": f"{otp}.3.4.1", "otp_major": int(otp),
         "erts_version": "15.2.7", "nif_version": "2.17"}))
    env = dict(os.environ, XREL_CACHE_DIR=str(tmp_path / "cache"))
    args = ["--otp", otp] if otp == "27" else []
    modules = loaded_modules(tmp_path, "fetch-erts", "aarch64-linux-gnu", *args, env=env)
    assert "xrel.runtimes" in modules  # the probe did run the command
    assert offenders(modules, HEAVY + MACHINERY) == []
    assert offenders(modules, ("xrel.runtimes.debian", "xrel.runtimes.unpack", "xrel.runtimes.normalize",
                               "xrel.zig", "subprocess")) == []
    assert sorted(m for m in modules if m.startswith("xrel.schemas.")) == ["xrel.schemas.targets"]


def test_version_is_the_installed_one_without_reading_metadata(tmp_path):
    """`xrel --version` prints xrel.__version__ (what the wheel's metadata says: pyproject.toml reads it
    from there) without importing importlib.metadata (~30 ms)."""
    import importlib.metadata

    modules = loaded_modules(tmp_path, "--version")
    assert offenders(modules, ("importlib.metadata",)) == []
    proc = subprocess.run([sys.executable, "-m", "xrel", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split()[-1] == importlib.metadata.version("xrel")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_named_with_its_module(name):
    """cli/__init__.py's COMMANDS names each command with the module that registers it, and no other."""
    ctx = main.make_context("xrel", ["--help"], resilient_parsing=True)
    command = main.get_command(ctx, name)
    assert command is not None
    assert command.callback.__module__ == COMMANDS[name]


def test_no_command_is_missing_from_the_table():
    ctx = main.make_context("xrel", ["--help"], resilient_parsing=True)
    assert main.list_commands(ctx) == sorted(COMMANDS)


def test_the_build_machinery_loads_no_http_library(tmp_path):
    """`xrel build` with its runtimes cached downloads nothing: the release machinery, the plan and
    the lock must not pull in requests (~0.2 s of every edit-loop build), nor what only some builds
    need: threads (extra targets, big tarballs), tarfile (a PAX header, opening a tarball), the
    node agent ([node] in xrel.toml), filelock (flock does)."""
    probe = "import json, sys; import xrel.release.build; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    only_some = ("concurrent.futures", "tarfile", "xrel.node", "filelock")
    assert offenders(set(json.loads(proc.stdout)), ("requests", "urllib3", "xrel.storage.download", *only_some)) == []
