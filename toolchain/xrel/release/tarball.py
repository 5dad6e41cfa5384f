"""The release tarball: reproducible bytes (sorted members, root:root, normal modes, one mtime, no gzip
timestamp, no COOKIE), compressed in pieces on all cores, and incremental (unchanged files are neither read
nor hashed; unchanged pieces are copied from the previous tarball, or from another target's tarball
written by this process)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import subprocess
import time
import zlib
from pathlib import Path

from xrel.errors import UsageError
from xrel.release import pieces
from xrel.storage.files import atomic_write, file_identity, walk_relative

COOKIE = "releases/COOKIE"  # mix's random per-build secret: in no tarball (each node makes its own)
PRIVATE = frozenset({COOKIE})
DEFAULT_EPOCH = 315532800  # 1980-01-01, when neither SOURCE_DATE_EPOCH nor a git commit gives a time
TARBALL_FORMAT = 2  # bumped whenever the writer would give other bytes for the same tree
GZIP_LEVEL = 6
_PIECE = 1 << 20  # a big member is compressed in pieces of this size, in parallel
_WINDOW = 1 << 15  # deflate's window: each piece is primed with the 32 KiB before it


def git_output(project: Path, *args: str) -> str | None:
    """`git -C project ARGS`'s output, or None (no git, not a repository, an error)."""
    try:
        out = subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def source_date_epoch(project: Path) -> int:
    """Every tarball member's mtime: SOURCE_DATE_EPOCH, else HEAD's commit time, else 1980-01-01."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if value:
        if not value.isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds",
                             "set it to an integer, e.g. $(git log -1 --format=%ct)")
        return int(value)
    commit_time = git_output(project, "log", "-1", "--format=%ct")
    return int(commit_time) if commit_time and commit_time.isdigit() else DEFAULT_EPOCH


def _normal_mode(mode: int) -> int:
    """0755 for directories and anything executable, else 0644 (no umask or setuid of the build machine)."""
    return 0o755 if stat.S_ISDIR(mode) or mode & 0o111 else 0o644


def _entries(root: Path, exclude: frozenset[str]):
    """(relative path, path, lstat) of everything under `root` but `exclude`: each directory's
    subdirectories (and links to them), then its files, sorted by name; parents before children."""
    for dirpath, rel_dir, dirnames, filenames in walk_relative(root):
        dirnames.sort()
        prefix = rel_dir + os.sep if rel_dir else ""
        for name in dirnames + sorted(filenames):
            path, rel = dirpath + os.sep + name, prefix + name
            if rel not in exclude:
                yield rel, path, os.lstat(path)


def _header(rel: str, path: str, st: os.stat_result, mtime: int) -> bytes:
    """One tar member's PAX header: root:root, mtime `mtime`, a normal mode."""
    name, mode, size, kind, linkname = rel, _normal_mode(st.st_mode), 0, REGTYPE, ""
    if stat.S_ISLNK(st.st_mode):
        kind, linkname, mode = SYMTYPE, os.readlink(path), 0o777
    elif stat.S_ISDIR(st.st_mode):
        kind, name = DIRTYPE, rel + "/"
    else:
        size = st.st_size
    return ustar_header(name, mode, size, mtime, kind, linkname) or _pax_header(name, mode, size, mtime, kind,
                                                                                 linkname)


def _pax_header(name: str, mode: int, size: int, mtime: int, kind: bytes, linkname: str) -> bytes:
    """tarfile's PAX header, for the members ustar_header cannot write (long or non-ASCII names)."""
    import tarfile  # (not imported for a release whose names all fit: most)

    info = tarfile.TarInfo(name)
    info.mtime, info.uname, info.gname, info.mode, info.size, info.type = mtime, "root", "root", mode, size, kind
    info.linkname = linkname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


_ROOT_FIELD = b"root".ljust(32, b"\0")
# tarfile's constants (tarfile itself is imported only for a PAX header)
BLOCKSIZE, RECORDSIZE, NUL, POSIX_MAGIC = 512, 512 * 20, b"\0", b"ustar\x0000"
REGTYPE, SYMTYPE, DIRTYPE = b"0", b"2", b"5"
_NUMBER_LIMIT = 8 ** 11


def ustar_header(name: str, mode: int, size: int, mtime: int, kind: bytes, linkname: str = "") -> bytes | None:
    """The 512-byte header tarfile's PAX format writes for a member that needs no pax record (ASCII
    names of at most 100 bytes, numbers that fit), built directly (tarfile takes ~0.1 ms per member);
    None when a pax record is needed."""
    if not (name.isascii() and linkname.isascii() and len(name) <= 100 and len(linkname) <= 100
            and 0 <= size < _NUMBER_LIMIT and 0 <= mtime < _NUMBER_LIMIT):
        return None
    head = b"".join((name.encode().ljust(100, b"\0"), b"%07o\0" % (mode & 0o7777), b"0000000\0" * 2,
                     b"%011o\0" % size, b"%011o\0" % mtime, b" " * 8, kind, linkname.encode().ljust(100, b"\0"),
                     POSIX_MAGIC, _ROOT_FIELD, _ROOT_FIELD)).ljust(BLOCKSIZE, b"\0")
    return head[:148] + b"%06o\0" % sum(head) + head[155:]  # the checksum counts its own field as spaces


