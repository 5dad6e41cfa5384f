"""`xrel keygen`: an Ed25519 key pair in minisign's formats, the secret key encrypted with a password."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from xrel.cli.app import command, emit_json
from xrel.errors import UsageError

PASSWORD_ENV = "XREL_SIGNING_PASSWORD"


def _on_terminal() -> bool:
    return sys.stdin.isatty()


def _password(unencrypted: bool) -> str | None:
    """None for --unencrypted; else XREL_SIGNING_PASSWORD, or asked twice on a terminal."""
    if unencrypted:
        return None
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not _on_terminal():
            raise UsageError("no password for the secret key",
                             f"set {PASSWORD_ENV}, run on a terminal, or pass --unencrypted for a CI key")
        password = click.prompt("Password for the secret key", hide_input=True, confirmation_prompt=True,
                                err=True)
    if not password:
        raise UsageError("the password is empty", "choose a password, or pass --unencrypted for an unencrypted key")
    return password


@command("keygen")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Directory of the key files.")
@click.option("--name", default="xrel", show_default=True, help="Writes <name>.key (secret) and <name>.pub.")
@click.option("--unencrypted", is_flag=True, help="No password on the secret key (for CI secrets).")
@click.option("--force", is_flag=True, help="Replace an existing key pair.")
@click.option("--json", "as_json", is_flag=True)
def keygen_cmd(out_dir: Path, name: str, unencrypted: bool, force: bool, as_json: bool) -> None:
    """Make a signing key pair: commit <name>.pub and name it in xrel.toml's [signing] public_key;
    keep <name>.key secret (in CI: XREL_SIGNING_KEY holds its text or path, XREL_SIGNING_PASSWORD its password)."""
    from xrel.signing import generate_keypair, write_keypair

    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"--name {name!r} is not a file name", "write e.g. --name xrel")
    secret_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    if not force:
        for path in (secret_path, public_path):
            if path.exists():
                raise UsageError(f"{path} already exists", "pass --force to replace the key pair, or choose --name")
    password = _password(unencrypted)
    key = generate_keypair()
    write_keypair(key, secret_path, public_path, password, force=force)
    if as_json:
        emit_json({"key_id": key.public.id_text, "public_key": key.public.base64(), "secret_key_file": str(secret_path),
                   "public_key_file": str(public_path), "encrypted": password is not None})
        return
    click.echo(f"secret key: {secret_path} (keep it secret{'' if password else '; unencrypted'})")
    click.echo(f"public key: {public_path} (key id {key.public.id_text})")
    click.echo(f'commit {public_path.name} and add to xrel.toml:\n  [signing]\n  public_key = "{public_path.name}"')
