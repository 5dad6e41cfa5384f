"""Ed25519 key pairs in minisign's file formats: the public key file and the (scrypt-encrypted) secret key file.

Public key: `untrusted comment: ...` + base64(`Ed` | key id[8] | public key[32]).
Secret key: `untrusted comment: ...` + base64(`Ed` | kdf `Sc` or zeros | `B2` | salt[32] | opslimit u64le |
memlimit u64le | key id[8] + secret[64] + BLAKE2b-256 checksum[32], those 104 bytes XORed with scrypt(password)).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xrel.errors import UsageError, VerificationError
from xrel.storage.files import atomic_write

SIG_ALG = b"Ed"
KDF_SCRYPT = b"Sc"
KDF_NONE = b"\0\0"
CHK_ALG = b"B2"
COMMENT = "untrusted comment: "
# what minisign uses: scrypt with N=2^20, r=8, p=1 (1 GiB, a few seconds)
OPSLIMIT = 33554432
MEMLIMIT = 1073741824
MAX_SCRYPT_MEMORY = 2**31 - 1 - (1 << 24)  # hashlib's cap, less scrypt's own buffers
_SECRET_LEN = 2 + 2 + 2 + 32 + 8 + 8 + 104


def key_id_text(key_id: bytes) -> str:
    """The key id as minisign prints it: the little-endian u64 in upper-case hex, without leading zeros."""
    return f"{int.from_bytes(key_id, 'little'):X}"


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes
    key: bytes

    @property
    def id_text(self) -> str:
        return key_id_text(self.key_id)

    def base64(self) -> str:
        """The key as `minisign -P` takes it."""
        return base64.b64encode(SIG_ALG + self.key_id + self.key).decode()

    def text(self, comment: str | None = None) -> str:
        """The public key file."""
        return f"{COMMENT}{comment or f'xrel public key {self.id_text}'}\n{self.base64()}\n"

    @classmethod
    def from_text(cls, text: str, source: str = "public key") -> PublicKey:
        """A public key file's text, or its bare base64 line. VerificationError when malformed."""
        raw = _decode(_payload(text, source), source, "a minisign public key (the file `xrel keygen` writes)")
        if len(raw) != 42 or raw[:2] != SIG_ALG:
            raise VerificationError(f"{source} is not an Ed25519 minisign public key",
                                    "use the .pub file written by `xrel keygen` or `minisign -G`")
        return cls(raw[2:10], raw[10:])


@dataclass(frozen=True)
class SecretKey:
    key_id: bytes
    secret: bytes  # 64 bytes, libsodium's form: seed | public key
    public: PublicKey

    def signer(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.secret[:32])

    def sign(self, data: bytes) -> bytes:
        return self.signer().sign(data)


def generate_keypair() -> SecretKey:
    """A new Ed25519 key pair with a random 8-byte key id."""
    seed = secrets.token_bytes(32)
    return _from_seed(secrets.token_bytes(8), seed)


def _from_seed(key_id: bytes, seed: bytes) -> SecretKey:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SecretKey(key_id, seed + public, PublicKey(key_id, public))


