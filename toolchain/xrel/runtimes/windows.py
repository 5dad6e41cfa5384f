"""Windows runtimes: erlang/otp's `otp_win64_<V>.zip` release assets (OTP 27.1 and newer).

No checksum is published for the zips, so they are trusted on first use: the first download's
sha256 is pinned in the cache (`pins/`), and every later download must match it; --sha256
checks (and re-pins) a hash the user got elsewhere. There is no index either: offered are the
releases listed in recipes/sources.toml, those pinned in the cache, and an exact version the
user asks for that a HEAD request finds upstream.

After unzipping, the files that only belong to the installer are removed: every `erl.ini`
(they name the CI machine's build path), Install.exe/.ini, Uninstall.exe, and vc_redist.exe
(a 32-bit installer of the Visual C++ runtime, which the target needs: see the offer note);
the list is `installer_leftovers` in recipes/sources.toml.
"""

from __future__ import annotations

import re
from pathlib import Path

from xrel.errors import NotAvailableError
from xrel.runtimes.base import FetchOptions, Offer, mirror, settings
from xrel.runtimes.unpack import unpack_otp_archive
from xrel.storage import cache
from xrel.storage.download import fetch_pinned, url_exists
from xrel.storage.files import sha256_file
from xrel.targets import Target
from xrel.versions import release, version_key

_PIN = re.compile(r"^windows-(?P<asset>[a-z0-9_]+)_(?P<version>\d+(?:\.\d+)*)\.zip\.sha256$")


def zip_name(asset: str, version: str) -> str:
    return f"{asset}_{version}.zip"


def pin_file(asset: str, version: str) -> Path:
    return cache.area("pins") / f"windows-{zip_name(asset, version)}.sha256"


def pinned_versions(asset: str) -> dict[str, str]:
    """version -> pinned sha256, for every zip of this kind pinned in the cache."""
    found = {}
    for pin in cache.area("pins").glob("windows-*.sha256"):
        m = _PIN.match(pin.name)
        if m and m.group("asset") == asset:
            found[m.group("version")] = pin.read_text().split()[0].lower()
    return found


def before_first_zip(request: tuple[int, ...], first: tuple[int, ...]) -> bool:
    """True when no version matching `request` can be as new as `first` (27 can, 27.0 cannot)."""
    return request < first[: len(request)]


class WindowsSource:
    name = "windows"

    def url(self, asset: str, version: str) -> str:
        return f"{mirror(self.name)}/OTP-{version}/{zip_name(asset, version)}"

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        cfg = settings(self.name)
        asset = cfg.assets.get(target.name)
        if not asset:
            return []
        first = release(cfg.first_zip)
        request = options.request
        if request and before_first_zip(request, first):
            wanted = ".".join(map(str, request))
            raise NotAvailableError(
                f"OTP {wanted} for Windows is published only as an installer ({asset}_{wanted}.exe), "
                f"not as a zip; zips exist from OTP {cfg.first_zip} on",
                f"ask for --otp {cfg.first_zip} or newer",
            )
        pins = pinned_versions(asset)
        found = dict.fromkeys(cfg.known_zips, "listed in xrel's recipes")
        found.update(dict.fromkeys(pins, "pinned in the cache"))
        exact = ".".join(map(str, request)) if request and len(request) >= 2 else None
        if exact and exact not in found and not options.offline and url_exists(self.url(asset, exact)):
            found[exact] = "found upstream"
        offers = [
            Offer(source=self.name, target=target.name, version=version, url=self.url(asset, version),
                  sha256=pins.get(version),
                  note=("trusted on first use (no published checksum; pinned: "
                        f"{'yes' if version in pins else 'not yet'}); needs the Microsoft Visual C++ "
                        "runtime (vc_redist.x64.exe) on the target"),
                  details={"asset": asset, "known_from": how})
            for version, how in found.items() if version_key(version) >= version_key(cfg.first_zip)
        ]
        return sorted(offers, key=lambda o: version_key(o.version), reverse=True)

    def install(self, offer: Offer, target: Target, dest: Path, options: FetchOptions) -> dict:
        pin = pin_file(offer.details["asset"], offer.version)
        archive, sha256, trust = fetch_pinned(offer.url, pin, options.sha256)
        unpack_otp_archive(archive, dest, what=offer.url)
        removed = remove_installer_files(dest)
        installer_hash = dest / "installer.sha256"
        return {
            "urls": [offer.url],
            "sha256": {offer.url.rsplit("/", 1)[-1]: sha256},
            "trust": f"{trust} ({pin})",
            "installer_sha256": installer_hash.read_text().split()[0] if installer_hash.is_file() else None,
            "removed_installer_files": removed,
            "needs": "the Microsoft Visual C++ runtime (vc_redist.x64.exe) on the target",
        }


def remove_installer_files(root: Path) -> dict[str, str]:
    """Delete every erl.ini and the installer's own programs; returns {path: sha256} of each."""
    doomed = [*root.rglob("erl.ini"), *(root / name for name in settings("windows").installer_leftovers)]
    removed = {}
    for path in doomed:
        if path.is_file() and not path.is_symlink():
            removed[str(path.relative_to(root))] = sha256_file(path)
            path.unlink()
    return removed


SOURCE = WindowsSource()
