"""An upgrade package from one release to the next, in the layout release_handler:unpack_release/1 takes
when the node puts it at releases/<rel>-<vsn>.tar.gz of its release root (see UPGRADE.md):

    releases/<rel>-<vsn>.rel
    releases/<vsn>/          everything mix put there, plus relup and xrel-upgrade.json
    lib/<app>-<vsn>/         every application the running release does not have (new, or a new version)

An application whose bytes changed under the same version gets `<vsn>+xrel.<hash8>` in the package (its
.app, the .rel, start.script and start.boot): unpacking keeps files already on the node, so the old
directory name would keep the old code.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from xrel.upgrade import erlang
from xrel.upgrade.facts import Release
from xrel.upgrade.gate import reasons

INFO = "xrel-upgrade.json"


@dataclass
class Plan:
    """What an upgrade from `old` to `new` does: refused (reasons), or the package staged in `staged`."""

    old: Release
    new: Release
    refused: list[str] = field(default_factory=list)
    versions: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # changed app -> (old, new vsn)
    renamed: dict[str, str] = field(default_factory=dict)  # app -> the distinct version it gets
    kinds: list[tuple[str, str, str]] = field(default_factory=list)  # (app, module, kind) of every changed module
    user_appups: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    staged: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.refused

    def appups(self) -> dict[str, str]:
        """app -> the text of the .appup in the package (generated, or the user's)."""
        if not self.staged:
            return {}
        return {app: (self.staged / "lib" / f"{app}-{vsn}" / "ebin" / f"{app}.appup").read_text(encoding="utf-8")
                for app, (old, vsn) in sorted(self.versions.items()) if old is not None}

    def info(self) -> dict:
        """releases/<vsn>/xrel-upgrade.json: what the node agent reads."""
        return {
            "from_version": self.old.version, "to_version": self.new.version, "target": self.new.target,
            "release": self.new.name, "gate": "ok" if self.ok else "refused", "reasons": self.refused,
            "changed_apps": sorted(self.versions),
            "app_versions": {a: {"from": o, "to": n} for a, (o, n) in sorted(self.versions.items())},
            "renamed_apps": dict(sorted(self.renamed.items())),
            "from_apps": dict(sorted(self.old.apps.items())),
            "removed_apps": sorted(self.old.apps.keys() - self.new.apps.keys()),
            "modules_with_code_change": sorted([a, m] for a, m, k in self.kinds if k == "advanced"),
            "user_appups": sorted(self.user_appups),
        }


def distinct_version(release: Release, app: str) -> str:
    """The version an app with new bytes under its old version gets in the package."""
    return f"{release.apps[app]}+xrel.{release.app_hashes[app][:8]}"


def changed_apps(old: Release, new: Release) -> tuple[dict[str, tuple[str | None, str]], dict[str, str]]:
    """(app -> (old version or None, version in the package)) of every app the node lacks; the renamed ones."""
    versions, renamed = {}, {}
    for app, vsn in new.apps.items():
        before = old.apps.get(app)
        if before == vsn and old.app_hashes[app] != new.app_hashes[app]:
            renamed[app] = distinct_version(new, app)
            versions[app] = (before, renamed[app])
        elif before != vsn:
            versions[app] = (before, vsn)
    return versions, renamed


def stage(plan: Plan, scratch: Path) -> Path:
    """The package's tree in scratch/package: releases/<vsn>/, the .rel, the libs the node lacks."""
    new, root = plan.new, scratch / "package"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(new.release_dir, root / "releases" / new.version, symlinks=True)
    for app, (_old, vsn) in plan.versions.items():
        shutil.copytree(new.lib(app), root / "lib" / f"{app}-{vsn}", symlinks=True)
    rel = root / "releases" / new.version / f"{new.name}.rel"
    if plan.renamed:
        apps = [(app, new.apps[app], vsn, root / "lib" / f"{app}-{vsn}" / "ebin" / f"{app}.app")
                for app, vsn in sorted(plan.renamed.items())]
        erlang.run("rename", (rel.parent, rel, apps), scratch)
    return root


def make_appups(plan: Plan, root: Path, scratch: Path) -> None:
    """An .appup for every app in both releases: generated from the beam diff unless the user wrote one."""
    apps = [(app, old, vsn, plan.old.lib(app) / "ebin", root / "lib" / f"{app}-{vsn}" / "ebin")
            for app, (old, vsn) in sorted(plan.versions.items()) if old is not None]
    for line in erlang.run("appups", apps, scratch) if apps else []:
        parts = line.split()
        if parts[:1] == ["module"] and len(parts) == 4:
            plan.kinds.append((parts[1], parts[2], parts[3]))
        elif parts[:1] == ["user"] and len(parts) == 2:
            plan.user_appups.append(parts[1])


def make_relup(plan: Plan, root: Path, scratch: Path) -> None:
    """releases/<vsn>/relup: systools with both releases' lib/*/ebin on the path."""
    release_dir = root / "releases" / plan.new.version
    paths = sorted(str(p) for p in plan.old.root.glob("lib/*/ebin")) + sorted(str(p) for p in root.glob("lib/*/ebin"))
    request = (str(release_dir / plan.new.name), str(plan.old.rel_file.with_suffix("")), str(release_dir), paths)
    plan.warnings += [line.removeprefix("warning ") for line in erlang.run("relup", request, scratch)
                      if line.startswith("warning ")]


def plan_upgrade(old: Release, new: Release, scratch: Path) -> Plan:
    """The gate's verdict and, when it allows, the package's tree staged under `scratch`."""
    plan = Plan(old, new, refused=reasons(old, new))
    if not plan.ok:
        return plan
    plan.versions, plan.renamed = changed_apps(old, new)
    root = stage(plan, scratch)
    make_appups(plan, root, scratch)
    make_relup(plan, root, scratch)
    release_dir = root / "releases" / new.version
    shutil.copyfile(release_dir / f"{new.name}.rel", root / "releases" / f"{new.name}-{new.version}.rel")
    (release_dir / INFO).write_text(json.dumps(plan.info(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    plan.staged = root
    return plan


def package_name(release: str, version: str, from_version: str, otp_major: int, target: str) -> str:
    return f"{release}-{version}-upgrade-from-{from_version}-otp{otp_major}-{target}.tar.gz"


def write_package(plan: Plan, dest: Path, epoch: int) -> str:
    """The staged package as a reproducible tarball at `dest` (nothing beside it); its sha256."""
    from xrel.release.tarball import write_tarball

    work = plan.staged.parent / "tarball" / dest.name
    sha = write_tarball(plan.staged, work, epoch, exclude=frozenset())
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(work, dest)
    return sha
