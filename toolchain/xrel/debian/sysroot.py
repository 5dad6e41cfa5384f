"""Target sysroots from Debian: the shared libraries a release's binaries need, found from their
NEEDED entries (not a fixed list), fetched through apt with private state, cached."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from debian import deb822

from xrel import progress, recipes
from xrel.debian import suites
from xrel.debian.suites import suites_for
from xrel.errors import EmulationError, NotAvailableError
from xrel.schemas.sources import DebianSuite
from xrel.storage import cache
from xrel.storage.archive import extract_deb
from xrel.storage.download import fetch_verified
from xrel.targets import Target

MARKER = "xrel-sysroot.json"


def suite_for(target: Target, runtime_meta: dict | None) -> DebianSuite:
    """The Debian suite a sysroot comes from: the runtime's own, else the oldest whose glibc
    is new enough for the runtime."""
    meta = runtime_meta or {}
    found = suites_for(target, name=meta.get("suite"), glibc_floor=meta.get("glibc_floor"))
    if not found:
        raise EmulationError(f"Debian has no suite with {target.debian} packages for a sysroot")
    return found[0]


def _policy_names(soname: str) -> list[str]:
    m = re.match(r"^(lib[\w+.-]*?)\.so\.(\d+)", soname)
    if not m:
        return []
    base, major = m.group(1), m.group(2)
    base = base.replace("_", "-").lower()
    return [f"{base}-{major}" if base[-1].isdigit() else f"{base}{major}"]


def package_for(soname: str, index: dict) -> str | None:
    """The Debian package that ships `soname`, by recipe, then policy, then the t64 spelling."""
    known = recipes.sonames().sonames
    candidates = ([known[soname]] if soname in known else []) + _policy_names(soname)
    for name in candidates + [c + "t64" for c in candidates]:
        if name in index:
            return name
    return None


def _depends(stanza: Mapping[str, str]) -> list[str]:
    """The first alternative of each Pre-Depends and Depends relation."""
    fields = ", ".join(f for f in (stanza.get("Pre-Depends"), stanza.get("Depends")) if f and f.strip())
    relations = deb822.PkgRelation.parse_relations(fields) if fields else []
    return [alternatives[0]["name"] for alternatives in relations if alternatives]


def closure(packages: set[str], index: dict) -> list[str]:
    """The packages plus every library package they depend on."""
    left_out = set(recipes.sonames().sysroot.left_out)
    seen: set[str] = set()
    todo = list(packages)
    while todo:
        name = todo.pop()
        if name in seen or name not in index or name in left_out:
            continue
        seen.add(name)
        for dep in _depends(index[name][0]):
            if dep.startswith(("lib", "zlib")) and dep not in seen:
                todo.append(dep)
    return sorted(seen)


def _fixup(root: Path, target: Target) -> None:
    """Make the guest loader find everything: `lib -> usr/lib` on usrmerged suites, and every
    multiarch library also reachable from usr/lib and lib."""
    usr_lib = root / "usr" / "lib"
    usr_lib.mkdir(parents=True, exist_ok=True)
    for name in ("lib", "lib64", "lib32"):
        link = root / name
        if not link.exists() and not link.is_symlink() and (name == "lib" or (usr_lib.parent / name).exists()):
            os.symlink(f"usr/{name}", link)
    multi = target.multiarch or ""
    for d in (root / "lib" / multi, usr_lib / multi):
        if not multi or not d.is_dir():
            continue
        for so in d.iterdir():
            for base in {usr_lib.resolve(), (root / "lib").resolve()}:
                dest = base / so.name
                if base != d.resolve() and not dest.exists() and not dest.is_symlink():
                    os.symlink(os.path.relpath(d.resolve() / so.name, base), dest)


def provided_sonames(root: Path) -> set[str]:
    found = set()
    for _dirpath, dirs, files in os.walk(root):
        found.update(f for f in files if ".so" in f)
        found.update(d for d in dirs if ".so" in d)
    return found


def ensure_sysroot(target: Target, needed: list[str], runtime_meta: dict | None = None,
                   extra_packages: list[str] = (), offline: bool = False,
                   unresolved: list[str] | None = None) -> Path:
    """A cached sysroot holding every library in `needed` (sonames) for the target.

    A soname no Debian package provides is an error, unless `unresolved` is given: then it is
    appended there and left out (the loader will say what is missing when it is used)."""
    if target.libc != "glibc" or not target.debian:
        raise EmulationError(f"no Debian sysroot exists for {target.name}",
                             "only glibc Linux targets can be run here")
    suite = suite_for(target, runtime_meta)
    repo = suites.repo(suite, target)
    repo.update(offline=offline)
    index = repo.packages()
    wanted = set(extra_packages) | {"libc6"}
    missing = []
    for soname in needed:
        pkg = package_for(soname, index)
        (wanted.add(pkg) if pkg else missing.append(soname))
    if missing and unresolved is not None:
        unresolved.extend(missing)
        needed = [n for n in needed if n not in missing]
    elif missing:
        raise EmulationError(f"no Debian {suite.name} package found for {', '.join(missing)} ({target.debian})",
                             "name the package with --sysroot-package")
    packages = closure(wanted, index)
    digest = hashlib.sha256(json.dumps(packages).encode()).hexdigest()[:12]
    name = f"{suite.name}-{target.debian}-{digest}"

    def fill(tmp: Path) -> dict:
        files = repo.resolve(packages)
        for deb in files:
            extract_deb(fetch_verified(deb.url, deb.sha256, deb.filename), tmp)
        _fixup(tmp, target)
        absent = [s for s in needed if s not in provided_sonames(tmp)]
        if absent:
            raise EmulationError(f"the sysroot packages do not provide {', '.join(absent)}",
                                 "name the right package with --sysroot-package")
        return {"suite": suite.name, "arch": target.debian, "packages": {d.package: d.version for d in files},
                "needed": sorted(needed)}

    return cached_sysroot(name, offline, f"sysroot {suite.name} {target.debian}: {len(packages)} packages", fill)


def cached_sysroot(name: str, offline: bool, label: str, fill: Callable[[Path], dict]) -> Path:
    """The sysroot `name` of the cache; when missing, made by fill(tmp) (which returns its marker's facts)
    in a staging dir, under the entry's lock, so no half-made sysroot is ever seen."""
    final = cache.area("sysroots") / name
    with cache.locked("sysroots", name):
        if (final / MARKER).is_file():
            return final
        if offline:
            raise NotAvailableError(f"offline, and the sysroot {name} is not cached", "run once online")
        with progress.step(label), cache.staging(final) as tmp:
            (tmp / MARKER).write_text(json.dumps(fill(tmp), indent=2))
    return final
