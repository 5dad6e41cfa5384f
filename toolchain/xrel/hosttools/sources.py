"""Elixir for the host: offers, the source registry, the choice and the cache (runtimes/elixir-*)."""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from xrel import progress, recipes
from xrel.errors import NotAvailableError, UsageError, VerificationError, XrelError
from xrel.runtimes.versions import nearest
from xrel.storage import cache, download
from xrel.storage.files import atomic_write
from xrel.versions import release, version_key

METADATA = "xrel-elixir.json"
AREA = "runtimes"
REGISTRY = {
    "debian": "xrel.hosttools.debian",
    "elixir_zips": "xrel.hosttools.zips",
    "hexbuilds": "xrel.hosttools.hexbuilds",
}
ENV_URLS = {"elixir_zips": "XREL_ELIXIR_ZIPS_URL", "hexbuilds": "XREL_HEX_BUILDS_URL"}
MAX_TRIES = 6  # builds of one source tried before giving up (elixir_zips probes checksum files)
_REQUEST = re.compile(r"^v?(\d+(?:\.\d+){0,2})$", re.IGNORECASE)


@dataclass(frozen=True)
class ElixirOffer:
    """One Elixir build a source can provide."""

    source: str
    version: str  # e.g. 1.18.3
    otp: int | None  # the OTP major it was compiled with, when the source says
    url: str | None = None
    sha256: str | None = None
    details: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def entry(self) -> str:
        """Cache entry name: elixir-1.14.0-debian, elixir-1.18.3-otp-27-elixir_zips."""
        built = f"-otp-{self.otp}" if self.otp is not None and self.source != "debian" else ""
        return f"elixir-{self.version}{built}-{self.source}"

    def fits(self, host_otp: int) -> bool:
        return self.otp is None or self.otp <= host_otp

    def label(self) -> str:
        return f"{self.version} from {self.source}" + (f" (OTP {self.otp})" if self.source != "debian" else "")


@dataclass
class Options:
    offline: bool = False
    host_otp: int = 0  # the major of the OTP that will run it


class Source(Protocol):
    name: str

    def offers(self, request: tuple[int, ...] | None, options: Options) -> list[ElixirOffer]:
        """Every build this source has (or may have) for the request."""

    def resolve(self, offer: ElixirOffer, options: Options) -> ElixirOffer:
        """The offer with its download URL and sha256; NotAvailableError when upstream lacks it."""

    def install(self, offer: ElixirOffer, dest: Path, options: Options) -> dict:
        """Download, verify and unpack into `dest` (empty) as an Elixir root; returns provenance."""


def settings(name: str) -> dict[str, Any]:
    """A source's table in recipes/elixir.toml."""
    return recipes.load("elixir")[name]


def order() -> list[str]:
    return list(recipes.load("elixir")["order"])


def mirror(name: str) -> str:
    """A source's base URL; XREL_ELIXIR_ZIPS_URL / XREL_HEX_BUILDS_URL override it."""
    return (os.environ.get(ENV_URLS[name]) or settings(name)["base_url"]).rstrip("/")


def get_source(name: str) -> Source:
    if name not in REGISTRY:
        raise UsageError(f"unknown Elixir source '{name}'", f"choose one of {', '.join(sorted(REGISTRY))}")
    return importlib.import_module(REGISTRY[name]).SOURCE


def parse_request(text: str) -> tuple[int, ...]:
    """`1.14`, `1.14.0` or `v1.14.0` as a tuple prefix; UsageError otherwise."""
    m = _REQUEST.match(str(text).strip())
    if not m:
        raise UsageError(f"'{text}' is not an Elixir version", "write e.g. 1.14 or 1.18.3")
    return release(m.group(1))


def matches(request: tuple[int, ...] | None, version: str) -> bool:
    return request is None or release(version)[: len(request)] == request


def ranked(offers: list[ElixirOffer], host_otp: int) -> list[ElixirOffer]:
    """Builds that fit the host OTP first, newest version first; of one version, the build for the
    highest OTP <= host's, then (not fitting) the lowest above it."""
    def key(o: ElixirOffer):
        built = o.otp if o.otp is not None else host_otp
        return (built <= host_otp, version_key(o.version), built if built <= host_otp else -built)
    return sorted(offers, key=key, reverse=True)


