"""The node agent's feed check (xrel_node_feed:check/1) and layout (xrel_node_state) in a host erl, against a real
nginx serving `xrel publish dir:` output over HTTPS with a test CA: what it accepts, what it refuses and why, and
that a refusal changes nothing on the node. Each call runs in a fresh VM (a fresh httpc client)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

import node_feed
from node_feed import Feed, Pki, erl, term, unescape
from xrel.publish import publish
from xrel.signing.keys import generate_keypair

pytestmark = pytest.mark.skipif(not (node_feed.NGINX and node_feed.ERL and node_feed.ERLC),
                                reason="needs nginx and Erlang (erl, erlc): apt-get install nginx erlang")

MANIFEST = "xrel-manifest.json"
TARGET = "x86_64-linux-gnu"


@dataclass
class Env:
    feed: Feed
    pki: Pki
    beam: Path
    key: object
    dists: dict[str, Path]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node-agent")
    pki = node_feed.make_pki(tmp / "pki")
    beam = node_feed.build_agent(tmp / "beam")
    key, other = generate_keypair(), generate_keypair()
    work = tmp / "dists"
    make = node_feed.make_dist
    dists = {"v1": make(work, key, "1.0.0"), "v2": make(work, key, "2.0.0"),
             "v2_other_key": make(work, other, "2.0.0"), "v2_other_app": make(work, key, "2.0.0", app="other"),
             "v2_floor": make(work, key, "2.0.0", glibc_floor="99.1")}
    feed = node_feed.start_nginx(tmp / "nginx", pki)
    yield Env(feed, pki, beam, key, dists)
    feed.process.terminate()
    feed.process.wait(10)


def site(env: Env, name: str, *dists: str) -> Path:
    """A feed of its own under nginx's root, filled by `xrel publish dir:`."""
    for dist in dists:
        publish(env.dists[dist], f"dir:{env.feed.root / name}")
    return env.feed.root / name


def entry(env: Env, dist: str, target: str = TARGET) -> dict:
    manifest = json.loads((env.dists[dist] / MANIFEST).read_text())
    return next(e for e in manifest["targets"] if e["target"] == target)


@pytest.fixture
def node(tmp_path) -> Path:
    """A node root running 1.0.0 as bin/xrel-node lays it out."""
    root = tmp_path / "node"
    (root / "versions/1.0.0/releases").mkdir(parents=True)
    (root / "versions/1.0.0/releases/start_erl.data").write_text("13.1.5 1.0.0\n")
    (root / "current").symlink_to("versions/1.0.0")
    (root / "state").mkdir(mode=0o700)
    (root / "state/node.state").write_text("current=1.0.0\ndir=1.0.0\nphase=healthy\nattempts=0\n")
    (root / "state/node.log").write_text("2026-01-01T00:00:00Z installed version=1.0.0\n")
    return root


def snapshot(root: Path) -> dict[str, object]:
    """Every path under the node root but downloads/, with its content or link target."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith("state/downloads"):
            continue
        out[rel] = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else "dir"
    return out


def downloads(root: Path) -> dict[str, int]:
    where = root / "state/downloads"
    return {p.name: p.stat().st_size for p in where.iterdir()} if where.is_dir() else {}


def config(env: Env, node: Path, feed: str, **over) -> dict:
    return {"root": node, "feed": feed, "pin": None, "cacertfile": env.pki.ca, "tag_prefix": "v",
            "public_key": env.key.public.text(), "app": "demo", "target": TARGET, "running": "1.0.0", **over}


def check(env: Env, node: Path, feed: str, **over) -> tuple:
    """xrel_node_feed:check/1 in a fresh VM: ("up_to_date",) | ("update", version, tarball) | ("error", reason)."""
    # what the agent does: check, then download the entry's tarball
    [out] = erl(env.beam, f"C = {term(config(env, node, feed, **over))}, [case xrel_node_feed:check(C) of "
                          "{update, #{version := V, entry := E}} -> case xrel_node_feed:download(C, V, E) of "
                          "{ok, P} -> {update, #{entry => E, tarball => P, version => V}}; Err -> Err end; "
                          "Other -> Other end]")
    if out == "up_to_date":
        return (out,)
    if m := re.fullmatch(r'\{error,"(.*)"\}', out):
        return "error", unescape(m[1])
    if m := re.fullmatch(r'\{update,#\{entry => #\{.*\},tarball => "([^"]+)",version => "([^"]+)"\}\}', out):
        return "update", m[2], Path(m[1])
    raise AssertionError(f"unexpected result: {out}")


def refused(env: Env, node: Path, feed: str, left: dict[str, int] | None = None, **over) -> str:
    """The check's refusal reason, after asserting that nothing on the node changed (downloads/ holds `left`)."""
    before = snapshot(node)
    result = check(env, node, feed, **over)
    assert result[0] == "error", result
    assert snapshot(node) == before
    assert downloads(node) == (left or {})
    return result[1]


