"""`xrel publish dir:PATH` / `file://`: the per-version dir appears whole or not at all, latest/ follows it, a
re-run keeps it, a different build of a published version is refused; a real nginx serves the output to a
real client; `[publish] to` in xrel.toml."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from github_api import make_dist
from xrel.cli import main
from xrel.errors import UsageError, VerificationError
from xrel.project.config import ConfigError, load_config
from xrel.publish import DirDestination, GitHubDestination, load_dist, parse_destination, publish
from xrel.publish import directory as directory_mod

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def test_layout_and_latest(tmp_path):
    dist = load_dist(make_dist(tmp_path / "dist"))
    root = tmp_path / "www"
    result = publish(dist.path, f"dir:{root}")
    assert result["state"] == "written" and result["latest"]
    assert sorted(p.name for p in (root / "1.2.3").iterdir()) == sorted(dist.names)
    for file in dist.files:
        assert (root / "1.2.3" / file.name).read_bytes() == file.path.read_bytes()
        assert (root / "1.2.3" / file.name).stat().st_mode & 0o777 == 0o644
    assert (root / "1.2.3").stat().st_mode & 0o777 == 0o755
    for name in ("xrel-manifest.json", "xrel-manifest.json.minisig"):
        assert (root / "latest" / name).read_bytes() == (root / "1.2.3" / name).read_bytes()
    assert not [p for p in root.iterdir() if p.name.startswith(".xrel-staging-")]


def test_rerun_keeps_and_a_different_build_is_refused(tmp_path):
    root = tmp_path / "www"
    first = make_dist(tmp_path / "a")
    publish(first, DirDestination(root))
    assert publish(first, DirDestination(root))["state"] == "kept"
    other = make_dist(tmp_path / "b", salt=b"rebuilt")
    with pytest.raises(UsageError, match="already holds a different 1.2.3"):
        publish(other, DirDestination(root))
    assert (root / "1.2.3" / "xrel-manifest.json").read_bytes() == (first / "xrel-manifest.json").read_bytes()


def test_latest_moves_forward_only(tmp_path):
    root = tmp_path / "www"
    publish(make_dist(tmp_path / "d", "1.10.0"), DirDestination(root))
    assert not publish(make_dist(tmp_path / "d", "1.9.0"), DirDestination(root))["latest"]
    assert json.loads((root / "latest" / "xrel-manifest.json").read_text())["version"] == "1.10.0"
    assert publish(make_dist(tmp_path / "d", "2.0.0"), DirDestination(root))["latest"]
    assert json.loads((root / "latest" / "xrel-manifest.json").read_text())["version"] == "2.0.0"


def test_a_failed_copy_leaves_nothing_and_a_killed_runs_staging_is_cleaned(tmp_path, monkeypatch):
    root = tmp_path / "www"
    dist = load_dist(make_dist(tmp_path / "dist"))
    real_copy, copied = directory_mod._copy, []

    def failing_copy(file, target):
        if copied:
            raise OSError("disk full")
        copied.append(file.name)
        real_copy(file, target)

    monkeypatch.setattr(directory_mod, "_copy", failing_copy)
    with pytest.raises(OSError):
        publish(dist.path, DirDestination(root))
    assert sorted(p.name for p in root.iterdir()) == [".xrel-publish.lock"]
    monkeypatch.setattr(directory_mod, "_copy", real_copy)
    (root / ".xrel-staging-1.2.3-killed").mkdir()
    (root / ".xrel-staging-1.2.3-killed" / "half.tar.gz").write_bytes(b"x")
    publish(dist.path, DirDestination(root))
    assert sorted(p.name for p in root.iterdir()) == [".xrel-publish.lock", "1.2.3", "latest"]


def test_a_reader_never_sees_a_manifest_without_its_files(tmp_path):
    """A reader polling latest/ while versions are published finds every file of each manifest it reads."""
    root, stop, seen, broken = tmp_path / "www", threading.Event(), set(), []

    def reader():
        while not stop.is_set():
            try:
                manifest = json.loads((root / "latest" / "xrel-manifest.json").read_bytes())
            except (OSError, ValueError):
                continue
            seen.add(manifest["version"])
            for entry in manifest["targets"]:
                path = root / manifest["version"] / entry["file"]
                if not path.is_file() or path.stat().st_size != entry["size"]:
                    broken.append(str(path))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for minor in range(8):
            publish(make_dist(tmp_path / "d", f"1.{minor}.0", size=1 << 20), DirDestination(root))
    finally:
        stop.set()
        thread.join()
    assert not broken and len(seen) > 1


def test_a_tampered_artifact_is_refused_before_anything_is_written(tmp_path):
    out = make_dist(tmp_path / "dist")
    (out / "myapp-1.2.3-otp27-aarch64-linux-gnu.tar.gz").write_bytes(b"tampered")
    with pytest.raises(VerificationError, match="does not match xrel-manifest.json"):
        publish(out, DirDestination(tmp_path / "www"))
    assert not (tmp_path / "www").exists()


def test_destinations():
    assert parse_destination("github:acme/my.app") == GitHubDestination("acme", "my.app")
    assert parse_destination("file:///srv/rel%20s") == DirDestination(Path("/srv/rel s"))
    assert parse_destination("dir:out", base=Path("/p")) == DirDestination(Path("/p/out"))
    for bad in ("github:acme", "github:a/b/c", "s3://bucket", "file://host/x", "dir:"):
        with pytest.raises(UsageError):
            parse_destination(bad)


def test_publish_table_in_xrel_toml(tmp_path):
    (tmp_path / "xrel.toml").write_text('otp = "27"\n\n[publish]\nto = "dir:public"\n')
    assert load_config(tmp_path).sections["publish"].to == DirDestination(tmp_path.resolve() / "public")
    (tmp_path / "xrel.toml").write_text('[publish]\nto = "s3:bucket"\n')
    with pytest.raises(ConfigError, match=r"xrel.toml:2: to in \[publish\]: unknown publish destination"):
        load_config(tmp_path)
    (tmp_path / "xrel.toml").write_text('[publish]\nto = "github:acme/app"\nfrom = "x"\n')
    with pytest.raises(ConfigError, match=r"xrel.toml:3: unknown key 'from'"):
        load_config(tmp_path)


def test_cli_takes_the_destination_from_xrel_toml(tmp_path):
    (tmp_path / "xrel.toml").write_text('[publish]\nto = "dir:public"\n')
    make_dist(tmp_path / "dist")
    result = CliRunner().invoke(main, ["publish", "-C", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["path"] == str(tmp_path.resolve() / "public" / "1.2.3")
    result = CliRunner().invoke(main, ["publish", f"file://{tmp_path}/other", "--dist", str(tmp_path / "dist")])
    assert result.exit_code == 0 and "1.2.3 written" in result.output, result.output
    make_dist(tmp_path / "dist", "1.3.0")  # several versions under dist/: the newest is published
    result = CliRunner().invoke(main, ["publish", "-C", str(tmp_path), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["path"].endswith("/public/1.3.0"), result.output


# -- a real nginx serving the output ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NGINX_CONF = """\
daemon off;
user {user} {group};
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/json json; application/gzip gz; text/plain minisig; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location ~ /\\. {{ deny all; }}
        location /latest/ {{ add_header Cache-Control "no-cache"; }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path):
    if not NGINX:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    tmp, root, port = tmp_path / "nginx", tmp_path / "www", _free_port()
    tmp.mkdir()
    root.mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, root=root, port=port, user=pwd.getpwuid(os.getuid()).pw_name,
                                      group=grp.getgrgid(os.getgid()).gr_name))
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 15
    while time.time() < deadline and proc.poll() is None:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    if proc.poll() is not None:
        pytest.fail(f"nginx did not start: {proc.stderr.read().decode()}")
    yield url, root
    proc.terminate()
    proc.wait(10)