def _member_bytes(rel: str, path: str, st: os.stat_result, mtime: int) -> bytes:
    """One tar member (header, data, padding)."""
    data = b""
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            data = f.read()
        if len(data) != st.st_size:
            raise OSError(f"{path} changed while the tarball was written")
    return _header(rel, path, st, mtime) + data + NUL * (-len(data) % BLOCKSIZE)


class _Member:
    """One entry of the stream: its pieces' (sha256, length), its crc32; its bytes only once read."""

    def __init__(self, rel: str, path: str, st: os.stat_result, mtime: int, known: dict | None,
                 ident: str = "") -> None:
        self.rel, self.path, self.st, self.mtime, self.data, self.ident = rel, path, st, mtime, None, ident
        self.seen = time.time_ns()  # before it is read; its stat was taken before that
        if known is None:
            self.data = _member_bytes(rel, path, st, mtime)
            pieces = [self.data[i:i + _PIECE] for i in range(0, len(self.data), _PIECE)]
            self.pieces = [(hashlib.sha256(p).hexdigest(), len(p)) for p in pieces]
            self.crc = zlib.crc32(self.data)
        else:
            self.pieces, self.crc = [tuple(p) for p in known["pieces"]], known["crc"]

    def load(self) -> bytes:
        if self.data is None:  # trusted unchanged: read only when a neighbour is compressed again
            self.data = _member_bytes(self.rel, self.path, self.st, self.mtime)
        return self.data

    def tail(self, end: int, need: int) -> bytes:
        """Bytes [end - need, end) of the member; of an unread file, only those are read."""
        if self.data is not None or not stat.S_ISREG(self.st.st_mode):
            return self.load()[max(0, end - need):end]
        header = _header(self.rel, self.path, self.st, self.mtime)
        start, size = max(0, end - need), self.st.st_size
        with open(self.path, "rb") as f:
            f.seek(max(0, start - len(header)))
            data = f.read(max(0, min(end - len(header), size) - max(0, start - len(header))))
        whole = header + b"\0" * max(0, start - len(header)) + data
        padded = whole + NUL * max(0, end - len(header) - size)
        return padded[start:end]

    def fact(self) -> dict:
        st = self.st
        return {"ident": self.ident, "ctime": st.st_ctime_ns, "nlink": st.st_nlink, "seen": self.seen,
                "pieces": [list(p) for p in self.pieces], "crc": self.crc}


_RACY_NS = 50_000_000  # a file changed this close to when it was read is not trusted by its stat
_SEEN: dict[tuple[str, int, str], dict] = {}  # (rel, epoch, ident) -> fact: files this process packed


def _trusted(fact: dict | None, st: os.stat_result, ident: str) -> bool:
    """Whether a regular file (`ident`: its file_identity) is what `fact` describes without reading
    it (see write_tarball)."""
    if not fact or fact.get("ident") != ident:
        return False
    racy = _RACY_NS if st.st_ctime_ns % 1_000_000_000 else 2_000_000_000  # coarse clocks: whole seconds
    if fact["ctime"] >= fact["seen"] - racy:
        return False  # changed within a clock tick of being read: a later write could keep its ctime
    return fact.get("ctime") == st.st_ctime_ns or fact.get("nlink") != st.st_nlink


def _members(entries: list[tuple[str, str, os.stat_result]], mtime: int, facts: dict[str, dict],
             files: dict[str, dict]) -> list[_Member]:
    """Every member in stream order; a regular file is read and hashed only when not trusted.
    Each regular file's fact goes into `files` (rel -> fact)."""
    members = []
    if len(_SEEN) > 200_000:
        _SEEN.clear()
    for rel, path, st in entries:
        if not stat.S_ISREG(st.st_mode):
            members.append(_Member(rel, path, st, mtime, None))
            continue
        ident = file_identity(st)
        seen = _SEEN.get((rel, mtime, ident))
        known = next((f for f in (facts.get(rel), seen) if _trusted(f, st, ident)), None)
        member = _Member(rel, path, st, mtime, known, ident)
        members.append(member)
        files[rel] = _SEEN[(rel, mtime, ident)] = member.fact()
    return members


def _end_piece(size: int) -> bytes:
    """The end-of-archive blocks padded to a whole record, as tarfile writes it."""
    end = 2 * BLOCKSIZE
    return NUL * (end + -(size + end) % RECORDSIZE)


