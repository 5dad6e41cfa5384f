"""The `xrel` command as a user runs it (a real process each time): targets, zig-env, doctor,
errors, and `python -m xrel`."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xrel.targets import Target, host_target
from xrel.zig.locate import find_zig

TOOL_VARS = ("CC", "CXX", "AR", "RANLIB", "STRIP", "CMAKE_TOOLCHAIN_FILE")
PRECOMPILER_VARS = ("TARGET_ARCH", "TARGET_VENDOR", "TARGET_OS", "TARGET_ABI")


def xrel(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrel", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)


def cache_env(root: Path) -> dict[str, str]:
    """The process environment with its own, empty xrel cache (no runtime cached)."""
    return dict(os.environ, XREL_CACHE_DIR=str(root))


def fake_otp_root(base: Path) -> Path:
    root = base / "target otp"
    for d in ("erts-14.2.5/include", "lib/erl_interface-5.5/lib", "usr/include", "usr/lib"):
        (root / d).mkdir(parents=True)
    return root


# -- targets ---------------------------------------------------------------------------------------
TARGET_NAMES = ["x86_64-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf", "x86-linux-gnu", "riscv64-linux-gnu",
                "s390x-linux-gnu", "powerpc64le-linux-gnu", "x86_64-linux-musl", "aarch64-linux-musl",
                "arm-linux-musleabihf", "riscv64-linux-musl", "x86_64-macos", "aarch64-macos", "x86_64-windows"]
GLIBC_LINUX = [n for n in TARGET_NAMES if n.endswith(("-gnu", "-gnueabihf"))]

# what other tools call each target family: known values, not read back from recipes/targets.toml
KNOWN_ROWS = {
    "aarch64-linux-gnu": {"zig": "aarch64-linux-gnu", "rust": "aarch64-unknown-linux-gnu",
                          "erlang": "aarch64-unknown-linux-gnu", "debian": "arm64", "format": "elf", "bits": 64},
    "arm-linux-gnueabihf": {"zig": "arm-linux-gnueabihf", "rust": "armv7-unknown-linux-gnueabihf",
                            "erlang": "arm-unknown-linux-gnueabihf", "debian": "armhf", "format": "elf", "bits": 32},
    "x86-linux-gnu": {"zig": "x86-linux-gnu", "rust": "i686-unknown-linux-gnu", "erlang": "i686-pc-linux-gnu",
                      "debian": "i386", "format": "elf", "bits": 32},
    "x86_64-linux-musl": {"zig": "x86_64-linux-musl", "rust": "x86_64-unknown-linux-musl",
                          "erlang": "x86_64-alpine-linux-musl", "sources": ["alpine"], "format": "elf", "bits": 64},
    "aarch64-macos": {"zig": "aarch64-macos", "rust": "aarch64-apple-darwin", "erlang": "aarch64-apple-darwin",
                      "format": "macho", "bits": 64, "run_here": "none"},
    "x86_64-windows": {"zig": "x86_64-windows-gnu", "rust": "x86_64-pc-windows-gnu", "erlang": "win32",
                       "sources": ["windows"], "format": "pe", "bits": 64, "run_here": "none"},
}
KNOWN_ALIASES = {"arm-linux-gnueabihf": {"armhf", "linux/arm/v7", "armv7-unknown-linux-gnueabihf"},
                 "aarch64-linux-gnu": {"arm64", "linux/arm64", "aarch64-unknown-linux-gnu"},
                 "x86-linux-gnu": {"i386", "i686", "linux/386"}, "x86_64-windows": {"win64", "x86_64-pc-windows-msvc"}}


def test_targets_json_lists_every_target():
    result = xrel("targets", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert list(rows) == TARGET_NAMES
    for name, expected in KNOWN_ROWS.items():
        assert {k: rows[name][k] for k in expected} == expected, name
    for name, aliases in KNOWN_ALIASES.items():
        assert aliases <= set(rows[name]["aliases"]), name
    for row in rows.values():
        assert row["sources"] and row["run_here"] in ("native", "qemu", "none") and row["run_note"]
    assert rows["x86_64-macos"]["run_note"] == "macos binaries cannot run on this machine"
    host = rows[host_target().name]
    assert (host["run_here"], host["run_note"]) == ("native", "host target")


def test_targets_text_names_every_target_and_alias():
    result = xrel("targets")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == TARGET_NAMES
    for name, aliases in KNOWN_ALIASES.items():
        shown = lines[lines.index(next(line for line in lines if line.startswith(name + " "))) + 1]
        assert all(alias in shown.split("aliases:")[1].replace(",", " ").split() for alias in aliases), name


# -- zig-env -----------------------------------------------------------------------------------------
def test_zig_env_json(tmp_path):
    result = xrel("zig-env", "linux/arm/v7", "--format", "json", env=cache_env(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    target = Target.parse("arm-linux-gnueabihf")
    under = target.rust.replace("-", "_")
    for key in (*TOOL_VARS, f"CC_{under}", f"CXX_{under}", f"AR_{under}", f"CARGO_TARGET_{under.upper()}_LINKER"):
        assert key in env, key
    for key in ("CC", "CXX", "AR", "RANLIB", "STRIP"):
        assert os.access(env[key], os.X_OK), key
    assert Path(env["CMAKE_TOOLCHAIN_FILE"]).is_file()
    assert env["XREL_TARGET"] == "arm-linux-gnueabihf"
    # never the precompilers' TARGET_* (GNU make's implicit rules put $(TARGET_ARCH) on the command line)
    assert not set(PRECOMPILER_VARS) & set(env)
    # no runtime cached and no --otp-root: no ERTS headers, and stderr says so (stdout stays eval-able)
    assert "ERTS_INCLUDE_DIR" not in env
    assert "no runtime for arm-linux-gnueabihf is cached" in result.stderr
    assert "fetch-erts" in result.stderr


def test_zig_env_with_an_otp_root(tmp_path):
    root = fake_otp_root(tmp_path)
    result = xrel("zig-env", "aarch64-linux-gnu", "--otp-root", str(root), "--format", "json",
                  env=cache_env(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert env["ERTS_INCLUDE_DIR"] == str(root / "erts-14.2.5" / "include")
    assert env["ERL_EI_INCLUDE_DIR"] == str(root / "usr" / "include")
    assert env["ERL_EI_LIBDIR"] == str(root / "usr" / "lib")
    assert result.stderr == ""


def test_zig_env_sh_evaluates_in_a_shell(tmp_path):
    """sh quoting survives paths with spaces: the values a shell sees are the JSON ones."""
    env = cache_env(tmp_path / "a cache dir")
    root = fake_otp_root(tmp_path)
    as_json = json.loads(xrel("zig-env", "aarch64-macos", "--otp-root", str(root), "--format", "json", env=env).stdout)
    keys = sorted(as_json)
    command = f"{shlex.quote(sys.executable)} -m xrel zig-env aarch64-macos --otp-root {shlex.quote(str(root))}"
    script = (f'eval "$({command})"' " && " + " && ".join(f'printf "%s\\n" "${k}"' for k in keys))
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert dict(zip(keys, result.stdout.splitlines())) == as_json
    assert " " in as_json["CC"]


def test_zig_env_fish(tmp_path):
    env = cache_env(tmp_path / "fish cache")
    result = xrel("zig-env", "x86_64-windows", "--format", "fish", env=env)
    assert result.returncode == 0, result.stderr
    as_json = json.loads(xrel("zig-env", "x86_64-windows", "--format", "json", env=env).stdout)
    parsed = {}
    for line in result.stdout.splitlines():
        words = shlex.split(line.rstrip(";"))
        assert words[:2] == ["set", "-gx"] and len(words) == 4, line
        parsed[words[2]] = words[3]
    assert parsed == as_json
    assert "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER" in parsed
    if shutil.which("fish"):
        shown = subprocess.run(["fish", "-c", result.stdout + '\nprintf "%s\\n" $CC'], capture_output=True,
                               text=True, env=env)
        assert shown.stdout.strip() == as_json["CC"]


def test_zig_env_with_an_otp_version_not_cached_is_an_error(tmp_path):
    result = xrel("zig-env", "aarch64-linux-gnu", "--otp", "27", env=cache_env(tmp_path / "cache"))
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "xrel fetch-erts aarch64-linux-gnu --otp 27" in result.stderr


# -- doctor ------------------------------------------------------------------------------------------
def test_doctor_json(tmp_path):
    result = xrel("doctor", "--json", env=cache_env(tmp_path / "doctor cache"))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        assert set(row) == {"name", "ok", "detail", "fix"}
        assert row["detail"]
        if not row["ok"]:
            assert row["fix"], f"{row['name']} is missing but no fix is named"
    zig = find_zig()
    assert by_name["zig"]["ok"] and str(zig.version) in by_name["zig"]["detail"]
    assert str(tmp_path / "doctor cache") in by_name["cache"]["detail"]
    assert by_name["make"]["ok"] == (shutil.which("make") is not None)
    assert by_name["erlang"]["ok"] == (shutil.which("erl") is not None)
    runs = {name.removeprefix("run "): row for name, row in by_name.items() if name.startswith("run ")}
    assert sorted(runs) == sorted(GLIBC_LINUX)  # musl, macOS and Windows releases never run here
    assert (runs[host_target().name]["ok"], runs[host_target().name]["detail"]) == (True, "host target")
    if not by_name["binfmt_misc"]["ok"]:
        assert "mount -t binfmt_misc" in by_name["binfmt_misc"]["fix"]
        foreign = [n for n in GLIBC_LINUX if n not in (host_target().name, "x86-linux-gnu")]  # i386: no binfmt
        assert not any(runs[n]["ok"] for n in foreign), runs


def test_doctor_text():
    result = xrel("doctor")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[1] == "zig"


# -- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,expected", [
    (["zig-env", "aarch64-linx-gnu"], "did you mean aarch64-linux-gnu"),
    (["zig-env", "nonsense"], "unknown target 'nonsense'"),
    (["zig-env", "aarch64-macos.2.28"], "only applies to glibc Linux targets"),
])
def test_user_errors_are_one_line_with_exit_2(args, expected, tmp_path):
    result = xrel(*args, env=cache_env(tmp_path / "cache"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("xrel: error: ") and result.stderr.count("\n") == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_before_or_after_the_subcommand(where, tmp_path):
    env = cache_env(tmp_path / "cache")
    def run(*options):
        args = [*options, "zig-env", "armhf"] if where == "before" else ["zig-env", "armhf", *options]
        return xrel(*args, env=env)
    loud, quiet = run(), run("-q")
    assert loud.returncode == quiet.returncode == 0, quiet.stderr
    assert "xrel: note: no runtime for arm-linux-gnueabihf is cached" in loud.stderr
    assert quiet.stderr == "" and quiet.stdout == loud.stdout
    failed = xrel(*(["--debug", "zig-env", "nonsense"] if where == "before" else ["zig-env", "nonsense", "--debug"]),
                  env=env)
    assert failed.returncode == 2
    assert "Traceback" in failed.stderr and "xrel: error: unknown target 'nonsense'" in failed.stderr


# -- entry points ----------------------------------------------------------------------------------------
def test_python_m_xrel_help():
    result = xrel("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: xrel")
    for command in ("targets", "zig-env", "doctor"):
        assert command in result.stdout


def test_version():
    import xrel as package

    result = xrel("--version")
    assert result.returncode == 0 and package.__version__ in result.stdout


CONSOLE_SCRIPT = Path(sys.executable).parent / "xrel"  # this interpreter's, not whichever is first on PATH


@pytest.mark.skipif(not CONSOLE_SCRIPT.is_file(), reason="the xrel console script is not installed (pip install -e .)")
def test_console_script_matches_python_m():
    result = subprocess.run([str(CONSOLE_SCRIPT), "targets", "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads(xrel("targets", "--json").stdout)


# -- finding zig ---------------------------------------------------------------------------------------
def _fake_zig(path: Path, prints: str) -> Path:
    path.write_text(f"#!/bin/sh\necho {shlex.quote(prints)}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("make_zig,expected", [
    (lambda d: d / "missing", "is not a file"),
    (lambda d: d, "is not a file"),
    (lambda d: _fake_zig(d / "zig", "0.11.0"), "zig 0.11.0"),
    (lambda d: _fake_zig(d / "zig", "garbage"), "unknown version 'garbage'"),
])
def test_a_bad_xrel_zig_is_a_one_line_error(make_zig, expected, tmp_path):
    env = dict(cache_env(tmp_path / "cache"), XREL_ZIG=str(make_zig(tmp_path)))
    result = xrel("zig-env", "aarch64-linux-gnu", env=env)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and expected in result.stderr and "XREL_ZIG" in result.stderr
    doctor = json.loads(xrel("doctor", "--json", env=env).stdout)
    zig = next(r for r in doctor if r["name"] == "zig")
    assert not zig["ok"] and "pip install ziglang" in zig["fix"]


def test_zig_version_is_asked_once_per_binary(tmp_path):
    """zig's version is remembered by the binary's identity: asked again only when the file changes."""
    runs = tmp_path / "runs"
    zig = tmp_path / "zig"
    env = dict(cache_env(tmp_path / "cache"), XREL_ZIG=str(zig))

    def write(version: str) -> None:
        zig.write_text(f"#!/bin/sh\necho run >> {shlex.quote(str(runs))}\necho {version}\n")
        zig.chmod(0o755)

    write("0.13.0")
    for _ in range(2):
        assert xrel("zig-env", "aarch64-linux-gnu", env=env).returncode == 0
    assert runs.read_text().count("run") == 1
    write("0.9.0")
    result = xrel("zig-env", "aarch64-linux-gnu", env=env)
    assert result.returncode == 3 and "zig 0.9.0" in result.stderr
    assert runs.read_text().count("run") == 2


def test_xrel_zig_wins(tmp_path):
    """An explicit XREL_ZIG is used even when the ziglang package is installed."""
    real = find_zig().path
    link = tmp_path / "my zig"
    link.symlink_to(real)
    env = dict(cache_env(tmp_path / "cache"), XREL_ZIG=str(link))
    rows = json.loads(xrel("doctor", "--json", env=env).stdout)
    zig = next(r for r in rows if r["name"] == "zig")
    assert zig["ok"] and "(XREL_ZIG)" in zig["detail"]


def test_sigterm_leaves_nothing_half_written_in_the_cache(tmp_path):
    """A SIGTERM'd xrel unwinds: the staging dir of what it was writing is deleted (exit 143)."""
    final = tmp_path / "runtimes" / "entry"
    code = ("import sys, time\nfrom pathlib import Path\nfrom xrel.cli.app import exit_on_sigterm\n"
            "from xrel.storage import cache\nexit_on_sigterm()\n"
            "with cache.staging(Path(sys.argv[1])) as tmp:\n"
            "    (tmp / 'half').write_text('x')\n    print('writing', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(final)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert [p.name.startswith(".tmp-entry~") for p in final.parent.iterdir()] == [True]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert list(final.parent.iterdir()) == []
