"""xrel.signing against the real minisign: keys and signatures made by either are read and verified by the other;
`xrel keygen` and xrel.toml's [signing] table as a user meets them."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xrel.errors import UsageError, VerificationError
from xrel.project.config import ConfigError, load_config
from xrel.signing import (
    PublicKey,
    generate_keypair,
    load_public_key,
    load_secret_key,
    sign_file,
    signing_key_from_env,
    trusted_comment,
    verify_file,
    write_keypair,
)

PASSWORD = "correct horse battery staple"
needs_minisign = pytest.mark.skipif(shutil.which("minisign") is None, reason="needs the minisign program")


def xrel(*args: str, cwd: Path, password: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XREL_SIGNING")}
    if password is not None:
        env["XREL_SIGNING_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "xrel", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env, stdin=subprocess.DEVNULL)


def minisign(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["minisign", *args], capture_output=True, text=True, timeout=120, input=stdin, cwd=cwd)


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xrel: error:"), out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory) -> Path:
    """An encrypted key pair from `xrel keygen` (scrypt at minisign's 1 GiB setting: once per module)."""
    out_dir = tmp_path_factory.mktemp("encrypted")
    started = time.monotonic()
    out = xrel("keygen", "--out", str(out_dir), "--json", cwd=out_dir, password=PASSWORD)
    print(f"\nxrel keygen (encrypted): {time.monotonic() - started:.2f}s")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["encrypted"] is True
    return out_dir


@pytest.fixture
def artifact(tmp_path) -> Path:
    path = tmp_path / "SHA256SUMS"
    path.write_bytes(b"0" * 64 + b"  demo-1.0.0-otp27-aarch64-linux-gnu.tar.gz\n" + bytes(range(256)) * 100)
    return path


# -- xrel alone ------------------------------------------------------------------------------------
def test_keygen_unencrypted_round_trip(tmp_path, artifact):
    out = xrel("keygen", "--out", "keys", "--name", "ci", "--unencrypted", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    secret, public = tmp_path / "keys/ci.key", tmp_path / "keys/ci.pub"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    key = load_secret_key(secret, None)
    assert key.public == load_public_key(public) == PublicKey.from_text(info["public_key"])
    assert info["key_id"] == key.public.id_text and info["key_id"] in public.read_text()
    signature = sign_file(artifact, key, trusted_comment(artifact, app="demo", version="1.0.0"))
    assert signature == artifact.with_name("SHA256SUMS.minisig")
    assert re.fullmatch(r"timestamp:\d+\tfile:SHA256SUMS\tapp:demo\tversion:1.0.0\thashed",
                        verify_file(artifact, key.public))
    before = secret.read_text()
    refused = xrel("keygen", "--out", "keys", "--name", "ci", "--unencrypted", cwd=tmp_path)
    assert "already exists" in one_line_error(refused) and "--force" in refused.stderr
    assert secret.read_text() == before
    assert xrel("keygen", "--out", "keys", "--name", "ci", "--unencrypted", "--force", cwd=tmp_path).returncode == 0
    assert secret.read_text() != before


def test_keygen_needs_a_password_off_a_terminal(tmp_path):
    assert "XREL_SIGNING_PASSWORD" in one_line_error(xrel("keygen", cwd=tmp_path))
    assert "--unencrypted" in one_line_error(xrel("keygen", cwd=tmp_path, password=""))
    assert list(tmp_path.iterdir()) == []


def test_keygen_asks_twice_on_a_terminal(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from xrel.cli import main
    from xrel.cli import signing as cli_signing
    from xrel.signing import keys

    monkeypatch.setattr(cli_signing, "_on_terminal", lambda: True)
    monkeypatch.delenv("XREL_SIGNING_PASSWORD", raising=False)
    monkeypatch.setattr(keys, "OPSLIMIT", 65536)  # a cheap scrypt: the parameters travel in the file
    monkeypatch.setattr(keys, "MEMLIMIT", 1 << 24)
    runner = CliRunner()
    mismatch = runner.invoke(main, ["keygen", "--out", str(tmp_path)], input="one\ntwo\n")
    assert mismatch.exit_code != 0 and not (tmp_path / "xrel.key").exists()
    out = runner.invoke(main, ["keygen", "--out", str(tmp_path)], input="pw\npw\n")
    assert out.exit_code == 0, out.output
    assert load_secret_key(tmp_path / "xrel.key", "pw").public == load_public_key(tmp_path / "xrel.pub")


def test_encrypted_key_round_trip_and_wrong_password(encrypted, artifact):
    started = time.monotonic()
    key = load_secret_key(encrypted / "xrel.key", PASSWORD)
    print(f"\nloading an encrypted secret key (scrypt N=2^20 r=8 p=1): {time.monotonic() - started:.2f}s")
    assert key.public == load_public_key(encrypted / "xrel.pub")
    assert stat.S_IMODE((encrypted / "xrel.key").stat().st_mode) == 0o600
    sign_file(artifact, key, "app:demo\tversion:1.0.0")
    assert verify_file(artifact, key.public) == "app:demo\tversion:1.0.0"
    with pytest.raises(VerificationError, match="wrong password") as wrong:
        load_secret_key(encrypted / "xrel.key", "not the password")
    assert "XREL_SIGNING_PASSWORD" in str(wrong.value) and "\n" not in str(wrong.value)
    with pytest.raises(UsageError, match="encrypted and no password"):
        load_secret_key((encrypted / "xrel.key").read_text(), None)


def test_signing_key_from_env(tmp_path, monkeypatch):
    key = generate_keypair()
    write_keypair(key, tmp_path / "ci.key", tmp_path / "ci.pub", None)
    monkeypatch.delenv("XREL_SIGNING_KEY", raising=False)
    assert signing_key_from_env() is None
    monkeypatch.setenv("XREL_SIGNING_KEY", str(tmp_path / "ci.key"))
    assert signing_key_from_env() == key
    monkeypatch.setenv("XREL_SIGNING_KEY", (tmp_path / "ci.key").read_text())
    assert signing_key_from_env() == key
    monkeypatch.setenv("XREL_SIGNING_KEY", (tmp_path / "ci.key").read_text().splitlines()[1])  # the bare line
    assert signing_key_from_env() == key
    monkeypatch.setenv("XREL_SIGNING_KEY", str(tmp_path / "missing.key"))
    with pytest.raises(UsageError, match="cannot read the secret key"):
        signing_key_from_env()


def test_malformed_keys_are_one_line_errors(tmp_path):
    key = generate_keypair()
    write_keypair(key, tmp_path / "k.key", tmp_path / "k.pub", None)
    secret_line = (tmp_path / "k.key").read_text().splitlines()[1]
    raw = bytearray(base64.b64decode(secret_line))
    flipped = bytearray(raw)
    flipped[-1] ^= 1  # a non-zero checksum that does not match
    halves = bytearray(raw)
    halves[54 + 8 + 40] ^= 1  # the public half of the secret, under a (zero) checksum that cannot tell
    cases = {
        "garbage": "untrusted comment: x\nnot base64 at all!\n",
        "truncated": f"untrusted comment: x\n{secret_line[:-8]}\n",
        "public as secret": (tmp_path / "k.pub").read_text(),
        "bad checksum": f"untrusted comment: x\n{base64.b64encode(bytes(flipped)).decode()}\n",
        "halves differ": f"untrusted comment: x\n{base64.b64encode(bytes(halves)).decode()}\n",
        "three lines": f"untrusted comment: x\n{secret_line}\n{secret_line}\n",
    }
    for name, text in cases.items():
        path = tmp_path / f"{name}.key"
        path.write_text(text)
        with pytest.raises(VerificationError) as e:
            load_secret_key(path, None)
        assert "\n" not in str(e.value) and "(" in str(e.value), name
    (tmp_path / "bad.pub").write_text("untrusted comment: x\nRWQAAAA=\n")
    with pytest.raises(VerificationError, match="not an Ed25519 minisign public key"):
        load_public_key(tmp_path / "bad.pub")


def test_tampering_and_other_keys_are_refused(tmp_path, artifact):
    key, other = generate_keypair(), generate_keypair()
    signature = sign_file(artifact, key, "app:demo\tversion:1.0.0")
    with pytest.raises(VerificationError, match=f"made by key {key.public.id_text}, not by {other.public.id_text}"):
        verify_file(artifact, other.public)
    forged = PublicKey(key.key_id, other.public.key)  # the right id, another key
    with pytest.raises(VerificationError, match="does not match its signature"):
        verify_file(artifact, forged)
    lines = signature.read_text().splitlines()
    signature.write_text("\n".join([lines[0], lines[1], "trusted comment: app:demo\tversion:6.6.6", lines[3]]) + "\n")
    with pytest.raises(VerificationError, match="trusted comment .* was changed"):
        verify_file(artifact, key.public)
    signature.write_text("\n".join(["untrusted comment: anything goes here", *lines[1:]]) + "\n")
    assert verify_file(artifact, key.public) == "app:demo\tversion:1.0.0"  # the untrusted comment is not signed
    artifact.write_bytes(artifact.read_bytes() + b"x")
    with pytest.raises(VerificationError, match="does not match its signature"):
        verify_file(artifact, key.public)
    signature.write_text("untrusted comment: x\n")
    with pytest.raises(VerificationError, match="not a minisign signature"):
        verify_file(artifact, key.public)
    with pytest.raises(VerificationError, match="missing"):
        verify_file(artifact, key.public, tmp_path / "nothing.minisig")
    with pytest.raises(UsageError, match="one line"):
        sign_file(artifact, key, "two\nlines")
    assert not artifact.with_name("SHA256SUMS.minisig.part").exists()


# -- [signing] in xrel.toml ----------------------------------------------------------------------------
def test_signing_section(tmp_path):
    key = generate_keypair()
    write_keypair(key, tmp_path / "k.key", tmp_path / "keys" / "xrel.pub", None)
    (tmp_path / "xrel.toml").write_text('otp = "27"\n\n[signing]\npublic_key = "keys/xrel.pub"\n')
    section = load_config(tmp_path).sections["signing"]
    assert section.public_key == key.public and section.public_key_path == tmp_path / "keys" / "xrel.pub"
    for body, message in [('public_key = "nope.pub"', r"xrel.toml:4: public_key = 'nope.pub': .* does not exist"),
                          ('public_key = "k.key"', r"xrel.toml:4: public_key = 'k.key': .*not .*public key"),
                          ('publickey = "keys/xrel.pub"', r"xrel.toml:4: unknown key 'publickey' in \[signing\]"),
                          ("", r"xrel.toml:3: \[signing\] needs public_key")]:
        (tmp_path / "xrel.toml").write_text(f'otp = "27"\n\n[signing]\n{body}\n')
        with pytest.raises(ConfigError, match=message) as e:
            load_config(tmp_path)
        assert "\n" not in str(e.value)


# -- interop with the real minisign ------------------------------------------------------------------------
@needs_minisign
def test_minisign_unencrypted_keys_are_read_and_signatures_cross_verify(tmp_path, artifact):
    made = minisign("-G", "-W", "-p", "m.pub", "-s", "m.key", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    raw = base64.b64decode((tmp_path / "m.key").read_text().splitlines()[1])
    assert raw[2:4] == b"\0\0" and raw[-32:] == bytes(32)  # -W: no kdf, all-zero checksum
    key = load_secret_key(tmp_path / "m.key", None)
    public = load_public_key(tmp_path / "m.pub")
    assert key.public == public
    assert f"minisign -Vm <file> -P {public.base64()}" in made.stdout
    assert (tmp_path / "m.pub").read_text().startswith(f"untrusted comment: minisign public key {public.id_text}\n")
    sign_file(artifact, key, "app:demo\tversion:1.0.0")
    checked = minisign("-V", "-p", str(tmp_path / "m.pub"), "-m", str(artifact))
    assert checked.returncode == 0 and "Trusted comment: app:demo\tversion:1.0.0" in checked.stdout, checked
    for legacy in ([], ["-l"]):
        out = minisign("-S", "-W", "-s", str(tmp_path / "m.key"), "-m", str(artifact), "-t", "by minisign", *legacy)
        assert out.returncode == 0, out.stderr
        assert verify_file(artifact, public) == "by minisign"


@needs_minisign
def test_minisign_encrypted_key_is_read(tmp_path):
    made = minisign("-G", "-p", "m.pub", "-s", "m.key", stdin=f"{PASSWORD}\n{PASSWORD}\n", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    started = time.monotonic()
    key = load_secret_key(tmp_path / "m.key", PASSWORD)
    print(f"\nloading minisign's encrypted secret key: {time.monotonic() - started:.2f}s")
    assert key.public == load_public_key(tmp_path / "m.pub")
    assert f"-P {key.public.base64()}" in made.stdout


@needs_minisign
def test_xrel_keys_sign_with_minisign(tmp_path, encrypted, artifact):
    out = minisign("-S", "-s", str(encrypted / "xrel.key"), "-m", str(artifact), "-t", "app:demo",
                   stdin=f"{PASSWORD}\n")
    assert out.returncode == 0, out.stderr
    assert verify_file(artifact, load_public_key(encrypted / "xrel.pub")) == "app:demo"
    assert xrel("keygen", "--name", "ci", "--unencrypted", cwd=tmp_path).returncode == 0
    out = minisign("-S", "-W", "-s", str(tmp_path / "ci.key"), "-m", str(artifact), "-t", "app:ci")
    assert out.returncode == 0, out.stderr
    assert verify_file(artifact, load_public_key(tmp_path / "ci.pub")) == "app:ci"
    sign_file(artifact, load_secret_key(tmp_path / "ci.key", None), "app:xrel")
    checked = minisign("-V", "-p", str(tmp_path / "ci.pub"), "-m", str(artifact))
    assert checked.returncode == 0 and "app:xrel" in checked.stdout, checked


@needs_minisign
def test_minisign_refuses_what_xrel_refuses(tmp_path, artifact):
    key, other = generate_keypair(), generate_keypair()
    write_keypair(key, tmp_path / "k.key", tmp_path / "k.pub", None)
    write_keypair(other, tmp_path / "o.key", tmp_path / "o.pub", None)
    signature = sign_file(artifact, key, "app:demo\tversion:1.0.0")
    assert minisign("-V", "-p", str(tmp_path / "o.pub"), "-m", str(artifact)).returncode != 0
    good = signature.read_text()
    signature.write_text(good.replace("version:1.0.0", "version:6.6.6"))
    assert minisign("-V", "-p", str(tmp_path / "k.pub"), "-m", str(artifact)).returncode != 0
    signature.write_text(good)
    artifact.write_bytes(artifact.read_bytes() + b"x")
    assert minisign("-V", "-p", str(tmp_path / "k.pub"), "-m", str(artifact)).returncode != 0
