"""`xrel publish github:OWNER/REPO`: a draft release, each asset uploaded once, checked, then published.

Re-runnable after any failure: the release is found by listing (get-by-tag does not return drafts), an asset
already there with the same name, size and sha256 digest is kept, a different or half-uploaded one is replaced,
and nothing is published until every asset on the server matches the manifest.
"""

from __future__ import annotations

import hashlib
import re

from xrel import progress
from xrel.errors import DownloadError, VerificationError
from xrel.publish.destination import GitHubDestination
from xrel.publish.dist import Dist, DistFile
from xrel.publish.github_api import GitHubClient, GitHubError, token_from_env

UPLOAD_ATTEMPTS = 3
_TEMPLATE = re.compile(r"\{[^}]*\}")
NEW_VERSION = "publish a new version (a published immutable release never changes)"


class _Reader:
    """A file as a request body with a length (so requests sends Content-Length) and a progress bar."""

    def __init__(self, file: DistFile):
        self.file, self.handle = file, open(file.path, "rb")  # noqa: SIM115  (closed by close())
        self.bar = progress.bar(file.size, file.name)

    def __len__(self) -> int:
        return self.file.size

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.bar.update(len(chunk))
        return chunk

    def close(self) -> None:
        self.handle.close()
        self.bar.close()


def content_type(name: str) -> str:
    if name.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".minisig") or name == "SHA256SUMS":
        return "text/plain"
    return "application/octet-stream"


