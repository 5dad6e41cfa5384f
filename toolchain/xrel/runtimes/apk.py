"""Alpine's apk v2 formats: the RSA-signed APKINDEX.tar.gz, its records, and the checks that
tie a downloaded .apk to a signed index (C: over the control member, datahash over the data).

Both files are concatenated gzip members. An index is [signature tar, index tar.gz] and the
signature covers the compressed bytes after the first member. A package is [signature tar,
control tar, data tar]: the index's `C:` is the SHA-1 of the compressed control member and
.PKGINFO's `datahash` the SHA-256 of the compressed data member, so a package needs no key
of its own once its index is verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from xrel.errors import VerificationError
from xrel.storage.archive import gunzip, gzip_members

SIGN_PREFIX = ".SIGN."
# .SIGN.<algorithm>.<key file name> -> digest (DSA and anything else is refused)
SIGN_DIGESTS = {"RSA": hashes.SHA1, "RSA256": hashes.SHA256, "RSA512": hashes.SHA512}


def tar_files(member: bytes, label: str) -> dict[str, bytes]:
    """name -> content of the regular files in one gzip member holding a tar (end blocks optional)."""
    files = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(gunzip(member)), mode="r:") as tar:
            for info in tar:
                if info.isreg():
                    name = info.name[2:] if info.name.startswith("./") else info.name
                    files[name] = tar.extractfile(info).read()
    except (tarfile.TarError, OSError) as e:
        raise VerificationError(f"{label}: unreadable tar member: {e}", "the download is corrupt") from None
    return files


def _is_signature(files: dict[str, bytes]) -> bool:
    return bool(files) and all(name.startswith(SIGN_PREFIX) for name in files)


def verify_index(data: bytes, keys: dict, label: str) -> tuple[str, bytes]:
    """Check an APKINDEX.tar.gz's signature; returns (key name, the signed gzip bytes).

    One signature from a trusted key is enough (as apk does); an unknown key or a bad
    signature raises VerificationError.
    """
    members = gzip_members(data)
    signatures = tar_files(members[0], label) if members else {}
    if len(members) < 2 or not _is_signature(signatures):
        raise VerificationError(f"{label} is not signed (no .SIGN.* member first)",
                                "the index is not from an Alpine repository, or was altered")
    signed = data[len(members[0]):]
    seen, bad = [], []
    for name, signature in signatures.items():
        algorithm, _, key_name = name[len(SIGN_PREFIX):].partition(".")
        seen.append(key_name)
        if key_name not in keys or algorithm not in SIGN_DIGESTS:
            continue
        try:
            keys[key_name].verify(signature, signed, padding.PKCS1v15(), SIGN_DIGESTS[algorithm]())
            return key_name, signed
        except (InvalidSignature, ValueError, TypeError):
            bad.append(key_name)
    if bad:
        raise VerificationError(f"{label}: bad signature by {', '.join(bad)}; nothing from it was used",
                                "the index was altered or the mirror is broken; do not trust it")
    raise VerificationError(
        f"{label} is signed by an unknown key ({', '.join(seen)}); nothing from it was used",
        "if you trust that repository, put its public key file under that name into a directory "
        "named by XREL_ALPINE_KEYS",
    )


def parse_index(text: str) -> list[dict[str, str]]:
    """APKINDEX records: one dict per package, keyed by field letter (P, V, A, C, D, p, ...)."""
    records, current = [], {}
    for line in text.splitlines():
        if len(line) < 2:
            if current:
                records.append(current)
            current = {}
        elif line[1] == ":":
            current[line[0]] = line[2:]
    if current:
        records.append(current)
    return records


def read_index(data: bytes, keys: dict, label: str) -> tuple[str, list[dict[str, str]], str]:
    """Verify and parse an APKINDEX.tar.gz: (key name, records, DESCRIPTION)."""
    key_name, signed = verify_index(data, keys, label)
    files: dict[str, bytes] = {}
    for member in gzip_members(signed):
        files.update(tar_files(member, label))
    if "APKINDEX" not in files:
        raise VerificationError(f"{label} has no APKINDEX file", "the index is corrupt")
    text = files["APKINDEX"].decode("utf-8", errors="replace")
    return key_name, parse_index(text), files.get("DESCRIPTION", b"").decode(errors="replace").strip()


def identity_digest(checksum: str) -> tuple[str, bytes]:
    """A `C:` value as (hash name, digest): `Q1<base64>` or `X1<hex>` are SHA-1."""
    try:
        if checksum.startswith("Q1"):
            digest = base64.b64decode(checksum[2:], validate=True)
        elif checksum.startswith("X1"):
            digest = bytes.fromhex(checksum[2:])
        else:
            digest = b""
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 20:
        raise VerificationError(f"unsupported or malformed package checksum C:{checksum}",
                                "only SHA-1 identities (Q1/X1) of apk v2 indexes are supported")
    return "sha1", digest


def parse_pkginfo(text: str) -> dict[str, list[str]]:
    """.PKGINFO `key = value` lines (keys like `depend` repeat)."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or " = " not in line:
            continue
        key, _, value = line.partition(" = ")
        fields.setdefault(key.strip(), []).append(value.strip())
    return fields


@dataclass
class VerifiedApk:
    pkginfo: dict[str, list[str]]
    data: bytes  # the compressed data member(s), checked against datahash


def verify_apk(path: Path, checksum: str) -> VerifiedApk:
    """Check a downloaded .apk against its index's `C:` and then its .PKGINFO's datahash."""
    label = path.name
    raw = path.read_bytes()
    members = gzip_members(raw)
    offset, index = 0, 0
    while index < len(members) and _is_signature(tar_files(members[index], label)):
        offset += len(members[index])
        index += 1
    if len(members) - index < 2:
        raise VerificationError(f"{label} has no control and data members", "the package is corrupt")
    control = members[index]
    algorithm, expected = identity_digest(checksum)
    if hashlib.new(algorithm, control).digest() != expected:
        raise VerificationError(f"{label}: control member does not match the index checksum C:{checksum}",
                                "the package was altered or does not belong to this index")
    files = tar_files(control, label)
    if ".PKGINFO" not in files:
        raise VerificationError(f"{label} has no .PKGINFO", "the package is corrupt")
    pkginfo = parse_pkginfo(files[".PKGINFO"].decode("utf-8", errors="replace"))
    data = raw[offset + len(control):]
    datahash = (pkginfo.get("datahash") or [""])[-1].lower()
    if not datahash:
        raise VerificationError(f"{label} has no datahash in .PKGINFO",
                                "legacy packages without datahash are not supported")
    if hashlib.sha256(data).hexdigest() != datahash:
        raise VerificationError(f"{label}: data member does not match .PKGINFO datahash {datahash}",
                                "the package was altered; do not trust it")
    return VerifiedApk(pkginfo, data)
