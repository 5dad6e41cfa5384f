"""`xrel verify DIR|URL`: signatures, every sha256, no COOKIE, and each tarball inspected against its target."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from xrel.dist.layout import MANIFEST, SIGNED, SUMS, parse_sums, refuse_cookie, safe_name, signature_name
from xrel.dist.manifest import read_manifest
from xrel.errors import NotAvailableError, VerificationError
from xrel.storage.files import sha256_file


@dataclass
class VerifyResult:
    source: str
    app: str
    version: str
    targets: list[str]
    signed_by: str | None  # the public key's path when signatures were checked
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


@contextlib.contextmanager
def fetched(url: str) -> Iterator[Path]:
    """The dist at `url` downloaded into a temp dir: manifest, sums, signatures (when published), tarballs."""
    from xrel.storage.download import download

    base = url.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="xrel-verify-") as tmp:
        root = Path(tmp)
        for name in SIGNED:
            download(f"{base}/{name}", root / name)
            with contextlib.suppress(NotAvailableError):
                download(f"{base}/{signature_name(name)}", root / signature_name(name))
        for entry in dist_files(read_manifest(root / MANIFEST)):
            name = safe_name(entry.get("file", ""), MANIFEST)
            download(f"{base}/{name}", root / name)
        yield root


def dist_files(manifest: dict) -> list[dict]:
    """Every file entry of a manifest ({file, size, sha256}): each target's tarball and upgrade packages."""
    return [f for entry in manifest.get("targets", []) for f in [entry, *entry.get("upgrades", [])]]


def check_signatures(root: Path, public_key: Path, app: str, version: str) -> None:
    """Both signatures valid for `public_key`, their trusted comments naming this app and version."""
    from xrel.signing import load_public_key, verify_file

    public = load_public_key(public_key)
    for name, what in ((SUMS, "sha256sums"), (MANIFEST, "manifest")):
        if not (root / signature_name(name)).is_file():
            raise VerificationError(f"{name} is not signed ({signature_name(name)} is missing)",
                                    "sign the dist: set XREL_SIGNING_KEY and run `xrel dist` again")
        comment = verify_file(root / name, public)
        if comment != f"xrel dist {app} {version} {what}":
            raise VerificationError(f"{signature_name(name)} was made for another dist: {comment!r}",
                                    "publish each dist's own signatures")


def check_sums(root: Path, manifest: dict) -> dict[str, str]:
    """Every file of SHA256SUMS present with its sha256; every target of the manifest in it, size and hash."""
    sums = parse_sums((root / SUMS).read_text(encoding="utf-8"), SUMS)
    if MANIFEST not in sums:
        raise VerificationError(f"{SUMS} does not list {MANIFEST}", "rebuild the dist with `xrel dist`")
    for name, expected in sums.items():
        if not (root / name).is_file():
            raise VerificationError(f"{name} (listed in {SUMS}) is missing", "download the whole dist")
        if sha256_file(root / name) != expected:
            raise VerificationError(f"{name}: sha256 does not match {SUMS}", "the file is damaged or was changed")
    for entry in dist_files(manifest):
        name = safe_name(entry.get("file", ""), MANIFEST)
        if sums.get(name) != entry.get("sha256") or (root / name).stat().st_size != entry.get("size"):
            raise VerificationError(f"{name}: size or sha256 differ between {MANIFEST} and {SUMS}",
                                    "rebuild the dist with `xrel dist`")
    return sums


def check_tarballs(root: Path, manifest: dict) -> list[str]:
    """No COOKIE, and every native file right for the tarball's target."""
    from xrel.inspection.check import inspect

    targets = []
    for entry in manifest.get("targets", []):
        path = root / entry["file"]
        refuse_cookie(path)
        report = inspect(path, entry["target"])
        if not report.ok:
            problem = report.problems[0]
            raise VerificationError(f"{path.name}: {problem.path}: {'; '.join(problem.problems)}",
                                    f"rebuild it for {entry['target']}")
        targets.append(entry["target"])
    return targets


def verify_dir(root: Path, source: str, public_key: Path | None) -> VerifyResult:
    for name in SIGNED:
        if not (root / name).is_file():
            raise VerificationError(f"{source} has no {name}", "pass the dist/<version>/ directory `xrel dist` wrote")
    manifest = read_manifest(root / MANIFEST)
    app, version = manifest.get("app", ""), manifest.get("version", "")
    notes = []
    if public_key:
        check_signatures(root, public_key, app, version)
    else:
        notes.append("signatures not checked: no public key (pass --public-key, or [signing] in xrel.toml)")
    check_sums(root, manifest)
    targets = check_tarballs(root, manifest)
    return VerifyResult(source, app, version, targets, str(public_key) if public_key else None, notes)


def project_public_key(project_dir: Path) -> Path | None:
    """[signing] public_key of the project's xrel.toml, if any."""
    from xrel.project.config import load_config

    config = load_config(project_dir)
    section = config.sections.get("signing") if config else None
    return getattr(section, "public_key_path", None)


def verify_dist(source: str | Path, public_key: str | Path | None = None, project_dir: str | Path = ".") \
        -> VerifyResult:
    """Check a dist directory or URL; VerificationError naming the first problem."""
    key = Path(public_key) if public_key else project_public_key(Path(project_dir))
    source = str(source)
    if _is_url(source):
        with fetched(source) as root:
            return verify_dir(root, source, key)
    if not Path(source).is_dir():
        raise VerificationError(f"{source} is not a directory or an http(s) URL", "pass what `xrel dist` wrote")
    return verify_dir(Path(source), source, key)
