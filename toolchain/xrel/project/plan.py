"""Resolve a build before anything compiles: the targets, the OTP + Elixir that compile the BEAM
code, and every target's runtime (with why it was chosen: the command line, xrel.toml, xrel.lock
or the default). A missing runtime fails here, in seconds, naming the target and what exists."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from xrel import progress
from xrel.errors import NotAvailableError, UsageError
from xrel.host import HostErlang, host_erlang
from xrel.project.config import ProjectConfig, TargetPin, load_config
from xrel.project.lock import Lock, check_locked, fetch_locked, locked_runtime_from, read_lock, write_lock
from xrel.release.compat import check_requested_otp
from xrel.runtimes import Runtime, fetch_runtime
from xrel.runtimes.versions import parse_request
from xrel.targets import Target

UPGRADE = "run `xrel lock --upgrade` to take what the sources offer now"


@dataclass(frozen=True)
class Request:
    """What the command line (or the API caller) asked; empty/None values defer to xrel.toml."""

    targets: tuple[str | Target, ...] = ()
    otp: str | None = None
    elixir: str | None = None
    source: str | None = None
    offline: bool = False
    locked: bool = False  # fail if the lock would change
    upgrade: bool = False  # ignore the lock's entries (xrel lock --upgrade)


@dataclass(frozen=True)
class TargetPlan:
    target: Target
    otp: str | None  # the OTP request (None: the compiling OTP's major)
    source: str | None
    sysroot_packages: tuple[str, ...]
    why: str  # where the request came from
    runtime: Runtime | None = None
    without_apps: tuple[str, ...] = ()  # a runtime built from source: OTP applications it leaves out


@dataclass(frozen=True)
class BuildPlan:
    config: ProjectConfig | None
    lock: Lock | None
    host_tools: object | None  # xrel.hosttools.HostTools; None: the installed Erlang/Elixir, nothing pinned
    targets: tuple[TargetPlan, ...]

    @property
    def runtimes(self) -> dict[str, Runtime]:
        return {t.target.id: t.runtime for t in self.targets if t.runtime is not None}

    def compiled_by(self) -> dict[str, object]:
        """Which OTP + Elixir compile the BEAM code, and why."""
        host = host_erlang()
        tools = self.host_tools
        return {"otp": host.otp_version, "elixir": host.elixir_version,
                "provided": bool(tools and tools.provided),
                "why": tools.why if tools else "the installed Erlang/Elixir (nothing pinned in xrel.toml)"}


def _target_plans(config: ProjectConfig | None, request: Request) -> list[TargetPlan]:
    """The targets to build and each one's OTP request: --otp, else the pin, else xrel.toml's otp."""
    if request.targets:
        targets = [Target.parse(t) for t in request.targets]
    elif config and config.targets:
        targets = [pin.target for pin in config.targets]
    else:
        raise UsageError("no target given", "pass --target, e.g. --target aarch64-linux-gnu, or list targets in "
                         "xrel.toml (`xrel init` writes one)")
    plans = []
    for target in targets:
        pin = config.pin_for(target) if config else None
        if pin and not request.targets:
            target = pin.target  # with its glibc floor
        otp, why = _otp_request(config, pin, request)
        source = request.source or (pin.source if pin else None)
        plans.append(TargetPlan(target, otp, source, pin.sysroot_packages if pin else (), why,
                                without_apps=pin.without_apps if pin and (source or "").startswith("build") else ()))
    return plans


def _otp_request(config: ProjectConfig | None, pin: TargetPin | None, request: Request) -> tuple[str | None, str]:
    if request.otp:
        return request.otp, f"--otp {request.otp}"
    if pin and pin.otp:
        return pin.otp, f"pinned in {config.path.name} [target.{pin.target.name}]"
    if config and config.otp:
        return config.otp, f"pinned in {config.path.name}"
    return None, "default: the compiling OTP's major"


def _compile_otp(plans: list[TargetPlan], config: ProjectConfig | None, lock: Lock | None) -> str | None:
    """The OTP that compiles the BEAM code: the lowest major the targets ask for (BEAM files load on
    the same and the two next majors), as exact as xrel.toml or the lock say when they agree."""
    majors = [parse_request(p.otp)[0] for p in plans if p.otp]
    if lock and lock.host.get("otp"):
        locked = str(lock.host["otp"].get("version", ""))  # type: ignore[union-attr]
        if locked and (not majors or parse_request(locked)[0] == min(majors)):
            return locked
    if not majors:
        return None
    lowest = min(majors)
    exact = [p.otp for p in plans if p.otp and parse_request(p.otp)[0] == lowest]
    if config and config.otp and parse_request(config.otp)[0] == lowest:
        return config.otp
    return exact[0] if len(set(exact)) == 1 else str(lowest)


def compiling_otp(config: ProjectConfig) -> str | None:
    """The OTP request that compiles the code for xrel.toml's own targets (None: the installed OTP)."""
    if not config.targets:
        return config.otp
    return _compile_otp(_target_plans(config, Request()), config, None)


