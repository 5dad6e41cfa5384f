"""Precompiled NIFs: rustler_precompiled, and elixir_make's precompiler with cc_precompiler.

Both libraries decide at compile time, in the dependency's own mix process, which artifact to
fetch: from this VM's system_architecture and NIF version, unless TARGET_* variables say
otherwise. xrel compiles each such dep alone (after the deps it needs) with the TARGET_*
variables in that library's own spelling (recipes/targets.toml), in the target's build tree, so
the dep fetches the TARGET's artifact and bakes its path into the module (rustler_precompiled's
@rustler_precompiled_load_from); the app is native, so it is compiled again for every target.
The library itself checks the archive against the dep's checksum file (`checksum-Elixir.<Mod>.exs`
or `checksum.exs`). What xrel adds:

* the libraries' download caches live in xrel's cache (unless the user set
  RUSTLER_PRECOMPILED_GLOBAL_CACHE_PATH / ELIXIR_MAKE_CACHE_DIR): a cached archive that fails its
  checksum would otherwise fail every later build (rustler_precompiled never downloads it again);
  xrel removes such an archive from its own cache and names it;
* each failure becomes one line naming the dep and the target: no artifact for the target (with
  how to force a source build), a checksum mismatch, a failed download;
* elixir_make builds from source when it finds no artifact or a bad one (its own behaviour, with
  xrel's zig toolchain): that is reported in the target's notes;
* inspection still checks every file: a dep that ignores TARGET_* ships a host binary, and the
  build fails naming it.

Limitation: rustler_precompiled keeps this machine's ABI in a macOS triple
("x86_64-apple-darwin-gnu" from a Linux host; an empty TARGET_ABI leaves a trailing "-"), so from
Linux it cannot fetch macOS artifacts: that is an error suggesting a forced source build.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from xrel.errors import BuildError, DownloadError, NotAvailableError, VerificationError
from xrel.release.mix import run_mix
from xrel.release.native import App
from xrel.release.rust import FORCE_BUILD_ALL
from xrel.release.target_build import TargetBuild
from xrel.storage import cache
from xrel.storage.files import sha256_file
from xrel.targets import Target

# Cache variables of each library, and the folder of xrel's cache that stands in for them.
CACHE_VARS = {"rustler_precompiled": "RUSTLER_PRECOMPILED_GLOBAL_CACHE_PATH", "cc_precompiler": "ELIXIR_MAKE_CACHE_DIR"}
_NOT_AVAILABLE = re.compile(r'precompiled NIF is not available for this (target|NIF version): "([^"]+)"')
_FETCH_FAILED = re.compile(r"couldn't fetch NIF from (\S+): (.*)")
_HTTP_STATUS = re.compile(r"HTTP/[\d.]+['\"]?,\s*(\d{3})")
_INSTALL_FAILED = re.compile(r"Error happened while installing (\S+) from precompiled binary: (.*?)\.?$", re.M)


def cache_env() -> dict[str, str]:
    """The libraries' download caches inside xrel's cache, unless the user chose their own."""
    return {var: str(cache.area("precompiled") / library)
            for library, var in CACHE_VARS.items() if not os.environ.get(var)}


def checksum_files(app: App) -> list[Path]:
    """The checksum files a precompiled dep ships (read from its directory at compile time)."""
    pattern = "checksum-*.exs" if app.precompiler == "rustler_precompiled" else "checksum.exs"
    return sorted(app.path.glob(pattern))


def read_checksums(path: Path) -> dict[str, str]:
    """A checksum file, `%{"<file>" => "sha256:<hex>", ...}`, as {file: hex}."""
    text = path.read_text(errors="replace").strip()
    pairs = re.findall(r'"([^"]+)"\s*=>\s*"sha256:([0-9a-fA-F]{64})"', text)
    if not pairs and text not in ("%{}", ""):
        raise BuildError(f"{path} is not a checksum file xrel can read", "expected %{\"<file>\" => \"sha256:<hex>\"}")
    return {name: digest.lower() for name, digest in pairs}


def drop_bad_archives(app: App, env: dict[str, str]) -> list[str]:
    """Archives of `app` in the library's cache whose sha256 is not the published one: removed when
    the cache is xrel's, named either way."""
    var = CACHE_VARS[app.precompiler]
    folder = Path(env.get(var) or "")
    if not folder.is_dir():
        return []
    bad = []
    for checksum_file in checksum_files(app):
        for name, digest in read_checksums(checksum_file).items():
            archive = folder / name
            if archive.is_file() and sha256_file(archive) != digest:
                bad.append(name)
                if not os.environ.get(var):
                    archive.unlink()
    return bad


