"""What xrel writes into every release it builds (`releases/xrel.json`), and how a release on
disk is opened again: a release directory or an xrel tarball, its target and its start script."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xrel.errors import UsageError
from xrel.inspection.binaries import read
from xrel.targets import Target, all_targets

MARKER = Path("releases") / "xrel.json"


@dataclass(frozen=True)
class ReleaseMarker:
    """The target and runtime a release was built for."""

    target: str  # canonical target id
    otp_version: str
    erts_version: str
    nif_version: str
    runtime_source: str
    runtime_meta: dict = field(default_factory=dict)  # suite, debian_version, glibc_floor

    @property
    def otp_major(self) -> int:
        return int(self.otp_version.split(".")[0])

    def write(self, release_dir: Path) -> None:
        (release_dir / MARKER).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, release_dir: Path) -> ReleaseMarker | None:
        """The marker of `release_dir`, or None for a release xrel did not build."""
        path = release_dir / MARKER
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as e:
            raise UsageError(f"{path} is not an xrel release marker: {e}", "rebuild the release with xrel") from e


@contextlib.contextmanager
def opened_release(path: str | Path) -> Iterator[Path]:
    """A release directory for `path` (a release dir, or an xrel tarball unpacked to a temp dir)."""
    path = Path(path)
    if path.is_dir():
        yield path.resolve()
    elif path.is_file() and _is_tarball(path):
        from xrel.storage.archive import extract_tar

        with tempfile.TemporaryDirectory(prefix="xrel-release-") as tmp:
            extract_tar(path, Path(tmp), name=path.name)
            yield Path(tmp)
    else:
        raise UsageError(f"{path} is not a release directory or tarball", "pass what `xrel build` wrote")


def release_target(release_dir: Path, requested: str | Target | None = None) -> Target:
    """The release's target: the one requested, else xrel's marker, else its beam.smp's format."""
    if requested:
        return Target.parse(requested)
    marker = ReleaseMarker.read(release_dir)
    if marker:
        return Target.parse(marker.target)
    beams = sorted(release_dir.glob("erts-*/bin/beam.smp*"))
    if not beams:
        raise UsageError(f"{release_dir} has no erts-*/bin/beam.smp", "pass --target, or a release with ERTS")
    info = read(beams[0])
    for t in all_targets():
        if (t.format, t.machine, t.bits) == (info.format, info.machine, info.bits) and \
                (t.libc is None or info.libc in (None, t.libc)) and (not t.float_abi or t.float_abi == info.float_abi):
            return t
    raise UsageError(f"cannot tell the target of {beams[0]}", "pass --target")


def release_command(release_dir: Path) -> Path:
    """The release's start script, bin/<name>."""
    scripts = [p for p in (release_dir / "bin").glob("*") if p.is_file() and p.suffix == "" and os.access(p, os.X_OK)
               and p.name != "xrel-node"]  # the node agent's script ([node] in xrel.toml)
    if len(scripts) != 1:
        raise UsageError(f"expected one start script in {release_dir}/bin, found {len(scripts)}",
                         "is this a mix release?")
    return scripts[0]


def _is_tarball(path: Path) -> bool:
    import tarfile  # (tarfile and the archive module: not on the build path, only to open a tarball)

    return tarfile.is_tarfile(path)
