"""A local GitHub REST API for the release endpoints `xrel publish` uses, after GitHub's documentation.

Two servers on 127.0.0.1 like api.github.com and uploads.github.com: list (paginated, Link rel="next" naming
/repositories/<id>/...), get-by-tag (published releases only: drafts are not returned), create, update, list
and delete assets, and uploads to the `upload_url` template (`.../assets{?name,label}`) on the second port.
Assets carry `state` and `digest` ("sha256:<hex>"); a published release of an immutable repository refuses
uploads and deletes with 422. Faults (5xx, 403/429 with Retry-After or only x-ratelimit-reset, a stalled
upload) are queued per route; a request that ignores a rate limit's wait is counted in `early_retries`.
The browser download routes need no token: `/<owner>/<repo>/releases/latest/download/<asset>` redirects (302)
to the latest published, non-prerelease release's `/<owner>/<repo>/releases/download/<tag>/<asset>`, which
redirects to the asset's bytes on the second port (another host, as GitHub's asset storage is); drafts: 404.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = "ghp_test_not_a_real_token"
STAMP = "2026-01-01T00:00:00Z"


@dataclass
class Fault:
    """One injected answer: for `method` on a path (with its query) matching `route`, `times` times."""

    method: str
    route: str
    status: int = 502
    headers: dict = field(default_factory=dict)
    body: dict = field(default_factory=lambda: {"message": "Server Error"})
    times: int = 1
    stall: bool = False  # uploads: read half the body, then wait for `resume` (the test kills the client)


class State:
    def __init__(self, owner: str, repo: str, immutable: bool = False):
        self.owner, self.repo, self.repo_id, self.immutable = owner, repo, 4242, immutable
        self.releases: list[dict] = []
        self.assets: dict[int, list[dict]] = {}  # release id -> its assets
        self.ids = iter(range(1000, 10**9))
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict]] = []
        self.blocked_until = 0.0
        self.early_retries = 0
        self.stalled, self.resume = threading.Event(), threading.Event()
        self.api = self.uploads = ""

    # -- the objects, shaped as GitHub's documentation shows them -------------------------------
    def release_json(self, r: dict) -> dict:
        base = f"{self.api}/repos/{self.owner}/{self.repo}/releases/{r['id']}"
        web = f"{self.api}/{self.owner}/{self.repo}/releases"
        return {**r, "url": base, "assets_url": f"{base}/assets",
                "upload_url": f"{self.uploads}/repos/{self.owner}/{self.repo}/releases/{r['id']}/assets{{?name,label}}",
                "html_url": f"{web}/tag/{r['tag_name']}" if not r["draft"] else f"{web}/tag/untagged-{r['id']}",
                "node_id": f"RE_{r['id']}", "author": {"login": "octocat", "id": 1}, "created_at": STAMP,
                "immutable": bool(self.immutable and not r["draft"]),
                "assets": [self.asset_json(a) for a in self.assets.get(r["id"], [])]}

    def asset_json(self, a: dict) -> dict:
        return {k: v for k, v in a.items() if k != "data"} | {
            "url": f"{self.api}/repos/{self.owner}/{self.repo}/releases/assets/{a['id']}",
            "browser_download_url": f"{self.api}/{self.owner}/{self.repo}/releases/download/{a['tag']}/{a['name']}",
            "node_id": f"RA_{a['id']}", "label": None, "download_count": 0, "created_at": STAMP, "updated_at": STAMP,
            "uploader": {"login": "octocat", "id": 1}}

    def add_release(self, tag: str, draft: bool = True, name: str | None = None) -> dict:
        with self.lock:
            r = {"id": next(self.ids), "tag_name": tag, "target_commitish": "main", "name": name or tag, "body": "",
                 "draft": draft, "prerelease": False, "published_at": None if draft else STAMP}
            self.releases.insert(0, r)  # newest first, as GitHub lists them
            self.assets[r["id"]] = []
            return r

    def add_asset(self, release: dict, name: str, data: bytes, state: str = "uploaded", size: int | None = None):
        with self.lock:
            a = {"id": next(self.ids), "name": name, "state": state, "content_type": "application/octet-stream",
                 "size": len(data) if size is None else size, "tag": release["tag_name"], "data": data,
                 "digest": f"sha256:{hashlib.sha256(data).hexdigest()}" if state == "uploaded" else None}
            self.assets[release["id"]].append(a)
            return a

    def release(self, tag: str) -> list[dict]:
        return [r for r in self.releases if r["tag_name"] == tag]

    def web_asset(self, tag: str | None, name: str) -> dict | None:
        """The uploaded asset `name` of the published release `tag` (None: the latest), as a browser finds it."""
        with self.lock:
            published = [r for r in self.releases if not r["draft"] and (r["tag_name"] == tag if tag
                                                                          else not r["prerelease"])]
            found = [a for a in self.assets[published[0]["id"]] if a["name"] == name and a["state"] == "uploaded"] \
                if published else []
            return found[0] if found else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between a reply's headers and its body
    state: State
    uploads = False

    def log_message(self, *args):  # quiet
        pass

    def reply(self, status: int, body=None, headers: dict | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        self.end_headers()
        self.wfile.write(data)

    def fail(self, status: int, message: str, errors: list | None = None) -> None:
        body = {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)}
        self.reply(status, body | ({"errors": errors} if errors else {}))

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_one(self, method: str) -> None:
        st, url = self.state, urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with st.lock:
            st.requests.append((method, self.path, dict(self.headers)))
        web = method == "GET" and self.web_path(url.path)
        if not web and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.body()
            return self.fail(401, "Bad credentials")
        if self.headers.get("X-GitHub-Api-Version") not in (None, "2022-11-28", "2026-03-10"):
            self.body()
            return self.fail(400, "Invalid X-GitHub-Api-Version header")
        if time.time() < st.blocked_until:
            st.early_retries += 1
            self.body()
            return self.fail(403, "You have exceeded a secondary rate limit.")
        fault = self.take_fault(method, self.path)
        if fault and not fault.stall:
            self.body()
            if self.uploads and fault.status >= 500:  # GitHub: "may leave an empty asset with a state of starter"
                self.leave_starter(url.path, query.get("name", ""))
            wait = fault.headers.get("Retry-After") or (
                int(fault.headers.get("x-ratelimit-reset", 0)) - time.time() if "x-ratelimit-reset" in fault.headers
                else 0)
            st.blocked_until = time.time() + max(0.0, float(wait)) - 0.05 if fault.status in (403, 429) else 0
            return self.reply(fault.status, fault.body, fault.headers)
        route = self.web_route if web else self.upload_route if self.uploads else self.api_route
        return route(method, url.path, query, stall=bool(fault))

    def web_path(self, path: str) -> bool:
        st = self.state
        return bool(re.match(r"/release-assets/" if self.uploads else rf"/{st.owner}/{st.repo}/releases/", path))

    def web_route(self, method: str, path: str, query: dict, stall: bool = False) -> None:
        """A browser download: latest/download and download/<tag> redirect; the asset host serves the bytes."""
        st = self.state
        if self.uploads:
            found = [a for assets in st.assets.values() for a in assets if path == f"/release-assets/{a['id']}"]
            return self.send_bytes(found[0]["data"]) if found else self.fail(404, "Not Found")
        web = f"/{st.owner}/{st.repo}/releases"
        m = re.fullmatch(rf"{re.escape(web)}/(?:latest/download|download/([^/]+))/([^/]+)", path)
        asset = st.web_asset(m.group(1), m.group(2)) if m else None
        if asset is None:
            return self.fail(404, "Not Found")
        location = f"{st.uploads}/release-assets/{asset['id']}" if m.group(1) else \
            f"{st.api}{web}/download/{asset['tag']}/{asset['name']}"
        self.reply(302, None, {"Location": location})

    def send_bytes(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def leave_starter(self, path: str, name: str) -> None:
        with self.state.lock:
            for release in self.state.releases:
                if path.endswith(f"/releases/{release['id']}/assets") and name:
                    self.state.add_asset(release, name, b"", state="starter", size=0)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.state.lock:
            for fault in self.state.faults:
                if fault.method == method and re.search(fault.route, path) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def page(self, items: list, query: dict, path: str) -> None:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = [(page + 1, "next")] if page < last else []
        links += [(last, "last")] if page < last else [(1, "first"), (page - 1, "prev")] if page > 1 else []
        link = ", ".join(f'<{self.state.api}{path}?per_page={per_page}&page={n}>; rel="{rel}"' for n, rel in links)
        self.reply(200, chunk, {"Link": link} if link else {})

    def api_route(self, method: str, path: str, query: dict, stall: bool = False) -> None:
        st = self.state
        prefix = f"/repos/{st.owner}/{st.repo}/releases"
        alias = f"/repositories/{st.repo_id}/releases"
        m = re.fullmatch(rf"(?:{re.escape(prefix)}|{re.escape(alias)})(/.*)?", path)
        if not m:
            self.body()
            return self.fail(404, "Not Found")
        rest = m.group(1) or ""
        with st.lock:
            if method == "GET" and rest == "":
                return self.page([st.release_json(r) for r in st.releases], query, alias)
            if method == "POST" and rest == "":
                return self.create(json.loads(self.body() or b"{}"))
            if method == "GET" and (t := re.fullmatch(r"/tags/(.+)", rest)):
                published = [r for r in st.release(t.group(1)) if not r["draft"]]
                return self.reply(200, st.release_json(published[0])) if published else self.fail(404, "Not Found")
            if (a := re.fullmatch(r"/assets/(\d+)", rest)) and method in ("GET", "DELETE"):
                return self.asset(method, int(a.group(1)))
            r = re.fullmatch(r"/(\d+)(/assets)?", rest)
            found = [x for x in st.releases if r and x["id"] == int(r.group(1))]
            if not found:
                self.body()
                return self.fail(404, "Not Found")
            if r.group(2) and method == "GET":
                return self.page([st.asset_json(x) for x in st.assets[found[0]["id"]]], query,
                                 f"{alias}/{found[0]['id']}/assets")
            if not r.group(2) and method == "GET":
                return self.reply(200, st.release_json(found[0]))
            if not r.group(2) and method == "PATCH":
                return self.update(found[0], json.loads(self.body() or b"{}"))
        self.fail(404, "Not Found")

    def create(self, data: dict) -> None:
        st = self.state
        if not data.get("tag_name"):
            return self.fail(422, "Validation Failed", [{"resource": "Release", "code": "missing_field",
                                                         "field": "tag_name"}])
        if any(not r["draft"] for r in st.release(data["tag_name"])):
            return self.fail(422, "Validation Failed", [{"resource": "Release", "code": "already_exists",
                                                         "field": "tag_name"}])
        r = st.add_release(data["tag_name"], draft=bool(data.get("draft")), name=data.get("name"))
        r["body"] = data.get("body") or ""
        self.reply(201, st.release_json(r), {"Location": st.release_json(r)["url"]})

    def update(self, r: dict, data: dict) -> None:
        st = self.state
        if st.immutable and not r["draft"] and set(data) - {"name", "body"}:
            return self.fail(422, "Validation Failed", [{"resource": "Release", "code": "custom",
                                                         "message": "Cannot modify an immutable release"}])
        for key in ("tag_name", "name", "body", "prerelease"):
            if key in data:
                r[key] = data[key]
        if data.get("draft") is False and r["draft"]:
            if any(not x["draft"] for x in st.release(r["tag_name"])):
                return self.fail(422, "Validation Failed", [{"resource": "Release", "code": "already_exists",
                                                             "field": "tag_name"}])
            r["draft"], r["published_at"] = False, STAMP
        self.reply(200, st.release_json(r))

    def asset(self, method: str, asset_id: int) -> None:
        st = self.state
        for release in st.releases:
            for a in st.assets[release["id"]]:
                if a["id"] != asset_id:
                    continue
                if method == "GET":
                    return self.reply(200, st.asset_json(a))
                if st.immutable and not release["draft"]:
                    return self.fail(422, "Cannot delete assets of an immutable release")
                st.assets[release["id"]].remove(a)
                return self.reply(204)
        self.fail(404, "Not Found")

    def upload_route(self, method: str, path: str, query: dict, stall: bool = False) -> None:
        st = self.state
        m = re.fullmatch(rf"/repos/{re.escape(st.owner)}/{re.escape(st.repo)}/releases/(\d+)/assets", path)
        release = [r for r in st.releases if m and r["id"] == int(m.group(1))]
        if method != "POST" or not release:
            self.body()
            return self.fail(404, "Not Found")
        release = release[0]
        if "Content-Length" not in self.headers:
            return self.fail(411, "Length Required")
        if not self.headers.get("Content-Type") or not query.get("name") or "{" in path:
            self.body()
            return self.fail(422, "Validation Failed", [{"resource": "ReleaseAsset", "code": "missing_field",
                                                         "field": "name" if not query.get("name") else "content_type"}])
        name, length = query["name"], int(self.headers["Content-Length"])
        with st.lock:
            if st.immutable and not release["draft"]:
                self.body()
                return self.fail(422, "Cannot upload assets to an immutable release.")
            if any(a["name"] == name for a in st.assets[release["id"]]):
                self.body()
                return self.fail(422, "Validation Failed", [{"resource": "ReleaseAsset", "code": "already_exists",
                                                             "field": "name"}])
            a = st.add_asset(release, name, b"", state="starter", size=0)
        data = self.read_upload(length, stall)
        with st.lock:
            a["data"], a["size"] = data, len(data)
            if len(data) < length:  # the client went away mid-upload: the asset stays half there
                a["state"] = "open"
                return
            a.update(state="uploaded", content_type=self.headers["Content-Type"],
                     digest=f"sha256:{hashlib.sha256(data).hexdigest()}")
        self.reply(201, st.asset_json(a))

    def read_upload(self, length: int, stall: bool) -> bytes:
        """The body; with `stall`, half of it, then a wait for `resume` (the client is killed meanwhile)."""
        first = length // 2 if stall else length
        data = self.read_some(first)
        if stall and len(data) == first:
            self.state.stalled.set()
            self.state.resume.wait(30)
            data += self.read_some(length - first)
        return data

    def read_some(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.rfile.read(min(1 << 20, n - len(data)))
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def do_GET(self):
        self.handle_one("GET")

    def do_POST(self):
        self.handle_one("POST")

    def do_PATCH(self):
        self.handle_one("PATCH")

    def do_DELETE(self):
        self.handle_one("DELETE")


class FakeGitHub:
    """Both servers, started; `state` holds the repository. Stop with close()."""

    def __init__(self, owner: str = "acme", repo: str = "myapp", immutable: bool = False):
        self.state = State(owner, repo, immutable)
        self.servers = []
        for uploads in (False, True):
            handler = type("H", (Handler,), {"state": self.state, "uploads": uploads})
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)
        self.state.api = f"http://127.0.0.1:{self.servers[0].server_address[1]}"
        self.state.uploads = f"http://127.0.0.1:{self.servers[1].server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.state.api

    def close(self) -> None:
        self.state.resume.set()
        for server in self.servers:
            server.shutdown()
            server.server_close()


def make_dist(root, version: str = "1.2.3", targets=("aarch64-linux-gnu", "x86_64-linux-musl"), size: int = 2000,
              salt: bytes = b"", signed: bool = True):
    """A small `xrel dist` output dir (fake tarball bytes: publishing moves files, it does not read them)."""
    from pathlib import Path

    out = Path(root) / version
    out.mkdir(parents=True)
    artifacts, sums = [], []
    for i, target in enumerate(targets):
        name = f"myapp-{version}-otp27-{target}.tar.gz"
        data = (hashlib.sha256(salt + target.encode()).digest() * (size // 32 + 1))[: size + i]
        (out / name).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        artifacts.append({"file": name, "size": len(data), "sha256": sha, "target": target})
        sums.append(f"{sha}  {name}\n")
    (out / "SHA256SUMS").write_text("".join(sums))
    manifest = {"schema_version": 1, "app": "myapp", "release": "myapp", "version": version, "targets": artifacts}
    (out / "xrel-manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if signed:
        for name in ("SHA256SUMS", "xrel-manifest.json"):
            (out / f"{name}.minisig").write_text(f"untrusted comment: fake signature of {name}\nRUfake{salt!r}\n")
    return out