def _published_for(app: App, target: Target) -> list[str]:
    """The artifacts the dep's checksum file lists for the target, in its library's spelling."""
    triple = target.precompiler_triple(app.precompiler)
    names = [n for f in checksum_files(app) for n in read_checksums(f)]
    return [n for n in names if f"-{triple}-" in n or f"-{triple}." in n]


def _not_available(app: App, target: Target, kind: str, asked: str) -> NotAvailableError:
    force = (f"force a source build with {FORCE_BUILD_ALL}=1 (needs {{:rustler, \">= 0.0.0\", optional: true}} "
             f"in your deps and `rustup target add {target.rust}`)")
    if kind == "NIF version":
        return NotAvailableError(f"dependency {app.name} (rustler_precompiled) publishes no NIF for this machine's "
                                 f"NIF version {asked} for {target.id}", force)
    why = ""
    if target.os == "macos":
        why = ("; rustler_precompiled keeps this machine's ABI in a macOS triple, so a Linux host cannot "
               "fetch macOS artifacts")
    return NotAvailableError(f"dependency {app.name} (rustler_precompiled) publishes no precompiled NIF for "
                             f"{target.id} (it asked for {asked}){why}", force)


def _failure(app: App, target: Target, output: str, env: dict[str, str], log: Path) -> Exception | None:
    """A clear error for a known way the dep's precompiled download failed (None: not one)."""
    if app.precompiler == "cc_precompiler":  # elixir_make fell back to a source build, which failed
        m = _INSTALL_FAILED.search(output)
        return m and BuildError(f"dependency {app.name}: its precompiled NIF for {target.id} could not be installed "
                                f"({m.group(2)}), and the source build elixir_make fell back to failed",
                                f"see the make output in {log}")
    m = _NOT_AVAILABLE.search(output)
    if m:
        return _not_available(app, target, m.group(1), m.group(2))
    if "integrity check failed" in output or "does not match" in output:
        bad = drop_bad_archives(app, env)
        names = ", ".join(bad) or "its archive"
        files = ", ".join(p.name for p in checksum_files(app)) or "its checksum file"
        return VerificationError(f"dependency {app.name}: the precompiled NIF {names} for {target.id} does not "
                                 f"match its sha256 in {files}",
                                 "the download is damaged or not the published file; xrel dropped it from its "
                                 "cache, so the next build fetches it again")
    m = _FETCH_FAILED.search(output)
    if m:
        status = _HTTP_STATUS.search(m.group(2))
        detail = f"HTTP {status.group(1)}" if status else m.group(2)[:120]
        return DownloadError(f"dependency {app.name}: could not download its precompiled NIF for {target.id} "
                             f"from {m.group(1)} ({detail})", "check the network, proxy variables, or the package's "
                             "release page")
    return None


def _notes(app: App, target: Target, output: str, env: dict[str, str]) -> list[str]:
    """What happened instead of a plain download (elixir_make falls back to a source build)."""
    if app.precompiler == "cc_precompiler" and checksum_files(app) and not _published_for(app, target):
        return [f"dependency {app.name} publishes no precompiled NIF for {target.precompiler_triple(app.precompiler)}: "
                f"elixir_make built it from source with xrel's toolchain"]
    notes = []
    for m in _INSTALL_FAILED.finditer(output):
        bad = drop_bad_archives(app, env)
        dropped = f"; dropped {', '.join(bad)} from the cache" if bad else ""
        notes.append(f"dependency {app.name}: its precompiled NIF could not be installed ({m.group(2)}); "
                     f"elixir_make built it from source with xrel's toolchain{dropped}")
    return notes


def _log_since(log: Path, offset: int) -> str:
    with open(log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def compile_dep(app: App, build: TargetBuild) -> list[str]:
    """`mix deps.compile <app>` in the target's tree with its precompiler's TARGET_*; failures become
    errors naming the dep and the target; returns notes."""
    target, log = build.target, build.log
    env = {**build.env, **app.env_for(target)}
    offset = log.stat().st_size if log.exists() else 0
    try:
        run_mix(["deps.compile", app.name], build.workspace.project, env, log, f"compiling {app.name} for {target}")
    except BuildError as err:
        raise _failure(app, target, _log_since(log, offset), env, log) or err from None
    return _notes(app, target, _log_since(log, offset), env)
