"""`xrel appup --show`: the gate's verdict and the appups an upgrade package would hold, per target, written
nowhere but a temp dir."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xrel.errors import UsageError


@dataclass
class Review:
    target: str | None
    from_version: str | None
    to_version: str
    refused: list[str] = field(default_factory=list)
    appups: dict[str, str] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    note: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def review_one(from_path: Path | None, new_root: Path, target: str | None) -> Review:
    """One target's review: the from-release against the new one."""
    from xrel.release.marker import opened_release
    from xrel.upgrade.facts import Release
    from xrel.upgrade.package import plan_upgrade

    new = Release.open(new_root)
    if from_path is None:
        return Review(target, None, new.version, note="no release of this target to upgrade from")
    with tempfile.TemporaryDirectory(prefix="xrel-appup-") as tmp, opened_release(from_path) as old_root:
        plan = plan_upgrade(Release.open(old_root), new, Path(tmp))
        return Review(target or new.target, plan.old.version, new.version, plan.refused, plan.appups(),
                      plan.renamed)


def reviews(project_dir: str | Path, upgrade_from: str | None, to: str | Path | None = None,
            targets: Sequence[str] = ()) -> Iterator[Review]:
    """The reviews of the new release `to` (default: the project built for `targets`) from `upgrade_from`."""
    from xrel.release.marker import opened_release
    from xrel.upgrade.source import check_spec, resolve

    check_spec(upgrade_from)
    project = Path(project_dir).resolve()
    if to is not None:
        with opened_release(to) as new_root:
            from xrel.upgrade.facts import Release

            new = Release.open(new_root)
            source = _source(upgrade_from, project, new.version, resolve)
            yield review_one(source.release_for(new.target or ""), new_root, new.target)
        return
    from xrel.release.build import build

    built = build(project_dir=project, targets=targets)
    source = _source(upgrade_from, project, built.version, resolve)
    for result in built.targets:
        yield review_one(source.release_for(result.target), Path(result.release_dir), result.target)


def _source(spec, project: Path, version: str, resolve):
    source = resolve(spec, project, project / "dist", version)
    if source is None:
        raise UsageError("nothing to upgrade from: no --upgrade-from and no earlier version published by [publish]",
                         "pass --upgrade-from VERSION or a dist dir / release tarball")
    return source