# -- the good path ---------------------------------------------------------------------------------------
def test_a_newer_version_is_fetched_verified_and_left_in_downloads(env, node):
    site(env, "good", "v1", "v2")
    url = env.feed.url("good")
    before = snapshot(node)
    kind, version, tarball = check(env, node, url)
    want = entry(env, "v2")
    assert (kind, version) == ("update", "2.0.0")
    assert tarball == node / "state/downloads" / want["file"]
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == want["sha256"]
    assert downloads(node) == {want["file"]: want["size"]}
    assert snapshot(node) == before
    # the manifest and its signature come from the version's own (immutable) location
    assert [r[1] for r in env.feed.requests("^/good/2\\.0\\.0/")] == [200, 200, 200]
    assert check(env, node, url, running="2.0.0") == ("up_to_date",)
    # a version bin/xrel-node rolled back from is not taken again
    assert check(env, node, url, skip="2.0.0") == ("up_to_date",)


def test_an_alias_of_the_target_matches_and_other_targets_are_refused(env, node):
    site(env, "targets", "v1", "v2")
    url = env.feed.url("targets")
    reason = refused(env, node, url, target="riscv64-linux-gnu")
    assert reason == "the manifest has no entry for this node's target riscv64-linux-gnu"
    kind, version, tarball = check(env, node, url, target="arm64")  # an alias of aarch64-linux-gnu
    assert (kind, version, tarball.name) == ("update", "2.0.0", entry(env, "v2", "aarch64-linux-gnu")["file"])


# -- signatures --------------------------------------------------------------------------------------------
def _tamper_a_byte(where: Path, env: Env) -> None:
    manifest = where / "2.0.0" / MANIFEST
    text = manifest.read_text()
    sha = entry(env, "v2")["sha256"]
    manifest.write_text(text.replace(sha, sha[:-1] + ("0" if sha[-1] != "0" else "1")))


def _replay_v1(where: Path, env: Env) -> None:
    for name in (MANIFEST, MANIFEST + ".minisig"):
        shutil.copyfile(where / "1.0.0" / name, where / "2.0.0" / name)


def _v1_signature(where: Path, env: Env) -> None:
    shutil.copyfile(where / "1.0.0" / (MANIFEST + ".minisig"), where / "2.0.0" / (MANIFEST + ".minisig"))


