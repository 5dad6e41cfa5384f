"""xrel.toml's [signing] table: `public_key = "xrel.pub"`, the committed public key releases are verified with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xrel.errors import XrelError
from xrel.signing.keys import PublicKey, load_public_key

if TYPE_CHECKING:
    from xrel.project.locator import Locator

KEYS = ("public_key",)


@dataclass(frozen=True)
class SigningConfig:
    public_key_path: Path  # resolved against the project directory
    public_key: PublicKey


def parse_signing(table: dict, loc: Locator) -> SigningConfig:
    """The [signing] table: its public key must exist and parse. ConfigError (file:line) otherwise."""
    for key in table:
        if key not in KEYS:
            raise loc.error(key, f"unknown key '{key}' in [signing]", "known keys: public_key")
    value = table.get("public_key")
    if not isinstance(value, str) or not value.strip():
        raise loc.error("public_key" if "public_key" in table else None,
                        "[signing] needs public_key, the path of the committed public key",
                        'write public_key = "xrel.pub" (made by `xrel keygen`)')
    path = (loc.path.parent / value).resolve()
    if not path.is_file():
        raise loc.error("public_key", f"public_key = {value!r}: {path} does not exist",
                        "run `xrel keygen` in the project, or fix the path (relative to xrel.toml)")
    try:
        return SigningConfig(path, load_public_key(path))
    except XrelError as e:
        raise loc.error("public_key", f"public_key = {value!r}: {e.message}", e.hint) from None
