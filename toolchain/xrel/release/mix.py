"""Run mix through xrel's MIX_EXS wrapper, and read a project's shape with it."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from xrel.errors import BuildError, UsageError
from xrel.host import ERLANG_HINT, host_erlang, require
from xrel.release import early_mix
from xrel.release.native import App, classify
from xrel.storage import cache

WRAPPER = Path(__file__).with_name("wrapper.exs")
LOG_TAIL = 25


HELPERS = ("xrel_mix.ex", "compile_server.ex")  # the modules of the wrapper and of the compile VM


@functools.cache
def helpers_ebin() -> Path | None:
    """xrel's Elixir modules (HELPERS) compiled once per Elixir and file version (saves compiling them
    on every mix or compile VM start); None when elixirc is missing or fails: the scripts then compile
    them themselves."""
    elixirc = shutil.which("elixirc")
    if not elixirc:
        return None
    sources = [WRAPPER.with_name(name) for name in HELPERS]
    digest = hashlib.sha256((host_erlang().elixir_version or "").encode())
    for source in sources:
        digest.update(source.read_bytes())
    final = cache.area("toolchains") / f"mix-helpers-{digest.hexdigest()[:12]}"
    if (final / "Elixir.Xrel.Release.beam").is_file():  # compiled before (entries appear only whole)
        return final
    try:
        with cache.locked("toolchains", final.name):
            if not (final / "Elixir.Xrel.Release.beam").is_file():
                with cache.staging(final) as tmp:
                    subprocess.run([elixirc, "--ignore-module-conflict", "-o", str(tmp), *map(str, sources)],
                                   capture_output=True, check=True, env={**os.environ, "MIX_EXS": ""})
    except subprocess.CalledProcessError:
        return None
    return final


def mix_env_vars(project: Path, mix_env: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "MIX_ENV": mix_env,
        "MIX_EXS": str(WRAPPER),
        "XREL_USER_MIX_EXS": str(project / "mix.exs"),
        "MIX_QUIET": env.get("MIX_QUIET", ""),
    })
    for var in ("MIX_BUILD_PATH", "MIX_BUILD_ROOT", "MIX_DEPS_PATH", "MIX_TARGET"):
        env.pop(var, None)  # the build tree decides these
    ebin = helpers_ebin()
    if ebin is not None:
        env["XREL_MIX_EBIN"] = str(ebin)
    if "MIX_REBAR3" not in env and shutil.which("rebar3"):
        env["MIX_REBAR3"] = shutil.which("rebar3")  # mix would otherwise offer to download one
    env.update(extra or {})
    return env


def mix_failure(what: str, why: str, log: Path) -> BuildError:
    """The error of a failed mix run: what failed and why, with the tail of its log."""
    try:
        tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL:]
    except OSError as e:  # (its build tree removed meanwhile)
        tail = [f"(no log: {e.strerror})"]
    return BuildError(f"{what} failed ({why}); last lines:\n  " + "\n  ".join(tail), f"full log: {log}")


def run_mix(args: list[str], project: Path, env: dict[str, str], log: Path, what: str,
            early_for: Path | None = None) -> None:
    """Run `mix <args>` in `project`; on failure raise BuildError with the log's tail. `early_for`:
    the project dir whose early VM may run it (early_mix.py), and whose next build's will."""
    require("mix", ERLANG_HINT)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write(f"\n$ mix {' '.join(args)}   (in {project})\n")
        out.flush()
        early = early_mix.claim(args, project, env, log) if early_for is not None else None
        if early is not None:
            try:
                returncode = early.wait()
            except BaseException:  # interrupted (Ctrl-C, SIGTERM): killed, as subprocess.run does
                early.kill()
                early.wait()
                raise
        else:
            returncode = subprocess.run(["mix", *args], cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL).returncode
    if early_for is not None:
        early_mix.remember(early_for, project, env, log)
    if returncode != 0:
        raise mix_failure(what, f"mix {args[0]} exit {returncode}", log)