def _keys(spans: list[tuple[str, int]]) -> list[str]:
    """Each piece's identity as compressed, from the sha256 of its bytes and of the pieces whose
    bytes make its deflate window (the 32 KiB before it), last or not: nothing is read."""
    keys = []
    for index, (digest, _length) in enumerate(spans):
        window, need, back = [], _WINDOW, index - 1
        while need and back >= 0:
            d, n = spans[back]
            take = min(n, need)
            window.append(f"{d}:{n - take}:{n}")
            need, back = need - take, back - 1
        head = f"{GZIP_LEVEL} {int(index == len(spans) - 1)} {_WINDOW - need}\n{' '.join(window)}\n{digest}"
        keys.append(hashlib.sha256(head.encode()).hexdigest())
    return keys


def _deflate(piece: bytes, window: bytes, final: bool) -> bytes:
    """`piece` as raw deflate primed with `window` (the bytes a reader has just inflated), ending on a
    byte boundary (sync flush) so pieces join into one stream, pigz-style; the last one finishes it."""
    options = {"zdict": window} if window else {}
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15, **options)
    return c.compress(piece) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


def _layout(members: list[_Member], end: bytes) -> list[tuple[_Member | None, int, int]]:
    """Every piece as (member, offset, length); the end-of-archive piece as (None, 0, its length)."""
    layout = []
    for m in members:
        offset = 0
        for _digest, length in m.pieces:
            layout.append((m, offset, length))
            offset += length
    return [*layout, (None, 0, len(end))]


def _compress(members: list[_Member], end: bytes, keys: list[str], known: dict[str, bytes]) -> list[bytes]:
    """Every piece compressed, on all cores; pieces in `known` (key -> bytes) are reused as they are,
    and only the members a piece to compress or its window takes bytes from are read."""
    layout = _layout(members, end)

    def data(i: int) -> bytes | memoryview:
        m, offset, length = layout[i]
        return end if m is None else memoryview(m.load())[offset:offset + length]  # no copy

    def window(i: int) -> bytes:
        parts, need = [], _WINDOW
        while need and i > 0:
            i -= 1
            m, offset, length = layout[i]
            piece = end[-need:] if m is None else m.tail(offset + length, min(need, length))
            parts.append(piece)
            need -= len(piece)
        return b"".join(reversed(parts))

    last = len(layout) - 1
    todo = {i: (data(i), window(i)) for i in range(len(layout)) if keys[i] not in known}

    def deflate(i: int) -> bytes:
        return _deflate(*todo[i], i == last)

    if sum(len(d) for d, _w in todo.values()) < _PIECE:  # an edit's few small pieces: no threads
        done = {i: deflate(i) for i in todo}
    else:
        from concurrent.futures import ThreadPoolExecutor  # (~9 ms to import: not for an edit)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            done = dict(zip(todo, pool.map(deflate, todo)))
    return [done[i] if i in done else known[keys[i]] for i in range(len(layout))]


_ZEROS: dict[int, int] = {}  # n -> crc32 of n zero bytes


def _stream_crc(members: list[_Member], end: bytes) -> int:
    """The crc32 of the whole stream: of a read member's bytes, else its recorded crc32 joined on
    (crc(A+B) = crc32(n zeros, crc(A)) ^ crc32(n zeros, 0) ^ crc(B), n = len(B): zlib's crc32_combine)."""
    crc, zeros = 0, b""
    for m in members:
        if m.data is not None:
            crc = zlib.crc32(m.data, crc)
            continue
        size = sum(n for _d, n in m.pieces)
        if len(zeros) < size:
            zeros = bytes(max(size, 2 * len(zeros)))
        block = memoryview(zeros)[:size]
        if size not in _ZEROS:
            _ZEROS[size] = zlib.crc32(block)
        crc = zlib.crc32(block, crc) ^ _ZEROS[size] ^ m.crc
    return zlib.crc32(end, crc)


