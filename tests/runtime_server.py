"""A local upstream for runtime-source tests: pytest-httpserver publishing files at URL paths,
honouring Range requests, optionally cutting the first response short or streaming slowly,
and recording every request it answered."""

from __future__ import annotations

import functools
import re
import time

from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

# An address, not "localhost": a minimal root (a container, a fresh debootstrap) may have no /etc/hosts.
LOOPBACK = "127.0.0.1"


class Upstream:
    def __init__(self) -> None:
        self.server = HTTPServer(host=LOOPBACK, threaded=True)
        self.server.expect_request(re.compile(".*")).respond_with_handler(self._dispatch)
        self.server.start()
        self.files: dict[str, functools.partial] = {}
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Range header)

    def url(self, path: str = "") -> str:
        return self.server.url_for("/" + path.lstrip("/")).rstrip("/")

    def reset(self) -> None:
        self.files.clear()
        self.seen.clear()

    def _dispatch(self, request: Request) -> Response:
        self.seen.append((request.method, request.path, request.headers.get("Range")))
        answer = self.files.get(request.path)
        return answer(request) if answer else Response("not found", status=404)

    def publish(self, path: str, data: bytes, *, truncate_first: int | None = None,
                chunk_delay: float = 0.0) -> None:
        """Serve `data` at `path` (GET and HEAD; publish again to change it).

        `truncate_first`: the first GET sends only that many bytes, then closes the connection.
        `chunk_delay`: seconds to wait before each 64 KiB chunk.
        """
        state = {"truncated": truncate_first is None}
        self.files["/" + path.lstrip("/")] = functools.partial(self._answer, data, state, truncate_first,
                                                               chunk_delay)

    def count(self, path: str, method: str = "GET") -> int:
        return sum(1 for m, p, _r in self.seen if p == "/" + path.lstrip("/") and m == method)

    def ranges(self, path: str) -> list[str | None]:
        return [r for m, p, r in self.seen if p == "/" + path.lstrip("/") and m == "GET"]

    def _answer(self, data: bytes, state: dict, truncate_first: int | None, chunk_delay: float,
                request: Request) -> Response:
        start = 0
        m = re.match(r"bytes=(\d+)-$", request.headers.get("Range", ""))
        if m and int(m.group(1)) < len(data):
            start = int(m.group(1))
        elif m:
            return Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        body = data[start:]
        headers = {"Content-Length": str(len(body)), "Accept-Ranges": "bytes", "Connection": "close"}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if request.method == "HEAD":
            return Response(status=200, headers=headers)
        if not state["truncated"] and request.method == "GET":
            state["truncated"] = True
            body = body[:truncate_first]
        return Response(_chunks(body, chunk_delay), status=206 if start else 200, headers=headers,
                        direct_passthrough=True)


def _chunks(body: bytes, delay: float):
    for i in range(0, len(body), 1 << 16):
        if delay:
            time.sleep(delay)
        yield body[i:i + (1 << 16)]
