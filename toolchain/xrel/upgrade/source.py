"""The release a dist upgrades from (`--upgrade-from VERSION|PATH`, default: the version published last).

VERSION: dist/<VERSION>/ (the local dist), else <dir>/<VERSION>/ of [publish] to = "dir:...", else the
release v<VERSION> of [publish] to = "github:..." (xrel.upgrade.github_source). PATH: a dist dir
(xrel-manifest.json inside), one release tarball or one release directory. Without the option, a [publish] dir:
destination's latest/xrel-manifest.json names the version, a github: one its latest release. A dist's
manifest is checked against [signing]'s public key when xrel.toml has one, and each tarball against the
manifest's sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from xrel.errors import UsageError, VerificationError

NONE = "none"  # --upgrade-from none: no upgrade packages
MANIFEST = "xrel-manifest.json"
LATEST = "latest"


@dataclass
class FromSource:
    """Where the from-releases are: per target (a dist), or one release for the target it was built for."""

    label: str
    version: str | None = None  # known for a dist; a single release tells its own
    tarballs: dict[str, Path] = field(default_factory=dict)  # target -> tarball (a dist)
    single: Path | None = None  # one release tarball or dir
    notes: list[str] = field(default_factory=list)

    def release_for(self, target: str) -> Path | None:
        return self.single if self.single else self.tarballs.get(target)


def _publish_to(config):
    """[publish] to (a GitHubDestination or DirDestination), or None."""
    return getattr(config.sections.get("publish") if config else None, "to", None)


def _publish_dir(config) -> Path | None:
    """[publish] to's directory, when it is a dir: destination."""
    path = getattr(_publish_to(config), "path", None)
    return Path(path) if path else None


def _github(config):
    """[publish] to, when it is a github: destination."""
    from xrel.publish.destination import GitHubDestination

    to = _publish_to(config)
    return to if isinstance(to, GitHubDestination) else None


def _check_signature(dist: Path, manifest: dict, public_key: Path | None, notes: list[str]) -> None:
    if public_key is None:
        notes.append(f"{dist}: the release upgraded from is not verified (no [signing] public_key in xrel.toml)")
        return
    from xrel.signing import load_public_key, verify_file

    comment = verify_file(dist / MANIFEST, load_public_key(public_key))
    expected = f"xrel dist {manifest.get('app')} {manifest.get('version')} manifest"
    if comment != expected:
        raise VerificationError(f"{dist / MANIFEST}.minisig was made for another dist: {comment!r}",
                                "upgrade from a dist that xrel dist signed")


def read_dist(dist: Path, public_key: Path | None, label: str | None = None) -> FromSource:
    """A dist dir as a source: its manifest verified, every target's tarball checked against it."""
    from xrel.dist.layout import safe_name
    from xrel.dist.manifest import read_manifest
    from xrel.storage.files import sha256_file

    manifest = read_manifest(dist / MANIFEST)
    source = FromSource(label or str(dist), manifest.get("version"))
    _check_signature(dist, manifest, public_key, source.notes)
    for entry in manifest.get("targets", []):
        tarball = dist / safe_name(entry.get("file", ""), MANIFEST)
        if not tarball.is_file():
            source.notes.append(f"{entry.get('target')}: {tarball.name} is not in {dist}")
        elif sha256_file(tarball) != entry.get("sha256"):
            raise VerificationError(f"{tarball}: sha256 does not match {dist / MANIFEST}",
                                    "the file is damaged or was changed: publish it again")
        else:
            source.tarballs[entry["target"]] = tarball
    return source


def from_path(path: Path, public_key: Path | None) -> FromSource:
    if path.is_dir() and (path / MANIFEST).is_file():
        return read_dist(path, public_key)
    if path.is_file() or (path / "releases" / "start_erl.data").is_file():
        return FromSource(str(path), single=path)
    raise UsageError(f"--upgrade-from {path}: not a dist dir, a release tarball or a release dir",
                     "pass dist/<version>, a tarball xrel built, or a version number")


def from_version(version: str, dist_root: Path, published: Path | None, public_key: Path | None,
                 github=None) -> FromSource:
    for root in (dist_root, published):
        if root and (root / version / MANIFEST).is_file():
            return read_dist(root / version, public_key)
    if github is not None:
        from xrel.upgrade.github_source import version_github

        found = version_github(github, version, public_key)
        if found is not None:
            return found
    where = " or ".join([str(r) for r in (dist_root, published) if r] + ([f"{github} v{version}"] if github else []))
    raise UsageError(f"--upgrade-from {version}: no dist of that version in {where}",
                     "pass the path of its dist dir or tarball")


def latest_published(published: Path, new_version: str, public_key: Path | None) -> FromSource | None:
    """The version [publish]'s latest/ names (its manifest verified), unless it is the one being built."""
    latest = published / LATEST / MANIFEST
    if not latest.is_file():
        return None
    try:
        manifest = json.loads(latest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise VerificationError(f"{latest} is not readable JSON: {e}", "publish again with xrel publish") from e
    notes: list[str] = []
    _check_signature(latest.parent, manifest, public_key, notes)
    version = manifest.get("version")
    if not version or version == new_version:
        return None
    if (published / version / MANIFEST).read_bytes() != latest.read_bytes():
        raise VerificationError(f"{latest} differs from {published / version / MANIFEST}",
                                "publish again with xrel publish (it rewrites latest/)")
    source = read_dist(published / version, public_key, f"{published} (latest: {version})")
    source.notes[:0] = notes
    return source


def resolve(spec: str | None, project: Path, dist_root: Path, new_version: str) -> FromSource | None:
    """The source `--upgrade-from spec` names (None: no packages); spec None means the default."""
    from xrel.dist.verify import project_public_key
    from xrel.project.config import load_config

    if spec == NONE:
        return None
    config = load_config(project)
    public_key, published = project_public_key(project), _publish_dir(config)
    if spec is None and published:
        return latest_published(published, new_version, public_key)
    if spec is None and _github(config):
        from xrel.upgrade.github_source import latest_github

        return latest_github(_github(config), new_version, public_key)
    if spec is None:
        return None
    path = Path(spec).expanduser()
    if path.exists():
        return from_path(path.resolve(), public_key)
    return from_version(spec, dist_root, published, public_key, _github(config))


def check_spec(spec: str | None) -> None:
    """Refuse a malformed --upgrade-from before anything builds."""
    if spec is not None and (not spec.strip() or spec.startswith("-")):
        raise UsageError(f"--upgrade-from {spec!r} names no version or path",
                         "pass a version (1.2.0), a dist dir or tarball, or `none`")
