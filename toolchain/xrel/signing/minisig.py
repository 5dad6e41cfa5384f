"""minisign signature files (`<file>.minisig`): writing the prehashed `ED` form, verifying `ED` and legacy `Ed`.

Four lines: `untrusted comment: ...`, base64(alg | key id[8] | Ed25519(BLAKE2b-512(file) for ED, the file for Ed)),
`trusted comment: ...`, base64(Ed25519(that signature | the trusted comment's bytes)), the global signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from xrel.errors import UsageError, VerificationError
from xrel.signing.keys import COMMENT, PublicKey, SecretKey, key_id_text
from xrel.storage.files import atomic_write

PREHASHED = b"ED"
LEGACY = b"Ed"
TRUSTED = "trusted comment: "
MAX_TRUSTED = 8192 - len(TRUSTED)  # minisign's line limit


def prehash(path: Path) -> bytes:
    """BLAKE2b-512 of a file, read in chunks."""
    digest = hashlib.blake2b(digest_size=64)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def trusted_comment(path: Path, **fields: str) -> str:
    """minisign's default trusted comment (`timestamp:<t>\\tfile:<name>\\thashed`) with `fields` before `hashed`."""
    parts = [f"timestamp:{int(time.time())}", f"file:{Path(path).name}", *(f"{k}:{v}" for k, v in fields.items())]
    return "\t".join([*parts, "hashed"])


def _one_line(comment: str, what: str) -> str:
    if "\n" in comment or "\r" in comment:
        raise UsageError(f"the {what} comment must be one line", "remove its line breaks")
    if len(comment.encode()) > MAX_TRUSTED:
        raise UsageError(f"the {what} comment is longer than {MAX_TRUSTED} bytes", "shorten it")
    return comment


def sign_file(path: Path, key: SecretKey, trusted_comment: str,
              untrusted_comment: str = "signature from xrel secret key") -> Path:
    """Sign `path` (prehashed ED form) into `<path>.minisig`, written atomically; returns the signature's path."""
    path = Path(path)
    trusted = _one_line(trusted_comment, "trusted").encode()
    _one_line(untrusted_comment, "untrusted")
    signature = key.sign(prehash(path))
    global_signature = key.sign(signature + trusted)
    text = (f"{COMMENT}{untrusted_comment}\n{base64.b64encode(PREHASHED + key.key_id + signature).decode()}\n"
            f"{TRUSTED}{trusted.decode()}\n{base64.b64encode(global_signature).decode()}\n")
    return atomic_write(path.with_name(path.name + ".minisig"), text, 0o644)


def _b64(line: str, size: int, source: str) -> bytes:
    try:
        raw = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise VerificationError(f"{source} is not a minisign signature (bad base64 line)",
                                "sign the file again with `xrel dist` or `minisign -S`")
    return raw


def parse_signature(text: str, source: str) -> tuple[bytes, bytes, bytes, str, bytes]:
    """(algorithm, key id, signature, trusted comment, global signature) of a .minisig's text."""
    lines = text.split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if len(lines) < 4 or not lines[0].startswith(COMMENT) or not lines[2].startswith(TRUSTED) \
            or any(line.strip() for line in lines[4:]):
        raise VerificationError(f"{source} is not a minisign signature (4 lines: untrusted comment, signature, "
                                "trusted comment, global signature)", "sign the file again")
    raw = _b64(lines[1], 74, source)
    if raw[:2] not in (PREHASHED, LEGACY):
        raise VerificationError(f"{source} uses an unknown signature algorithm {raw[:2]!r}", "sign the file again")
    return raw[:2], raw[2:10], raw[10:], lines[2][len(TRUSTED):], _b64(lines[3], 64, source)


def verify_file(path: Path, public: PublicKey, signature: Path | None = None) -> str:
    """Check `path` against its signature (default `<path>.minisig`) and `public`; returns the trusted comment.
    VerificationError on any mismatch: another key, a changed file, a changed trusted comment."""
    path = Path(path)
    signature = Path(signature) if signature else path.with_name(path.name + ".minisig")
    try:
        text = signature.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VerificationError(f"{signature} is missing", f"sign {path.name} or fetch its .minisig") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VerificationError(f"cannot read {signature}: {e}", "fetch the signature again") from None
    alg, key_id, sig, trusted, global_sig = parse_signature(text, str(signature))
    if key_id != public.key_id:
        raise VerificationError(f"{signature} was made by key {key_id_text(key_id)}, not by {public.id_text}",
                                "verify with the public key that signed it, or sign again with the right key")
    verifier = Ed25519PublicKey.from_public_bytes(public.key)
    try:
        verifier.verify(sig, prehash(path) if alg == PREHASHED else path.read_bytes())
    except OSError as e:
        raise VerificationError(f"cannot read {path}: {e.strerror or e}", "fetch or build it again") from None
    except InvalidSignature:
        raise VerificationError(f"{path} does not match its signature {signature.name}",
                                "the file was changed or corrupted: fetch or build it again") from None
    try:
        verifier.verify(global_sig, sig + trusted.encode())
    except InvalidSignature:
        raise VerificationError(f"the trusted comment of {signature} was changed after signing",
                                "fetch or sign it again") from None
    return trusted
