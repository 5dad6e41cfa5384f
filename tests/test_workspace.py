"""Per-target build trees: sync rules, isolation from the user's files, seeding."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from xrel.release import workspace
from xrel.release.native import classify
from xrel.release.workspace import Workspace, mirrored, sync_tree

ELF_HEADER = b"\x7fELF\x02\x01\x01" + b"\0" * 57


def make_tree(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "a.ex").write_text("defmodule A do end\n")
    (root / "c_src").mkdir()
    (root / "c_src" / "nif.c").write_text("int x;\n")
    (root / "c_src" / "nif.o").write_bytes(ELF_HEADER)  # a host build output
    (root / "priv").mkdir()
    (root / "priv" / "nif.so").write_bytes(ELF_HEADER)
    (root / "priv" / "data.txt").write_text("static\n")
    (root / "_build").mkdir()
    (root / "_build" / "x").write_text("host build\n")
    os.symlink("lib/a.ex", root / "link.ex")
    return root


def test_sync_copies_sources_keeps_mtimes_and_drops_host_binaries(tmp_path):
    src = make_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    stats = sync_tree(src, dst, excludes={"_build"}, drop_binaries_under=[src])
    assert (dst / "lib/a.ex").read_text() == "defmodule A do end\n"
    assert (dst / "lib/a.ex").stat().st_mtime_ns // 10**9 == (src / "lib/a.ex").stat().st_mtime_ns // 10**9
    assert not (dst / "c_src/nif.o").exists() and not (dst / "priv/nif.so").exists()
    assert (dst / "priv/data.txt").exists() and not (dst / "_build").exists()
    assert os.readlink(dst / "link.ex") == "lib/a.ex"
    assert stats.skipped_binaries == 2 and stats.copied == 4  # a.ex, nif.c, data.txt, link.ex


def test_resync_only_copies_changes_and_keeps_build_outputs(tmp_path):
    src = make_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    first = sync_tree(src, dst, drop_binaries_under=[src])
    (dst / "c_src" / "nif.o").write_text("target object")  # made by the target's build
    again = sync_tree(src, dst, drop_binaries_under=[src])
    assert again.copied == 0 and again.digest == first.digest
    assert (dst / "c_src" / "nif.o").read_text() == "target object"
    (src / "lib" / "b.ex").write_text("defmodule B do end\n")
    (src / "priv" / "data.txt").unlink()
    third = sync_tree(src, dst, drop_binaries_under=[src])
    assert third.copied == 1 and third.removed == 1 and third.digest != first.digest
    assert (dst / "lib/b.ex").exists() and not (dst / "priv/data.txt").exists()


def test_an_extra_targets_beam_only_sources_link_to_the_first_targets_current_copies(tmp_path):
    src = make_tree(tmp_path / "src")
    first, extra = tmp_path / "first", tmp_path / "extra"
    beam = (".ex", ".erl")
    sync_tree(src, first, excludes={"_build"}, drop_binaries_under=[src], beam_sources=beam)
    sync_tree(src, extra, excludes={"_build"}, drop_binaries_under=[src], beam_sources=beam, twin=first)

    def same_file(rel: str) -> bool:
        return (first / rel).stat().st_ino == (extra / rel).stat().st_ino

    assert same_file("lib/a.ex")  # a hard link: nothing copied
    assert not same_file("c_src/nif.c") and not same_file("priv/data.txt")  # what native builds read: copies
    # a changed source the first tree has not synced yet: the extra tree copies it, never the stale twin
    (src / "lib" / "a.ex").write_text("defmodule A do def b, do: 2 end\n")
    os.utime(src / "lib" / "a.ex", (1, 1))
    sync_tree(src, extra, excludes={"_build"}, drop_binaries_under=[src], beam_sources=beam, twin=first)
    assert (extra / "lib/a.ex").read_text() == "defmodule A do def b, do: 2 end\n" and not same_file("lib/a.ex")
    assert (first / "lib/a.ex").read_text() == "defmodule A do end\n"
    # the first tree's sync replaces its copy with a new file: the extra tree's stays as it is
    sync_tree(src, first, excludes={"_build"}, drop_binaries_under=[src], beam_sources=beam)
    assert (extra / "lib/a.ex").read_text() == (first / "lib/a.ex").read_text()


def test_sync_never_writes_to_the_source(tmp_path):
    src = make_tree(tmp_path / "src")
    before = sorted((p.relative_to(src), p.lstat().st_mtime_ns) for p in src.rglob("*"))
    dst = tmp_path / "dst"
    sync_tree(src, dst, drop_binaries_under=[src])
    (dst / "lib" / "a.ex").write_text("changed in the tree")
    sync_tree(src, dst, drop_binaries_under=[src])
    after = sorted((p.relative_to(src), p.lstat().st_mtime_ns) for p in src.rglob("*"))
    assert before == after and (src / "lib" / "a.ex").read_text() == "defmodule A do end\n"


def test_mirror_keeps_relative_paths_between_projects(tmp_path):
    root = tmp_path / "mirror"
    app, dep = Path("/home/u/app"), Path("/home/u/dep")
    assert os.path.relpath(mirrored(root, dep), mirrored(root, app)) == "../dep"


def test_seeding_repoints_absolute_symlinks(tmp_path):
    a = Workspace(tmp_path / "a", tmp_path / "a" / "p", "a")
    b = Workspace(tmp_path / "b", tmp_path / "b" / "p", "b")
    lib = a.build_dir / "prod" / "lib" / "app"
    lib.mkdir(parents=True)
    (a.project / "priv").mkdir(parents=True)
    os.symlink(a.project / "priv", lib / "priv")
    os.symlink("../../../../priv", lib / "rel")
    b.relink_from(a, "prod")
    assert os.readlink(b.build_dir / "prod/lib/app/priv") == str(b.project / "priv")
    assert os.readlink(b.build_dir / "prod/lib/app/rel") == "../../../../priv"
    shutil.rmtree(tmp_path / "a")
    b.relink_from(a, "prod")  # a seeded tree is left alone
    assert (b.build_dir / "prod/lib/app").is_dir()


def test_native_detection(tmp_path):
    plain = tmp_path / "plain"
    (plain / "lib").mkdir(parents=True)
    (plain / "lib" / "x.ex").write_text("defmodule X do end")
    assert not classify("plain", plain).native
    fixtures = Path(__file__).parent / "fixtures"
    nif = classify("nif_make", fixtures / "nif_make")
    assert nif.native and "Makefile" in nif.kinds and "c_src/" in nif.kinds
    rp = tmp_path / "rp"
    (rp / "lib").mkdir(parents=True)
    (rp / "lib" / "n.ex").write_text("defmodule N do\n  use RustlerPrecompiled, otp_app: :rp\nend\n")
    app = classify("rp", rp)
    assert app.precompiler == "rustler_precompiled" and app.recompile_per_target and app.native
    from xrel.targets import Target

    env = app.env_for(Target.parse("aarch64-apple-darwin"))
    assert env["TARGET_ARCH"] == "aarch64" and env["TARGET_OS"] == "darwin" and env["TARGET_VENDOR"] == "apple"
    rebar = tmp_path / "rebar_dep"
    rebar.mkdir()
    (rebar / "rebar.config").write_text('{pre_hooks, [{compile, "make -C c_src"}]}.\n')
    assert classify("rebar_dep", rebar).native


def test_xrels_own_dist_dir_is_not_a_source(tmp_path):
    from xrel.release.trees import xrel_outputs

    assert xrel_outputs(tmp_path) == set()
    (tmp_path / "dist" / "assets").mkdir(parents=True)  # a project's own dist/ is synced like any dir
    assert xrel_outputs(tmp_path) == set()
    (tmp_path / "dist" / "0.1.0").mkdir()
    (tmp_path / "dist" / "0.1.0" / "xrel-manifest.json").write_text("{}")
    assert xrel_outputs(tmp_path) == {"dist"}


def test_a_release_is_replaced_at_once_and_the_old_one_deleted_behind(tmp_path):
    from xrel.storage import cache

    old, new = tmp_path / "rel", tmp_path / ".rel.partial"
    for tree, text in ((old, "old"), (new, "new")):
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "x").write_text(text)
    (old / "bin" / "x").chmod(0o444)
    (old / "bin").chmod(0o555)  # read-only, as mix leaves some
    leftover = tmp_path / ".rel.discarded-1-0"  # of a run that was killed before deleting it
    (leftover / "d").mkdir(parents=True)
    cache.replace_discarding(new, old)
    assert (old / "bin" / "x").read_text() == "new" and not new.exists()
    deleters = list(cache._DISCARDING)
    assert deleters and all(p.pid != os.getpid() for p in deleters)  # another process: nobody waits for it
    cache.wait_discarded()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]


def test_a_file_that_becomes_a_native_binary_is_dropped_at_the_next_sync(tmp_path):
    """What a file is (a native binary by content) is remembered by the file's identity, never its name."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "priv").mkdir(parents=True)
    tool = src / "priv" / "tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    first = sync_tree(src, dst, drop_binaries_under=[src])
    assert first.skipped_binaries == 0 and (dst / "priv" / "tool").is_file()
    tool.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 57)  # a host build of it, later
    os.utime(tool, ns=(tool.stat().st_atime_ns, tool.stat().st_mtime_ns + 10**9))
    again = sync_tree(src, dst, drop_binaries_under=[src])
    assert again.skipped_binaries == 1 and not (dst / "priv" / "tool").exists()


def test_the_targets_of_one_build_scan_each_source_tree_once(tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "lib" / "a.ex").write_text("defmodule A do end\n")
    walks = []
    real_walk = workspace.os.walk
    monkeypatch.setattr(workspace.os, "walk", lambda top, *a, **k: walks.append(top) or real_walk(top, *a, **k))
    scans: dict = {}
    first = sync_tree(src, tmp_path / "t1", scans=scans)
    second = sync_tree(src, tmp_path / "t2", scans=scans)
    assert len(walks) == 1 and first.digest == second.digest and second.copied == 1
    assert (tmp_path / "t2" / "lib" / "a.ex").read_text() == "defmodule A do end\n"
    sync_tree(src, tmp_path / "t3")  # no build's scans: scanned again
    assert len(walks) == 2
