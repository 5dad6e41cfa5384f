"""A small GitHub REST client: auth headers, Link pagination, waits on rate limits, retries on 5xx.

GITHUB_API_URL (as GitHub Actions sets it) names the API; GITHUB_TOKEN or GH_TOKEN the token.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator

import requests

from xrel import progress
from xrel.errors import DownloadError, UsageError, XrelError

API_VERSION = "2022-11-28"
DEFAULT_API = "https://api.github.com"
ATTEMPTS = 5  # tries of one request on 5xx or a dropped connection
MAX_WAIT = float(os.environ.get("XREL_GITHUB_MAX_WAIT", "900"))  # longest rate-limit wait (s) before giving up
TIMEOUT = (15, 300)
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


class GitHubError(XrelError):
    """GitHub refused a request (one line: the status, GitHub's message, the fix)."""

    exit_code = 5

    def __init__(self, message: str, hint: str | None = None, status: int = 0, body: object = None):
        super().__init__(message, hint)
        self.status = status
        self.body = body


def token_from_env() -> str:
    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
    if not token:
        raise UsageError("no GitHub token", "set GITHUB_TOKEN or GH_TOKEN to a token with contents: write")
    return token


def next_link(response: requests.Response) -> str | None:
    """The rel="next" URL of a paginated answer (followed as given: GitHub's may name /repositories/<id>)."""
    links = {rel: url for url, rel in _LINK.findall(response.headers.get("Link", ""))}
    return links.get("next")


def rate_limit_wait(response: requests.Response, now: float | None = None) -> float | None:
    """Seconds to wait before retrying a rate-limited answer (403/429), None when it is not one."""
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    if headers.get("Retry-After", "").strip().isdigit():
        return float(headers["Retry-After"])
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset", "").isdigit():
        return max(0.0, int(headers["x-ratelimit-reset"]) - (now or time.time())) + 1
    if response.status_code == 429 or "rate limit" in _message(response).lower():
        return 60.0  # a secondary limit without headers: GitHub asks for at least a minute
    return None


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        errors = body.get("errors") or []
        detail = "; ".join(str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict))
        return f"{body.get('message', '')}{f' ({detail})' if detail else ''}"
    return ""


class GitHubClient:
    """Requests to one GitHub API; every answer outside 2xx becomes a GitHubError after waits and retries."""

    def __init__(self, token: str, api_url: str | None = None, sleep=time.sleep):
        self.api = (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/")
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers.update({
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "xrel-publish",
        })

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.api}{path}"

    def request(self, method: str, path: str, retry: bool = True, body: Callable[[], object] | None = None,
                **kwargs) -> requests.Response:
        """One request; rate limits are waited out, 5xx and dropped connections retried when `retry`.
        `body` makes a fresh request body for every send (a stream is used up by the first)."""
        url, waited = self.url(path), 0.0
        for attempt in range(1, ATTEMPTS + 1):
            try:
                data = {"data": body()} if body else {}
                response = self.session.request(method, url, timeout=TIMEOUT, **data, **kwargs)
            except requests.RequestException as e:
                if not retry or attempt == ATTEMPTS:
                    raise DownloadError(f"{method} {url} failed: {e}", "check the network, then re-run") from None
                self.sleep(min(2 ** (attempt - 1), 30))
                continue
            wait = rate_limit_wait(response)
            if wait is not None:
                if waited + wait > MAX_WAIT:
                    raise GitHubError(f"GitHub rate limit: {method} {url} refused for {wait:.0f}s more",
                                      "re-run later; publishing resumes where it stopped", response.status_code)
                progress.note(f"GitHub rate limit: waiting {wait:.0f}s")
                self.sleep(wait)
                waited += wait
                continue
            if response.status_code >= 500 and retry and attempt < ATTEMPTS:
                self.sleep(min(2 ** (attempt - 1), 30))
                continue
            return self._checked(method, url, response)
        raise GitHubError(f"{method} {url}: still rate limited", "re-run later")

    def _checked(self, method: str, url: str, response: requests.Response) -> requests.Response:
        if response.ok:
            return response
        status, message = response.status_code, _message(response)
        hints = {401: "set GITHUB_TOKEN or GH_TOKEN to a valid token",
                 403: "give the token contents: write on the repository",
                 404: "check OWNER/REPO and that the token can see the repository"}
        body = None
        with contextlib.suppress(ValueError):
            body = response.json()
        raise GitHubError(f"GitHub {status} on {method} {url}: {message or response.reason}",
                          hints.get(status, "re-run; publishing resumes where it stopped"), status, body)

    def paged(self, path: str, per_page: int = 100) -> Iterator[dict]:
        """Every item of a paginated list, following Link rel="next"."""
        url: str | None = self.url(path)
        params: dict | None = {"per_page": per_page}
        while url:
            response = self.request("GET", url, params=params)
            items = response.json()
            if not isinstance(items, list):
                raise GitHubError(f"GitHub answered GET {url} with no list", "check GITHUB_API_URL")
            yield from items
            url, params = next_link(response), None  # the next link carries its own query