@pytest.mark.parametrize("case, dists, change, expected", [
    ("tampered", ("v1", "v2"), _tamper_a_byte,
     r"/2\.0\.0/xrel-manifest\.json: signature check failed \(bad_signature\)$"),
    ("other_key", ("v1", "v2_other_key"), None,
     r"/2\.0\.0/xrel-manifest\.json: signature check failed \(key_id_mismatch\)$"),
    ("v1_signature", ("v1", "v2"), _v1_signature, r"signature check failed \(bad_signature\)$"),
    # a validly signed pair replayed at another version's location: the trusted comment names 1.0.0
    ("replayed_pair", ("v1", "v2"), _replay_v1,
     r'/2\.0\.0/xrel-manifest\.json is signed for "xrel dist demo 1\.0\.0 manifest", '
     r'not "xrel dist demo 2\.0\.0 manifest"$'),
    # the same key signs another app: its manifest is valid, but not for this app
    ("other_app", ("v1", "v2_other_app"), None,
     r'is signed for "xrel dist other 2\.0\.0 manifest", not "xrel dist demo 2\.0\.0 manifest"$'),
], ids=["tampered", "other_key", "v1_signature", "replayed_pair", "other_app"])
def test_a_manifest_that_is_not_signed_for_this_version_is_refused(env, node, case, dists, change, expected):
    where = site(env, f"sig-{case}", *dists)
    if change:
        change(where, env)
    assert re.search(expected, refused(env, node, env.feed.url(f"sig-{case}")))
    assert env.feed.requests(f"^/sig-{case}/2\\.0\\.0/{MANIFEST}") and not env.feed.requests(f"^/sig-{case}/.*gz$")


# -- the tarball -----------------------------------------------------------------------------------------
def test_a_tarball_with_another_sha256_is_deleted(env, node):
    where = site(env, "sha", "v1", "v2")
    want = entry(env, "v2")
    served = where / "2.0.0" / want["file"]
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF
    served.write_bytes(bytes(data))
    reason = refused(env, node, env.feed.url("sha"))
    got = hashlib.sha256(data).hexdigest()
    assert reason == f"{want['file']}: sha256 {got}, the signed manifest says {want['sha256']}; deleted"


def test_a_truncated_download_is_refused_then_resumed_with_a_range_request(env, node):
    where = site(env, "resume", "v1", "v2")
    want = entry(env, "v2")
    served = where / "2.0.0" / want["file"]
    whole = served.read_bytes()
    cut = len(whole) * 2 // 5
    served.write_bytes(whole[:cut])
    reason = refused(env, node, env.feed.url("resume"), left={want["file"] + ".part": cut})
    assert reason.endswith(f"/2.0.0/{want['file']}: download failed: {cut} bytes arrived, "
                           f"the signed manifest says {want['size']}")
    served.write_bytes(whole)
    kind, version, tarball = check(env, node, env.feed.url("resume"))
    assert (kind, version) == ("update", "2.0.0")
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == want["sha256"]
    assert downloads(node) == {want["file"]: want["size"]}
    first, second = env.feed.requests(f"^/resume/2\\.0\\.0/{re.escape(want['file'])}$")
    assert first == ("127.0.0.1", 200, cut, "-")
    assert second == ("127.0.0.1", 206, len(whole) - cut, f"bytes={cut}-")


def test_a_server_that_ignores_the_range_sends_the_whole_file_again(env, node):
    where = site(env, "norange", "v1", "v2")
    want = entry(env, "v2")
    served = where / "2.0.0" / want["file"]
    whole = served.read_bytes()
    served.write_bytes(whole[:1000])
    refused(env, node, env.feed.url("norange/norange"), left={want["file"] + ".part": 1000})
    served.write_bytes(whole)
    kind, _version, tarball = check(env, node, env.feed.url("norange/norange"))
    assert kind == "update" and hashlib.sha256(tarball.read_bytes()).hexdigest() == want["sha256"]
    first, second = env.feed.requests(f"^/norange/norange/2\\.0\\.0/{re.escape(want['file'])}$")
    assert (first[1:], second[1:]) == ((200, 1000, "-"), (200, len(whole), "bytes=1000-"))