def _host_tools(plans: list[TargetPlan], config: ProjectConfig | None, lock: Lock | None, request: Request):
    """The installed Erlang/Elixir when nothing is pinned; else the pinned ones, provided when needed."""
    elixir = request.elixir or (config.elixir if config else None)
    if lock and lock.host.get("elixir") and not request.elixir:
        elixir = str(lock.host["elixir"].get("version") or elixir)  # type: ignore[union-attr]
    pinned = config is not None or request.elixir
    if not pinned:
        return None
    from xrel.hosttools import provide

    with progress.step("host OTP and Elixir"):
        return provide(_compile_otp(plans, config, lock), elixir, offline=request.offline)


@contextlib.contextmanager
def activated(host_tools) -> Iterator[None]:
    """Put the host tools first on PATH for the build (mix, erl, erlc and xrel's own probes)."""
    if host_tools is None or not host_tools.provided:
        yield
        return
    saved = os.environ.get("PATH")
    os.environ["PATH"] = host_tools.env(os.environ)["PATH"]
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved


def _fetch(plan: TargetPlan, lock: Lock | None, host: HostErlang, request: Request, pinnable: bool) -> TargetPlan:
    locked = lock.for_target(plan.target.id) if lock and not request.upgrade else None
    try:
        if locked is not None:
            return replace(plan, runtime=fetch_locked(plan.target, locked, offline=request.offline,
                                                      without_apps=plan.without_apps),
                           why=f"locked in xrel.lock: {locked.describe()}")
        if request.locked:
            raise UsageError(f"{plan.target.id} is not in xrel.lock, and --locked forbids adding it",
                             "run `xrel lock` and commit xrel.lock")
        if plan.otp:
            check_requested_otp(plan.otp, host)  # outside [compiling OTP, +2]: refused before fetching
        runtime = fetch_runtime(plan.target, otp=plan.otp or str(host.otp_major), source=plan.source,
                                offline=request.offline, without_apps=plan.without_apps)
    except NotAvailableError as e:
        if not pinnable:
            raise
        raise NotAvailableError(e.message, f"{e.hint}, or pin it in xrel.toml: [target.{plan.target.name}] "
                                "otp = \"...\"" if e.hint else None) from e
    return replace(plan, runtime=runtime)


def resolve(project_dir: Path, request: Request) -> BuildPlan:
    """Read xrel.toml and xrel.lock, provide the host tools, and fetch every target's runtime.
    Call inside `activated(plan.host_tools)` for the rest of the build."""
    config = load_config(project_dir)
    lock = read_lock(project_dir) if config else None
    plans = _target_plans(config, request)
    tools = _host_tools(plans, config, lock, request)
    with activated(tools):
        host = host_erlang()
        resolved = []
        for plan in plans:
            with progress.step(f"[{plan.target.id}] runtime"):
                resolved.append(_fetch(plan, lock, host, request, config is not None))
    result = BuildPlan(config, lock, tools, tuple(resolved))
    if config:
        _keep_lock(project_dir, result, request)
    return result


def _keep_lock(project_dir: Path, plan: BuildPlan, request: Request) -> None:
    """--locked: refuse any difference. Otherwise add what the lock lacks (never change an entry)."""
    lock = plan.lock or Lock({}, {})
    host_sources = _portable(plan.host_tools.sources) if plan.host_tools else {}
    if request.locked:
        problems = check_locked(lock, plan.runtimes)
        if lock.host and host_sources and _host_versions(lock.host) != _host_versions(host_sources):
            problems.append(f"host tools: locked {_host_versions(lock.host)}, would use {_host_versions(host_sources)}")
        if problems:
            raise UsageError(f"xrel.lock does not match this build: {'; '.join(problems)}", UPGRADE)
        return
    runtimes = dict(lock.runtimes) if not request.upgrade else {}
    for tid, runtime in plan.runtimes.items():
        runtimes.setdefault(tid, locked_runtime_from(runtime, tid))
    host = dict(lock.host) if lock.host and not request.upgrade else host_sources
    updated = Lock(runtimes, host)
    if updated != plan.lock:
        write_lock(project_dir, updated)


def _portable(sources) -> dict[str, object]:
    """The host tools' record without this machine's paths (an installed OTP's root, say)."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "root"} if isinstance(v, dict) else v
            for k, v in sources.items()}


def _host_versions(sources) -> dict[str, str]:
    return {k: str(v.get("version")) for k, v in sources.items() if isinstance(v, dict)}


def plan_lock(project_dir: Path, *, upgrade: bool = False, offline: bool = False,
              targets: Sequence[str] = ()) -> BuildPlan:
    """`xrel lock`: resolve the project's runtimes and host tools and record them, building nothing."""
    if load_config(project_dir) is None:
        raise UsageError(f"no xrel.toml in {project_dir}", "run `xrel init` first")
    return resolve(project_dir, Request(targets=tuple(targets), offline=offline, upgrade=upgrade))