def test_nginx_serves_latest_and_a_tarball(nginx, tmp_path):
    url, root = nginx
    dist = load_dist(make_dist(tmp_path / "dist", size=3 << 20))
    publish(dist.path, f"dir:{root}")
    latest = requests.get(f"{url}/latest/xrel-manifest.json", timeout=10)
    assert latest.status_code == 200 and latest.headers["Content-Type"] == "application/json"
    assert latest.headers["Cache-Control"] == "no-cache"
    manifest = latest.json()
    version = manifest["version"]
    signed = requests.get(f"{url}/{version}/xrel-manifest.json", timeout=10)
    assert signed.content == latest.content
    assert requests.get(f"{url}/{version}/xrel-manifest.json.minisig", timeout=10).status_code == 200
    entry = manifest["targets"][0]
    with requests.get(f"{url}/{version}/{entry['file']}", stream=True, timeout=10) as response:
        response.raise_for_status()
        digest, size = hashlib.sha256(), 0
        for chunk in response.iter_content(1 << 16):
            digest.update(chunk)
            size += len(chunk)
    assert (size, digest.hexdigest()) == (entry["size"], entry["sha256"])
    assert requests.get(f"{url}/.xrel-publish.lock", timeout=10).status_code == 403


def test_a_dist_written_by_xrels_own_dist_code_is_published(tmp_path):
    """The manifest `xrel dist` writes (its `targets` entries) is what publish reads."""
    from test_dist import make_dist as make_real_dist
    from xrel.signing.keys import generate_keypair

    out = make_real_dist(tmp_path / "project", key=generate_keypair())
    result = publish(out, f"dir:{tmp_path / 'www'}")
    assert result["latest"] is True
    published = sorted(p.name for p in (tmp_path / "www" / "0.1.0").iterdir())
    assert published == sorted(p.name for p in out.iterdir())


