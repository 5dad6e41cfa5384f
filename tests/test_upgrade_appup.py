"""Appups from small hand-made beams, the user's appup winning, and a same-version app renamed in the .app,
.rel and boot script (the host's erl/erlc; about a second)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import have
from xrel.upgrade import erlang

pytestmark = pytest.mark.skipif(not (have("erl") and have("erlc")), reason="the host's erl/erlc are not installed")

OLD = {
    "same": "-module(same).\n-export([f/0]).\nf() -> 1.\n",
    "plain": "-module(plain).\n-export([f/0]).\nf() -> 1.\n",
    "server": "-module(server).\n-export([code_change/3, g/0]).\ng() -> 1.\ncode_change(_, S, _) -> {ok, S}.\n",
    "sup": "-module(sup).\n-behaviour(supervisor).\n-export([init/1]).\ninit(_) -> {ok, {#{}, []}}.\n",
    "gone": "-module(gone).\n-export([f/0]).\nf() -> 1.\n",
}
NEW = {
    "same": OLD["same"],  # compiled with debug_info below: other chunks, the same code
    "plain": "-module(plain).\n-export([f/0]).\nf() -> 2.\n",
    "server": "-module(server).\n-export([code_change/3, g/0]).\ng() -> plain:f().\ncode_change(_, S, _) -> {ok, S}.\n",
    "sup": "-module(sup).\n-behaviour(supervisor).\n-export([init/1]).\ninit(_) -> {ok, {#{intensity => 5}, []}}.\n",
    "fresh": "-module(fresh).\n-export([f/0]).\nf() -> 1.\n",
}


def ebin(root: Path, sources: dict[str, str], *flags: str) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "ebin").mkdir()
    for name, text in sources.items():
        (root / "src" / f"{name}.erl").write_text(text)
    subprocess.run(["erlc", *flags, "-o", str(root / "ebin"), *map(str, sorted((root / "src").glob("*.erl")))],
                   check=True)
    return root / "ebin"


def consult(path: Path) -> str:
    """The term in `path`, printed on one line by erl."""
    return subprocess.run(["erl", "-noshell", "-eval", f'{{ok, [T]}} = file:consult("{path}"), '
                           'io:format("~0p", [T]), halt().'], capture_output=True, text=True, check=True).stdout


def test_appup_instructions_from_a_beam_diff(tmp_path):
    old, new = ebin(tmp_path / "old", OLD), ebin(tmp_path / "new", NEW, "+debug_info")
    lines = erlang.run("appups", [("demo", "1.0.0", "2.0.0", old, new)], tmp_path)
    assert sorted(lines) == ["module demo fresh added", "module demo gone deleted", "module demo plain load",
                             "module demo server advanced", "module demo sup supervisor"]
    assert consult(new / "demo.appup") == (
        '{"2.0.0",[{"1.0.0",[{add_module,fresh},{load_module,plain,[]},{update,server,{advanced,[]},[plain]},'
        '{update,sup,supervisor},{delete_module,gone}]}],[{"1.0.0",[{add_module,gone},{load_module,plain,[]},'
        '{update,server,{advanced,[]},[plain]},{update,sup,supervisor},{delete_module,fresh}]}]}')


def test_the_users_appup_wins_with_the_packages_version(tmp_path):
    old, new = ebin(tmp_path / "old", OLD), ebin(tmp_path / "new", NEW)
    (new / "demo.appup").write_text('{"0.1.0", [{"0.1.0", [{load_module, plain}]}], [{"0.1.0", []}]}.\n')
    assert erlang.run("appups", [("demo", "0.1.0", "0.1.0+xrel.abc", old, new)], tmp_path) == ["user demo"]
    assert consult(new / "demo.appup") == '{"0.1.0+xrel.abc",[{"0.1.0",[{load_module,plain}]}],[{"0.1.0",[]}]}'


def test_rename_rewrites_app_rel_and_boot_script(tmp_path):
    rel_dir = tmp_path / "releases" / "2.0.0"
    rel_dir.mkdir(parents=True)
    app = tmp_path / "lib" / "dep-0.1.0+xrel.abc" / "ebin" / "dep.app"
    app.parent.mkdir(parents=True)
    app.write_text('{application, dep, [{vsn, "0.1.0"}, {modules, [dep]}]}.\n')
    (rel_dir / "r.rel").write_text('{release, {"r", "2.0.0"}, {erts, "13.1.5"}, [{kernel, "8.5.3"}, '
                                   '{dep, "0.1.0", permanent}]}.\n')
    (rel_dir / "start.script").write_text(
        '{script, {"r", "2.0.0"}, [{path, ["$ROOT/lib/kernel-8.5.3/ebin", "$ROOT/lib/dep-0.1.0/ebin"]}, '
        '{apply, {application, load, [{application, dep, [{vsn, "0.1.0"}]}]}}]}.\n')
    erlang.run("rename", (rel_dir, rel_dir / "r.rel", [("dep", "0.1.0", "0.1.0+xrel.abc", app)]), tmp_path)
    assert consult(app) == '{application,dep,[{vsn,"0.1.0+xrel.abc"},{modules,[dep]}]}'
    assert '{dep,"0.1.0+xrel.abc",permanent}' in consult(rel_dir / "r.rel")
    script = consult(rel_dir / "start.script")
    assert '"$ROOT/lib/dep-0.1.0+xrel.abc/ebin"' in script and '{vsn,"0.1.0+xrel.abc"}' in script
    assert '"$ROOT/lib/kernel-8.5.3/ebin"' in script and (rel_dir / "start.boot").is_file()


def test_a_failure_is_one_line(tmp_path):
    with pytest.raises(Exception, match="relup of the upgrade package failed: ") as raised:
        erlang.run("relup", (str(tmp_path / "new"), str(tmp_path / "old"), str(tmp_path), []), tmp_path)
    assert "\n" not in str(raised.value)
