"""The one download function: retries with backoff, resume, timeouts, a bar, sha256 checked."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests

from xrel import progress
from xrel.errors import DownloadError, NotAvailableError, VerificationError
from xrel.storage import cache
from xrel.storage.files import atomic_write, sha256_file

CHUNK = 1 << 16
RETRIES = 4
TIMEOUT = (15, 60)  # connect, read (seconds between bytes)
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
T = TypeVar("T")

_session: requests.Session | None = None


def session() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
        _session.headers["User-Agent"] = "xrel (+https://pypi.org/project/xrel)"
    return _session


def download(url: str, dest: Path, sha256: str | None = None, *, label: str | None = None) -> Path:
    """Fetch `url` to `dest`, resuming `dest.part`; verify `sha256` before renaming into place.

    A 4xx is final (NotAvailableError for 404/410); network errors and 5xx are retried with
    backoff. On a hash mismatch the partial file is deleted and VerificationError raised; when
    the mismatch may come from an old `.part` it resumed, it first downloads once more from zero.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumed = part.exists() and part.stat().st_size > 0
    _fetch_with_retries(url, part, label or dest.name)
    if sha256 is not None:
        actual = sha256_file(part)
        if actual != sha256.lower() and resumed:
            part.unlink()
            _fetch_with_retries(url, part, label or dest.name)
            actual = sha256_file(part)
        if actual != sha256.lower():
            part.unlink(missing_ok=True)
            raise VerificationError(
                f"sha256 mismatch for {url}: expected {sha256}, got {actual}; the file was deleted",
                "the upstream file changed or was tampered with; do not trust it",
            )
    os.replace(part, dest)
    return dest


def _fetch_with_retries(url: str, part: Path, label: str) -> None:
    delay = 1.0
    for attempt in range(1, RETRIES + 1):
        try:
            _fetch_into(url, part, label)
            return
        except _Retryable as e:
            if attempt == RETRIES:
                raise DownloadError(f"download of {url} failed after {RETRIES} tries: {e}",
                                    "check the network or the mirror setting") from None
            time.sleep(delay)
            delay *= 2


class _Retryable(Exception):
    pass


def _fetch_into(url: str, part: Path, label: str) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = session().get(url, headers=headers, stream=True, timeout=TIMEOUT)
    except (requests.ConnectionError, requests.Timeout) as e:
        raise _Retryable(str(e.__class__.__name__)) from None
    with response:
        if response.status_code == 416 and offset:  # the .part is already whole
            return
        if response.status_code in _RETRY_STATUS:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code in (404, 410):
            raise NotAvailableError(f"{url} does not exist (HTTP {response.status_code})")
        if response.status_code >= 400:
            raise DownloadError(f"download of {url} refused: HTTP {response.status_code}")
        append = response.status_code == 206 and offset > 0
        if not append:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        bar = progress.bar(total, label)
        bar.update(offset)
        try:
            with open(part, "ab" if append else "wb") as f:
                for chunk in response.iter_content(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            raise _Retryable(e.__class__.__name__) from None
        finally:
            bar.close()
        if total is not None and part.stat().st_size < total:
            raise _Retryable("connection closed early")


def verified_path(url: str, sha256: str, name: str | None = None) -> Path:
    """Where fetch_verified keeps that file (`downloads/<sha256 prefix>-<name>`)."""
    return cache.area("downloads") / f"{sha256.lower()[:16]}-{name or url.rsplit('/', 1)[-1]}"


def fetch_verified(url: str, sha256: str, name: str | None = None) -> Path:
    """A content-addressed download: `downloads/<sha256>-<name>`, re-hashed on a cache hit."""
    sha256 = sha256.lower()
    dest = verified_path(url, sha256, name)
    filename = dest.name
    with cache.locked("downloads", filename):
        if dest.exists():
            if sha256_file(dest) == sha256:
                return dest
            dest.unlink()
        return download(url, dest, sha256)


def fetch_unverified(url: str, name: str) -> tuple[Path, str]:
    """Download a file whose hash is not known in advance; returns (path, sha256).

    Callers verify it another way (a signature, or a pin they check afterwards).
    """
    dest = cache.area("downloads") / name
    with cache.locked("downloads", name):
        download(url, dest, None)
        return dest, sha256_file(dest)


def fetch_checked(url: str, name: str, check: Callable[[Path], T]) -> tuple[Path, str, T]:
    """A download verified by `check` (which raises VerificationError): (path, sha256, its result).

    For files whose hash is not known in advance but that can be checked another way (an apk
    against its signed index). A cached file that passes is reused; a file that fails is deleted.
    """
    dest = cache.area("downloads") / name
    with cache.locked("downloads", name):
        if dest.exists():
            with contextlib.suppress(VerificationError):
                return _checked(dest, check)
        download(url, dest, None)
        return _checked(dest, check)


def _checked(path: Path, check: Callable[[Path], T]) -> tuple[Path, str, T]:
    try:
        return path, sha256_file(path), check(path)
    except VerificationError:
        path.unlink(missing_ok=True)
        raise


def fetch_pinned(url: str, pin: Path, sha256: str | None = None) -> tuple[Path, str, str]:
    """Trust on first use, for files with no published checksum: (path, sha256, how trusted).

    A `sha256` given by the user is checked and (re)written to the `pin` file; otherwise an
    existing pin is checked; otherwise the first download is hashed and pinned ("first-use").
    A download that differs from the pin is deleted and a VerificationError names the pin.
    """
    with cache.locked("pins", pin.name):
        pinned = pin.read_text().split()[0].lower() if pin.is_file() else None
        if sha256 or pinned:
            try:
                path = fetch_verified(url, sha256 or pinned)
            except VerificationError as e:
                if sha256:
                    raise
                raise VerificationError(f"{e.message}; that sha256 was pinned on first use in {pin}",
                                        f"upstream changed the file or it was tampered with; if you trust the "
                                        f"new file, pass --sha256 or delete {pin}") from None
            digest, how = (sha256 or pinned).lower(), ("given" if sha256 else "pinned")
        else:
            first, digest = fetch_unverified(url, f"unpinned-{url.rsplit('/', 1)[-1]}")
            path = verified_path(url, digest)
            os.replace(first, path)
            how = "first-use"
        if digest != pinned:
            atomic_write(pin, f"{digest}  {url}\n")
        return path, digest, how


def url_exists(url: str) -> bool:
    """A HEAD request (redirects followed): True for 2xx, False for 404/410."""
    try:
        response = session().head(url, allow_redirects=True, timeout=TIMEOUT)
    except (requests.ConnectionError, requests.Timeout) as e:
        raise DownloadError(f"cannot reach {url}: {e.__class__.__name__}",
                            "check the network or the mirror setting") from None
    if response.status_code in (404, 410):
        return False
    if response.status_code >= 400:
        raise DownloadError(f"{url} answered HTTP {response.status_code}")
    return True


def fetch_index(url: str, name: str, offline: bool = False) -> bytes:
    """A small mutable document (an index): fetched fresh, kept for --offline runs."""
    dest = cache.area("downloads") / f"index-{name}"
    with cache.locked("downloads", dest.name):
        if offline:
            if not dest.exists():
                raise NotAvailableError(
                    f"offline, and the index {url} was never fetched",
                    f"run once online, or put that file at {dest}",
                )
        else:
            dest.with_name(dest.name + ".part").unlink(missing_ok=True)
            download(url, dest, None, label=name)
        return dest.read_bytes()
