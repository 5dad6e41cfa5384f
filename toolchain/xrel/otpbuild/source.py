"""`--source build`: OTP runtimes built here from source with zig.

Offers every OTP version in the recipe's Debian source suites, and an exact version none has from
upstream's release tarballs (`build:debian` / `build:upstream` ask one origin only); installing
one runs the phased build (phases.py) in a work dir under the cache's builds/ area, keyed like the
runtime entry (version, target, a hash of the flags and the source tarballs), then installs `make
release`'s tree as `Install -minimal` would. Runtimes record the tarballs' sha256s, the origin and
the flags.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from xrel.errors import BuildError, NotAvailableError, UsageError
from xrel.otpbuild import bootstrap, debsrc, recipe, upstream
from xrel.otpbuild.phases import Build, BuildInputs
from xrel.runtimes import versions
from xrel.runtimes.base import FetchOptions, Offer
from xrel.storage import cache
from xrel.targets import Target
from xrel.versions import release, version_key

TRUST_DEBIAN = "Debian source packages (signed Release -> Sources -> .dsc)"
TRUST_UPSTREAM = "OTP's upstream release tarball (its release's SHA256.txt), OpenSSL from Debian's signed sources"
FLAGS_ENTRY = "build-flags.json"  # the flags' sha256, recorded with the tarballs' (a lock pins them)


def _repo(offline: bool) -> debsrc.SourcesRepo:
    repo = debsrc.SourcesRepo(recipe.load().sources.suites)
    repo.update(offline=offline)
    return repo


def newest_openssl(repo: debsrc.SourcesRepo) -> debsrc.SourcePackage:
    """The newest upload of the recipe's OpenSSL series; a one-line error naming what exists."""
    settings = recipe.load().sources
    found = repo.versions(settings.openssl_package)
    series = [v for v in found if debsrc.apt.debian_version_to_upstream(v).startswith(settings.openssl_series + ".")]
    if not series:
        have = ", ".join(sorted({debsrc.apt.debian_version_to_upstream(v) for v in found}, key=version_key)) or "none"
        raise NotAvailableError(f"no Debian {settings.openssl_package} source of the {settings.openssl_series} series "
                                f"in {', '.join(settings.suites)} (there: {have})",
                                f"set [sources] openssl_series in recipes/{recipe.RECIPE}.toml to one of those")
    return repo.resolve(settings.openssl_package, series[0])


def otp_uploads(repo: debsrc.SourcesRepo) -> dict[str, str]:
    """Upstream OTP version -> its highest Debian version."""
    out: dict[str, str] = {}
    for version in repo.versions(recipe.load().sources.otp_package):  # highest first
        out.setdefault(debsrc.apt.debian_version_to_upstream(version), version)
    return out


def variant(build: recipe.TargetBuild, otp: debsrc.SourcePackage, openssl: debsrc.SourcePackage) -> str:
    """What tells builds of one version apart: the flags and both source tarballs."""
    key = json.dumps([build.flags(), otp.orig.sha256, openssl.orig.sha256])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _host_major() -> int | None:
    from xrel.host import host_otp_major

    try:
        return host_otp_major()
    except Exception:  # no erl at all: the bootstrap build does without
        return None


def _offer(target: Target, build: recipe.TargetBuild, otp: debsrc.SourcePackage,
           openssl: debsrc.SourcePackage) -> Offer:
    major = release(otp.upstream)[0]
    where = f"Debian's {otp.version} source" if otp.origin == "debian" else f"upstream's {otp.orig.name}"
    cost = "(8-20 min on 2 cores" + ("" if major == _host_major() else f", after OTP {major}'s bootstrap for "
                                     "this machine, ~5 min once per source") + ")"
    return Offer(source="build", target=target.name, version=otp.upstream, url=otp.orig.url, sha256=otp.orig.sha256,
                 note=f"built here with zig from {where} and OpenSSL {openssl.upstream} {cost}",
                 details={"otp": otp, "openssl": openssl, "build": build, "variant": variant(build, otp, openssl)})


def needs_bootstrap(version: str) -> bool:
    """OTP's cross build needs an erl of the same major: the host's, else a bootstrap built here."""
    return release(version)[0] != _host_major()


ORIGINS = ("debian", "upstream")  # `--source build:<origin>`; plain `build`: Debian first, upstream otherwise


