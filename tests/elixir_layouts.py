"""Elixir archives in the exact upstream layouts, from a tiny fake tree: Elixir's release zips
(`bin/ lib/ man/` at the top) with their `<sha256>  <file>` checksum files, and hex's builds.txt."""

from __future__ import annotations

import hashlib
import io
import zipfile

SCRIPT = "#!/bin/sh\necho fake {name} {version}\n"


def tree_files(version: str) -> dict[str, tuple[bytes, int]]:
    """path -> (content, mode) of a minimal Elixir root."""
    files = {f"bin/{name}": (SCRIPT.format(name=name, version=version).encode(), 0o755)
             for name in ("elixir", "elixirc", "iex", "mix")}
    app = f'{{application,elixir,[{{description,"elixir"}},{{vsn,"{version}"}},{{modules,[]}}]}}.\n'
    files["lib/elixir/ebin/elixir.app"] = (app.encode(), 0o644)
    for lib in ("eex", "ex_unit", "iex", "logger", "mix"):
        files[f"lib/{lib}/ebin/{lib}.app"] = (f'{{application,{lib},[{{vsn,"{version}"}}]}}.\n'.encode(), 0o644)
    files["man/elixir.1"] = (b".TH ELIXIR 1\n", 0o644)
    return files


def elixir_zip(version: str, top: str | None = None) -> bytes:
    """A zip of a fake Elixir root, at the top (as Elixir's and hex's zips are) or in `top`/."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, (data, mode) in sorted(tree_files(version).items()):
            info = zipfile.ZipInfo(f"{top}/{path}" if top else path, date_time=(2025, 1, 2, 3, 4, 6))
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256sum(data: bytes, filename: str) -> str:
    """elixir-otp-<M>.zip.sha256sum as Elixir's release workflow writes it."""
    return f"{sha256(data)}  {filename}\n"


def builds_txt(lines: list[tuple[str, str | None]]) -> str:
    """hex's builds/elixir/builds.txt: `<ref> <git sha> <date> [<sha256>]`, with branch builds."""
    rows = [f"{ref} {'a' * 40} 2025-03-07T10:00:00Z" + (f" {h}" if h else "") for ref, h in lines]
    rows += [f"main-otp-27 {'b' * 40} 2026-01-02T03:04:05Z {'c' * 64}", f"v1.18 {'d' * 40} 2026-01-02T03:04:05Z"]
    return "\n".join(sorted(rows)) + "\n"
