"""`xrel init`: a commented starter xrel.toml from the project's mix.exs and this machine's Erlang/Elixir."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from xrel.cli.app import command, emit_json
from xrel.errors import MissingToolError, UsageError, XrelError

if TYPE_CHECKING:
    from xrel.project.config import ProjectConfig

DEFAULT_OTP = "25"
DEFAULT_ELIXIR = "1.14"
EXAMPLE_TARGETS = ("aarch64-linux-gnu", "arm-linux-gnueabihf", "x86_64-linux-musl", "x86_64-linux-gnu")
_MIX_APP = re.compile(r"\bapp:\s*:([a-z_][a-zA-Z0-9_]*)")
_MIX_RELEASE = re.compile(r"\breleases:\s*\[\s*([a-z_][a-zA-Z0-9_]*):")
_MIX_DEFAULT_RELEASE = re.compile(r"\bdefault_release:\s*:([a-z_][a-zA-Z0-9_]*)")

TEMPLATE = """\
# xrel.toml: what `xrel build` builds for this project, pinned in one place.
# Written by `xrel init`; every key is optional and an option on the command line wins over it.

# OTP of the target runtimes: exact ("27.3.4.1" or "OTP-27.3.4.1") or the newest of a line ("27", "27.3").
otp = "{otp}"

# Elixir the release is compiled with: exact ("1.18.3") or major.minor ("1.18").
elixir = "{elixir}"

# What to build for: target names or their aliases ("arm64", "armhf"); `xrel targets` lists them all.
# A glibc floor (the oldest glibc the release runs on) is written "aarch64-linux-gnu.2.28".
targets = [
{targets}
]

# Which release of mix.exs to build (default: its default_release, its only release, or the app).
{release}

# MIX_ENV of the build.
# mix_env = "prod"

# Where the release tarballs go, relative to this file.
# out = "_build/xrel"

# Per-target settings: one [target.<name>] table per listed target (<name> may be any alias).
# [target.aarch64-linux-gnu]
# source = "debian"                      # where its OTP runtime comes from (`xrel otp-versions` shows them)
# otp = "27"                             # this target's OTP instead of the one above
# glibc = "2.36"                         # glibc floor (glibc Linux targets only)
# sysroot_packages = ["libsqlite3-dev"]  # Debian -dev packages its NIFs link against
"""


def host_otp_version() -> str:
    """The host OTP's full version (releases/<major>/OTP_VERSION), its major if that file is missing,
    or DEFAULT_OTP without `erl`."""
    from xrel.host import host_erlang

    try:
        erlang = host_erlang()
    except MissingToolError:
        return DEFAULT_OTP
    try:
        return (erlang.root / "releases" / erlang.otp_release / "OTP_VERSION").read_text().strip()
    except OSError:
        return erlang.otp_release


def host_elixir_line() -> str:
    """The host Elixir's major.minor, or DEFAULT_ELIXIR without `elixir`."""
    from xrel.host import elixir_version

    version = elixir_version()
    match = re.match(r"^(\d+\.\d+)", version or "")
    return match.group(1) if match else DEFAULT_ELIXIR


def host_target_name() -> str | None:
    from xrel.targets import host_target

    try:
        return host_target().name
    except XrelError:
        return None


def mix_release_name(mix_exs: Path) -> str | None:
    """The release to pin, from mix.exs as written (no mix run): `default_release: :name`, else the first of
    `releases: [name: ...]`, else the app of `app: :name`; None when that cannot be told from the text."""
    try:
        text = mix_exs.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if match := _MIX_DEFAULT_RELEASE.search(text) or _MIX_RELEASE.search(text):
        return match.group(1)
    if "releases:" in text:  # releases: releases() and the like
        return None
    match = _MIX_APP.search(text)
    return match.group(1) if match else None


def starter_config(otp: str, elixir: str, host: str | None, release: str | None) -> str:
    """The text of a commented xrel.toml: the host target listed, a few others as commented examples."""
    lines = [f'  "{host}",'] if host else []
    lines += [f'  # "{name}",' for name in EXAMPLE_TARGETS if name != host][:3]
    release_line = f'release = "{release}"' if release else '# release = "myapp"'
    return TEMPLATE.format(otp=otp, elixir=elixir, targets="\n".join(lines), release=release_line)


def _check_project(project: Path, force: bool) -> Path:
    """The xrel.toml to write; UsageError when DIR is no mix project or already has one (without --force)."""
    from xrel.project.config import FILE_NAME

    if not (project / "mix.exs").is_file():
        raise UsageError(f"{project} has no mix.exs", "run `xrel init` in a mix project or name its directory")
    path = project / FILE_NAME
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", "edit it, or pass --force to write a new one over it")
    return path


def _checked(text: str) -> ProjectConfig:
    """The starter as load_config reads it, checked before it is written (a broken one is never left behind)."""
    import tempfile

    from xrel.project.config import FILE_NAME, load_config

    with tempfile.TemporaryDirectory(prefix="xrel-init-") as scratch:
        (Path(scratch) / FILE_NAME).write_text(text, encoding="utf-8")
        return load_config(Path(scratch))


@command("init")
@click.argument("project_dir", default=".", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Write over an existing xrel.toml.")
@click.option("--json", "as_json", is_flag=True)
def init_cmd(project_dir: str, force: bool, as_json: bool) -> None:
    """Write a commented starter xrel.toml into PROJECT_DIR (default: here), from mix.exs and this machine."""
    from xrel.storage.files import atomic_write

    project = Path(project_dir)
    path = _check_project(project, force)
    text = starter_config(host_otp_version(), host_elixir_line(), host_target_name(),
                          mix_release_name(project / "mix.exs"))
    config = _checked(text)
    atomic_write(path, text)
    if as_json:
        emit_json({"path": str(path.resolve()), "otp": config.otp, "elixir": config.elixir,
                   "targets": [pin.target.id for pin in config.targets], "release": config.release})
        return
    click.echo(str(path))
