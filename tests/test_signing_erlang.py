"""xrel_minisign.erl, the node's verifier with nothing but OTP's crypto, against signatures by xrel and minisign."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from xrel.signing import ERLANG_VERIFIER, generate_keypair, sign_file, write_keypair

pytestmark = pytest.mark.skipif(shutil.which("erlc") is None or shutil.which("erl") is None,
                                reason="needs Erlang (erlc, erl)")


def erlang_verify(beam_dir: Path, cases: list[tuple[Path, Path, Path]]) -> list[str]:
    """xrel_minisign:verify_file/3 on each (file, signature, public key), one printed result per case."""
    calls = ", ".join(f'{{"{f}", "{s}", "{p}"}}' for f, s, p in cases)
    script = (f"[io:format(\"~p~n\", [xrel_minisign:verify_file(F, S, P)]) || {{F, S, P}} <- [{calls}]], "
              "halt().")
    out = subprocess.run(["erl", "-noshell", "-pa", str(beam_dir), "-eval", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.fixture(scope="module")
def beam_dir(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("beam")
    source = resources.files("xrel.signing") / ERLANG_VERIFIER
    compiled = subprocess.run(["erlc", "-Wall", "-Werror", "-o", str(out_dir), str(source)], capture_output=True,
                              text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return out_dir


def test_verifies_xrel_signatures_and_refuses_tampering(tmp_path, beam_dir):
    key, other = generate_keypair(), generate_keypair()
    write_keypair(key, tmp_path / "k.key", tmp_path / "k.pub", None)
    write_keypair(other, tmp_path / "o.key", tmp_path / "o.pub", None)
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"app": "demo", "version": "1.0.0"}\n')
    good = sign_file(manifest, key, "app:demo\tversion:1.0.0")
    comment = tmp_path / "comment.minisig"
    comment.write_text(good.read_text().replace("version:1.0.0", "version:6.6.6"))
    changed = tmp_path / "changed.json"
    changed.write_text('{"app": "demo", "version": "6.6.6"}\n')
    garbage = tmp_path / "garbage.minisig"
    garbage.write_text("untrusted comment: x\nnot a signature\n")
    assert erlang_verify(beam_dir, [
        (manifest, good, tmp_path / "k.pub"),
        (changed, good, tmp_path / "k.pub"),
        (manifest, comment, tmp_path / "k.pub"),
        (manifest, good, tmp_path / "o.pub"),
        (manifest, garbage, tmp_path / "k.pub"),
        (manifest, good, tmp_path / "k.key"),
    ]) == ['{ok,<<"app:demo\\tversion:1.0.0">>}', "{error,bad_signature}", "{error,bad_trusted_comment}",
           "{error,key_id_mismatch}", "{error,malformed_signature}", "{error,malformed_public_key}"]


@pytest.mark.skipif(shutil.which("minisign") is None, reason="needs the minisign program")
def test_verifies_minisign_signatures_prehashed_and_legacy(tmp_path, beam_dir):
    made = subprocess.run(["minisign", "-G", "-W", "-p", "m.pub", "-s", "m.key"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    data = tmp_path / "SHA256SUMS"
    data.write_bytes(bytes(range(256)) * 1000)
    for flags, sig in ([], "hashed.minisig"), (["-l"], "legacy.minisig"):
        signed = subprocess.run(["minisign", "-S", "-W", "-s", "m.key", "-m", data.name, "-x", sig, "-t", sig, *flags],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert signed.returncode == 0, signed.stderr
    other = tmp_path / "other"
    other.write_bytes(b"something else")
    assert erlang_verify(beam_dir, [
        (data, tmp_path / "hashed.minisig", tmp_path / "m.pub"),
        (data, tmp_path / "legacy.minisig", tmp_path / "m.pub"),
        (other, tmp_path / "hashed.minisig", tmp_path / "m.pub"),
        (other, tmp_path / "legacy.minisig", tmp_path / "m.pub"),
    ]) == ['{ok,<<"hashed.minisig">>}', '{ok,<<"legacy.minisig">>}', "{error,bad_signature}", "{error,bad_signature}"]
