"""recipes/otp_build.toml, typed; and what one target's build is given (flags, triples, key)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from xrel import recipes
from xrel.errors import UsageError
from xrel.recipe_schema import build
from xrel.targets import Target

RECIPE = "otp_build"


@dataclass(frozen=True)
class SourcesSettings:
    suites: tuple[str, ...]
    otp_package: str
    openssl_package: str
    openssl_series: str
    upstream_url: str
    upstream_tarball: str
    upstream_checksums: str


@dataclass(frozen=True)
class OpensslSettings:
    options: tuple[str, ...]
    make_targets: tuple[str, ...]
    configure_targets: dict[str, str]


@dataclass(frozen=True)
class SourceFix:
    """Replacements in one file of OTP's source for the versions named (backports of upstream fixes)."""

    file: str
    versions: tuple[str, ...]  # OTP versions or prefixes: "25" is every 25.x
    replace: tuple[tuple[str, str], ...]  # (old, new); old must occur exactly once
    why: str

    def applies(self, version: str) -> bool:
        return any(version == v or version.startswith(v + ".") for v in self.versions)


@dataclass(frozen=True)
class OtpSettings:
    configure: tuple[str, ...]
    dfsg_dropped: tuple[str, ...]
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    ded_ldflags: tuple[str, ...]
    ded_runtime_library_path: str
    required_apps: tuple[str, ...] = ()  # never left out (`without_apps`)
    source_fixes: tuple[SourceFix, ...] = ()


@dataclass(frozen=True)
class BootstrapSettings:
    configure: tuple[str, ...]


@dataclass(frozen=True)
class LibcSettings:
    compile_cflags: tuple[str, ...] = ()  # compiles (-c) only
    ldflags: tuple[str, ...] = ()


@dataclass(frozen=True)
class OtpBuildRecipe:
    sources: SourcesSettings
    openssl: OpensslSettings
    otp: OtpSettings
    bootstrap: BootstrapSettings
    libc: dict[str, LibcSettings] = field(default_factory=dict)


@functools.cache
def load() -> OtpBuildRecipe:
    """The typed recipe (an unknown key or a wrong type is a one-line error naming it)."""
    path = str(recipes.recipes_dir() / f"{RECIPE}.toml")
    return build(OtpBuildRecipe, recipes.load(RECIPE), path)


@dataclass(frozen=True)
class TargetBuild:
    """Everything one target's build is given: the recipe's values resolved for it."""

    target: str  # the target id (with a glibc floor, if any)
    zig_triple: str
    host_triple: str  # configure's --host
    openssl_target: str
    openssl_options: tuple[str, ...]
    openssl_make: tuple[str, ...]
    configure: tuple[str, ...]
    dfsg_dropped: tuple[str, ...]
    cflags: tuple[str, ...]  # every compiler call
    compile_cflags: tuple[str, ...]  # compiles (-c) only
    ldflags: tuple[str, ...]
    ded_ldflags: tuple[str, ...]
    ded_runtime_library_path: str
    source_fixes: tuple[SourceFix, ...] = ()
    without_apps: tuple[str, ...] = ()  # OTP applications left out (configure's --without-<app>)

    def flags(self) -> dict:
        """The build flags, as xrel-runtime.json records them (plain JSON values); no `without_apps`
        when none is left out (the flags, and so the keys, of builds made before it existed)."""
        flags = json.loads(json.dumps(dataclasses.asdict(self)))
        if not self.without_apps:
            del flags["without_apps"]
        return flags

    @property
    def key(self) -> str:
        """A hash of the flags: part of the cache entry's and the work dir's name."""
        return hashlib.sha256(json.dumps(self.flags(), sort_keys=True).encode()).hexdigest()[:12]


APP_NAME = re.compile(r"[a-z][a-z0-9_]*")


def checked_without_apps(apps: Iterable[str]) -> tuple[str, ...]:
    """OTP applications to leave out of a build, sorted; a malformed or required name is a one-line UsageError."""
    apps = tuple(sorted(set(apps)))
    bad = [a for a in apps if not APP_NAME.fullmatch(a)]
    if bad:
        raise UsageError(f"'{bad[0]}' is not an OTP application name", "name apps as in OTP's lib/, e.g. megaco")
    required = [a for a in apps if a in load().otp.required_apps]
    if required:
        raise UsageError(f"{required[0]} cannot be left out of an OTP that xrel builds (required: "
                         f"{', '.join(load().otp.required_apps)})", f"remove {required[0]} from the apps left out")
    return apps


def for_target(target: Target, without_apps: Iterable[str] = ()) -> TargetBuild:
    """The recipe resolved for `target` (leaving `without_apps` out); a target it cannot build, or
    an app it cannot leave out, is a one-line UsageError."""
    r = load()
    if target.os != "linux" or target.libc not in r.libc:
        raise UsageError(f"xrel cannot build OTP for {target.id} (only Linux targets: "
                         f"{', '.join(sorted(r.libc))})", "use another --source for it")
    arch = target.arch
    if arch not in r.openssl.configure_targets:
        raise UsageError(f"xrel cannot build OTP for {target.id}: recipes/{RECIPE}.toml has no OpenSSL "
                         f"target for {arch}", f"add {arch} to [openssl] configure_targets")
    # configure's --host must differ from the build machine's canonical triple even for its own CPU
    host = f"{arch}-unknown-linux-{target.abi}" if target.libc == "glibc" else target.rebar
    cpu = (f"-mcpu={target.zig_cpu}",) if target.zig_cpu else ()  # e.g. armhf's VFP, as NIFs are built
    return TargetBuild(
        target=target.id, zig_triple=target.zig_triple, host_triple=host,
        openssl_target=r.openssl.configure_targets[arch], openssl_options=r.openssl.options,
        openssl_make=r.openssl.make_targets, configure=r.otp.configure, dfsg_dropped=r.otp.dfsg_dropped,
        cflags=r.otp.cflags + cpu, compile_cflags=r.libc[target.libc].compile_cflags,
        ldflags=r.otp.ldflags + r.libc[target.libc].ldflags,
        ded_ldflags=r.otp.ded_ldflags, ded_runtime_library_path=r.otp.ded_runtime_library_path,
        source_fixes=r.otp.source_fixes, without_apps=checked_without_apps(without_apps),
    )