class GitHubPublisher:
    """One dist dir onto one release of one repository."""

    def __init__(self, client: GitHubClient, dest: GitHubDestination, dist: Dist, tag: str):
        self.client, self.dest, self.dist, self.tag = client, dest, dist, tag
        self.repo = f"/repos/{dest.owner}/{dest.repo}"
        self.where = f"{dest} {tag}"

    # -- the release ---------------------------------------------------------------------------
    def find_release(self) -> dict | None:
        """The release of the tag from the full listing (drafts included); a published one wins."""
        found = [r for r in self.client.paged(f"{self.repo}/releases") if r.get("tag_name") == self.tag]
        if len(found) > 1:
            progress.note(f"{self.where}: {len(found)} releases carry this tag; using the "
                          f"{'published' if any(not r['draft'] for r in found) else 'oldest draft'} one")
        return min(found, key=lambda r: (r["draft"], r["id"])) if found else None

    def create_draft(self) -> dict:
        body = {"tag_name": self.tag, "name": f"{self.dist.release} {self.dist.version}", "draft": True,
                "body": f"{self.dist.app} {self.dist.version}, published by xrel."}
        return self.client.request("POST", f"{self.repo}/releases", retry=False, json=body).json()

    def assets(self, release: dict) -> dict[str, dict]:
        return {a["name"]: a for a in self.client.paged(f"{self.repo}/releases/{release['id']}/assets")}

    # -- one asset -----------------------------------------------------------------------------
    def remote_sha256(self, asset: dict) -> str:
        """The sha256 of an asset the server gives no digest for (older GitHub Enterprise): downloaded."""
        response = self.client.request("GET", asset["url"], headers={"Accept": "application/octet-stream"},
                                       stream=True)
        digest = hashlib.sha256()
        for chunk in response.iter_content(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()

    def matches(self, asset: dict, file: DistFile) -> bool:
        if asset.get("state") != "uploaded" or asset.get("size") != file.size:
            return False
        digest = asset.get("digest")
        if digest:
            return digest.lower() == f"sha256:{file.sha256}"
        return self.remote_sha256(asset) == file.sha256

    def upload(self, release: dict, file: DistFile) -> dict:
        url = _TEMPLATE.sub("", release["upload_url"])
        readers: list[_Reader] = []

        def body() -> _Reader:  # a fresh stream for every send (a rate-limited send consumed the last one)
            readers.append(_Reader(file))
            return readers[-1]

        try:
            response = self.client.request("POST", url, retry=False, params={"name": file.name},
                                           headers={"Content-Type": content_type(file.name)}, body=body)
        finally:
            for reader in readers:
                reader.close()
        asset = response.json()
        if asset.get("name") != file.name or asset.get("size") != file.size:
            raise GitHubError(f"{self.where}: GitHub stored {file.name} as {asset.get('name')!r} "
                              f"({asset.get('size')} bytes)", "rename the artifact to plain ASCII and re-run")
        return asset

    def ensure(self, release: dict, file: DistFile, assets: dict[str, dict]) -> str:
        """Make the release hold `file` exactly once: 'kept', 'uploaded' or 'replaced'."""
        replaced = False
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            existing = assets.get(file.name)
            if existing and self.matches(existing, file):
                return "replaced" if replaced else ("kept" if attempt == 1 else "uploaded")
            if existing and existing.get("state") == "uploaded" and not release["draft"]:
                self.refuse_published(release, f"has a different {file.name}")  # a half upload may go
            if existing:
                self.client.request("DELETE", existing["url"])
                replaced = existing.get("state") == "uploaded"
            try:
                self.upload(release, file)
                return "replaced" if replaced else "uploaded"
            except (GitHubError, DownloadError) as e:
                if "immutable" in str(e).lower():
                    self.refuse_published(release, f"lacks {file.name}")
                if attempt == UPLOAD_ATTEMPTS or (isinstance(e, GitHubError) and e.status < 500 and e.status != 422):
                    raise
                progress.note(f"{self.where}: upload of {file.name} failed ({e.message}); checking and retrying")
                assets = self.assets(release)  # a failed upload can leave a half asset (state open/starter)
        raise AssertionError("unreachable")

    def refuse_published(self, release: dict, what: str) -> None:
        kind = "immutable release" if release.get("immutable") else "published release"
        raise GitHubError(f"{self.where} is a {kind} that {what}", NEW_VERSION if release.get("immutable")
                          else "delete the release on GitHub or publish a new version", 422)

    # -- the whole ------------------------------------------------------------------------------
    def verify(self, release: dict) -> None:
        """What the server lists must be the manifest's files, each uploaded once with its size and digest."""
        assets = self.assets(release)
        for file in self.dist.files:
            asset = assets.get(file.name)
            if asset is None or not self.matches(asset, file):
                state = "missing" if asset is None else f"{asset.get('state')}, {asset.get('size')} bytes"
                raise VerificationError(f"{self.where}: {file.name} on GitHub does not match the manifest ({state})",
                                        "re-run xrel publish")

    def run(self) -> dict:
        release = self.find_release()
        created = release is None
        if release is None:
            release = self.create_draft()
        assets = self.assets(release)
        if not release["draft"] and release.get("immutable"):
            missing = [f.name for f in self.dist.files if f.name not in assets or not self.matches(assets[f.name], f)]
            if missing:
                self.refuse_published(release, f"lacks or differs in {', '.join(missing)}")
        actions = {f.name: self.ensure(release, f, assets) for f in self.dist.files}
        self.verify(release)
        if release["draft"]:
            path = f"{self.repo}/releases/{release['id']}"
            release = self.client.request("PATCH", path, json={"draft": False}).json()
            if release.get("draft"):
                raise GitHubError(f"{self.where}: GitHub kept the release a draft", "publish it on GitHub")
        return {"destination": str(self.dest), "tag": self.tag, "release_id": release["id"], "created": created,
                "url": release.get("html_url"), "assets": actions}


def publish_github(dist: Dist, dest: GitHubDestination, tag: str | None = None,
                   client: GitHubClient | None = None) -> dict:
    """Publish `dist` as the release `tag` (default v<version>) of `dest`."""
    client = client or GitHubClient(token_from_env())
    return GitHubPublisher(client, dest, dist, tag or f"v{dist.version}").run()
