"""OTP's bootstrap system for a cross build of another major than the host's erl: a phase only
then, cached once per source and shared, rebuilt when a killed run left it incomplete, first on
the cross build's PATH (fast: the commands are stand-ins; the real build is in the e2e notes)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from xrel.errors import BuildError
from xrel.otpbuild import bootstrap, debsrc, phases, recipe
from xrel.targets import Target

MUSL = Target.parse("x86_64-linux-musl")


def _otp(sha: str = "e" * 64) -> debsrc.SourcePackage:
    name = "erlang_27.3.4.1+dfsg.orig.tar.xz"
    return debsrc.SourcePackage("erlang", "1:27.3.4.1+dfsg-1", debsrc.SourceFile("e.dsc", "http://m/e.dsc", "d" * 64),
                                debsrc.SourceFile(name, f"http://m/{name}", sha))


def _archive(tmp_path: Path) -> Path:
    path = tmp_path / "otp.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = b"#!/bin/sh\n"
        info = tarfile.TarInfo("otp-OTP-27.3.4.1/configure")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return path


class Runner:
    """Runs tar for real; `configure` and `make` are recorded, and make writes a bootstrap erl
    that answers `major` (or dies first when `killed`)."""

    def __init__(self, major: str = "27", killed: bool = False):
        self.calls: list[tuple[str, Path, dict]] = []
        self.major, self.killed = major, killed

    def __call__(self, argv, cwd, env):
        import subprocess

        self.calls.append((argv[0], cwd, env))
        if argv[0] == "tar":
            subprocess.run(argv, cwd=cwd, check=True)
        elif argv[0] == "make":
            if self.killed:
                raise KeyboardInterrupt
            erl = cwd / "bootstrap" / "bin" / "erl"
            erl.parent.mkdir(parents=True, exist_ok=True)
            erl.write_text(f"#!/bin/sh\nprintf {self.major}\n")
            erl.chmod(0o755)


def test_the_bootstrap_is_built_once_per_source_with_zig_for_the_host(tmp_path, isolated_cache):
    run = Runner()
    bin_dir = bootstrap.ensure(_otp(), _archive(tmp_path), "/z/zig", 2, run)
    assert [c[0] for c in run.calls] == ["tar", "./configure", "make"]
    configure_env = run.calls[1][2]
    assert "--enable-bootstrap-only" in recipe.load().bootstrap.configure
    assert "x86_64-linux-gnu" in Path(configure_env["CC"]).read_text()  # zig for this machine, not the target
    assert (bin_dir / "erl").is_file() and bin_dir == bootstrap.bin_dir(bootstrap.directory(_otp()))
    again = Runner()
    assert bootstrap.ensure(_otp(), _archive(tmp_path), "/z/zig", 2, again) == bin_dir and not again.calls
    other = Runner()
    bootstrap.ensure(_otp("f" * 64), _archive(tmp_path), "/z/zig", 2, other)  # another tarball: its own
    assert other.calls


def test_a_killed_bootstrap_is_built_again_from_scratch(tmp_path, isolated_cache):
    with pytest.raises(KeyboardInterrupt):
        bootstrap.ensure(_otp(), _archive(tmp_path), "/z/zig", 2, Runner(killed=True))
    root = bootstrap.directory(_otp())
    assert not (root / bootstrap.STAMP).exists()
    (root / "src" / "leftover").write_text("x")
    run = Runner()
    bootstrap.ensure(_otp(), _archive(tmp_path), "/z/zig", 2, run)
    assert run.calls and not (root / "src" / "leftover").exists() and (root / bootstrap.STAMP).is_file()


def test_a_bootstrap_of_the_wrong_major_is_refused(tmp_path, isolated_cache):
    with pytest.raises(BuildError, match="bootstrap built in .* does not run") as err:
        bootstrap.ensure(_otp(), _archive(tmp_path), "/z/zig", 2, Runner(major="25"))
    assert "\n" not in str(err.value) and not (bootstrap.directory(_otp()) / bootstrap.STAMP).exists()


def _inputs(boot: bool) -> phases.BuildInputs:
    openssl = debsrc.SourcePackage("openssl", "3.0.22-1", debsrc.SourceFile("o.dsc", "http://m/o", "d" * 64),
                                   debsrc.SourceFile("openssl_3.0.22.orig.tar.gz", "http://m/o.tgz", "a" * 64))
    return phases.BuildInputs(recipe.for_target(MUSL), _otp(), openssl, "zig", 2, bootstrap=boot)


def test_the_bootstrap_phase_runs_only_when_needed_and_leads_the_path(tmp_path, isolated_cache, monkeypatch):
    assert "bootstrap" not in phases.Build(_inputs(False), tmp_path / "a").phases
    build = phases.Build(_inputs(True), tmp_path / "b")
    assert build.phases == ("sources", "bootstrap", "openssl", "configure", "make", "release")
    monkeypatch.setattr(phases.Build, "_tools", lambda self: {k: k for k in ("cc", "c++", "ar", "ranlib")})
    build.stamps.mkdir(parents=True)
    (build.stamps / "bootstrap.json").write_text('{"seconds": 1}')
    with pytest.raises(BuildError, match="bootstrap in .* is gone"):  # removed from the cache since
        build.otp_env()
    assert not build.done("bootstrap")  # so the next run builds it again
    bootstrap.ensure(_otp(), _archive(tmp_path), "/z/zig", 2, Runner())
    path = build.otp_env()["PATH"].split(os.pathsep)
    assert path[0] == str(bootstrap.bin_dir(bootstrap.directory(_otp()))) and "PATH" not in \
        phases.Build(_inputs(False), tmp_path / "a").otp_env()
