"""Where `xrel publish` sends a dist dir: `github:OWNER/REPO`, `dir:PATH` or `file:///PATH`, from the command
line or from xrel.toml's `[publish] to = "..."`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from xrel.errors import UsageError

if TYPE_CHECKING:
    from xrel.project.locator import Locator

_REPO = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100})$")
FORMS = 'github:OWNER/REPO, dir:PATH or file:///PATH'


@dataclass(frozen=True)
class GitHubDestination:
    owner: str
    repo: str

    def __str__(self) -> str:
        return f"github:{self.owner}/{self.repo}"


@dataclass(frozen=True)
class DirDestination:
    path: Path

    def __str__(self) -> str:
        return f"dir:{self.path}"


def parse_destination(text: str, base: Path | None = None) -> GitHubDestination | DirDestination:
    """A destination string, checked; a relative dir: PATH is resolved against `base` (default: the cwd)."""
    text = text.strip()
    if text.startswith("github:"):
        match = _REPO.match(text[len("github:"):])
        if not match or match.group(2) in (".", ".."):
            raise UsageError(f"{text!r} is not a GitHub repository", "write github:OWNER/REPO, e.g. github:acme/myapp")
        return GitHubDestination(match.group(1), match.group(2).removesuffix(".git"))
    if text.startswith("dir:"):
        raw = text[len("dir:"):]
        if not raw:
            raise UsageError("dir: names no directory", "write dir:PATH, e.g. dir:/srv/releases")
        return DirDestination(((base or Path.cwd()) / Path(raw).expanduser()).resolve())
    if text.startswith("file:"):
        url = urlsplit(text)
        if url.netloc not in ("", "localhost") or not url.path.startswith("/"):
            raise UsageError(f"{text!r} is not a local file URL", "write file:///absolute/path (three slashes)")
        return DirDestination(Path(unquote(url.path)).resolve())
    raise UsageError(f"unknown publish destination {text!r}", f"write {FORMS}")


@dataclass(frozen=True)
class PublishConfig:
    """xrel.toml's [publish] table."""

    to: GitHubDestination | DirDestination | None = None


def parse_publish_table(table: dict, loc: Locator) -> PublishConfig:
    """[publish] in xrel.toml: `to = "github:OWNER/REPO"` or `"dir:PATH"` (relative to xrel.toml)."""
    for key in table:
        if key != "to":
            raise loc.error(key, f"unknown key '{key}' in [publish]", "known keys: to")
    value = table.get("to")
    if value is None:
        return PublishConfig()
    if not isinstance(value, str) or not value.strip():
        raise loc.error("to", f"to in [publish] must be a non-empty string, not {value!r}",
                        'write to = "github:OWNER/REPO" or to = "dir:PATH"')
    try:
        return PublishConfig(parse_destination(value, base=loc.path.parent))
    except UsageError as e:
        raise loc.error("to", f"to in [publish]: {e.message}", e.hint) from None
