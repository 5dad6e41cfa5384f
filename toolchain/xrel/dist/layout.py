"""The files of a dist directory (`dist/<version>/`) and the SHA256SUMS format."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import zlib
from pathlib import Path

from xrel.errors import UsageError, VerificationError
from xrel.release.tarball import COOKIE, DEFAULT_EPOCH  # noqa: F401  (the tarball writer's: no COOKIE, the epoch)

MANIFEST = "xrel-manifest.json"
SUMS = "SHA256SUMS"
SIGNED = (SUMS, MANIFEST)  # each signed into <name>.minisig
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](\S.*)$")


def signature_name(name: str) -> str:
    return f"{name}.minisig"


def sums_text(entries: dict[str, str]) -> str:
    """`<sha256>  <file>` lines sorted by file name: what `sha256sum -c SHA256SUMS` reads."""
    return "".join(f"{entries[name]}  {name}\n" for name in sorted(entries))


def parse_sums(text: str, source: str) -> dict[str, str]:
    """File name -> sha256 of a SHA256SUMS text; VerificationError on a malformed line or a path."""
    entries = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _SUM_LINE.match(line)
        if not match or "/" in match.group(2) or match.group(2) in (".", ".."):
            raise VerificationError(f"{source}:{number} is not a `sha256sum` line of a plain file name",
                                    "rebuild the dist with `xrel dist`")
        entries[match.group(2)] = match.group(1)
    return entries


def cookie_members(tarball: Path) -> list[str]:
    """The members of `tarball` that are mix's releases/COOKIE (there must be none)."""
    try:
        blob = tarball.read_bytes()
        if blob[:2] == b"\x1f\x8b":  # gunzipped in one call, which lets other threads run (dist checks in parallel)
            blob = gzip.decompress(blob)
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
            return [m.name for m in tar.getmembers() if m.name.lstrip("./") == COOKIE]
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise VerificationError(f"{tarball.name} is not a readable tarball: {e}", "rebuild it with `xrel dist`") from e


def refuse_cookie(tarball: Path) -> None:
    if cookie_members(tarball):
        raise VerificationError(f"{tarball.name} contains {COOKIE}, a secret of the machine that built it",
                                "rebuild with `xrel dist` (it leaves the cookie out; each node makes its own)")


def safe_name(name: str, what: str) -> str:
    """A file name from a manifest or sums file: no directories, nothing hidden."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"{what} names {name!r}, which is not a plain file name", "rebuild the dist with `xrel dist`")
    return name