def _stat_digest(entries: list[tuple[str, str, os.stat_result]]) -> tuple[str, int]:
    """A cheap identity of what goes into the tarball (paths, types, modes, sizes, inodes, mtimes,
    ctimes: nothing read) and the newest ctime in it."""
    digest, newest = hashlib.sha256(), 0
    for rel, _path, st in entries:
        newest = max(newest, st.st_ctime_ns)
        digest.update(f"{rel}\0{st.st_mode}\0{st.st_size}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
    return digest.hexdigest(), newest


_PACKED: dict[str, bytes] = {}  # key -> compressed piece, of the tarballs this process wrote (other targets')
_PACKED_LIMIT = 256 << 20


def _remember(keys: list[str], compressed: list[bytes]) -> None:
    """Keep the pieces for the next tarball of this process: another target's release shares most
    members (BEAM code, OTP apps of the same version) and, in the same order, their deflate windows."""
    if sum(map(len, _PACKED.values())) > _PACKED_LIMIT:
        _PACKED.clear()
    _PACKED.update(zip(keys, compressed))


def forget_earlier_builds() -> None:
    """A new build: its tarballs share pieces and files' facts with each other, never with an earlier
    build of this process (a CLI run starts empty; so must `xrel.build` called in a loop, as benchmarks do)."""
    _PACKED.clear()
    _SEEN.clear()


def tarball_sidecars(dest: Path) -> tuple[Path, Path]:
    """The files write_tarball keeps beside a tarball: its .sha256 and its .content record."""
    return dest.with_name(dest.name + ".sha256"), dest.with_name(dest.name + ".content")


def write_tarball(release_dir: Path, dest: Path, mtime: int, exclude: frozenset[str] = PRIVATE,
                  slot: str | None = None) -> str:
    """The release's reproducible .tar.gz, no top folder (like mix's :tar step), and its .sha256 beside
    it; returns its sha256. Its bytes depend only on what goes in: members sorted, root:root, normal
    modes, every mtime `mtime`, no gzip timestamp, `exclude` (mix's COOKIE) left out.

    Incremental: a tarball of an unchanged tree is kept; otherwise a piece whose bytes and deflate
    window are unchanged is not compressed again (`<dest>.content` records the previous tarball's
    pieces and each file's facts: the sha256 of its pieces, its crc32, its stat). A regular file is
    trusted unchanged, neither read nor hashed, when its (dev, inode, size, mtime_ns, mode) are the
    recorded ones (in the record, or of a file this process packed: extra targets' hard links) and
    either its ctime_ns is the recorded one or its link count is not: a write changes the ctime but
    not the link count, so a file rewritten in place with the same size and its mtime restored is
    read again; a link made or removed (hard-linked releases) changes both and is trusted. Any other
    file is read and hashed once. With `slot` (release and target), a tarball written into a new
    output dir takes its unchanged pieces from the last tarball written for the same slot (kept by
    hard links in the cache, when the output dir is on the cache's filesystem)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    checksum, record = tarball_sidecars(dest)
    setup = {"format": TARBALL_FORMAT, "level": GZIP_LEVEL, "mtime": mtime, "exclude": sorted(exclude)}
    seen = time.time_ns()
    entries = list(_entries(release_dir, exclude))  # one walk: the tree's identity and the members
    tree, newest = _stat_digest(entries)
    last, blob = pieces.previous(dest, record)
    same_setup = {k: last.get(k) for k in setup} == setup
    settled = isinstance(last.get("seen"), int) and last.get("newest", 0) < last["seen"] - _RACY_NS
    if same_setup and settled and last.get("tree") == tree and checksum.is_file():
        return last["sha256"]
    facts = last.get("files", {}) if same_setup and isinstance(last.get("files"), dict) else {}
    files: dict[str, dict] = {}
    members = _members(entries, mtime, facts, files)
    size = sum(n for m in members for _d, n in m.pieces)
    end = _end_piece(size)
    keys = _keys([p for m in members for p in m.pieces] + [(hashlib.sha256(end).hexdigest(), len(end))])
    if same_setup and [k for k, _n in last.get("pieces", [])] == keys:
        sha = last["sha256"]  # the same content, touched: the same bytes
    else:
        sizes = [m.st.st_size for m in members for _p in m.pieces]  # each piece's member's size
        big = {k for k, size in zip(keys, sizes) if size >= pieces.MIN_MEMBER}
        known = {**_PACKED, **pieces.of_tarball(last, blob)}
        if slot and not last:  # a new output dir: the pieces of the last tarball written for the slot
            known.update(pieces.of_tarball(*pieces.previous(*pieces.last_in_slot(slot))))
        known.update(pieces.lookup([k for k in big if k not in known]))
        compressed = _compress(members, end, keys, known)
        _remember(keys, compressed)
        pieces.keep({k: c for k, c in zip(keys, compressed) if k in big})
        crc = _stream_crc(members, end)
        blob = b"".join([pieces.GZIP_HEADER, *compressed, struct.pack("<II", crc, (size + len(end)) & 0xFFFFFFFF)])
        sha = hashlib.sha256(blob).hexdigest()
        atomic_write(dest, blob, 0o644)
        last = {"pieces": [[k, len(c)] for k, c in zip(keys, compressed)]}
    atomic_write(checksum, f"{sha}  {dest.name}\n", 0o644)
    atomic_write(record, json.dumps({**setup, "tree": tree, "sha256": sha, "pieces": last["pieces"],
                                     "seen": seen, "newest": newest, "files": files}), 0o644)
    if slot:
        pieces.keep_in_slot(slot, dest, record)
    return sha
