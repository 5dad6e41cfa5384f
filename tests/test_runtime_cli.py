"""`xrel fetch-erts`, `xrel otp-versions` and `xrel cache` as a user runs them (subprocesses):
exit codes, JSON on stdout, one-line errors and never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import runtime_fixtures as rf


def xrel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrel", "-q", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xrel: error: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_fetch_erts_json_and_plain(upstream, isolated_cache):
    archives = rf.publish_hex(upstream, "aarch64-linux-gnu", {"27.3": True})
    result = xrel("fetch-erts", "arm64", "--otp", "27", "--source", "hexbuilds", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["target"], data["otp_version"], data["source"]) == ("aarch64-linux-gnu", "27.3", "hexbuilds")
    assert data["sha256"] == {"OTP-27.3.tar.gz": rf.sha256(archives["27.3"])}
    assert data["urls"][0].endswith("/arm64/ubuntu-22.04/OTP-27.3.tar.gz")
    plain = xrel("fetch-erts", "aarch64-linux-gnu", "--otp", "27.3", "--source", "hexbuilds", "--offline")
    assert plain.returncode == 0 and plain.stdout.strip() == data["path"]


@pytest.mark.parametrize("args, code, words", [
    (("x86_64-linux-gnu", "--otp", "26", "--source", "hexbuilds"), 4, ("OTP 26 is not available", "27.3")),
    (("x86_64-windows", "--otp", "26.2", "--source", "windows"), 4, ("only as an installer",)),
    (("x86_64-linux-gnu", "--otp", "27", "--source", "hexbuilds", "--sha256", "xyz"), 2, ("not a sha256",)),
    (("x86_64-linux-gnu", "--source", "url:https://example.invalid/otp.tar.gz"), 2, ("needs --sha256",)),
    (("x86_64-linux-gnu", "--otp", "twenty"), 2, ("not an OTP version",)),
    (("nonsense-target",), 2, ("unknown target",)),
])
def test_fetch_erts_errors_are_one_line(upstream, isolated_cache, args, code, words):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"27.3": True}, serve=())
    assert_one_line_error(xrel("fetch-erts", *args), code, *words)


def test_otp_versions_lists_offers_with_notes(upstream, isolated_cache):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"25.0": False, "27.3": True}, serve=())
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"28.0": True}, os_name="ubuntu-24.04", serve=())
    result = xrel("otp-versions", "x86_64-linux-gnu", "--source", "hexbuilds")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "hexbuilds: 3 version(s) for x86_64-linux-gnu"
    assert lines[1].split()[0] == "28.0" and "glibc >= 2.39" in lines[1]
    assert "needs --sha256" in next(line for line in lines if line.split()[0] == "25.0")
    data = json.loads(xrel("otp-versions", "x86_64-linux-gnu", "--source", "hexbuilds", "--json").stdout)
    assert [o["version"] for o in data["sources"]["hexbuilds"]["offers"]] == ["28.0", "27.3", "25.0"]


def test_otp_versions_shows_a_failing_source_without_failing(upstream, isolated_cache):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"27.3": True}, serve=())
    assert xrel("otp-versions", "x86_64-linux-gnu", "--source", "hexbuilds").returncode == 0  # caches the index
    result = xrel("otp-versions", "x86_64-linux-gnu", "--offline", "--json")  # debian has no index offline
    assert result.returncode == 0, result.stderr
    sources = json.loads(result.stdout)["sources"]
    assert sources["debian"]["error"] and not sources["debian"]["offers"]
    assert [o["version"] for o in sources["hexbuilds"]["offers"]] == ["27.3"]
    upstream.reset()
    assert_one_line_error(xrel("otp-versions", "x86_64-linux-gnu", "--source", "hexbuilds"), 4, "no runtime source")


def test_cache_list_rm_prune(upstream, isolated_cache):
    rf.publish_windows(upstream, "27.2.4")
    assert xrel("fetch-erts", "x86_64-windows", "--otp", "27.2.4").returncode == 0
    listed = json.loads(xrel("cache", "list", "--json").stdout)
    names = {(e["area"], e["name"]) for e in listed["entries"]}
    assert ("runtimes", "otp-27.2.4-x86_64-windows-windows") in names
    assert ("pins", "windows-otp_win64_27.2.4.zip.sha256") in names
    assert_one_line_error(xrel("cache", "rm", "otp-27.2.4-x86_64-window"), 2, "did you mean")
    removed = json.loads(xrel("cache", "rm", "runtimes/otp-27.2.4-x86_64-windows-windows", "--json").stdout)
    assert [e["name"] for e in removed["removed"]] == ["otp-27.2.4-x86_64-windows-windows"]
    (isolated_cache / "runtimes" / ".tmp-otp-27.2.4-x86_64-windows-windows~abc").mkdir()  # a killed run's
    pruned = xrel("cache", "prune")
    assert pruned.returncode == 0 and ".tmp-otp-27.2.4" in pruned.stdout
    assert xrel("cache", "rm", "--all").returncode == 0
    left = json.loads(xrel("cache", "list", "--json").stdout)["entries"]
    assert [(e["area"], e["name"]) for e in left] == [("pins", "windows-otp_win64_27.2.4.zip.sha256")]
    assert_one_line_error(xrel("cache", "rm"), 2, "--all")


def test_cache_prune_removes_the_build_trees_of_projects_that_are_gone(tmp_path, isolated_cache):
    from xrel.release.workspace import project_key, workspace_for

    kept, gone = tmp_path / "kept", tmp_path / "gone"
    for project in (kept, gone):
        project.mkdir()
        (project / "mix.exs").write_text("defmodule P.MixProject do\nend\n")
        workspace_for(project, "prod", "aarch64-linux-gnu", "otp25").root.mkdir(parents=True)
    (gone / "mix.exs").unlink()  # (a checkout deleted, or moved away: its trees are no one's)
    unrecorded = isolated_cache / "builds" / "older-xrel-0123456789ab"  # (an xrel that recorded nothing)
    unrecorded.mkdir()
    pruned = json.loads(xrel("cache", "prune", "--json").stdout)["removed"]
    assert [row["name"] for row in pruned] == [project_key(gone, "prod")]
    left = {p.name for p in (isolated_cache / "builds").iterdir()}
    assert left == {project_key(kept, "prod"), unrecorded.name}