def test_a_partial_file_the_server_cannot_continue_is_dropped(env, node):
    where = site(env, "416", "v1", "v2")
    want = entry(env, "v2")
    served = where / "2.0.0" / want["file"]
    whole = served.read_bytes()
    served.write_bytes(whole[:2000])
    refused(env, node, env.feed.url("416"), left={want["file"] + ".part": 2000})
    served.write_bytes(whole[:1000])  # shorter than what the node has: 416 to its Range request
    assert refused(env, node, env.feed.url("416")).endswith("download failed: HTTP status 416")
    served.write_bytes(whole)
    assert check(env, node, env.feed.url("416"))[0] == "update"
    asked = [(r[1], r[3]) for r in env.feed.requests(f"^/416/2\\.0\\.0/{re.escape(want['file'])}$")]
    assert asked == [(200, "-"), (416, "bytes=2000-"), (200, "-")]


def test_stale_partial_downloads_of_other_files_are_dropped(env, node):
    site(env, "stale", "v1", "v2")
    stale = node / "state/downloads/demo-1.5.0-otp25-x86_64-linux-gnu.tar.gz.part"
    stale.parent.mkdir()
    stale.write_bytes(b"x" * 10)
    kind, _version, tarball = check(env, node, env.feed.url("stale"))
    assert kind == "update" and downloads(node) == {tarball.name: entry(env, "v2")["size"]}


# -- versions --------------------------------------------------------------------------------------------
def test_an_older_version_is_refused_unless_pinned(env, node):
    site(env, "replay", "v1")  # latest/ is 1.0.0 while the node runs 2.0.0: a replayed old manifest
    url = env.feed.url("replay")
    reason = refused(env, node, url, running="2.0.0")
    assert reason == ("the feed offers 1.0.0, older than the running 2.0.0 (a replayed manifest?); "
                      "set XREL_NODE_PIN=1.0.0 to go back on purpose")
    kind, version, tarball = check(env, node, url, running="2.0.0", pin="1.0.0")
    assert (kind, version, tarball.name) == ("update", "1.0.0", entry(env, "v1")["file"])


def test_a_feed_version_that_is_no_release_version_is_refused(env, node):
    where = site(env, "badvsn", "v1")
    latest = where / "latest" / MANIFEST
    for bad, shown in (("../../etc", '<<"../../etc">>'), ("2.0", '<<"2.0">>'), (2, "2"), ({"x": 1}, '#{<<"x">> => 1}')):
        latest.write_text(json.dumps({"version": bad}))
        reason = refused(env, node, env.feed.url("badvsn"))
        assert reason.endswith(f"/latest/xrel-manifest.json names {shown}, not a release version"), reason
    latest.write_text('{"version": "2.0.0"')
    assert refused(env, node, env.feed.url("badvsn")).endswith("/latest/xrel-manifest.json is not a JSON manifest")


def test_a_glibc_floor_above_this_machines_is_refused(env, node):
    site(env, "floor", "v1", "v2_floor")
    have = os.confstr("CS_GNU_LIBC_VERSION").split()[1]
    assert refused(env, node, env.feed.url("floor")) == f"the release needs glibc 99.1; this node has {have}"


# -- the network -----------------------------------------------------------------------------------------
def test_a_server_that_is_down_is_refused(env, node):
    port = node_feed.free_port()
    reason = refused(env, node, f"https://127.0.0.1:{port}/feed")
    assert reason == (f"https://127.0.0.1:{port}/feed/latest/xrel-manifest.json: "
                      f"cannot connect to 127.0.0.1:{port}: econnrefused")