def test_publish_takes_the_newest_version_under_dist(tmp_path):
    from xrel.publish.dist import find_dist

    for version in ("1.9.0", "1.10.0", "1.10.0-rc.1"):
        (tmp_path / "dist" / version).mkdir(parents=True)
        (tmp_path / "dist" / version / "xrel-manifest.json").write_text("{}")
    assert find_dist(tmp_path / "dist").name == "1.10.0"


def test_hot_upgrade_packages_listed_in_the_manifest_are_published(tmp_path):
    from test_dist import make_dist as make_real_dist

    out = make_real_dist(tmp_path / "project")
    package = out / "app-0.1.0-upgrade-from-0.0.9-otp27-aarch64-linux-gnu.tar.gz"
    package.write_bytes(b"relup and changed apps")
    sha = hashlib.sha256(package.read_bytes()).hexdigest()
    manifest = json.loads((out / "xrel-manifest.json").read_text())
    manifest["targets"][0]["upgrades"] = [{"from_version": "0.0.9", "file": package.name,
                                           "size": package.stat().st_size, "sha256": sha}]
    (out / "xrel-manifest.json").write_text(json.dumps(manifest))
    sums = [line for line in (out / "SHA256SUMS").read_text().splitlines() if "xrel-manifest" not in line]
    manifest_sha = hashlib.sha256((out / "xrel-manifest.json").read_bytes()).hexdigest()
    (out / "SHA256SUMS").write_text("\n".join([*sums, f"{sha}  {package.name}", f"{manifest_sha}  xrel-manifest.json"])
                                    + "\n")
    assert package.name in load_dist(out).names
    publish(out, f"dir:{tmp_path / 'www'}")
    assert (tmp_path / "www" / "0.1.0" / package.name).read_bytes() == package.read_bytes()
    package.unlink()
    with pytest.raises(VerificationError, match="is missing"):
        load_dist(out)
