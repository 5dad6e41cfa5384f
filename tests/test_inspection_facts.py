"""inspection.facts: native files parsed once per content (across targets, builds and processes),
while every rule still runs on the cached facts. Real zig-built ELF files."""

from __future__ import annotations

import shutil

import pytest

from otp_tree import stub_binaries
from xrel.inspection import binaries, facts
from xrel.inspection.check import inspect_tree


@pytest.fixture
def parses(monkeypatch, tmp_path):
    """A fresh cache; counts the real parser's calls (it still parses)."""
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(facts, "_MEMO", {})
    calls = []
    real = binaries.read

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(binaries, "read", counting)
    return calls


def release_with(tmp_path, exe):
    root = tmp_path / "rel"
    for app in ("a-1", "b-1"):
        (root / "lib" / app / "priv").mkdir(parents=True)
        shutil.copy2(exe, root / "lib" / app / "priv" / "prog")
    return root


def test_the_same_bytes_are_parsed_once_also_by_a_new_process(parses, tmp_path, monkeypatch):
    exe, _lib = stub_binaries("aarch64-linux-gnu")
    root = release_with(tmp_path, exe)
    first = inspect_tree(root, "aarch64-linux-gnu")
    assert len(parses) == 1  # two files, one content
    monkeypatch.setattr(facts, "_MEMO", {})  # what a new process has: only the disk entry
    again = inspect_tree(root, "aarch64-linux-gnu")
    assert len(parses) == 1
    assert [f.to_dict() for f in again.files] == [f.to_dict() for f in first.files]
    assert {f.path for f in again.files} == {"lib/a-1/priv/prog", "lib/b-1/priv/prog"}


def test_changed_bytes_are_parsed_again(parses, tmp_path):
    root = release_with(tmp_path, stub_binaries("aarch64-linux-gnu")[0])
    inspect_tree(root, "aarch64-linux-gnu")
    shutil.copy2(stub_binaries("x86_64-linux-gnu")[0], root / "lib/a-1/priv/prog")
    report = inspect_tree(root, "aarch64-linux-gnu")
    assert len(parses) == 2
    machines = {f.path: f.info["machine"] for f in report.files}
    assert machines == {"lib/a-1/priv/prog": 62, "lib/b-1/priv/prog": 183}


def test_every_rule_runs_on_cached_facts(parses, tmp_path):
    root = release_with(tmp_path, stub_binaries("aarch64-linux-gnu")[0])
    for _ in range(2):  # parsed, then cached: the wrong CPU is a problem both times
        report = inspect_tree(root, "x86_64-linux-gnu")
        assert all(f.problems for f in report.files), report.files
    assert len(parses) == 1


def test_a_changed_parser_does_not_see_old_facts(parses, tmp_path, monkeypatch):
    root = release_with(tmp_path, stub_binaries("aarch64-linux-gnu")[0])
    inspect_tree(root, "aarch64-linux-gnu")
    monkeypatch.setattr(facts, "parser_fingerprint", lambda: "0" * 16)
    monkeypatch.setattr(facts, "_MEMO", {})
    inspect_tree(root, "aarch64-linux-gnu")
    assert len(parses) == 2