@pytest.mark.parametrize("case, host, prefix, over, expected", [
    ("unknown_ca", "127.0.0.1", "", {"cacertfile": "OTHER"}, r"TLS refused to 127\.0\.0\.1:\d+ \(unknown_ca\)"),
    ("os_store", "127.0.0.1", "", {"cacertfile": None}, r"TLS refused to 127\.0\.0\.1:\d+ \(unknown_ca\)"),
    ("wrong_host", "127.0.0.3", "", {},
     r"TLS refused to 127\.0\.0\.3:\d+ \(handshake_failure\).*hostname_check_failed"),
    # each hop is verified for its own host
    ("hop_to_wrong_host", "127.0.0.1", "hop3/", {},
     r"TLS refused to 127\.0\.0\.3:\d+ \(handshake_failure\).*hostname_check_failed"),
    ("to_plain_http", "127.0.0.1", "plain/", {},
     r"refused a redirect from https to plain http: http://127\.0\.0\.1:\d+/plain/tls-to_plain_http/latest/"),
], ids=["unknown_ca", "os_store", "wrong_host", "hop_to_wrong_host", "to_plain_http"])
def test_tls_is_verified(env, node, case, host, prefix, over, expected):
    site(env, f"tls-{case}", "v1", "v2")
    if over.get("cacertfile") == "OTHER":
        over = {**over, "cacertfile": env.pki.other_ca}
    url = f"https://{host}:{env.feed.port}/{prefix}tls-{case}"
    reason = refused(env, node, url, **over)
    assert reason.startswith(f"{url}/latest/xrel-manifest.json: ") and re.search(expected, reason), reason


def test_a_redirect_to_another_host_is_followed_and_verified(env, node):
    site(env, "hop", "v1", "v2")
    kind, version, tarball = check(env, node, env.feed.url("hop/hop"))
    assert (kind, version) == ("update", "2.0.0")
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == entry(env, "v2")["sha256"]
    hops = [(r[0], r[1]) for r in env.feed.requests("^/hop/hop/")]
    assert hops == [("127.0.0.1", 302), ("127.0.0.2", 200)] * 4  # latest, manifest, signature, tarball


# -- the pieces, directly --------------------------------------------------------------------------------
def test_json_decoder(env):
    cases = [
        r'{"s": "q\"b\\s\/b\bf\fn\nr\rt\t", "u": "\u00e9\ud83d\ude00", "raw": "é😀", "z": "\u0000"}',
        '{"t": [{"a": [1, 2.5, -3e2, 0, -0.5E-1, true, false, null]}, []], "e": {}, "n": [[[[]]]]}',
        ' [ ] ',
    ]
    malformed = ['{"a": 1,}', '[1,]', '{"a" 1}', '"abc', 'tru', '{} x', r'"\x"', '"a\tb"', '01', '+1', '1.', '.5',
                 '-', '', r'"\ud800"', r'"\udc00"', r'"\ud800\u0041"', r'"\u+123"', '{"a": 1} {', '[1 2]', '{1: 2}',
                 b'"\xff"', b'"\xc3"', b'\xef\xbb\xbf{}']  # invalid UTF-8, a byte order mark
    texts = [c if isinstance(c, bytes) else c.encode() for c in cases + malformed]
    binaries = ", ".join(f"<<{','.join(map(str, c))}>>" for c in texts)
    out = erl(env.beam, f"[xrel_node_json:decode(B) || B <- [{binaries}]]")
    assert out[0] == ('{ok,#{<<"raw">> => <<"é😀"/utf8>>,<<"s">> => <<"q\\"b\\\\s/b\\bf\\fn\\nr\\rt\\t">>,'
                      '<<"u">> => <<"é😀"/utf8>>,<<"z">> => <<0>>}}')
    assert out[1] == ('{ok,#{<<"e">> => #{},<<"n">> => [[[[]]]],<<"t">> => '
                      '[#{<<"a">> => [1,2.5,-300.0,0,-0.05,true,false,null]},[]]}}')
    assert out[2] == "{ok,[]}"
    bad = dict(zip(malformed, out[3:]))
    assert {k: v for k, v in bad.items() if not v.startswith("{error,")} == {}


