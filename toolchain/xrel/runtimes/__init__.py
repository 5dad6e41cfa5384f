"""Fetch, verify, normalize and cache OTP runtimes (ERTS + OTP apps) per target."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from xrel import progress
from xrel.errors import NotAvailableError, UsageError, VerificationError, XrelError
from xrel.runtimes import versions
from xrel.runtimes.base import METADATA, FetchOptions, Offer, get_source
from xrel.storage import cache
from xrel.storage.files import is_sha256
from xrel.targets import Target
from xrel.versions import version_key

__all__ = ["Runtime", "fetch_runtime", "cached_runtime", "list_offers", "Offer"]


@dataclass(frozen=True)
class Runtime:
    """A normalized OTP root for one target, as described by its xrel-runtime.json."""

    root: Path
    meta: dict

    @property
    def target(self) -> str:
        return self.meta["target"]

    @property
    def otp_version(self) -> str:
        return self.meta["otp_version"]

    @property
    def otp_major(self) -> int:
        return int(self.meta["otp_major"])

    @property
    def erts_version(self) -> str:
        return self.meta["erts_version"]

    @property
    def nif_version(self) -> str:
        return self.meta["nif_version"]

    @property
    def source(self) -> str:
        return self.meta["source"]

    @property
    def erts_dir(self) -> Path:
        return self.root / f"erts-{self.erts_version}"

    @property
    def glibc_floor(self) -> str | None:
        return self.meta.get("glibc_floor")

    def to_dict(self) -> dict:
        keys = ("target", "otp_version", "erts_version", "nif_version", "source", "urls", "sha256",
                "glibc_floor", "packages", "suite", "needed_libraries", "trust", "location")
        return {"path": str(self.root), **{k: self.meta.get(k) for k in keys if k in self.meta}}

    @classmethod
    def load(cls, root: Path) -> Runtime:
        return cls(Path(root), json.loads((Path(root) / METADATA).read_text()))


def entry_name(target: Target, source: str, version: str, variant: str | None = None) -> str:
    """Cache key, e.g. otp-27.3.4.1-aarch64-linux-gnu-debian (a variant tells apart runtimes a
    user provides: otp-27.3-x86_64-linux-gnu-local-<hash>)."""
    return f"otp-{version}-{target.name}-{source}" + (f"-{variant}" if variant else "")


def left_out_apps(runtime: Runtime) -> tuple[str, ...]:
    """The OTP applications a runtime built from source left out (none for every other source)."""
    return tuple((runtime.meta.get("build") or {}).get("without_apps") or ())


def _cached(target: Target, request: tuple[int, ...] | None, sources: list[str],
            without_apps: tuple[str, ...] | None = None) -> list[Runtime]:
    """Cached runtimes matching the request, best first; `without_apps`: only those leaving out
    exactly these OTP applications (None: any)."""
    found = []
    base = cache.cache_root() / "runtimes"
    if not base.is_dir():
        return found
    for meta_file in base.glob(f"otp-*-{target.name}-*/{METADATA}"):
        try:
            runtime = Runtime.load(meta_file.parent)
        except (OSError, ValueError):
            continue
        if runtime.target != target.name or runtime.source not in sources:
            continue
        if without_apps is not None and left_out_apps(runtime) != without_apps:
            continue
        if request is None or versions.matches(request, runtime.otp_version):
            found.append(runtime)
    newest_first = sorted(found, key=lambda r: version_key(r.otp_version), reverse=True)
    return sorted(newest_first, key=lambda r: sources.index(r.source))


def cached_runtimes(target: Target | str, sources: list[str], otp: str | None = None) -> list[Runtime]:
    """Every cached runtime of `sources` for `target` (matching `otp` if given), best first."""
    target = Target.parse(target)
    return _cached(target, versions.parse_request(otp) if otp else None, list(sources))


def _default_request() -> tuple[int, ...]:
    from xrel.host import host_otp_major

    return (host_otp_major(),)


def _location(source: str | None) -> str | None:
    """The `/x` of `path:/x`, the URL of `url:https://...`."""
    return source.split(":", 1)[1] if source and ":" in source else None


def _sources_for(target: Target, source: str | None) -> list[str]:
    if source:
        get_source(source.split(":", 1)[0])  # validates the name
        return [source.split(":", 1)[0]]
    return list(target.sources)


def cached_runtime(target: Target | str, otp: str | None = None, source: str | None = None) -> Runtime | None:
    """The best cached runtime for the request, without touching the network."""
    target = Target.parse(target)
    request = versions.parse_request(otp) if otp else None
    found = _cached(target, request, _sources_for(target, source))
    return found[0] if found else None


def list_offers(target: Target | str, source: str | None = None, offline: bool = False) -> dict[str, list[Offer]]:
    """What each source offers for the target: {source: [offers]} (errors become empty lists)."""
    target = Target.parse(target)
    result: dict[str, list[Offer]] = {}
    options = FetchOptions(offline=offline, location=_location(source))
    for name in _sources_for(target, source):
        result[name] = sorted(get_source(name).offers(target, options),
                              key=lambda o: version_key(o.version), reverse=True)
    return result


def fetch_runtime(target: Target | str, *, otp: str | None = None, source: str | None = None,
                  offline: bool = False, force: bool = False, sha256: str | None = None,
                  without_apps: Sequence[str] = ()) -> Runtime:
    """A verified, normalized, cached OTP root for `target`.

    `otp` is a version request (default: the host's OTP major); `source` a source name, or
    `path:/x` / `url:https://...` for a runtime you provide; `without_apps`, OTP applications a
    runtime built from source leaves out. A cached match is used without asking the network unless `force`.
    """
    target = Target.parse(target)
    if sha256 is not None and not is_sha256(sha256):
        raise UsageError(f"--sha256 '{sha256}' is not a sha256", "give the 64 hex digits of the file's sha256")
    location = _location(source)
    sources = _sources_for(target, source)
    request = versions.parse_request(otp) if otp else (None if location else _default_request())
    without_apps = _without_apps(without_apps, sources)
    if not force and not location:
        cached = _cached(target, request, sources, without_apps)
        if cached:
            return cached[0]
    options = FetchOptions(offline=offline, sha256=sha256, location=location, request=request,
                           without_apps=without_apps)
    offer = _choose(target, request, sources, options)
    return install(offer, target, options, force=force)


def _without_apps(apps: Sequence[str], sources: list[str]) -> tuple[str, ...]:
    """Apps to leave out, sorted: only a runtime built from source can leave any out."""
    if apps and sources != ["build"]:
        raise UsageError(f"only a runtime built from source can leave out OTP applications ({', '.join(apps)})",
                         "use source build for it, or leave without_apps out")
    return tuple(sorted(set(apps)))


def _choose(target: Target, request, sources: list[str], options: FetchOptions) -> Offer:
    tried: dict[str, list[str]] = {}
    errors: list[str] = []
    hints: list[str] = []
    for name in sources:
        try:
            offers = get_source(name).offers(target, options)
        except (VerificationError, UsageError):
            raise  # a bad signature or a mistake in the request is never just "not available"
        except XrelError as e:
            errors.append(f"{name}: {e.message}")
            hints.extend([e.hint] if e.hint else [])
            continue
        by_version = {o.version: o for o in offers}
        chosen = versions.best(request, list(by_version)) if request else (offers[0].version if offers else None)
        if chosen:
            return by_version[chosen]
        tried[name] = list(by_version)
    wanted = ".".join(map(str, request)) if request else "any"
    if not tried and errors:
        raise NotAvailableError(f"no runtime for {target.name}: " + "; ".join(errors),
                                "; ".join(hints) if len(errors) == 1 and hints else None)
    nearest = "; ".join(f"{n} has {', '.join(versions.nearest(request, v)) or 'nothing'}"
                        for n, v in tried.items()) if request else ""
    raise NotAvailableError(
        f"OTP {wanted} is not available for {target.name} ({nearest or 'no offers'})"
        + (f"; also: {'; '.join(errors)}" if errors else ""),
        "pick one of those with --otp, or another --source",
    )


def install(offer: Offer, target: Target, options: FetchOptions, force: bool = False,
            check: Callable[[dict], None] | None = None) -> Runtime:
    """Install one offer into the cache (locked; temp dir, verify, rename).

    `check` sees the source's provenance (sha256s, packages) before anything is renamed into place
    and raises to refuse it (a lock's hashes)."""
    from xrel.runtimes.normalize import finalize  # not at the top: a cached runtime needs none of it

    name = entry_name(target, offer.source, offer.version, offer.details.get("variant"))
    final = cache.area("runtimes") / name
    with cache.locked("runtimes", name):
        if not force and (final / METADATA).is_file():
            return Runtime.load(final)
        if options.offline and not offer.details.get("local"):
            _require_download_cached(offer, name)
        with progress.step(f"fetch {offer.source} OTP {offer.version} for {target.name}"), \
                cache.staging(final) as tmp:
            provenance = get_source(offer.source).install(offer, target, tmp, options)
            if check is not None:
                check(provenance)
            finalize(tmp, target, offer.source, offer.version, provenance)
        return Runtime.load(final)


def _require_download_cached(offer: Offer, name: str) -> None:
    """Offline: go on only when the offer's archive is already in the downloads cache."""
    if not (offer.url and offer.sha256):
        raise NotAvailableError(f"offline, and {name} is not in the cache", "run the same command once online")
    from xrel.storage.download import verified_path

    path = verified_path(offer.url, offer.sha256)
    if not path.is_file():
        raise NotAvailableError(f"offline, and {name} is not in the cache (nor its archive {offer.url})",
                                f"run once online, or put that file at {path}")