@dataclass
class Project:
    """A mix project as xrel needs to know it."""

    path: Path
    mix_env: str
    info: dict
    apps: list[App] = field(default_factory=list)  # the project itself first, then its deps
    mix_target: str | None = None

    @property
    def build_subdir(self) -> str:
        """mix's `_build/<dir>`: `<env>`, or `<target>_<env>` when MIX_TARGET is set."""
        return f"{self.mix_target}_{self.mix_env}" if self.mix_target and self.mix_target != "host" else self.mix_env

    @property
    def name(self) -> str:
        return str(self.info.get("app") or self.path.name)

    @property
    def umbrella(self) -> bool:
        return bool(self.info.get("umbrella"))

    @property
    def own(self) -> App:
        return self.apps[0]

    @property
    def deps(self) -> list[App]:
        return self.apps[1:]

    def release_name(self, requested: str | None) -> str:
        releases = [str(r) for r in self.info.get("releases", [])]
        if requested:
            if releases and requested not in releases:
                raise UsageError(f"release '{requested}' is not defined in mix.exs",
                                 f"choose one of {', '.join(releases)}")
            return requested
        if len(releases) > 1 and not self.info.get("default_release"):
            raise UsageError(f"mix.exs defines several releases ({', '.join(releases)})", "pick one with --release")
        if releases:
            return str(self.info.get("default_release") or releases[0])
        if self.umbrella:
            raise UsageError("an umbrella project needs a release in mix.exs (releases: [...])",
                             "see `mix help release`")
        return self.name


def _info_inputs(path: Path, dep_paths: list[str]) -> dict[str, str]:
    """What the project's shape depends on: its mix files, config, and each dep's build files."""
    files = [path / "mix.exs", path / "mix.lock", *sorted((path / "config").glob("*.exs")),
             *sorted(path.glob("apps/*/mix.exs"))]
    for dep in dep_paths:
        files += [Path(dep) / n for n in ("mix.exs", "rebar.config", "Makefile")]
    stamps = {}
    for f in files:
        try:
            st = f.stat()
            stamps[str(f)] = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamps[str(f)] = "absent"
    return stamps


def _info_cache_file(path: Path, mix_env: str, mix_target: str | None) -> Path:
    from xrel.release.workspace import project_key

    name = f"project-info-{mix_target}.json" if mix_target else "project-info.json"
    return cache.area("builds") / project_key(path, mix_env) / name


def _cached_info(path: Path, mix_env: str, mix_target: str | None) -> dict | None:
    """The last `mix xrel.info` answer, if none of its inputs changed (saves a mix start)."""
    try:
        saved = json.loads(_info_cache_file(path, mix_env, mix_target).read_text())
    except (OSError, ValueError):
        return None
    info = saved.get("info", {})
    if not {"deps_tree", "tar_releases"} <= info.keys():  # written by an older xrel
        return None
    same_host = saved.get("elixir") == info.get("elixir") and saved.get("mix") == shutil.which("mix")
    if same_host and saved.get("inputs") == _info_inputs(path, [d["path"] for d in info.get("deps", [])]):
        for dep in info["deps"]:
            dep["exists"] = Path(dep["path"]).is_dir()
        return info
    return None


def _ask_mix(path: Path, mix_env: str, mix_target: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="xrel-info-") as tmp:
        out = Path(tmp) / "info.json"
        extra = {"XREL_INFO_OUT": str(out),
                 # nothing is built: keep mix's build dir out of the user's tree
                 "MIX_BUILD_PATH": str(Path(tmp) / "build")}
        if mix_target:
            extra["MIX_TARGET"] = mix_target  # it selects deps (Nerves-style `targets:`)
        env = mix_env_vars(path, mix_env, extra)
        proc = subprocess.run(["mix", "xrel.info"], cwd=path, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not out.exists():
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise UsageError(f"mix could not load {path / 'mix.exs'}: {' '.join(detail[-3:])[:400]}",
                             "check that `mix compile` works in the project")
        info = json.loads(out.read_text())
    record = {"info": info, "elixir": info.get("elixir"), "mix": shutil.which("mix"),
              "inputs": _info_inputs(path, [d["path"] for d in info["deps"]])}
    cache_file = _info_cache_file(path, mix_env, mix_target)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(record))
    return info


def load_project(path: Path, mix_env: str = "prod", mix_target: str | None = None) -> Project:
    """Check the project and read its apps and deps (nothing is written into it)."""
    path = Path(path).resolve()
    if not (path / "mix.exs").is_file():
        raise UsageError(f"no mix.exs in {path}", "run xrel in a mix project or pass its directory")
    for tool in ("erl", "elixir", "mix"):
        require(tool, ERLANG_HINT)
    info = _cached_info(path, mix_env, mix_target) or _ask_mix(path, mix_env, mix_target)
    missing = [d["app"] for d in info["deps"] if not d["exists"]]
    if missing:
        raise UsageError(f"dependencies not fetched: {', '.join(missing)}", "run `mix deps.get` first")
    apps = [classify(info.get("app") or path.name, path)]
    apps += [classify(d["app"], Path(d["path"]), d["scm"]) for d in info["deps"]]
    return Project(path, mix_env, info, apps, mix_target)