def test_version_order(env):
    ordered = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"]
    pairs = [(a, b) for a in ordered for b in ordered]
    same = [("1.0.0+build.1", "1.0.0"), ("1.0.0-rc.1+x", "1.0.0-rc.1+y")]
    valid = ["1.0.0", "1.0.0-rc.1+b.2", "0.0.0", "10.20.30-x-y"]
    invalid = ["1.0", "01.0.0", "1.0.0-", "../1.0.0", "1.0.0/x", "", "1.0.0\n", "v1.0.0", "1.0.0-a..b"]
    out = erl(env.beam, f"[xrel_node_vsn:compare(A, B) || {{A, B}} <- {term(pairs + same)}] ++ "
                        f"[xrel_node_vsn:valid(V) || V <- {term(valid + invalid)}]")
    order = range(len(ordered))
    expected = [{-1: "lt", 0: "eq", 1: "gt"}[(i > j) - (i < j)] for i in order for j in order]
    assert out[:len(pairs)] == expected
    assert out[len(pairs):len(pairs) + len(same)] == ["eq", "eq"]
    assert out[len(pairs) + len(same):] == ["true"] * len(valid) + ["false"] * len(invalid)


def test_feed_urls(env):
    out = erl(env.beam, "[xrel_node_config:latest_url(#{feed => \"https://h/x/\"}), "
                        "xrel_node_config:version_url(#{feed => \"https://h/x\"}, \"2.0.0\", \"f.tar.gz\"), "
                        "xrel_node_config:latest_url(#{feed => \"github:acme/app\"}), "
                        "xrel_node_config:version_url(#{feed => \"github:acme/app\", tag_prefix => \"v\"}, \"2.0.0\", "
                        "\"xrel-manifest.json\")]")
    assert out[:2] == ['"https://h/x/latest/xrel-manifest.json"', '"https://h/x/2.0.0/f.tar.gz"']
    assert re.fullmatch(r'"https://[a-z.]+/acme/app/releases/latest/download/xrel-manifest\.json"', out[2])
    assert re.fullmatch(r'"https://[a-z.]+/acme/app/releases/download/v2\.0\.0/xrel-manifest\.json"', out[3])


# -- the node's layout -----------------------------------------------------------------------------------
def test_unpack_refuses_a_tarball_of_another_version_and_replaces_a_killed_ones_leftover(env, node):
    v2 = env.dists["v2"] / entry(env, "v2")["file"]
    versions = node / "versions"
    out = erl(env.beam, f"[xrel_node_state:unpack({term(node)}, \"3.0.0\", {term(v2)})]")
    assert out == ['{error,{tarball_is_not_version,"3.0.0",<<"13.1.5 2.0.0\\n">>}}']
    assert sorted(p.name for p in versions.iterdir()) == ["1.0.0"]
    leftover = versions / ".2.0.0.tmp"
    (leftover / "releases").mkdir(parents=True)
    (leftover / "half-written").write_text("killed here")
    (leftover / "releases/start_erl.data").write_text("13.1.5 2.0.0\n")
    out = erl(env.beam, f"[xrel_node_state:unpack({term(node)}, \"2.0.0\", {term(v2)})]")
    assert out == ["ok"]
    assert sorted(p.name for p in versions.iterdir()) == ["1.0.0", "2.0.0"]
    assert not (versions / "2.0.0/half-written").exists()
    assert (versions / "2.0.0/releases/start_erl.data").read_text() == "13.1.5 2.0.0\n"
    assert (versions / "2.0.0/bin/demo").stat().st_mode & 0o777 == 0o755


def test_flip_replaces_the_symlink_atomically(env, node):
    (node / "versions/2.0.0").mkdir()
    (node / ".current.tmp").symlink_to("versions/nowhere")  # a killed flip's leftover
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.add(os.readlink(node / "current"))
            except OSError as e:
                seen.add(type(e).__name__)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        out = erl(env.beam, f"[lists:usort([xrel_node_state:flip({term(node)}, V) || _ <- lists:seq(1, 1500), "
                            "V <- [\"2.0.0\", \"1.0.0\"]])]")
    finally:
        stop.set()
        thread.join()
    assert out == ["[ok]"]
    assert seen == {"versions/1.0.0", "versions/2.0.0"}  # never missing, never another target
    assert os.readlink(node / "current") == "versions/1.0.0" and not os.path.lexists(node / ".current.tmp")
