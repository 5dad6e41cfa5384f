"""bin/xrel-node, the node-side sh script, run by dash on real files and real processes.

The release it runs is a stand-in (test input): a directory with releases/start_erl.data and a
`bin/shop` sh script whose behaviour a `mode` file beside bin/ chooses (stay up, crash at once,
report healthy the way the agent does, exit). The script under test is the real template, rendered.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from xrel.errors import UsageError
from xrel.node.script import render_node_script, template_text

# dash is Debian's /bin/sh; XREL_TEST_NODE_SH runs the suite under another one (e.g. BusyBox ash)
DASH = os.environ.get("XREL_TEST_NODE_SH") or shutil.which("dash")
pytestmark = pytest.mark.skipif(DASH is None, reason="dash is not installed (apt-get install dash)")

REL = "shop"
PROBATION = 60
MAX_ATTEMPTS = 2

STAND_IN = r"""#!/bin/sh
# stand-in for a mix release's bin/<rel>; what it does comes from the file `mode` beside bin/
here=$(cd "$(dirname "$0")/.." && pwd -P)
read -r _erts vsn _rest < "$here/releases/start_erl.data"
state="$XREL_NODE_ROOT/state/node.state"
echo "$1 $vsn $$" >> "$XREL_NODE_ROOT/calls.log"
printf '%s' "$RELEASE_COOKIE" > "$XREL_NODE_ROOT/seen-cookie"
printf '%s' "${XREL_NODE_FEED:-}" > "$XREL_NODE_ROOT/seen-feed"
[ "$1" = start ] || exit 0
case $(cat "$here/mode") in
  crash) exit 1 ;;
  exit0) exit 0 ;;
  healthy)
    if grep -qx phase=probation "$state" && grep -qx "current=$vsn" "$state"; then
      sed -e 's/^phase=.*/phase=healthy/' -e 's/^attempts=.*/attempts=0/' "$state" > "$state.tmp"
      mv "$state.tmp" "$state"
    fi
    exec sleep 600 ;;
  *) exec sleep 600 ;;
esac
"""


def make_release(base: Path, vsn: str, mode: str = "up", restart_sec: int = 0) -> Path:
    """An unpacked stand-in release of version `vsn` with the rendered bin/xrel-node in it."""
    rel = base / f"rel-{vsn}"
    (rel / "bin").mkdir(parents=True)
    (rel / "releases" / vsn).mkdir(parents=True)
    (rel / "lib").mkdir()
    (rel / "releases" / "start_erl.data").write_text(f"14.2 {vsn}\n")
    (rel / "mode").write_text(mode)
    (rel / "bin" / REL).write_text(STAND_IN)
    (rel / "bin" / "xrel-node").write_text(render_node_script(REL, "shop", PROBATION, MAX_ATTEMPTS, restart_sec))
    for name in (REL, "xrel-node"):
        (rel / "bin" / name).chmod(0o755)
    return rel


def xn(script: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs the script with dash."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("XREL_NODE_")}
    environment.update(env or {})
    return subprocess.run([DASH, str(script), *args], capture_output=True, text=True, env=environment, timeout=60)


def install(tmp_path: Path, vsn: str = "1.0.0", mode: str = "up", restart_sec: int = 0, *extra: str) -> Path:
    root = tmp_path / "node"
    rel = make_release(tmp_path, vsn, mode, restart_sec)
    systemd = () if "--unit-dir" in extra else ("--no-systemd",)
    result = xn(rel / "bin" / "xrel-node", "install", "--root", str(root), *systemd, *extra)
    assert result.returncode == 0, result.stderr
    return root


def add_version(root: Path, tmp_path: Path, vsn: str, mode: str) -> None:
    """What the agent does before a switch: the new version unpacked beside the running one."""
    shutil.copytree(make_release(tmp_path, vsn, mode), root / "versions" / vsn, symlinks=True)


def read_state(root: Path) -> dict[str, str]:
    lines = (root / "state" / "node.state").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def write_state(root: Path, **values: str | int) -> None:
    state = read_state(root) | {k: str(v) for k, v in values.items()}
    (root / "state" / "node.state").write_text("".join(f"{k}={v}\n" for k, v in state.items()))


def probation(root: Path, new: str = "2.0.0", old: str = "1.0.0", **values: str | int) -> None:
    """The state the agent writes when it switches from `old` to `new`."""
    agent = {"current": new, "dir": new, "previous": old, "previous_dir": old, "phase": "probation", "attempts": 0,
             "probation_until": int(time.time()) + PROBATION, "failed": ""}
    write_state(root, **(agent | values))


def point(root: Path, vsn: str) -> None:
    """`current` -> versions/<vsn>, as after the agent's flip."""
    (root / "current").unlink()
    (root / "current").symlink_to(f"versions/{vsn}")


