"""Where a target OTP root keeps the headers and libraries native builds include and link."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def _find_one(base: Path, pattern: str) -> Path | None:
    found = sorted(base.glob(pattern))
    return found[-1] if found else None


@dataclass(frozen=True)
class OtpHeaders:
    """Where a target OTP root keeps what native builds include and link."""

    root: Path

    @property
    def erts_include(self) -> Path:
        erts = _find_one(self.root, "erts-*")
        return (erts or self.root / "erts-missing") / "include"

    @property
    def ei_dir(self) -> Path | None:
        return _find_one(self.root / "lib", "erl_interface-*")

    @property
    def ei_include(self) -> Path:
        return self.root / "usr" / "include"

    @property
    def erl_cflags(self) -> str:
        """port_compiler's ERL_CFLAGS: erl_interface's include dir, then ERTS's."""
        ei = self.ei_dir / "include" if self.ei_dir else self.ei_include
        return f'-I"{ei}" -I"{self.erts_include}"'

    @property
    def ei_lib(self) -> Path:
        return self.root / "usr" / "lib"
