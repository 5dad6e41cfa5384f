"""One cache discipline for everything xrel keeps: a lock per entry, temp dir, atomic rename."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from xrel.errors import XrelError
from xrel.storage.files import atomic_write, walk_relative
from xrel.storage.locks import LockTimeout, hold

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by xrel.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)

# Top-level areas of the cache, each described for `xrel cache list`.
AREAS = {
    "downloads": "archives and packages, named by sha256",
    "runtimes": "normalized OTP roots, one per target/version/source",
    "sysroots": "target system libraries from Debian, for qemu and linking",
    "apt": "private apt state and indexes (never the system's)",
    "toolchains": "zig wrapper scripts and CMake toolchain files",
    "zig": "zig's global cache (compiled libc, compiler-rt, libc++)",
    "builds": "per-project, per-target build trees of xrel build",
    "precompiled": "precompiled NIF archives fetched by rustler_precompiled / elixir_make deps",
    "locks": "one lock file per cache entry",
    "pins": "trust-on-first-use sha256 pins for sources without published checksums",
    "host": "what this machine's Erlang/Elixir are (probed once per installation)",
    "node-agents": "the node agent compiled per project settings and OTP release",
    "upgrade-helper": "the hot-upgrade helper (appups, relups) compiled by the host's erlc",
    "inspected": "facts parsed from native files, named by their sha256 and the parser's",
    "tarball-pieces": "compressed tarball pieces reused by later builds: big members' (ERTS binaries), and the "
                      "last tarball of each release and target (hard links)",
}


def cache_root() -> Path:
    """$XREL_CACHE_DIR, else the platform's user cache dir; created with a CACHEDIR.TAG."""
    root = Path(os.environ.get("XREL_CACHE_DIR") or platformdirs.user_cache_dir("xrel"))
    root.mkdir(parents=True, exist_ok=True)
    tag = root / "CACHEDIR.TAG"
    if not tag.exists():
        atomic_write(tag, CACHEDIR_TAG)
    return root


def area(name: str) -> Path:
    path = cache_root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(area_name: str, entry: str, timeout: float = 3600) -> Iterator[None]:
    """Hold the lock of one cache entry; other processes wanting it wait."""
    safe = f"{area_name}-{entry}".replace("/", "_").replace(os.sep, "_")
    with hold(area("locks") / f"{safe}.lock", timeout=timeout):
        yield


@contextlib.contextmanager
def staging(final: Path) -> Iterator[Path]:
    """A temp dir beside `final`, renamed into place on success and deleted on failure.

    A process killed inside leaves only a `.tmp-*` dir, which nothing takes as good and
    `prune` removes.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # (not imported by commands that only read the cache)

    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}~", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            remove(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            remove(tmp)


def remove(path: Path) -> None:
    """Delete a file or tree, including read-only entries."""

    def _writable(func, p, _exc):
        os.chmod(p, 0o700)
        func(p)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        import shutil

        shutil.rmtree(path, onerror=_writable)


@dataclass
class Entry:
    area: str
    name: str
    path: Path
    size: int
    mtime: float


def _walk_files(root: Path):
    """(relative path, absolute path) of every file and symlink under `root`, in a stable order."""
    for dirpath, rel_dir, dirnames, filenames in walk_relative(root):
        dirnames.sort()
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        prefix = rel_dir + os.sep if rel_dir else ""
        for name in sorted(filenames + links):
            yield prefix + name, dirpath + os.sep + name


def stat_fingerprint(root: Path) -> str:
    """A cheap identity of a tree: every path, size and mtime, hashed (nothing is read)."""
    import hashlib  # loads OpenSSL: not for a command that only looks up the cache

    digest = hashlib.sha256()
    for rel, path in _walk_files(root):
        st = os.lstat(path)
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def content_fingerprint(root: Path) -> str:
    """The identity of a tree's contents: every path, mode, link target and file's bytes."""
    import hashlib

    digest = hashlib.sha256()
    for rel, path in _walk_files(root):
        st = os.lstat(path)
        digest.update(f"{rel}\0{st.st_mode}\0".encode())
        if os.path.islink(path):
            digest.update(os.readlink(path).encode())
        else:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def tree_size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def entries() -> list[Entry]:
    """Every top-level entry of every area."""
    out = []
    for name in AREAS:
        base = cache_root() / name
        if not base.is_dir():
            continue
        for child in sorted(base.iterdir()):
            if child.name.startswith(".tmp-") or name == "locks":
                continue
            out.append(Entry(name, child.name, child, tree_size(child), child.stat().st_mtime))
    return out


_DISCARDING: list = []  # the deleters started (subprocess.Popen)
_DELETER = ("import sys\nfrom pathlib import Path\nfrom xrel.storage.cache import remove\n"
            "for path in sys.argv[1:]:\n    remove(Path(path))")


def _delete_in_background(paths: list[Path]) -> None:
    """Delete `paths` in a process of their own, which outlives this one: a command that replaced a
    release exits without waiting for the old one's files to go."""
    import subprocess

    _DISCARDING.append(subprocess.Popen([sys.executable, "-c", _DELETER, *map(str, paths)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True))


def replace_discarding(new: Path, old: Path) -> None:
    """Put `new` in `old`'s place at once; the old tree, renamed aside (`.<name>.discarded-*`), is
    deleted by a background process, and so is a leftover of a run killed before that finished."""
    trash = list(old.parent.glob(f".{old.name}.discarded-*"))
    if old.exists() or old.is_symlink():
        trash.append(old.with_name(f".{old.name}.discarded-{os.getpid()}-{time.monotonic_ns()}"))
        os.replace(old, trash[-1])
    os.replace(new, old)
    if trash:
        _delete_in_background(trash)


def wait_discarded() -> None:
    """Wait until the trees replace_discarding put aside are gone (tests; a build does not wait)."""
    while _DISCARDING:
        _DISCARDING.pop().wait()


def remove_entry(entry: Entry, timeout: float = 10) -> None:
    """Delete one entry while holding its lock, so an install in progress is never cut short."""
    try:
        with locked(entry.area, entry.name, timeout=timeout):
            remove(entry.path)
    except LockTimeout:
        raise XrelError(f"{entry.area}/{entry.name} is in use by another xrel process", "try again later") from None


def _entry_of(filename: str) -> str:
    """The entry a leftover belongs to: `.tmp-<entry>~xyz` and `<entry>.part` -> `<entry>`."""
    if filename.startswith(".tmp-") and "~" in filename:
        return filename[len(".tmp-") :].rsplit("~", 1)[0]
    if filename.endswith(".part"):
        return filename[: -len(".part")]
    return filename


def prune(older_than_days: float | None = None, unwanted: Callable[[str, Path], bool] | None = None) -> list[Path]:
    """Remove leftovers of killed runs, entries unused for `older_than_days`, and those `unwanted(area, path)`."""
    removed = []
    now = time.time()
    for name in AREAS:
        base = cache_root() / name
        if not base.is_dir():
            continue
        for child in base.iterdir():
            entry = _entry_of(child.name)
            stale_tmp = entry != child.name
            too_old = (
                older_than_days is not None
                and name not in ("locks", "zig", "pins")  # pins are trust records, not a cache
                and now - child.stat().st_mtime > older_than_days * 86400
            )
            if stale_tmp or too_old or (unwanted is not None and unwanted(name, child)):
                with contextlib.suppress(LockTimeout), locked(name, entry, timeout=0):
                    remove(child)
                    removed.append(child)
    return removed