def choose(request: tuple[int, ...] | None, names: list[str], options: Options) -> tuple[ElixirOffer, list]:
    """The resolved offer to install, and every offer seen (to name alternatives).

    A source whose matching builds were all compiled by a newer OTP than the host's is used only
    when no later source has one that fits."""
    seen: list[ElixirOffer] = []
    errors: list[XrelError] = []
    tried: dict[str, list[str]] = {}
    deferred: list[tuple[Source, list[ElixirOffer]]] = []
    for name in names:
        source = get_source(name)
        try:
            offers = source.offers(request, options)
        except (VerificationError, UsageError):
            raise
        except XrelError as e:
            errors.append(XrelError(f"{name}: {e.message}", e.hint))
            continue
        seen += offers
        candidates = ranked([o for o in offers if matches(request, o.version)], options.host_otp)
        if candidates and not candidates[0].fits(options.host_otp):
            deferred.append((source, candidates))
            continue
        found = _resolve_first(source, candidates, options, errors)
        if found:
            return found, seen
        tried[name] = sorted({o.version for o in offers}, key=version_key)
    for source, candidates in deferred:
        found = _resolve_first(source, candidates, options, errors)
        if found:
            return found, seen
    raise _unavailable(request, tried, errors)


def _resolve_first(source: Source, candidates: list[ElixirOffer], options: Options,
                   errors: list[XrelError]) -> ElixirOffer | None:
    for offer in candidates[:MAX_TRIES]:
        try:
            return source.resolve(offer, options)
        except NotAvailableError as e:
            errors.append(XrelError(f"{source.name}: {e.message}", e.hint))
    return None


def _unavailable(request, tried: dict[str, list[str]], errors: list[XrelError]) -> NotAvailableError:
    wanted = ".".join(map(str, request)) if request else "any"
    has = "; ".join(f"{n} has {', '.join(nearest(request, v) if request else v[-5:]) or 'nothing'}"
                    for n, v in tried.items())
    also = "; ".join(e.message for e in errors)
    hint = next((e.hint for e in errors if e.hint), None) or "pin one of those, or another Elixir source"
    text = f"Elixir {wanted} is not available ({has or 'no offers'})" + (f"; {also}" if also else "")
    return NotAvailableError(text, hint)


def cached(request: tuple[int, ...] | None, names: list[str], host_otp: int) -> list[tuple[Path, dict]]:
    """Cached Elixir roots for the request whose build fits the host OTP, best first."""
    base = cache.cache_root() / AREA
    found = []
    for meta_file in base.glob(f"elixir-*/{METADATA}") if base.is_dir() else []:
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        built = meta.get("otp")
        if meta.get("source") in names and matches(request, meta["version"]) and (built is None or built <= host_otp):
            found.append((meta_file.parent, meta))
    found.sort(key=lambda f: (version_key(f[1]["version"]), f[1].get("otp") or 0), reverse=True)
    return sorted(found, key=lambda f: names.index(f[1]["source"]))


def install(offer: ElixirOffer, options: Options) -> tuple[Path, dict]:
    """Install one resolved offer into the cache (locked; staging dir, verify, rename)."""
    final = cache.area(AREA) / offer.entry
    with cache.locked(AREA, offer.entry):
        if (final / METADATA).is_file():
            return final, json.loads((final / METADATA).read_text())
        if options.offline:
            _require_download_cached(offer)
        with progress.step(f"fetch Elixir {offer.label()}"), cache.staging(final) as tmp:
            provenance = get_source(offer.source).install(offer, tmp, options)
            check_layout(tmp, offer.version, offer.url or offer.source)
            meta = {"version": offer.version, "source": offer.source, "otp": offer.otp, **provenance}
            atomic_write(tmp / METADATA, json.dumps(meta, indent=1, sort_keys=True) + "\n")
        return final, meta


def _require_download_cached(offer: ElixirOffer) -> None:
    if not (offer.url and offer.sha256):
        raise NotAvailableError(f"offline, and {offer.entry} is not in the cache", "run the same command once online")
    path = download.verified_path(offer.url, offer.sha256, offer.details.get("filename"))
    if not path.is_file():
        raise NotAvailableError(f"offline, and {offer.entry} is not in the cache (nor its archive {offer.url})",
                                f"run once online, or put that file at {path}")


_APP_VSN = re.compile(r'\{vsn,\s*"([^"]+)"\}')


def check_layout(root: Path, version: str, what: str) -> None:
    """An Elixir root: bin/elixir, bin/mix, bin/iex and lib/elixir/ebin/elixir.app of `version`."""
    needed = ("bin/elixir", "bin/mix", "bin/iex", "lib/elixir/ebin/elixir.app")
    missing = [p for p in needed if not (root / p).is_file()]
    if missing:
        raise VerificationError(f"{what} holds no Elixir root (missing {', '.join(missing)})",
                                "it is not an Elixir installation")
    m = _APP_VSN.search((root / "lib/elixir/ebin/elixir.app").read_text(errors="replace"))
    if not m or m.group(1) != version:
        raise VerificationError(f"{what} holds Elixir {m.group(1) if m else '(no version)'}, not {version}",
                                "the source's index does not match its archive; report it upstream")
