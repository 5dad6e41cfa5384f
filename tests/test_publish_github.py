"""`xrel publish github:OWNER/REPO` against a local GitHub REST API (tests/github_api.py): drafts found by
listing past page 1, assets uploaded once, replaced when different, half uploads cleaned, rate limits waited out,
5xx retried, a kill mid-upload completed by a re-run, an immutable published release refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from github_api import TOKEN, FakeGitHub, Fault, make_dist
from xrel.cli import main
from xrel.errors import UsageError
from xrel.publish import GitHubDestination, load_dist, publish
from xrel.publish.github_api import GitHubError

DEST = GitHubDestination("acme", "myapp")


@pytest.fixture
def github(monkeypatch):
    server = FakeGitHub()
    monkeypatch.setenv("GITHUB_API_URL", server.api_url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    yield server
    server.close()


def names(state, release) -> list[str]:
    return sorted(a["name"] for a in state.assets[release["id"]])


def check_published(state, dist, tag="v1.2.3") -> dict:
    """Exactly one release carries the tag, published, holding each dist file once, uploaded, digest right."""
    releases = state.release(tag)
    assert len(releases) == 1, f"{len(releases)} releases for {tag}"
    release = releases[0]
    assert not release["draft"]
    assert names(state, release) == sorted(dist.names)
    for a in state.assets[release["id"]]:
        file = next(f for f in dist.files if f.name == a["name"])
        assert (a["state"], a["size"], a["digest"]) == ("uploaded", file.size, f"sha256:{file.sha256}")
    return release


def uploads(state) -> list[str]:
    return [path for method, path, _ in state.requests if method == "POST" and "/assets?" in path]


def test_new_release_is_a_draft_until_every_asset_is_there(github, tmp_path):
    for n in range(3):
        github.state.add_release(f"v0.{n}.0", draft=False)
    dist = load_dist(make_dist(tmp_path))
    result = publish(dist.path, DEST)
    release = check_published(github.state, dist)
    assert result["created"] and set(result["assets"].values()) == {"uploaded"}
    assert result["url"].endswith("/releases/tag/v1.2.3") and result["release_id"] == release["id"]
    assert len(uploads(github.state)) == len(dist.files)
    for _method, _path, headers in github.state.requests:
        assert headers["Accept"] == "application/vnd.github+json"
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["X-GitHub-Api-Version"] == "2022-11-28"
    # the manifest goes up last, after every file it names
    assert [p for m, p, _ in github.state.requests if m == "PATCH"], "never published"


def test_a_draft_on_page_two_is_completed_not_duplicated(github, tmp_path):
    """The draft (invisible to get-by-tag) is older than 120 releases: listing must follow Link rel="next";
    its good asset is kept, a different one replaced, a half-uploaded one deleted and uploaded again."""
    st = github.state
    dist = load_dist(make_dist(tmp_path))
    draft = st.add_release("v1.2.3", draft=True)
    good, other, half = dist.files[0], dist.files[1], dist.files[2]
    st.add_asset(draft, good.name, good.path.read_bytes())
    st.add_asset(draft, other.name, b"an older build of the same name")
    st.add_asset(draft, half.name, half.path.read_bytes()[:10], state="open")
    for n in range(120):
        st.add_release(f"v0.0.{n}", draft=False)
    result = publish(dist.path, DEST)
    assert not result["created"] and result["release_id"] == draft["id"]
    assert result["assets"][good.name] == "kept"
    assert result["assets"][other.name] == "replaced"
    assert result["assets"][half.name] == "uploaded"
    check_published(st, dist)
    assert any("page=2" in p or "/repositories/" in p for _, p, _ in st.requests)
    assert not [p for p in uploads(st) if good.name in p], "a matching asset was uploaded again"


def test_rerun_keeps_everything(github, tmp_path):
    dist = load_dist(make_dist(tmp_path))
    publish(dist.path, DEST)
    before = len(uploads(github.state))
    result = publish(dist.path, DEST)
    assert set(result["assets"].values()) == {"kept"}
    assert len(uploads(github.state)) == before
    check_published(github.state, dist)


def test_5xx_and_rate_limits_are_waited_out(github, tmp_path):
    st = github.state
    reset = str(int(time.time()) + 2)
    secondary = {"message": "You have exceeded a secondary rate limit"}
    st.faults += [
        Fault("GET", r"/releases(\?|$)", 502),
        Fault("POST", r"/releases(\?|$)", 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset,
                                           "x-ratelimit-limit": "5000"}, {"message": "API rate limit exceeded"}),
        Fault("GET", r"/assets(\?|$)", 429, {"Retry-After": "1"}, secondary),
        Fault("POST", r"x86_64-linux-musl", 503),
        Fault("POST", r"/assets(\?|$)", 403, {"Retry-After": "1"}, secondary),
        Fault("PATCH", r"/releases/\d+$", 500),
    ]
    dist = load_dist(make_dist(tmp_path))
    publish(dist.path, DEST)
    check_published(st, dist)
    assert st.early_retries == 0, "retried before the rate limit's wait was over"
    assert all(f.times == 0 for f in st.faults), [f for f in st.faults if f.times]


def test_an_upload_5xx_leaving_a_starter_asset_is_cleaned(github, tmp_path):
    st = github.state
    dist = load_dist(make_dist(tmp_path))
    draft = st.add_release("v1.2.3")
    target = dist.files[1]
    st.add_asset(draft, target.name, b"", state="starter", size=0)
    publish(dist.path, DEST)
    check_published(st, dist)


def test_killed_mid_upload_then_rerun_completes(github, tmp_path):
    st = github.state
    dist = load_dist(make_dist(tmp_path, size=48 << 20))  # larger than the socket buffers: the kill is mid-send
    st.faults.append(Fault("POST", r"/assets(\?|$)", stall=True))
    env = {**os.environ, "GITHUB_API_URL": github.api_url, "GITHUB_TOKEN": TOKEN}
    child = subprocess.Popen([sys.executable, "-m", "xrel", "publish", str(DEST), "--dist", str(dist.path)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert st.stalled.wait(60), "the upload never started"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    st.resume.set()
    deadline = time.time() + 10
    draft = st.release("v1.2.3")[0]
    while time.time() < deadline and not any(a["state"] == "open" for a in st.assets[draft["id"]]):
        time.sleep(0.05)
    assert [a["state"] for a in st.assets[draft["id"]]] == ["open"] and draft["draft"]
    publish(dist.path, DEST)
    check_published(st, dist)


def test_published_immutable_release_lacking_an_asset_is_an_error(monkeypatch, tmp_path):
    server = FakeGitHub(immutable=True)
    monkeypatch.setenv("GITHUB_API_URL", server.api_url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    try:
        dist = load_dist(make_dist(tmp_path))
        release = server.state.add_release("v1.2.3", draft=False)
        for file in dist.files[:2]:
            server.state.add_asset(release, file.name, file.path.read_bytes())
        with pytest.raises(GitHubError, match="immutable release that lacks or differs in .*SHA256SUMS") as e:
            publish(dist.path, DEST)
        assert "new version" in str(e.value)
        assert uploads(server.state) == []
        assert names(server.state, release) == sorted(f.name for f in dist.files[:2])
    finally:
        server.close()


def test_published_immutable_release_that_is_complete_is_kept(monkeypatch, tmp_path):
    server = FakeGitHub(immutable=True)
    monkeypatch.setenv("GITHUB_API_URL", server.api_url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    try:
        dist = load_dist(make_dist(tmp_path))
        publish(dist.path, DEST)  # a draft first, so the uploads reach it before it becomes immutable
        assert server.state.release_json(server.state.release("v1.2.3")[0])["immutable"]
        result = publish(dist.path, DEST)
        assert set(result["assets"].values()) == {"kept"}
    finally:
        server.close()


def test_cli_without_a_token_names_the_fix(github, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    dist = make_dist(tmp_path / "dist")
    result = CliRunner().invoke(main, ["publish", "github:acme/myapp", "-C", str(tmp_path)])
    assert result.exit_code == UsageError.exit_code
    assert "GITHUB_TOKEN or GH_TOKEN" in result.output
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    result = CliRunner().invoke(main, ["publish", "github:acme/myapp", "--dist", str(dist), "--tag", "release-1"])
    assert result.exit_code == 0, result.output
    assert "github:acme/myapp release-1: published" in result.output
    assert not github.state.release("release-1")[0]["draft"]


def test_a_bad_token_is_one_line(github, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "wrong")
    result = CliRunner().invoke(main, ["publish", "github:acme/myapp", "--dist", str(make_dist(tmp_path))])
    assert result.exit_code == GitHubError.exit_code
    assert "401" in result.output and "valid token" in result.output
