"""The build itself, in phases with stamps in a work dir: a killed build resumes after the last
finished phase. sources -> [bootstrap] -> openssl -> configure -> make -> release (bootstrap
only when the host's erl is of another OTP major: bootstrap.py)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from xrel import progress
from xrel.errors import BuildError, NotAvailableError, UsageError
from xrel.otpbuild import bootstrap, debsrc
from xrel.otpbuild.recipe import SourceFix, TargetBuild
from xrel.otpbuild.tools import write_tools
from xrel.storage.cache import remove

PHASES = ("sources", "bootstrap", "openssl", "configure", "make", "release")


@dataclass(frozen=True)
class BuildInputs:
    """What one build is made of: the recipe resolved for a target, the two source uploads."""

    build: TargetBuild
    otp: debsrc.SourcePackage
    openssl: debsrc.SourcePackage
    zig: str
    jobs: int
    bootstrap: bool = False  # build OTP's bootstrap system first (no host erl of the same major)


def apply_source_fixes(otp_src: Path, version: str, fixes: tuple[SourceFix, ...]) -> list[str]:
    """The recipe's fixes for `version`, applied in place; the files changed. An `old` text not found
    exactly once is a one-line error naming the fix (the source is not the one it was written for)."""
    changed = []
    for fix in (f for f in fixes if f.applies(version)):
        path = otp_src / fix.file
        text = path.read_text() if path.is_file() else ""
        for old, new in fix.replace:
            if text.count(old) != 1:
                raise BuildError(f"the source fix for {fix.file} ({fix.why.split(':')[0][:80]}) does not fit OTP "
                                 f"{version}: its text occurs {text.count(old)} times",
                                 "correct [[otp.source_fixes]] in recipes/otp_build.toml")
            text = text.replace(old, new)
        path.write_text(text)
        changed.append(fix.file)
    return changed


def check_apps_exist(otp_src: Path, version: str, apps: tuple[str, ...]) -> None:
    """Every app to leave out must be one of the source's (configure ignores an unknown name)."""
    have = sorted(p.name for p in (otp_src / "lib").iterdir() if p.is_dir())
    unknown = [a for a in apps if a not in have]
    if unknown:
        raise UsageError(f"OTP {version} has no application {unknown[0]} to leave out (it has: {', '.join(have)})",
                         f"remove {unknown[0]} from the apps left out")


def crypto_skipped(otp_src: Path) -> str | None:
    """Why OTP's configure left crypto out (its lib/crypto/SKIP file), or None when it did not."""
    skip = otp_src / "lib" / "crypto" / "SKIP"
    if not skip.is_file():
        return None
    return " ".join(skip.read_text(errors="replace").split()) or "no reason given"


