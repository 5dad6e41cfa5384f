"""A dist's hot-upgrade packages: per target, from the release `--upgrade-from` names (xrel.upgrade), or the
gate's reasons why that target's nodes restart instead (a note; its manifest entry lists no upgrade)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from xrel.errors import BuildError
from xrel.release.results import TargetResult
from xrel.upgrade.source import FromSource


def target_upgrades(result: TargetResult, release: str, source: FromSource, staging: Path, epoch: int,
                    notes: list[str]) -> list[dict]:
    """The manifest's `upgrades` of one target: [] or the one package written into `staging`."""
    from xrel.release.marker import opened_release
    from xrel.upgrade.facts import Release
    from xrel.upgrade.package import package_name, plan_upgrade, write_package

    from_path = source.release_for(result.target)
    if from_path is None:
        notes.append(f"{result.target}: no upgrade package (no release of this target in {source.label})")
        return []
    with tempfile.TemporaryDirectory(prefix="xrel-upgrade-") as tmp, opened_release(from_path) as old_root:
        old, new = Release.open(old_root), Release.open(Path(result.release_dir))
        try:
            plan = plan_upgrade(old, new, Path(tmp))
        except BuildError as e:
            raise BuildError(f"{result.target}: upgrade package from {old.version}: {e.message}",
                             "`xrel appup --show` shows what goes in; `--upgrade-from none` makes the dist "
                             "without packages") from None
        if not plan.ok:
            why = "; ".join(plan.refused)
            notes.append(f"{result.target}: no hot upgrade from {old.version} (nodes restart): {why}")
            return []
        name = package_name(release, new.version, old.version, int(result.otp_version.split(".")[0]), result.target)
        sha = write_package(plan, staging / name, epoch)
        for warning in plan.warnings:
            notes.append(f"{result.target}: relup: {warning}")
    return [{"from_version": old.version, "file": name, "size": (staging / name).stat().st_size, "sha256": sha}]