def _origin(options: FetchOptions) -> str | None:
    if options.location not in (None, *ORIGINS):
        raise UsageError(f"unknown OTP source origin 'build:{options.location}'",
                         "use --source build, build:debian or build:upstream")
    return options.location


def _upstream(request: tuple[int, ...] | None, origin: str | None, offline: bool) -> debsrc.SourcePackage | None:
    """The upstream release asked for exactly; with plain `build`, a missing release is no offer."""
    if not request or len(request) < 2:
        if origin == "upstream":
            raise UsageError("upstream OTP tarballs have no index to choose from",
                             "ask for an exact version with --otp (e.g. 26.2.5.7)")
        return None
    try:
        return upstream.release(".".join(map(str, request)), offline)
    except NotAvailableError:
        if origin == "upstream":
            raise
        return None


class BuildSource:
    name = "build"

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        # a target the recipe cannot build, or an app it cannot leave out: one line, before any download
        build = recipe.for_target(target, options.without_apps)
        origin = _origin(options)
        repo = _repo(options.offline)
        uploads = otp_uploads(repo) if origin != "upstream" else {}
        wanted = [v for v in uploads if options.request is None or versions.matches(options.request, v)]
        found = _upstream(options.request, origin, options.offline) if not wanted and origin != "debian" else None
        openssl = newest_openssl(repo) if wanted or found else None
        offers = [Offer(self.name, target.name, v, note=f"Debian {uploads[v]}") for v in uploads if v not in wanted]
        chosen = [repo.resolve(recipe.load().sources.otp_package, uploads[v]) for v in wanted]
        chosen += [found] if found else []
        offers += [_offer(target, build, otp, openssl) for otp in chosen]
        return sorted(offers, key=lambda o: version_key(o.version), reverse=True)

    def install(self, offer: Offer, target: Target, dest: Path, options: FetchOptions) -> dict:
        from xrel.zig.locate import find_zig

        d = offer.details
        inputs = BuildInputs(build=d["build"], otp=d["otp"], openssl=d["openssl"], zig=str(find_zig().path),
                             jobs=os.cpu_count() or 1, bootstrap=needs_bootstrap(offer.version))
        work = cache.area("builds") / f"otp-{offer.version}-{target.id}-{d['variant']}"
        job = Build(inputs, work)
        shutil.copytree(job.run(), dest, symlinks=True, dirs_exist_ok=True)
        from xrel.runtimes.otp_install import install_minimal

        install_minimal(dest)
        require_crypto(dest, target)
        provenance = _provenance(inputs, job)
        cache.remove(work)
        return provenance


def _build_erl(inputs: BuildInputs) -> str:
    """Which erl compiled the Erlang code: the host's, or the bootstrap built from the same source."""
    if not inputs.bootstrap:
        return f"the host's erl (OTP {release(inputs.otp.upstream)[0]})"
    return f"OTP's bootstrap system built here from the same source ({bootstrap.directory(inputs.otp).name})"


def require_crypto(root: Path, target: Target) -> None:
    """The crypto NIF must be in the root (configure may have skipped it silently)."""
    if not list(root.glob("lib/crypto-*/priv/lib/crypto.so")):
        raise BuildError(f"the OTP built for {target.id} has no crypto NIF (lib/crypto-*/priv/lib/crypto.so)",
                         "check the OpenSSL phase's log in the cache's builds/ area")


def _provenance(inputs: BuildInputs, job: Build) -> dict:
    flags = inputs.build.flags()
    packages = (inputs.otp, inputs.openssl)
    flags_sha = hashlib.sha256(json.dumps(flags, sort_keys=True).encode()).hexdigest()
    return {
        "urls": [p.orig.url for p in packages],
        "sha256": {**{p.orig.name: p.orig.sha256 for p in packages}, FLAGS_ENTRY: flags_sha},
        "packages": {p.package: p.version for p in packages},
        "dsc": {p.dsc.name: p.dsc.sha256 for p in packages if p.origin == "debian"},
        "otp_source": {"origin": inputs.otp.origin, "checksums": {inputs.otp.dsc.url: inputs.otp.dsc.sha256}},
        "build": {**flags, "zig": inputs.zig, "jobs": inputs.jobs, "seconds": job.seconds(),
                  "erl": _build_erl(inputs)},
        "trust": (TRUST_DEBIAN if inputs.otp.origin == "debian" else TRUST_UPSTREAM) + ", built here with zig",
    }


SOURCE = BuildSource()
