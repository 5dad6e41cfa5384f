"""musl Linux runtimes from Alpine's community repository (`erlang` / `erlangNN` plus `-dev`).

Trust comes from the RSA-signed APKINDEX of each branch (Alpine's keys ship in
recipes/alpine-keys/; more key files can be put into the directories named by
$XREL_ALPINE_KEYS, separated like PATH), then from the index's checksums of each package
(see apk.py). `--source alpine:<branch>` (e.g. `alpine:edge`) asks one branch only.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from xrel import recipes
from xrel.errors import NotAvailableError, UsageError, VerificationError
from xrel.runtimes import apk
from xrel.runtimes.base import FetchOptions, Offer, mirror, settings
from xrel.runtimes.normalize import adopt_system_root
from xrel.storage.archive import extract_tar
from xrel.storage.download import fetch_checked, fetch_index
from xrel.targets import Target
from xrel.versions import version_key

KEYS_ENV = "XREL_ALPINE_KEYS"
_RELEASE = re.compile(r"-r\d+$")
_PLAIN_VERSION = re.compile(r"^\d+(\.\d+)*$")


def _load_key(path: Path, data: bytes) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise UsageError(f"{path} is not a PEM public key: {e}", f"fix or remove it ({KEYS_ENV})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise UsageError(f"{path} is not an RSA public key", f"Alpine indexes are RSA-signed ({KEYS_ENV})")
    return key


def trusted_keys(arch: str) -> dict[str, rsa.RSAPublicKey]:
    """Key file name -> public key: the shipped keys for `arch` (hash-checked) and the user's."""
    keys = {}
    shipped = recipes.recipes_dir() / "alpine-keys"
    for name, pin in settings("alpine").keys.items():
        if pin.arches and arch not in pin.arches:
            continue
        if not (shipped / name).is_file():
            raise UsageError(f"the Alpine key {shipped / name} is missing", "reinstall xrel")
        data = (shipped / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != pin.sha256:
            raise VerificationError(f"the shipped Alpine key {shipped / name} does not match its pin",
                                    "reinstall xrel")
        keys[name] = _load_key(shipped / name, data)
    for folder in filter(None, os.environ.get(KEYS_ENV, "").split(os.pathsep)):
        if not Path(folder).is_dir():
            raise UsageError(f"{KEYS_ENV} names {folder}, which is not a directory",
                             "point it at directories holding <key name>.pub files")
        for path in sorted(Path(folder).glob("*.pub")):
            keys[path.name] = _load_key(path, path.read_bytes())
    return keys


@dataclass
class BranchIndex:
    """The verified APKINDEX of one branch's repository for one arch."""

    branch: str
    arch: str
    url: str
    key: str
    description: str
    records: list[dict[str, str]]



def load_index(branch: str, arch: str, offline: bool) -> BranchIndex:
    """Fetch (or, offline, reuse) and verify one branch's index; nothing unverified is returned."""
    repository = settings("alpine").repository
    url = f"{mirror('alpine')}/{branch}/{repository}/{arch}/APKINDEX.tar.gz"
    data = fetch_index(url, f"alpine-{branch}-{repository}-{arch}-APKINDEX.tar.gz", offline)
    key, records, description = apk.read_index(data, trusted_keys(arch), url)
    return BranchIndex(branch, arch, url, key, description, records)


def _branch_offers(index: BranchIndex, target: Target) -> list[Offer]:
    cfg = settings("alpine")
    pattern = re.compile(cfg.package_pattern)
    records = {(r.get("P"), r.get("V")): r for r in index.records if "C" in r}
    offers = []
    for (name, version), main in records.items():
        otp = _RELEASE.sub("", version or "")
        if not name or not pattern.match(name) or not _PLAIN_VERSION.match(otp):
            continue
        subs = [records.get((f"{name}-{sub}", version)) for sub in cfg.subpackages]
        if None in subs:
            continue
        offers.append(Offer(
            source="alpine", target=target.name, version=otp, url=_folder(index.url) + f"/{name}-{version}.apk",
            note=f"Alpine {index.branch} {name}-{version}; needs musl and the libraries it lists (apk D:)",
            details={"branch": index.branch, "arch": index.arch, "index_url": index.url,
                     "index_key": index.key, "index_description": index.description,
                     "records": [main, *subs]},
        ))
    return offers


def _folder(index_url: str) -> str:
    """Packages lie beside their index."""
    return index_url.rsplit("/", 1)[0]


def so_depends(records: list[dict[str, str]]) -> list[str]:
    """Shared libraries (apk `so:` dependencies) the packages need and do not provide themselves."""
    def names(field: str) -> set[str]:
        tokens = (t for r in records for t in r.get(field, "").split())
        return {re.split(r"[<>=~]", t[3:], maxsplit=1)[0] for t in tokens if t.startswith("so:")}

    return sorted(names("D") - names("p"))


class AlpineSource:
    name = "alpine"

    def offers(self, target: Target, options: FetchOptions) -> list[Offer]:
        cfg = settings("alpine")
        arch = cfg.arches.get(target.name)
        if not arch:
            return []
        branches = [options.location] if options.location else list(cfg.branches)
        found: dict[str, Offer] = {}
        missing: list[NotAvailableError] = []
        for branch in branches:
            try:
                index = load_index(branch, arch, options.offline)
            except NotAvailableError as e:  # a branch not (yet) published, or not cached offline
                missing.append(e)
                continue
            for offer in _branch_offers(index, target):
                found.setdefault(offer.version, offer)  # branches are newest first
        if not found and len(missing) == len(branches):
            raise NotAvailableError(f"no Alpine index for {arch} could be read ({missing[0].message})",
                                    missing[0].hint)
        return sorted(found.values(), key=lambda o: version_key(o.version), reverse=True)

    def install(self, offer: Offer, target: Target, dest: Path, options: FetchOptions) -> dict:
        details = offer.details
        records = details["records"]
        unpacked = dest / ".packages"
        urls, sha256 = [], {}
        for record in records:
            filename = f"{record['P']}-{record['V']}.apk"
            url = f"{_folder(details['index_url'])}/{filename}"
            _algorithm, identity = apk.identity_digest(record["C"])
            _path, digest, verified = fetch_checked(url, f"{identity.hex()[:16]}-{filename}",
                                                   lambda p, c=record["C"]: apk.verify_apk(p, c))
            extract_tar(io.BytesIO(verified.data), unpacked, reroot_absolute_links=True, name=filename)
            urls.append(url)
            sha256[filename] = digest
        adopt_system_root(unpacked, dest, f"the Alpine packages {', '.join(sha256)}")
        return {
            **{k: details[k] for k in ("branch", "index_url", "index_key", "index_description")},
            "alpine_arch": details["arch"],
            "packages": {r["P"]: r["V"] for r in records},
            "urls": urls,
            "sha256": sha256,
            "depends": {r["P"]: r.get("D", "").split() for r in records},
            "so_depends": so_depends(records),
            "left_out": list(settings("alpine").left_out),
        }


SOURCE = AlpineSource()
