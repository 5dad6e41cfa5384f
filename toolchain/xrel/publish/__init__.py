"""Publishing a `xrel dist` directory: to a GitHub release or to a plain directory a web server serves.

`publish(dist_dir, destination)` picks the backend from the destination (`github:OWNER/REPO`, `dir:PATH`,
`file:///PATH`); each backend is safe to re-run after any failure.
"""

from __future__ import annotations

from pathlib import Path

from xrel.publish.destination import DirDestination, GitHubDestination, parse_destination
from xrel.publish.dist import Dist, load_dist

__all__ = ["DirDestination", "Dist", "GitHubDestination", "load_dist", "parse_destination", "publish"]


def publish(dist_dir: Path, destination: str | GitHubDestination | DirDestination, tag: str | None = None) -> dict:
    """Publish the dist dir to `destination`; returns what was done (JSON-able)."""
    dist = load_dist(Path(dist_dir))
    dest = parse_destination(destination) if isinstance(destination, str) else destination
    if isinstance(dest, GitHubDestination):
        from xrel.publish.github import publish_github

        return publish_github(dist, dest, tag=tag)
    if tag is not None:
        from xrel.errors import UsageError

        raise UsageError("--tag applies to github: destinations only", "drop --tag for a dir: destination")
    from xrel.publish.directory import publish_dir

    return publish_dir(dist, dest)