def link(root: Path) -> str:
    return os.readlink(root / "current")


def log_text(root: Path) -> str:
    return (root / "state" / "node.log").read_text()


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xrel-node: "), result.stderr
    for word in words:
        assert word in lines[0]


def wait_for(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def starts(root: Path) -> list[tuple[str, int]]:
    """(version, pid) of every `start` the stand-in saw."""
    path = root / "calls.log"
    calls = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
    return [(c[1], int(c[2])) for c in calls if c[0] == "start"]


@pytest.fixture
def supervisor(tmp_path):
    """Starts `xrel-node run` in its own process group; kills what is left at the end."""
    started: list[subprocess.Popen] = []

    def start(root: Path) -> subprocess.Popen:
        out = (tmp_path / "run.out").open("w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("XREL_NODE_")}
        proc = subprocess.Popen([DASH, str(root / "bin" / "xrel-node"), "run"], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# --- the script itself and its rendering ----------------------------------------------------------------

def test_template_is_posix_sh_and_renders_every_placeholder(tmp_path):
    script = tmp_path / "xrel-node"
    script.write_text(render_node_script("shop", "shop-api", 90, 3, 5))
    assert subprocess.run([DASH, "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "@" not in text.split("set -u")[0]
    assert "REL_NAME='shop'" in text and "APP='shop-api'" in text and "DEFAULT_MAX_ATTEMPTS='3'" in text
    if shutil.which("shellcheck"):
        check = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
    assert "@REL_NAME@" in template_text()


@pytest.mark.parametrize("args", [("Shop", "shop", 60, 3, 1), ("shop", "my app", 60, 3, 1),
                                  ("shop", "shop", -1, 3, 1), ("shop", "shop", 60, 0, 1)])
def test_render_refuses_what_the_script_cannot_carry(args):
    with pytest.raises(UsageError):
        render_node_script(*args)


# --- install ------------------------------------------------------------------------------------------

def test_install_lays_out_the_node(tmp_path):
    root = install(tmp_path)
    assert link(root) == "versions/1.0.0"
    assert (root / "versions" / "1.0.0" / "releases" / "start_erl.data").read_text() == "14.2 1.0.0\n"
    assert (root / "bin" / "xrel-node").read_bytes() == (tmp_path / "rel-1.0.0" / "bin" / "xrel-node").read_bytes()
    assert os.access(root / "bin" / "xrel-node", os.X_OK)
    assert (root / "state").stat().st_mode & 0o777 == 0o700
    cookie = root / "state" / "cookie"
    assert cookie.stat().st_mode & 0o777 == 0o400
    assert len(cookie.read_text()) == 64 and int(cookie.read_text(), 16) >= 0
    state = read_state(root)
    assert {k: state[k] for k in ("current", "dir", "previous", "phase", "attempts")} == {
        "current": "1.0.0", "dir": "1.0.0", "previous": "", "phase": "healthy", "attempts": "0"}
    assert " installed version=1.0.0 root=" in log_text(root)


def test_reinstall_keeps_the_cookie_and_the_state(tmp_path):
    root = install(tmp_path)
    cookie = (root / "state" / "cookie").read_text()
    probation(root, new="1.0.0", old="", agent_note="kept")
    before = read_state(root)
    newer = make_release(tmp_path, "2.0.0")
    for release in (tmp_path / "rel-1.0.0", newer):
        result = xn(release / "bin" / "xrel-node", "install", "--root", str(root), "--no-systemd")
        assert result.returncode == 0, result.stderr
    assert (root / "state" / "cookie").read_text() == cookie
    assert read_state(root) == before
    assert link(root) == "versions/1.0.0" and (root / "versions" / "2.0.0" / "bin" / REL).exists()


def test_install_refuses_a_root_that_is_not_a_node(tmp_path):
    root = tmp_path / "srv"
    (root / "data").mkdir(parents=True)
    release = make_release(tmp_path, "1.0.0")
    one_line_error(xn(release / "bin" / "xrel-node", "install", "--root", str(root), "--no-systemd"),
                   "not an xrel node", "--root")
    one_line_error(xn(release / "bin" / "xrel-node", "install", "--root", str(tmp_path / "n"), "--unit-dir",
                      str(tmp_path / "none")), "--no-systemd")
    assert not (tmp_path / "n").exists()
    assert sorted(p.name for p in root.iterdir()) == ["data"]


def test_install_must_run_from_an_unpacked_release(tmp_path):
    loose = tmp_path / "loose" / "bin"
    loose.mkdir(parents=True)
    shutil.copy(make_release(tmp_path, "1.0.0") / "bin" / "xrel-node", loose / "xrel-node")
    one_line_error(xn(loose / "xrel-node", "install", "--root", str(tmp_path / "node"), "--no-systemd"),
                   "not an unpacked release")


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is missing: apt-get install systemd (scripts/setup.sh does)")
    units = tmp_path / "units"
    units.mkdir()
    user = pwd.getpwuid(os.getuid()).pw_name
    root = install(tmp_path, "1.0.0", "up", 3, "--user", user, "--unit-dir", str(units))
    unit = units / "shop.service"
    text = unit.read_text()
    for line in ("StartLimitIntervalSec=0", "Restart=always", "RestartSec=3", f"User={user}",
                 f"EnvironmentFile=-{root}/node.env", f"Environment=XREL_NODE_ROOT={root}",
                 f"ExecStartPre={root}/bin/xrel-node prestart", f"ExecStart={root}/bin/xrel-node exec",
                 "KillMode=mixed", "WantedBy=multi-user.target"):
        assert f"\n{line}\n" in text, line
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert "shop.service" not in verify.stderr, verify.stderr


# --- prestart -------------------------------------------------------------------------------------------

def test_prestart_changes_nothing_on_a_healthy_node(tmp_path):
    root = install(tmp_path)
    state = (root / "state" / "node.state").read_bytes()
    assert xn(root / "bin" / "xrel-node", "prestart").returncode == 0
    assert (root / "state" / "node.state").read_bytes() == state and link(root) == "versions/1.0.0"


def test_prestart_counts_a_start_during_probation_and_keeps_unknown_keys(tmp_path):
    root = install(tmp_path)
    add_version(root, tmp_path, "2.0.0", "up")
    probation(root, agent_note="from the agent")
    (root / "state" / "node.state").write_text((root / "state" / "node.state").read_text() + "odd line\n")
    point(root, "2.0.0")
    assert xn(root / "bin" / "xrel-node", "prestart").returncode == 0
    state = read_state(root)
    assert (state["phase"], state["attempts"], state["agent_note"]) == ("probation", "1", "from the agent")
    assert "odd line" in (root / "state" / "node.state").read_text()


@pytest.mark.parametrize(("values", "why"), [
    ({"failed": "health check said 503"}, "2.0.0 failed its health check: health check said 503"),
    ({"attempts": MAX_ATTEMPTS}, f"2.0.0 crashed {MAX_ATTEMPTS} times during probation"),
    ({"probation_until": 1000}, f"2.0.0 did not become healthy within {PROBATION} s"),
])
def test_prestart_rolls_back(tmp_path, values, why):
    root = install(tmp_path)
    add_version(root, tmp_path, "2.0.0", "up")
    probation(root, **values)
    point(root, "2.0.0")
    result = xn(root / "bin" / "xrel-node", "prestart")
    assert result.returncode == 0, result.stderr
    state = read_state(root)
    assert {k: state[k] for k in ("current", "dir", "previous", "previous_dir", "phase", "failed", "reason")} == {
        "current": "1.0.0", "dir": "1.0.0", "previous": "", "previous_dir": "", "phase": "rolled_back",
        "failed": "", "reason": why}
    assert link(root) == "versions/1.0.0"
    assert f' rollback from=2.0.0 to=1.0.0 reason="{why}"' in log_text(root)


def test_prestart_rolls_back_a_hot_upgrade_in_place(tmp_path):
    root = install(tmp_path)
    write_state(root, current="2.0.0", dir="1.0.0", previous="1.0.0", previous_dir="1.0.0", phase="probation",
                attempts=0, probation_until=1000)
    assert xn(root / "bin" / "xrel-node", "prestart").returncode == 0
    state = read_state(root)
    assert (state["current"], state["dir"], state["phase"]) == ("1.0.0", "1.0.0", "rolled_back")
    assert link(root) == "versions/1.0.0"


def test_prestart_without_a_previous_version_logs_and_goes_on(tmp_path):
    root = install(tmp_path)
    write_state(root, phase="probation", attempts=0, failed="boom")
    result = xn(root / "bin" / "xrel-node", "prestart")
    assert result.returncode == 0, result.stderr
    assert read_state(root)["current"] == "1.0.0" and " rollback_impossible " in log_text(root)


def test_prestart_reconciles_a_switch_killed_before_the_flip(tmp_path):
    root = install(tmp_path)
    add_version(root, tmp_path, "2.0.0", "up")
    probation(root)  # the agent wrote the state, then died before flipping `current`
    (root / ".current.tmp").symlink_to("versions/2.0.0")
    assert xn(root / "bin" / "xrel-node", "prestart").returncode == 0
    assert link(root) == "versions/2.0.0" and not (root / ".current.tmp").is_symlink()
    assert read_state(root)["attempts"] == "1"
    assert " reconcile from=versions/1.0.0 to=versions/2.0.0" in log_text(root)


def test_prestart_removes_partial_unpacks_and_repairs_a_missing_link_and_cookie(tmp_path):
    root = install(tmp_path)
    (root / "versions" / ".3.0.0.tmp" / "lib").mkdir(parents=True)
    (root / "versions" / "..odd").write_text("x")
    (root / "current").unlink()
    (root / "state" / "cookie").unlink()
    assert xn(root / "bin" / "xrel-node", "prestart").returncode == 0
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["1.0.0"]
    assert link(root) == "versions/1.0.0" and len((root / "state" / "cookie").read_text()) == 64


# --- exec, small commands, errors ------------------------------------------------------------------------

def test_exec_passes_the_cookie_and_node_env(tmp_path):
    root = install(tmp_path, "1.0.0", "exit0")
    (root / "node.env").write_text("XREL_NODE_FEED=https://releases.example/shop/latest/\n")
    result = xn(root / "bin" / "xrel-node", "exec")
    assert result.returncode == 0, result.stderr
    assert (root / "seen-cookie").read_text() == (root / "state" / "cookie").read_text()
    assert (root / "seen-feed").read_text() == "https://releases.example/shop/latest/"
    assert [v for v, _ in starts(root)] == ["1.0.0"] and " start version=1.0.0 dir=1.0.0" in log_text(root)


def test_status_check_now_and_rpc(tmp_path):
    root = install(tmp_path)
    status = xn(root / "bin" / "xrel-node", "status")
    assert "phase=healthy" in status.stdout and "current -> versions/1.0.0" in status.stdout
    assert xn(root / "bin" / "xrel-node", "check-now").returncode == 0
    assert (root / "state" / "check-now").exists()
    assert xn(root / "bin" / "xrel-node", "rpc", "IO.puts(1)").returncode == 0
    assert (root / "calls.log").read_text().startswith("rpc 1.0.0")
    assert (root / "seen-cookie").read_text() == (root / "state" / "cookie").read_text()
    help_text = xn(root / "bin" / "xrel-node", "help")
    assert help_text.returncode == 0 and "install" in help_text.stdout


def test_a_broken_layout_is_one_line_naming_the_fix(tmp_path):
    nowhere = make_release(tmp_path, "9.9.9") / "bin" / "xrel-node"
    one_line_error(xn(nowhere, "prestart"), "--root")
    one_line_error(xn(nowhere, "--root", str(tmp_path), "prestart"), "not an xrel node", "install")
    root = install(tmp_path)
    script = root / "bin" / "xrel-node"
    one_line_error(xn(script, "frobnicate"), "unknown command", "help")
    one_line_error(xn(script, "rpc"), "rpc needs an expression")
    write_state(root, dir="../../etc")
    one_line_error(xn(script, "prestart"), "dir", "node.state")
    write_state(root, dir="1.0.0")
    shutil.rmtree(root / "versions" / "1.0.0")
    one_line_error(xn(script, "prestart"), "versions/1.0.0/bin/shop is missing")
    one_line_error(xn(script, "exec"), "current/bin/shop is missing", "prestart")


# --- the run supervisor -----------------------------------------------------------------------------------

def test_run_rolls_a_crashing_version_back_and_stops_cleanly_on_term(tmp_path, supervisor):
    root = install(tmp_path)
    add_version(root, tmp_path, "2.0.0", "crash")
    probation(root)
    point(root, "2.0.0")
    proc = supervisor(root)
    wait_for(lambda: [v for v, _ in starts(root)][-1:] == ["1.0.0"], "the supervisor to start 1.0.0 again")
    assert [v for v, _ in starts(root)] == ["2.0.0"] * MAX_ATTEMPTS + ["1.0.0"]
    state = read_state(root)
    assert (state["current"], state["phase"]) == ("1.0.0", "rolled_back")
    assert state["reason"] == f"2.0.0 crashed {MAX_ATTEMPTS} times during probation"
    assert log_text(root).count(" exit status=1") == MAX_ATTEMPTS
    time.sleep(0.5)
    pid = starts(root)[-1][1]
    assert proc.poll() is None and alive(pid) and len(starts(root)) == MAX_ATTEMPTS + 1  # 1.0.0 stays up
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not alive(pid)
    assert log_text(root).rstrip().endswith(" stopped")


def test_run_never_gives_up_on_a_crash_loop_and_stops_on_int(tmp_path, supervisor):
    root = install(tmp_path, "1.0.0", "crash")
    proc = supervisor(root)
    wait_for(lambda: len(starts(root)) >= 5, "five starts")
    assert proc.poll() is None and read_state(root)["phase"] == "healthy"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


def test_run_keeps_a_version_that_reports_healthy(tmp_path, supervisor):
    root = install(tmp_path)
    add_version(root, tmp_path, "2.0.0", "healthy")
    probation(root)
    point(root, "2.0.0")
    proc = supervisor(root)
    wait_for(lambda: read_state(root)["phase"] == "healthy", "2.0.0 to report healthy")
    time.sleep(0.5)
    state = read_state(root)
    assert (state["current"], state["previous"], state["attempts"]) == ("2.0.0", "1.0.0", "0")
    assert [v for v, _ in starts(root)] == ["2.0.0"] and link(root) == "versions/2.0.0"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_run_rolls_back_a_version_that_hangs_past_its_probation(tmp_path, supervisor):
    root = install(tmp_path)
    add_version(root, tmp_path, "2.0.0", "up")  # boots, never reports healthy
    probation(root, probation_until=int(time.time()) + 2)
    point(root, "2.0.0")
    proc = supervisor(root)
    wait_for(lambda: [v for v, _ in starts(root)][-1:] == ["1.0.0"], "the rollback to 1.0.0")
    assert [v for v, _ in starts(root)] == ["2.0.0", "1.0.0"]
    assert read_state(root)["reason"] == f"2.0.0 did not become healthy within {PROBATION} s"
    assert " probation_expired version=2.0.0 " in log_text(root)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
