"""A `xrel dist` directory as publishing sees it: the manifest, its files, each checked against the manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from xrel.errors import UsageError, VerificationError
from xrel.storage.files import sha256_file

MANIFEST = "xrel-manifest.json"
SUMS = "SHA256SUMS"
# published after the artifacts, in this order: the manifest (what nodes read first) comes last
TRAILERS = (SUMS, f"{SUMS}.minisig", MANIFEST, f"{MANIFEST}.minisig")
REQUIRED = (SUMS, MANIFEST)
FIX = "rebuild it with xrel dist"


@dataclass(frozen=True)
class DistFile:
    name: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Dist:
    """A checked dist dir: every file to publish, artifacts first and the manifest last."""

    path: Path
    app: str
    release: str
    version: str
    files: tuple[DistFile, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.files]


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} has no {MANIFEST}", "pass the dist/<version> dir that xrel dist wrote") from None
    except (OSError, ValueError) as e:
        raise VerificationError(f"{path / MANIFEST} is unreadable: {e}", FIX) from None
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        raise VerificationError(f"{path / MANIFEST} is not a schema_version 1 xrel manifest",
                                "rebuild it with this xrel's xrel dist")
    for key in ("app", "release", "version"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise VerificationError(f"{path / MANIFEST} lacks {key!r}", FIX)
    if not isinstance(data.get("targets"), list) or not data["targets"]:
        raise VerificationError(f"{path / MANIFEST} lists no targets", FIX)
    return data


def _safe_name(name: object, path: Path) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise VerificationError(f"{path / MANIFEST} names an unsafe artifact file {name!r}", FIX)
    return name


def _artifact(entry: object, path: Path) -> DistFile:
    if not isinstance(entry, dict):
        raise VerificationError(f"{path / MANIFEST} has a malformed artifact entry", FIX)
    name = _safe_name(entry.get("file"), path)
    file = path / name
    if not file.is_file():
        raise VerificationError(f"{file} is missing (listed in {MANIFEST})", FIX)
    size, sha = file.stat().st_size, sha256_file(file)
    if size != entry.get("size") or sha != entry.get("sha256"):
        raise VerificationError(f"{file} does not match {MANIFEST} (size {size}, sha256 {sha[:12]}…)", FIX)
    return DistFile(name, file, size, sha)


def _check_sums(path: Path, artifacts: list[DistFile]) -> None:
    """SHA256SUMS must agree with the manifest on every artifact."""
    listed: dict[str, str] = {}
    for line in (path / SUMS).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            listed[parts[1].lstrip("*")] = parts[0].lower()
    for a in artifacts:
        if listed.get(a.name) != a.sha256:
            raise VerificationError(f"{path / SUMS} disagrees with {MANIFEST} on {a.name}", FIX)


def load_dist(path: Path) -> Dist:
    """The dist dir at `path`, every artifact's size and sha256 checked against its manifest."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory", "pass the dist/<version> dir that xrel dist wrote")
    data = _read_manifest(path)
    entries = [*data["targets"], *(u for t in data["targets"] if isinstance(t, dict) for u in t.get("upgrades") or [])]
    artifacts = [_artifact(entry, path) for entry in entries]  # tarballs, then hot-upgrade packages
    if len({a.name for a in artifacts}) != len(artifacts):
        raise VerificationError(f"{path / MANIFEST} lists an artifact twice", FIX)
    for name in REQUIRED:
        if not (path / name).is_file():
            raise VerificationError(f"{path / name} is missing", FIX)
    _check_sums(path, artifacts)
    trailers = [DistFile(n, path / n, (path / n).stat().st_size, sha256_file(path / n))
                for n in TRAILERS if (path / n).is_file()]
    return Dist(path, data["app"], data["release"], data["version"], tuple(artifacts + trailers))


def find_dist(root: Path) -> Path:
    """`root` itself when it holds a manifest, else its newest <version> subdir that does."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return root
    found = sorted(p.parent for p in root.glob(f"*/{MANIFEST}")) if root.is_dir() else []
    if not found:
        raise UsageError(f"no xrel dist output in {root}", "run xrel dist first, or pass --dist dist/<version>")
    from xrel.versions import release_order

    return max(found, key=lambda p: release_order(p.name))
