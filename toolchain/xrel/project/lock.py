"""xrel.lock: the exact runtimes (source, version, package revision, sha256 of every download) and
host tools a project's builds use, so another machine builds from the very same bytes.

`fetch_locked` returns the cached runtime that matches a lock entry, else fetches exactly that one
(the locked sha256s checked before anything is renamed into the cache); `check_locked` lists how
runtimes differ from the lock (for `--locked`). Updating the lock is explicit: `xrel lock --upgrade`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from xrel.errors import NotAvailableError, UsageError, VerificationError
from xrel.runtimes import Runtime, cached_runtimes, fetch_runtime, install
from xrel.runtimes.base import FetchOptions, Offer, get_source
from xrel.storage.files import atomic_write, is_sha256
from xrel.targets import Target
from xrel.versions import release

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

LOCK_FILE = "xrel.lock"
LOCK_VERSION = 1
UPGRADE = "run `xrel lock --upgrade`"
PROVIDED = {"local": "path", "url": "url"}  # sources of runtimes a user provides -> their --source prefix
_HEADER = ("# xrel.lock: the exact OTP runtimes and host tools of this project's builds (written by `xrel lock`).\n"
           "# Commit it. `xrel build --locked` fails if a build would use anything else; "
           "`xrel lock --upgrade` updates it.\n")


def _base(name: str) -> str:
    """`https://x/OTP-27.3.tar.gz` -> `OTP-27.3.tar.gz` (percent escapes decoded, as apt's %3a)."""
    return unquote(name.rstrip("/").rsplit("/", 1)[-1])


@dataclass(frozen=True)
class LockedRuntime:
    """One target's runtime as locked: what to fetch and the sha256 of every download."""

    target: str  # canonical target id (Target.id)
    source: str
    otp_version: str
    files: tuple[tuple[str, str], ...]  # (file name or URL, sha256), sorted
    revision: str | None = None  # the package revision (Debian's "1:25.2.3+dfsg-1+deb12u4")
    packages: Mapping[str, str] = field(default_factory=dict)  # package -> version (Debian, Alpine)
    location: str | None = None  # where a runtime the user provided came from (path or URL)

    def file_hashes(self) -> dict[str, str]:
        """{file name: sha256}, whatever mirror the files came from."""
        return {_base(name): sha for name, sha in self.files}

    def matches(self, runtime: Runtime) -> bool:
        """Is `runtime` exactly this: same target, source, version, revision and bytes?"""
        return not _differences(self, runtime)

    def describe(self) -> str:
        return f"{self.source} OTP {self.otp_version}" + (f" ({self.revision})" if self.revision else "")


@dataclass(frozen=True)
class Lock:
    runtimes: Mapping[str, LockedRuntime]  # by target id
    host: Mapping[str, object] = field(default_factory=dict)  # the host OTP/Elixir (HostTools.sources), as-is

    def for_target(self, target_id: str) -> LockedRuntime | None:
        found = self.runtimes.get(target_id)
        if found is None and target_id not in self.runtimes:
            try:
                found = self.runtimes.get(Target.parse(target_id).id)  # an alias: armhf
            except UsageError:
                return None
        return found


# -- from runtimes, and comparing ------------------------------------------------------------------

def _revision(meta: Mapping) -> str | None:
    return meta.get("debian_version")


def locked_runtime_from(runtime: Runtime, target: Target | str | None = None) -> LockedRuntime:
    """The lock entry for a cached runtime (its xrel-runtime.json); `target` gives the id with a
    glibc floor (the runtime records the plain name)."""
    meta = runtime.meta
    hashes: dict[str, str] = dict(meta.get("sha256") or {})
    by_name = {_base(url): url for url in meta.get("urls") or [] if not url.startswith("file:")}
    keep_urls = runtime.source != "debian"  # apt resolves a .deb's URL from this machine's mirror
    files = tuple(sorted((by_name.get(_base(name), name) if keep_urls else name, sha.lower())
                         for name, sha in hashes.items()))
    packages = meta.get("packages") if isinstance(meta.get("packages"), dict) else {}
    return LockedRuntime(
        target=Target.parse(target).id if target else runtime.target, source=runtime.source,
        otp_version=runtime.otp_version, files=files, revision=_revision(meta),
        packages=dict(sorted(packages.items())),
        location=meta.get("location") if runtime.source in PROVIDED else None,
    )


def _differences(locked: LockedRuntime, runtime: Runtime) -> list[str]:
    """How `runtime` differs from the lock entry, one phrase each."""
    try:
        wanted_target = Target.parse(locked.target).name
    except UsageError:
        wanted_target = locked.target
    if runtime.target != wanted_target:
        return [f"is for {runtime.target}, the lock's for {locked.target}"]
    now = locked_runtime_from(runtime, locked.target)
    if (now.source, now.otp_version, now.revision) != (locked.source, locked.otp_version, locked.revision):
        return [f"{now.describe()} instead of the locked {locked.describe()}"]
    have, want = now.file_hashes(), locked.file_hashes()
    out = [f"{name} has sha256 {have[name]}, the lock has {want[name]}"
           for name in sorted(set(have) & set(want)) if have[name] != want[name]]
    out += [f"{name} is not in the lock" for name in sorted(set(have) - set(want))]
    out += [f"the locked {name} is missing" for name in sorted(set(want) - set(have))]
    return out


def check_locked(lock: Lock, runtimes: Mapping[str, Runtime]) -> list[str]:
    """How the runtimes a build chose ({target id: runtime}) differ from the lock, one line each
    (empty: they match, as `--locked` requires)."""
    lines = []
    for target_id, runtime in sorted(runtimes.items()):
        locked = lock.for_target(target_id)
        if locked is None:
            lines.append(f"{target_id}: not in {LOCK_FILE} ({UPGRADE})")
            continue
        lines += [f"{target_id}: {d}" for d in _differences(locked, runtime)]
    return lines


# -- fetching exactly what is locked ---------------------------------------------------------------

def fetch_locked(target: Target | str, locked: LockedRuntime, *, offline: bool = False,
                 without_apps: tuple[str, ...] = ()) -> Runtime:
    """The very same runtime: the cached one if it matches the lock, else exactly the locked
    source/version/revision fetched (built without `without_apps`) and checked against the locked sha256s."""
    target = Target.parse(target)
    for runtime in cached_runtimes(target, [locked.source], locked.otp_version):
        if locked.matches(runtime):
            return runtime
    if locked.source in PROVIDED:
        return _fetch_provided(target, locked, offline)
    options = FetchOptions(offline=offline, request=release(locked.otp_version), revision=locked.revision,
                           without_apps=tuple(sorted(set(without_apps))))
    offer = _locked_offer(target, locked, options)
    if len(locked.files) == 1:
        options.sha256 = locked.files[0][1]
        offer = dataclasses.replace(offer, sha256=options.sha256)
    return install(offer, target, options, force=True, check=lambda provenance: _check_files(locked, provenance))


def _locked_offer(target: Target, locked: LockedRuntime, options: FetchOptions) -> Offer:
    """The source's offer of exactly the locked version (and revision); refused when its published
    hash differs from the lock, or the revision is gone."""
    offers = [o for o in get_source(locked.source).offers(target, options) if o.version == locked.otp_version]
    if locked.revision:
        exact = [o for o in offers if o.details.get("debian_version") == locked.revision]
        if not exact:
            raise _revision_gone(target, locked, offers)
        members = set(exact[0].details.get("packages") or locked.packages)
        if locked.packages and members != set(locked.packages):
            extra = sorted(members ^ set(locked.packages))
            raise VerificationError(f"the packages of {locked.describe()} for {locked.target} changed "
                                    f"({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''}); refused",
                                    f"if you trust them, {UPGRADE}")
        return exact[0]
    want = locked.file_hashes()
    named = [o for o in offers if o.url and _base(o.url) in want]
    if not named:
        have = ", ".join(sorted({o.version for o in offers})) or "other versions"
        raise NotAvailableError(f"the locked {locked.describe()} for {locked.target} is gone from {locked.source} "
                                f"(it has {have})", UPGRADE)
    offer = named[0]
    name = _base(offer.url)
    if offer.sha256 and offer.sha256.lower() != want[name]:
        raise VerificationError(f"upstream changed {name} for {locked.target}: {locked.source} now publishes "
                                f"sha256 {offer.sha256.lower()}, {LOCK_FILE} has {want[name]}; refused",
                                f"if you trust the new file, {UPGRADE}")
    return offer


def _revision_gone(target: Target, locked: LockedRuntime, offers: list[Offer]) -> NotAvailableError:
    package = "erlang-base" if locked.source == "debian" else f"{locked.source} package"
    current = sorted({o.details.get("debian_version") for o in offers if o.details.get("debian_version")})
    now = f"it now has {', '.join(current)}" if current else f"it has no OTP {locked.otp_version} now"
    return NotAvailableError(f"the locked {package} {locked.revision} for {target.id} is gone from "
                             f"{locked.source.capitalize()} ({now})", UPGRADE)


def _check_files(locked: LockedRuntime, provenance: dict) -> None:
    """Refuse downloads whose sha256s are not the locked ones (before the cache keeps them)."""
    have = {_base(name): sha.lower() for name, sha in (provenance.get("sha256") or {}).items()}
    want = locked.file_hashes()
    for name in sorted(set(have) | set(want)):
        if have.get(name) != want.get(name):
            what = (f"sha256 {have[name]}, {LOCK_FILE} has {want[name]}" if name in have and name in want
                    else "not in the lock" if name in have else "no longer part of it")
            raise VerificationError(f"{name} for {locked.target} from {locked.source}: {what}; refused",
                                    f"if you trust the new files, {UPGRADE}")


def _fetch_provided(target: Target, locked: LockedRuntime, offline: bool) -> Runtime:
    """A runtime the user provided (path:, url:): from the same place, and the same bytes."""
    if not locked.location:
        raise UsageError(f"{LOCK_FILE} names no location for the {locked.source} runtime of {locked.target}", UPGRADE)
    sha256 = locked.files[0][1] if len(locked.files) == 1 else None
    runtime = fetch_runtime(target, source=f"{PROVIDED[locked.source]}:{locked.location}", offline=offline,
                            sha256=sha256 if locked.source == "url" else None)
    problems = _differences(locked, runtime)
    if problems:
        raise VerificationError(f"the runtime at {locked.location} for {locked.target} changed: {problems[0]}",
                                f"restore it, or {UPGRADE}")
    return runtime


# -- the file ----------------------------------------------------------------------------------------

def _malformed(path: Path, detail: str) -> UsageError:
    return UsageError(f"{path} is malformed: {detail}", "fix it, or delete it and run `xrel lock`")


def _str(path: Path, where: str, value: object, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _malformed(path, f"{where} must be a non-empty string")
    return value


def _entry(path: Path, target_id: str, data: object) -> LockedRuntime:
    where = f"[runtimes.\"{target_id}\"]"
    if not isinstance(data, dict):
        raise _malformed(path, f"{where} must be a table")
    files = data.get("files", [])
    if not isinstance(files, list) or not all(
            isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) and is_sha256(f[1]) for f in files):
        raise _malformed(path, f"{where} files must be a list of [name, sha256] pairs")
    packages = data.get("packages", {})
    if not isinstance(packages, dict) or not all(isinstance(v, str) for v in packages.values()):
        raise _malformed(path, f"{where} packages must be a table of package = version")
    unknown = set(data) - {f.name for f in dataclasses.fields(LockedRuntime)}
    if unknown:
        raise _malformed(path, f"{where} has unknown key {sorted(unknown)[0]}")
    return LockedRuntime(
        target=target_id, source=_str(path, f"{where} source", data.get("source")),
        otp_version=_str(path, f"{where} otp_version", data.get("otp_version")),
        files=tuple(sorted((name, sha.lower()) for name, sha in files)),
        revision=_str(path, f"{where} revision", data.get("revision"), optional=True),
        packages=dict(packages), location=_str(path, f"{where} location", data.get("location"), optional=True),
    )


def read_lock(project_dir: Path) -> Lock | None:
    """The project's xrel.lock; None when there is none."""
    path = Path(project_dir) / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise _malformed(path, str(e)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _malformed(path, str(e)) from None
    if data.get("version") != LOCK_VERSION:
        raise _malformed(path, f"version must be {LOCK_VERSION} (written by another xrel?)")
    runtimes, host = data.get("runtimes", {}), data.get("host", {})
    if not isinstance(runtimes, dict) or not isinstance(host, dict):
        raise _malformed(path, "[runtimes] and [host] must be tables")
    entries = {tid: _entry(path, tid, entry) for tid, entry in runtimes.items()}
    return Lock(runtimes=dict(sorted(entries.items())), host=host)


def write_lock(project_dir: Path, lock: Lock) -> Path:
    """Write xrel.lock (sorted, so the same lock is the same bytes) in one rename."""
    runtimes = {}
    for tid, entry in sorted(lock.runtimes.items()):
        data = {k: v for k, v in dataclasses.asdict(entry).items() if k != "target" and v not in (None, {})}
        data["files"] = [list(f) for f in entry.files]
        runtimes[tid] = data
    body = {"version": LOCK_VERSION, "host": dict(lock.host), "runtimes": runtimes}
    return atomic_write(Path(project_dir) / LOCK_FILE, _HEADER + dumps_toml(body))


# -- a small TOML writer (tables, strings, numbers, booleans, arrays; None left out) ---------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: object, top: bool = False) -> str:
    """A TOML value; a long top-level array one item a line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Path):
        return _string(str(value))
    if isinstance(value, (list, tuple)):
        items = [_value(v) for v in value if v is not None]
        if top and items and sum(map(len, items)) > 80:
            return "[\n" + "".join(f"    {i},\n" for i in items) + "]"
        return "[" + ", ".join(items) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in sorted(value.items())
                               if v is not None) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps_toml(data: Mapping, prefix: tuple[str, ...] = ()) -> str:
    """`data` as TOML, keys sorted: scalars first, then each sub-table under its [header]."""
    items = sorted((str(k), v) for k, v in data.items() if v is not None)
    lines = [f"{_key(k)} = {_value(v, top=True)}" for k, v in items if not isinstance(v, Mapping)]
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in items:
        if isinstance(v, Mapping):
            path = (*prefix, k)
            body = dumps_toml(v, path)
            has_scalars = any(not isinstance(x, Mapping) for x in v.values() if x is not None)
            header = f"[{'.'.join(_key(p) for p in path)}]\n" if has_scalars or not v else ""
            out += ("\n" if out else "") + header + body
    return out
