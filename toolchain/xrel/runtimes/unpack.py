"""Unpack an archive holding an OTP root (at its top, or inside one top folder) into a directory."""

from __future__ import annotations

import re
import tarfile
import tempfile
import zipfile
from pathlib import Path

from xrel.errors import VerificationError
from xrel.runtimes.normalize import move_contents
from xrel.storage.archive import extract_tar, extract_zip
from xrel.storage.cache import remove

ZIP_MAGIC = b"PK\x03\x04"
# releases/<major>/OTP_VERSION at the top of an archive or one folder down
_OTP_VERSION_MEMBER = re.compile(r"^(?:\./)?(?:[^/]+/)?releases/\d+/OTP_VERSION$")


def is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == ZIP_MAGIC


def _has_erts(tree: Path) -> bool:
    return any(p.is_dir() for p in tree.glob("erts-*"))


def find_otp_root(tree: Path, what: str) -> Path:
    """`tree` itself when it has an erts-<V> directory, else its one top folder that has one."""
    if _has_erts(tree):
        return tree
    children = list(tree.iterdir())
    if len(children) == 1 and children[0].is_dir() and _has_erts(children[0]):
        return children[0]
    raise VerificationError(f"{what} holds no OTP root (no erts-<version> directory at its top or in "
                            "its one top folder)", "it is not an Erlang/OTP installation or release tree")


def unpack_otp_archive(archive: Path, dest: Path, what: str | None = None) -> None:
    """Safely extract a .tar.* or .zip into `dest` so that `dest` is the OTP root."""
    what = what or archive.name
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    try:
        if is_zip(archive):
            extract_zip(archive, staging)
        else:
            try:
                extract_tar(archive, staging, name=what)
            except (tarfile.TarError, EOFError, OSError) as e:
                raise VerificationError(f"{what} is not a readable archive: {e}", "the download is corrupt") from None
        move_contents(find_otp_root(staging, what), dest)
    finally:
        remove(staging)


def archive_otp_version(archive: Path) -> str | None:
    """The OTP_VERSION inside an archive, read without unpacking it."""
    try:
        if is_zip(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    if _OTP_VERSION_MEMBER.match(name):
                        return zf.read(name).decode().strip()
            return None
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                if member.isreg() and _OTP_VERSION_MEMBER.match(member.name):
                    return tar.extractfile(member).read().decode().strip()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError) as e:
        raise VerificationError(f"{archive} is not a readable archive: {e}",
                                "pass an OTP root's .tar.gz or .zip") from None
    return None
