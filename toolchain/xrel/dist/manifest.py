"""xrel-manifest.json (schema_version 1, see SCHEMA.md): what a dist holds, per target."""

from __future__ import annotations

import json
from pathlib import Path

from xrel.errors import VerificationError
from xrel.release.tarball import git_output
from xrel.release.results import BuildResult, TargetResult
from xrel.targets import Target

SCHEMA_VERSION = 1
_LOCAL_RUNTIME_KEYS = ("path",)  # where the runtime sits on the build machine: not the artifact's business


def git_commit(project: Path) -> str | None:
    """The commit of the project's HEAD, or None outside git."""
    return git_output(project, "rev-parse", "HEAD")


def target_entry(result: TargetResult, file: str, size: int, sha256: str) -> dict:
    """One target of the manifest."""
    target = Target.parse(result.target)
    runtime = {k: v for k, v in result.runtime.to_dict().items() if k not in _LOCAL_RUNTIME_KEYS}
    glibc_floor = (result.glibc_floor or target.glibc or target.default_glibc_floor) \
        if target.libc == "glibc" else None
    return {
        "target": target.id, "aliases": sorted(target.aliases), "os": target.os, "arch": target.arch,
        "otp": result.otp_version, "erts": result.erts_version, "nif": result.nif_version,
        "elixir": result.elixir_version, "libc": target.libc, "glibc_floor": glibc_floor,
        "macos_min": target.macos_min if target.os == "macos" else None,
        "file": file, "size": size, "sha256": sha256, "runtime": runtime, "upgrades": [],
    }


def build_manifest(built: BuildResult, project: Path, entries: list[dict], epoch: int) -> dict:
    """The whole manifest; `entries` from target_entry, sorted by target id here."""
    from xrel import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "app": built.project, "release": built.release, "version": built.version,
        "git_commit": git_commit(project), "source_date_epoch": epoch, "xrel": __version__,
        "compiled_by": {k: built.compiled_by.get(k) for k in ("otp", "elixir")},
        "targets": sorted(entries, key=lambda e: e["target"]),
    }


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def read_manifest(path: Path) -> dict:
    """A manifest, checked for the schema this xrel reads."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise VerificationError(f"{path.name} is not readable JSON: {e}", "rebuild the dist with `xrel dist`") from e
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found != SCHEMA_VERSION:
        raise VerificationError(f"{path.name} has schema_version {found!r}, this xrel reads {SCHEMA_VERSION}",
                                "use the xrel that made the dist")
    return data
