"""The host's own Erlang/OTP and Elixir for compiling: the installed ones when they match the pins,
else provided by xrel (OTP through the runtime sources for the host target, Elixir through
hosttools' sources: Debian's package, Elixir's zips, hex's builds), cached like runtimes."""

from __future__ import annotations

import platform
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from xrel import host, recipes
from xrel.errors import MissingToolError, NotAvailableError
from xrel.hosttools import loadcheck, sources
from xrel.runtimes import Runtime, cached_runtime, fetch_runtime
from xrel.runtimes import versions as otp_versions
from xrel.targets import host_target
from xrel.versions import version_key

__all__ = ["HostTools", "installed", "provide"]


@dataclass(frozen=True)
class HostTools:
    otp_root: Path  # an OTP root whose bin/ has erl, erlc, escript
    otp_version: str  # full, e.g. "25.2.3"
    elixir_root: Path  # has bin/elixir, bin/mix, bin/iex, lib/elixir/ebin
    elixir_version: str  # e.g. "1.14.0"
    provided: bool  # True: from xrel's cache; False: the installed ones on PATH
    why: str
    sources: Mapping[str, object] = field(default_factory=dict)  # what was fetched (for the lock)

    def path_prefix(self) -> str:
        return f"{self.elixir_root / 'bin'}:{self.otp_root / 'bin'}"

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` with PATH prefixed by the tools' bin dirs (nothing else changed)."""
        path = base.get("PATH")
        return {**base, "PATH": f"{self.path_prefix()}:{path}" if path else self.path_prefix()}


def otp_full_version(root: Path, major: str) -> str:
    """releases/<major>/OTP_VERSION of an OTP root (the major alone when it is missing)."""
    try:
        return (root / "releases" / major / "OTP_VERSION").read_text().split()[0]
    except (OSError, IndexError):
        return major


def _pins(otp: str | None, elixir: str | None) -> str:
    if not otp and not elixir:
        return "nothing pinned"
    return f"pinned otp {otp or 'any'} / elixir {elixir or 'any'}"


def installed(otp: str | None, elixir: str | None) -> tuple[HostTools | None, str]:
    """The installed OTP + Elixir when they match the pins, else (None, why not)."""
    try:
        erl = host.host_erlang()
    except MissingToolError:
        return None, "no erl on PATH"
    full = otp_full_version(erl.root, erl.otp_release)
    if otp and not otp_versions.matches(otp_versions.parse_request(otp), full):
        return None, f"installed OTP {full} does not match pin {otp}"
    script = shutil.which("elixir")
    version = host.elixir_version() if script else None
    if not script or not version:
        return None, "no elixir on PATH" if not script else "the installed elixir does not run"
    if elixir and not sources.matches(sources.parse_request(elixir), version):
        return None, f"installed Elixir {version} does not match pin {elixir}"
    root = Path(script).resolve().parent.parent
    where = {"otp": {"source": "installed", "version": full, "root": str(erl.root)},
             "elixir": {"source": "installed", "version": version, "root": str(root)}}
    why = f"{_pins(otp, elixir)}; installed is OTP {full} + Elixir {version}"
    return HostTools(erl.root, full, root, version, False, why, where), why


def provide(otp: str | None, elixir: str | None, *, offline: bool = False,
            elixir_source: str | None = None) -> HostTools:
    """The OTP and Elixir to compile with: the installed ones when they match `otp` / `elixir`
    (None: anything; "25" matches 25.x), else fetched, verified and cached by xrel."""
    otp_request = otp_versions.parse_request(otp) if otp else None
    elixir_request = sources.parse_request(elixir) if elixir else None
    names = [elixir_source] if elixir_source else sources.order()
    for name in names:
        sources.get_source(name)  # validates the name before anything runs
    existing, reason = installed(otp, elixir)
    if existing:
        return existing
    runtime = provide_otp(otp_request, offline)
    root, meta, alternative = provide_elixir(elixir_request, runtime.otp_major, names, offline)
    loadcheck.require_loadable(runtime.root, runtime.otp_version, root, meta["version"], meta["source"], alternative)
    otp_info = {k: runtime.meta.get(k) for k in ("source", "otp_version", "urls", "sha256", "suite",
                                                 "debian_version", "packages") if k in runtime.meta}
    where = {"otp": {**otp_info, "version": runtime.otp_version, "root": str(runtime.root)},
             "elixir": {**meta, "root": str(root)}}
    return HostTools(runtime.root, runtime.otp_version, root, meta["version"], True, f"provided: {reason}", where)


def provide_elixir(request: tuple[int, ...] | None, host_otp: int, names: list[str] | None = None,
                   offline: bool = False) -> tuple[Path, dict, str | None]:
    """A cached Elixir root for the request, else the best offer of the sources `names` installed:
    (root, its xrel-elixir.json, an alternative built for `host_otp` or older to name in errors)."""
    names = names or sources.order()
    found = sources.cached(request, names, host_otp)
    if found:
        return *found[0], None
    options = sources.Options(offline=offline, host_otp=host_otp)
    offer, seen = sources.choose(request, names, options)
    root, meta = sources.install(offer, options)
    return root, meta, _alternative(seen, meta, host_otp)


def _alternative(seen: list[sources.ElixirOffer], meta: dict, host_otp: int) -> str | None:
    """An offer of the same source built for the host's OTP or older, to name in an error."""
    fits = [o for o in seen if o.source == meta["source"] and o.otp is not None and o.otp <= host_otp
            and o.version != meta["version"]]
    return sources.ranked(fits, host_otp)[0].label() if fits else None


def _host_glibc() -> str | None:
    name, version = platform.libc_ver()
    return version if name == "glibc" and version else None


def _default_otp() -> tuple[int, ...]:
    """The installed OTP's major; without one, the newest Debian OTP whose glibc this host has."""
    try:
        return (host.host_otp_major(),)
    except MissingToolError:
        pass
    glibc = _host_glibc()
    suites = recipes.sources().debian.suites
    fitting = [s.otp for s in suites if glibc and version_key(s.glibc) <= version_key(glibc)]
    return (max(fitting or [s.otp for s in suites]),)


def provide_otp(request: tuple[int, ...] | None, offline: bool = False) -> Runtime:
    """A cached OTP runtime for the host target that can run here (its glibc is not above the host's):
    one built here (`xrel build-erts <host> --otp V`) first, else the runtime sources'."""
    wanted = request or _default_otp()
    built = cached_runtime(host_target(), otp=".".join(map(str, wanted)), source="build")
    if built and (not built.glibc_floor or version_key(built.glibc_floor) <= version_key(_host_glibc() or "0")):
        return built
    runtime = fetch_runtime(host_target(), otp=".".join(map(str, wanted)), offline=offline)
    floor = runtime.glibc_floor or runtime.meta.get("debian_glibc")
    glibc = _host_glibc()
    if floor and glibc and version_key(floor) > version_key(glibc):
        usable = [str(s.otp) for s in recipes.sources().debian.suites if version_key(s.glibc) <= version_key(glibc)]
        raise NotAvailableError(f"the host OTP {runtime.otp_version} (from {runtime.source}) needs glibc >= {floor}, "
                                f"this host has {glibc}",
                                (f"pin OTP {' or '.join(usable)}, or " if usable else "") + "build one for this "
                                f"host: xrel build-erts {host_target().name}.2.28 --otp {runtime.otp_version}")
    return runtime
