"""`xrel dist`'s default --upgrade-from with `[publish] to = "github:OWNER/REPO"`: the latest release's dist
fetched through the browser download routes of the local GitHub (tests/github_api.py), verified, cached."""

from __future__ import annotations

import hashlib
import json

import pytest

from github_api import TOKEN, FakeGitHub
from xrel import signing
from xrel.dist.layout import MANIFEST, SUMS, sums_text
from xrel.dist.make import sign_dist
from xrel.dist.manifest import SCHEMA_VERSION, manifest_text
from xrel.errors import DownloadError, UsageError, VerificationError
from xrel.publish import GitHubDestination, publish
from xrel.storage.files import sha256_file
from xrel.upgrade.source import resolve

TARGETS = ("aarch64-linux-gnu", "x86_64-linux-musl")
DEST = GitHubDestination("acme", "myapp")


@pytest.fixture
def github(monkeypatch, isolated_cache):
    server = FakeGitHub()
    monkeypatch.setenv("GITHUB_API_URL", server.api_url)
    monkeypatch.setenv("GITHUB_SERVER_URL", server.api_url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    yield server
    server.close()


@pytest.fixture
def key():
    return signing.generate_keypair()


@pytest.fixture
def project(tmp_path, key):
    """A project publishing to github:acme/myapp, verifying with `key`'s public half (xrel.pub)."""
    root = tmp_path / "project"
    root.mkdir()
    signing.write_keypair(key, tmp_path / "key.key", root / "xrel.pub", None)
    (root / "xrel.toml").write_text(f'targets = ["{TARGETS[0]}"]\n[signing]\npublic_key = "xrel.pub"\n'
                                    '[publish]\nto = "github:acme/myapp"\n')
    return root


def signed_dist(root, key, version: str):
    """A dist dir as `xrel dist` writes it (fake tarball bytes: nothing here opens them), signed by `key`."""
    out = root / version
    out.mkdir(parents=True)
    entries, sums = [], {}
    for target in TARGETS:
        name = f"myapp-{version}-otp27-{target}.tar.gz"
        (out / name).write_bytes(hashlib.sha256(f"{version} {target}".encode()).digest() * 300)
        sums[name] = sha256_file(out / name)
        entries.append({"target": target, "file": name, "size": (out / name).stat().st_size, "sha256": sums[name]})
    manifest = {"schema_version": SCHEMA_VERSION, "app": "myapp", "release": "myapp", "version": version,
                "targets": entries}
    (out / MANIFEST).write_text(manifest_text(manifest))
    sums[MANIFEST] = sha256_file(out / MANIFEST)
    (out / SUMS).write_text(sums_text(sums))
    sign_dist(out, key, "myapp", version)
    return out


def asset(state, tag: str, name: str) -> dict:
    return next(a for a in state.assets[state.release(tag)[0]["id"]] if a["name"] == name)


def test_the_latest_release_is_fetched_verified_and_cached(github, project, key, tmp_path):
    published = signed_dist(tmp_path / "dist", key, "1.0.0")
    publish(published, DEST)
    github.state.add_release("v1.1.0-rc.1", draft=False)["prerelease"] = True  # not the latest
    github.state.add_release("v1.2.0")  # a draft: not the latest either
    source = resolve(None, project, project / "dist", "2.0.0")
    assert source.version == "1.0.0" and source.label == "github:acme/myapp (latest: 1.0.0)"
    assert sorted(source.tarballs) == sorted(TARGETS)
    for target, tarball in source.tarballs.items():
        assert sha256_file(tarball) == sha256_file(published / f"myapp-1.0.0-otp27-{target}.tar.gz")
    assert not any(".part" in p.name or p.name.startswith(".tmp-") for p in tarball.parent.parent.iterdir())
    web = [p for m, p, h in github.state.requests if "/releases/latest/download/" in p or "/releases/download/" in p]
    assert web and all("/repos/" not in p for p in web)  # no REST API call
    fetched = len(github.state.requests)
    again = resolve(None, project, project / "dist", "2.0.0")
    assert again.tarballs == source.tarballs  # the cached dist, verified again
    manifest = asset(github.state, "v1.0.0", MANIFEST)["id"]
    assert [p for _, p, _ in github.state.requests[fetched:]] == [  # only the latest manifest was asked for
        f"/acme/myapp/releases/latest/download/{MANIFEST}", f"/acme/myapp/releases/download/v1.0.0/{MANIFEST}",
        f"/release-assets/{manifest}"]


def test_an_explicit_version_comes_from_its_release(github, project, key, tmp_path):
    publish(signed_dist(tmp_path / "dist", key, "1.0.0"), DEST)
    publish(signed_dist(tmp_path / "dist", key, "1.1.0"), DEST)
    assert resolve("1.0.0", project, project / "dist", "2.0.0").version == "1.0.0"
    with pytest.raises(UsageError, match="no dist of that version in .*github:acme/myapp v0.9.0"):
        resolve("0.9.0", project, project / "dist", "2.0.0")


def test_a_tampered_manifest_is_refused(github, project, key, tmp_path):
    publish(signed_dist(tmp_path / "dist", key, "1.0.0"), DEST)
    manifest = asset(github.state, "v1.0.0", MANIFEST)
    data = json.loads(manifest["data"])
    data["targets"][0]["sha256"] = "0" * 64
    manifest["data"] = manifest_text(data).encode()
    with pytest.raises(VerificationError, match="does not match its signature") as e:
        resolve(None, project, project / "dist", "2.0.0")
    assert "\n" not in str(e.value)


def test_a_tampered_tarball_is_refused(github, project, key, tmp_path):
    publish(signed_dist(tmp_path / "dist", key, "1.0.0"), DEST)
    asset(github.state, "v1.0.0", f"myapp-1.0.0-otp27-{TARGETS[1]}.tar.gz")["data"] = b"other bytes"
    with pytest.raises(VerificationError, match="sha256 does not match SHA256SUMS"):
        resolve(None, project, project / "dist", "2.0.0")


def test_the_version_being_built_is_not_upgraded_from(github, project, key, tmp_path):
    publish(signed_dist(tmp_path / "dist", key, "2.0.0"), DEST)
    assert resolve(None, project, project / "dist", "2.0.0") is None


def test_no_release_yet_is_none_with_a_note(github, project, capsys):
    github.state.add_release("v1.0.0")  # a draft is not served
    assert resolve(None, project, project / "dist", "2.0.0") is None
    assert "github:acme/myapp has no published release with xrel-manifest.json" in capsys.readouterr().err


def test_the_server_down_is_one_line(github, project, monkeypatch):
    monkeypatch.setattr("xrel.storage.download.time.sleep", lambda s: None)
    github.close()
    with pytest.raises(DownloadError, match="github:acme/myapp: the published release could not be read") as e:
        resolve(None, project, project / "dist", "2.0.0")
    assert "\n" not in str(e.value) and "--upgrade-from" in e.value.hint
