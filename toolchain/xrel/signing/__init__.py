"""Signing releases with Ed25519 in minisign's formats, so that `minisign` and OTP's crypto can verify them.

keys.py holds the key files (`xrel keygen`), minisig.py the signatures, section.py xrel.toml's [signing] table;
xrel_minisign.erl is the verifier a node runs with nothing but OTP.
"""

from xrel.signing.keys import (
    PublicKey,
    SecretKey,
    generate_keypair,
    load_public_key,
    load_secret_key,
    signing_key_from_env,
    write_keypair,
)
from xrel.signing.minisig import sign_file, trusted_comment, verify_file

ERLANG_VERIFIER = "xrel_minisign.erl"  # package data: the node-side verifier's source

__all__ = ["ERLANG_VERIFIER", "PublicKey", "SecretKey", "generate_keypair", "load_public_key", "load_secret_key",
           "sign_file", "signing_key_from_env", "trusted_comment", "verify_file", "write_keypair"]