# -- text and base64 -------------------------------------------------------------------------------
def _payload(text: str, source: str) -> str:
    """The base64 line of a key file: the line after `untrusted comment:`, or the only line."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) == 2 and lines[0].startswith(COMMENT):
        return lines[1]
    if len(lines) == 1 and not lines[0].startswith(COMMENT):
        return lines[0]
    raise VerificationError(f"{source} is not a minisign key file (an `untrusted comment:` line, then one base64 line)",
                            "use the file written by `xrel keygen` or `minisign -G`")


def _decode(line: str, source: str, expected: str) -> bytes:
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{source} holds no valid base64", f"it should be {expected}") from None


def _checksum(key_id: bytes, secret: bytes) -> bytes:
    return hashlib.blake2b(SIG_ALG + key_id + secret, digest_size=32).digest()


# -- scrypt as libsodium's crypto_pwhash_scryptsalsa208sha256 picks its parameters ---------------
def scrypt_params(opslimit: int, memlimit: int) -> tuple[int, int, int]:
    """(N, r, p) from libsodium's opslimit/memlimit."""
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p, max_n = 1, opslimit // (r * 4)
        return 1 << _log2_below(max_n), r, p
    n_log2 = _log2_below(memlimit // (r * 128))
    max_rp = min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF)
    return 1 << n_log2, r, max(max_rp // r, 1)


def _log2_below(max_n: int) -> int:
    """The smallest n_log2 >= 1 with 2^n_log2 > max_n / 2 (at most 62)."""
    n_log2 = 1
    while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
        n_log2 += 1
    return n_log2


def _keystream(password: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    n, r, p = scrypt_params(opslimit, memlimit)
    need = 128 * r * (n + p + 2)
    if need > MAX_SCRYPT_MEMORY:
        raise VerificationError(f"the secret key asks for {need >> 20} MiB of scrypt memory",
                                "re-create it with `xrel keygen` or `minisign -G`")
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=need + (1 << 20), dklen=104)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


# -- the secret key file -----------------------------------------------------------------------------
def secret_key_text(key: SecretKey, password: str | None, comment: str = "xrel secret key") -> str:
    """The secret key file: encrypted with `password`, or, for None, unencrypted as `minisign -G -W` writes it
    (no kdf, zero salt and limits, and minisign 0.11's all-zero checksum)."""
    keynum = key.key_id + key.secret
    if password is None:
        body = SIG_ALG + KDF_NONE + CHK_ALG + bytes(32 + 16) + keynum + bytes(32)
    else:
        salt = secrets.token_bytes(32)
        stream = _keystream(password, salt, OPSLIMIT, MEMLIMIT)
        body = (SIG_ALG + KDF_SCRYPT + CHK_ALG + salt + struct.pack("<QQ", OPSLIMIT, MEMLIMIT)
                + _xor(keynum + _checksum(key.key_id, key.secret), stream))
    return f"{COMMENT}{comment}\n{base64.b64encode(body).decode()}\n"


def write_keypair(key: SecretKey, secret_path: Path, public_path: Path, password: str | None, *,
                  force: bool = False) -> None:
    """Write the secret key (mode 0600) and the public key; UsageError rather than overwrite without `force`."""
    secret_path, public_path = Path(secret_path), Path(public_path)
    if not force:
        for path in (secret_path, public_path):
            if path.exists():
                raise UsageError(f"{path} already exists", "pass --force to replace the key pair, or choose --name")
    secret_text = secret_key_text(key, password)  # the slow part, before anything is written
    atomic_write(secret_path, secret_text, 0o600)
    atomic_write(public_path, key.public.text(), 0o644)


def _read_key_source(text_or_path: str | Path) -> tuple[str, str]:
    """(text, name for messages) of a key given as its text or as a path to it."""
    if isinstance(text_or_path, str) and (COMMENT in text_or_path or "\n" in text_or_path.strip()
                                          or len(text_or_path.strip()) == 212):
        return text_or_path, "the secret key"
    path = Path(text_or_path)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the secret key {path}: {getattr(e, 'strerror', None) or e}",
                         "give the key file written by `xrel keygen`") from None


def load_secret_key(text_or_path: str | Path, password: str | None) -> SecretKey:
    """A secret key file (its text or path), decrypted with `password` when encrypted."""
    text, source = _read_key_source(text_or_path)
    raw = _decode(_payload(text, source), source, "a minisign secret key")
    if len(raw) != _SECRET_LEN or raw[:2] != SIG_ALG or raw[4:6] != CHK_ALG or raw[2:4] not in (KDF_SCRYPT, KDF_NONE):
        raise VerificationError(f"{source} is not an Ed25519 minisign secret key",
                                "use the .key file written by `xrel keygen` or `minisign -G`")
    salt, (opslimit, memlimit), keynum = raw[6:38], struct.unpack("<QQ", raw[38:54]), raw[54:]
    if raw[2:4] == KDF_SCRYPT:
        if password is None:
            raise UsageError(f"{source} is encrypted and no password was given",
                             "set XREL_SIGNING_PASSWORD, or make the key with `xrel keygen --unencrypted`")
        keynum = _xor(keynum, _keystream(password, salt, opslimit, memlimit))
    key_id, secret, checksum = keynum[:8], keynum[8:72], keynum[72:]
    unencrypted_zero = raw[2:4] == KDF_NONE and checksum == bytes(32)  # what `minisign -G -W` 0.11 writes
    if not unencrypted_zero and not secrets.compare_digest(checksum, _checksum(key_id, secret)):
        if raw[2:4] == KDF_SCRYPT:
            raise VerificationError(f"wrong password for {source}", "check XREL_SIGNING_PASSWORD")
        raise VerificationError(f"{source} is corrupt (its checksum does not match)", "restore it from a backup")
    key = _from_seed(key_id, secret[:32])
    if key.secret != secret:
        raise VerificationError(f"{source} is corrupt (its public half does not match)", "restore it from a backup")
    return key


def load_public_key(path: Path) -> PublicKey:
    """A public key file (`<name>.pub`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the public key {path}: {getattr(e, 'strerror', None) or e}",
                         "give the .pub file written by `xrel keygen`") from None
    return PublicKey.from_text(text, str(path))


def signing_key_from_env(password_env: str = "XREL_SIGNING_PASSWORD") -> SecretKey | None:
    """The key in XREL_SIGNING_KEY (the key file's text, or a path to it), or None when unset."""
    value = os.environ.get("XREL_SIGNING_KEY", "").strip()
    if not value:
        return None
    return load_secret_key(value, os.environ.get(password_env) or None)
