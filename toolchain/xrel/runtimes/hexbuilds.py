"""Ubuntu glibc runtimes from hex's build service (amd64, arm64).

Index: `<base>/<arch>/<ubuntu-X>/builds.txt`, one line per build,
`OTP-<V> <git sha> <date> [<sha256>]`; lines without the hash (builds before September 2024)
are refused unless the user passes --sha256. Branch builds (maint, master) and pre-releases are
not offered. The tarball `<base>/<arch>/<ubuntu-X>/OTP-<V>.tar.gz` holds one top folder with an
uninstalled tree, which otp_install turns into an installed, relocatable root.

When several Ubuntu releases have a version, the one with a published sha256 wins, then the
one with the lower glibc (the order of `oses` in recipes/sources.toml); a target with a glibc
floor (x86_64-linux-gnu.2.35) never gets a build that needs a newer glibc.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xrel.errors import NotAvailableError
from xrel.runtimes.base import FetchOptions, Offer, expected_sha256, mirror, settings
from xrel.runtimes.otp_install import install_minimal
from xrel.runtimes.unpack import unpack_otp_archive
from xrel.runtimes.versions import tag_version
from xrel.storage.download import fetch_index, fetch_verified
from xrel.storage.files import is_sha256
from xrel.targets import Target
from xrel.versions import version_key


@dataclass(frozen=True)
class Build:
    """One line of builds.txt."""

    version: str
    git_sha: str
    built_at: str
    sha256: str | None


def builds_txt_lines(text: str) -> list[tuple[str, str, str, str | None]]:
    """(tag, git sha, build date, sha256 or None) of every line of a hex builds.txt (OTP's and Elixir's);
    older lines have no sha256, short lines are skipped."""
    lines = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            sha256 = fields[3].lower() if len(fields) > 3 and is_sha256(fields[3]) else None
            lines.append((fields[0], fields[1], fields[2], sha256))
    return lines


def parse_builds_txt(text: str) -> list[Build]:
    """The tagged releases in a builds.txt (blank lines, branches and pre-releases skipped)."""
    return [Build(version, sha, date, sha256) for tag, sha, date, sha256 in builds_txt_lines(text)
            if (version := tag_version(tag)) is not None]


class HexBuildsSource:
    name = "hexbuilds"

    def _oses(self, target: Target) -> list[tuple[str, str]]:
        """(ubuntu-X, its glibc) the target can use, in order of preference."""
        cfg = settings(self.name)
        return [(name, cfg.glibc[name]) for name in cfg.oses
                if not target.glibc or version_key(cfg.glibc[name]) <= version_key(target.glibc)]

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        arch = settings(self.name).arches.get(target.name)
        if not arch:
            return []
        if not self._oses(target):
            lowest = min(settings(self.name).glibc.values(), key=version_key)
            raise NotAvailableError(f"hex's Ubuntu builds need glibc >= {lowest}, above the floor of {target.id}",
                                    "use another --source (debian), or a target with a higher glibc floor")
        candidates: dict[str, list[Offer]] = {}
        failures: list[NotAvailableError] = []
        for os_name, glibc in self._oses(target):
            folder = f"{mirror(self.name)}/{arch}/{os_name}"
            try:
                text = fetch_index(f"{folder}/builds.txt", f"hexbuilds-{arch}-{os_name}-builds.txt",
                                   options.offline).decode(errors="replace")
            except NotAvailableError as e:
                failures.append(e)
                continue
            ubuntu = os_name.split("-", 1)[1]
            for build in parse_builds_txt(text):
                candidates.setdefault(build.version, []).append(Offer(
                    source=self.name, target=target.name, version=build.version,
                    url=f"{folder}/OTP-{build.version}.tar.gz", sha256=build.sha256,
                    note=f"Ubuntu {ubuntu} build; its ERTS needs glibc >= {glibc} on the target"
                         + ("" if build.sha256 else "; no published sha256 (needs --sha256)"),
                    details={"os": os_name, "ubuntu": ubuntu, "glibc": glibc, "arch": arch,
                             "git_sha": build.git_sha, "built_at": build.built_at},
                ))
        if not candidates and failures:
            raise failures[0]
        chosen = [next((o for o in group if o.sha256), group[0]) for group in candidates.values()]
        return sorted(chosen, key=lambda o: version_key(o.version), reverse=True)

    def install(self, offer: Offer, target: Target, dest: Path, options: FetchOptions) -> dict:
        name = f"OTP-{offer.version}.tar.gz ({offer.details['os']}, {offer.details['arch']})"
        sha256 = expected_sha256(offer, options.sha256, "builds.txt", name,
                                 "builds from before September 2024 have none")
        archive = fetch_verified(offer.url, sha256)
        unpack_otp_archive(archive, dest, what=offer.url)
        made = install_minimal(dest)
        return {
            "urls": [offer.url],
            "sha256": {offer.url.rsplit("/", 1)[-1]: sha256},
            "trust": "builds.txt" if offer.sha256 else "given",
            "ubuntu": offer.details["ubuntu"],
            "ubuntu_glibc": offer.details["glibc"],
            "git_sha": offer.details["git_sha"],
            "built_at": offer.details["built_at"],
            "installed_by_xrel": made,
        }


SOURCE = HexBuildsSource()