class Build:
    """One build's work dir: phases, stamps and logs."""

    def __init__(self, inputs: BuildInputs, work: Path):
        self.inputs = inputs
        self.work = work
        self.stamps = work / "stamps"
        self.logs = work / "logs"
        self.sysroot = work / "sysroot"
        self.otp_src = work / "otp-src"
        self.openssl_src = work / "openssl-src"
        self.release = work / "release"

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(p for p in PHASES if p != "bootstrap" or self.inputs.bootstrap)

    def done(self, phase: str) -> bool:
        return (self.stamps / f"{phase}.json").is_file()

    def seconds(self) -> dict[str, float]:
        """How long each finished phase took (as stamped)."""
        return {p: json.loads((self.stamps / f"{p}.json").read_text())["seconds"] for p in self.phases if self.done(p)}

    def run(self) -> Path:
        """Every phase not stamped yet, in order; the `make release` tree."""
        self.stamps.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        phases = self.phases
        finished = [p for p in phases if self.done(p)]
        if finished:
            progress.note(f"xrel: build-erts: resuming {self.inputs.build.target} after {finished[-1]} ({self.work})")
        for number, phase in enumerate(phases, 1):
            if self.done(phase):
                continue
            for later in phases[number - 1:]:
                (self.stamps / f"{later}.json").unlink(missing_ok=True)
            progress.note(f"xrel: build-erts {self.inputs.build.target}: {phase} ({number}/{len(phases)}) ...")
            start = time.monotonic()
            getattr(self, f"_{phase}")()
            took = round(time.monotonic() - start, 1)
            (self.stamps / f"{phase}.json").write_text(json.dumps({"seconds": took}) + "\n")
            progress.note(f"xrel: build-erts {self.inputs.build.target}: {phase} done in {took:.0f}s")
        return self.release

    # -- running commands ------------------------------------------------------------------------
    def _tools(self) -> dict[str, str]:
        return write_tools(self.work / "tools", self.inputs.zig, self.inputs.build)

    def _sh(self, phase: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        """Run one command of a phase, its output appended to logs/<phase>.log."""
        log = self.logs / f"{phase}.log"
        with open(log, "a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            code = subprocess.call(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "LC_ALL": "C", **(env or {})})
        if code:
            tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
            raise BuildError(f"build-erts {self.inputs.build.target}: {phase} failed (exit {code}): "
                             f"{tail[0][:200] if tail else argv[0]}", f"the full log is {log}; fix it and run again "
                             "to resume")

    def _unpack(self, archive: Path, dest: Path) -> None:
        remove(dest)
        dest.mkdir(parents=True)
        self._sh("sources", ["tar", "-xf", str(archive), "-C", str(dest), "--strip-components=1"], self.work)

    # -- phases ------------------------------------------------------------------------------------
    def _sources(self) -> None:
        self._unpack(debsrc.fetch(self.inputs.otp), self.otp_src)
        self._unpack(debsrc.fetch(self.inputs.openssl), self.openssl_src)
        for name in self.inputs.build.dfsg_dropped if self.inputs.otp.origin == "debian" else ():
            (self.otp_src / name).parent.mkdir(parents=True, exist_ok=True)
            (self.otp_src / name).touch()
        apply_source_fixes(self.otp_src, self.inputs.otp.upstream, self.inputs.build.source_fixes)
        check_apps_exist(self.otp_src, self.inputs.otp.upstream, self.inputs.build.without_apps)

    def _bootstrap(self) -> None:
        i = self.inputs
        bootstrap.ensure(i.otp, debsrc.fetch(i.otp), i.zig, i.jobs,
                         lambda argv, cwd, env: self._sh("bootstrap", argv, cwd, env))

    def _path(self) -> dict[str, str]:
        """PATH with the bootstrap's bin first, when this build has one."""
        if not self.inputs.bootstrap:
            return {}
        bin_dir = bootstrap.bin_dir(bootstrap.directory(self.inputs.otp))
        if not (bin_dir / "erl").is_file():
            (self.stamps / "bootstrap.json").unlink(missing_ok=True)
            raise BuildError(f"build-erts {self.inputs.build.target}: the bootstrap in {bin_dir} is gone",
                             "run again: it is built again")
        return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def _openssl(self) -> None:
        b, tools = self.inputs.build, self._tools()
        remove(self.sysroot)
        env = {"CC": tools["cc"], "AR": tools["ar"], "RANLIB": tools["ranlib"]}
        # --prefix: the node's paths compiled into libcrypto (ENGINESDIR, MODULESDIR), not the build's;
        # installed under DESTDIR, the build's sysroot
        self._sh("openssl", ["perl", "./Configure", b.openssl_target, *b.openssl_options, "--prefix=/usr"],
                 self.openssl_src, env)
        self._sh("openssl", ["make", f"-j{self.inputs.jobs}", *b.openssl_make, f"DESTDIR={self.sysroot}"],
                 self.openssl_src, env)
        if not (self.sysroot / "usr" / "lib" / "libcrypto.a").is_file():
            raise BuildError(f"build-erts {b.target}: OpenSSL installed no lib/libcrypto.a into {self.sysroot}",
                             f"see {self.logs / 'openssl.log'}")

    def otp_env(self) -> dict[str, str]:
        """The variables OTP's configure and make get: zig for everything, the recipe's link flags."""
        b, tools = self.inputs.build, self._tools()
        return {
            "CC": tools["cc"], "CXX": tools["c++"], "LD": tools["cc"], "AR": tools["ar"], "RANLIB": tools["ranlib"],
            "LDFLAGS": " ".join(b.ldflags), "DED_LD": tools["cc"], "DED_LDFLAGS": " ".join(b.ded_ldflags),
            "DED_LD_FLAG_RUNTIME_LIBRARY_PATH": b.ded_runtime_library_path,
            "erl_xcomp_sysroot": str(self.sysroot), **self._path(),
        }

    def _configure(self) -> None:
        b = self.inputs.build
        build_triple = f"{platform.machine()}-pc-linux-gnu"
        self._sh("configure", ["./otp_build", "configure", f"--build={build_triple}", f"--host={b.host_triple}",
                               f"--with-ssl={self.sysroot / 'usr'}", *b.configure,
                               *(f"--without-{app}" for app in b.without_apps)], self.otp_src, self.otp_env())
        reason = crypto_skipped(self.otp_src)
        if reason:
            (self.stamps / "configure.json").unlink(missing_ok=True)
            raise NotAvailableError(f"build-erts {b.target}: OTP's configure left crypto out ({reason[:160]})",
                                    f"the static OpenSSL in {self.sysroot} was not usable; see "
                                    f"{self.logs / 'configure.log'}")

    def _make(self) -> None:
        self._sh("make", ["make", f"-j{self.inputs.jobs}"], self.otp_src, self.otp_env())

    def _release(self) -> None:
        remove(self.release)
        self._sh("release", ["make", "release", f"RELEASE_ROOT={self.release}"], self.otp_src, self.otp_env())
