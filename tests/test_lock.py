"""xrel.lock: the file (round trip, deterministic, malformed), --locked differences, and fetching
exactly the locked bytes (cache hit offline, a changed upstream hash refused, a vanished Debian revision)."""

from __future__ import annotations

from pathlib import Path

import pytest
from debian.debian_support import Version

import runtime_fixtures as rf
import upstream_layouts as layouts
from conftest import needs_apt
from xrel.debian import suites
from xrel.errors import NotAvailableError, UsageError, VerificationError
from xrel.project.lock import (
    LOCK_FILE,
    Lock,
    LockedRuntime,
    check_locked,
    fetch_locked,
    locked_runtime_from,
    read_lock,
    write_lock,
)
from xrel.runtimes import Runtime, fetch_runtime
from xrel.runtimes.debian import _wanted_or_newest
from xrel.targets import Target

HEX = "x86_64-linux-gnu"
HEX_FOLDER = "hexbuilds/amd64/ubuntu-22.04"
DEB = "1:25.2.3+dfsg-1+deb12u4"


def debian_entry(revision: str = DEB, sha: str = "ab" * 32) -> LockedRuntime:
    name = f"erlang-base_{revision.replace(':', '%3a')}_armhf.deb"
    return LockedRuntime("arm-linux-gnueabihf", "debian", "25.2.3", ((name, sha),), revision,
                         {"erlang-base": revision})


def sample_lock() -> Lock:
    hexbuild = LockedRuntime(f"{HEX}.2.35", "hexbuilds", "27.3",
                             (("https://builds.hex.pm/builds/otp/amd64/ubuntu-22.04/OTP-27.3.tar.gz", "cd" * 32),))
    host = {"otp": {"version": "27.3", "source": "apt", "sha256": "ef" * 32}, "elixir": {"version": "1.18.3"}}
    return Lock({f"{HEX}.2.35": hexbuild, "arm-linux-gnueabihf": debian_entry()}, host)


def fake_runtime(entry: LockedRuntime, **changes) -> Runtime:
    meta = {"target": entry.target.split(".")[0], "source": entry.source, "otp_version": entry.otp_version,
            "sha256": {Path(n).name: s for n, s in entry.files}, "urls": [n for n, _ in entry.files],
            "packages": dict(entry.packages)}
    if entry.revision:
        meta["debian_version"] = entry.revision
    return Runtime(Path("/nowhere"), {**meta, **changes})


def runtime_entries(cache_root: Path) -> list[str]:
    base = cache_root / "runtimes"
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


# -- the file ---------------------------------------------------------------------------------------

def test_round_trip_and_deterministic_bytes(tmp_path):
    lock = sample_lock()
    path = write_lock(tmp_path, lock)
    assert path == tmp_path / LOCK_FILE and read_lock(tmp_path) == lock
    first = path.read_bytes()
    reordered = Lock(dict(reversed(list(lock.runtimes.items()))), dict(reversed(list(lock.host.items()))))
    write_lock(tmp_path, reordered)
    assert path.read_bytes() == first
    assert first.index(b"[runtimes.arm-linux-gnueabihf]") < first.index(b'[runtimes."x86_64-linux-gnu.2.35"]')
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]  # no temp file left


def test_absent_lock_is_none(tmp_path):
    assert read_lock(tmp_path) is None


@pytest.mark.parametrize("text,detail", [
    ("version = 1\n[runtimes\n", "xrel.lock is malformed"),
    ("[runtimes]\n", "version must be 1"),
    ('version = 1\n[runtimes.x]\nsource = "hexbuilds"\notp_version = "27.3"\nfiles = [["a", "nohash"]]\n',
     "files must be a list of [name, sha256] pairs"),
    ('version = 1\n[runtimes.x]\nsource = "hexbuilds"\nfiles = []\n', "otp_version must be a non-empty string"),
    ('version = 1\n[runtimes.x]\nsource = "debian"\notp_version = "25"\nsuite = "bookworm"\n', "unknown key suite"),
])
def test_malformed_lock_is_a_one_line_error(tmp_path, text, detail):
    (tmp_path / LOCK_FILE).write_text(text)
    with pytest.raises(UsageError) as e:
        read_lock(tmp_path)
    assert detail in e.value.message and LOCK_FILE in e.value.message and "\n" not in str(e.value)
    assert "xrel lock" in e.value.hint


# -- --locked: the differences ------------------------------------------------------------------------

def test_check_locked_names_each_difference():
    lock = sample_lock()
    deb, hexbuild = lock.runtimes["arm-linux-gnueabihf"], lock.runtimes[f"{HEX}.2.35"]
    assert deb.matches(fake_runtime(deb)) and hexbuild.matches(fake_runtime(hexbuild))
    assert check_locked(lock, {"arm-linux-gnueabihf": fake_runtime(deb), f"{HEX}.2.35": fake_runtime(hexbuild)}) == []
    newer = fake_runtime(deb, debian_version="1:25.2.3+dfsg-1+deb12u5")
    changed = fake_runtime(hexbuild, sha256={"OTP-27.3.tar.gz": "00" * 32})
    other = fake_runtime(hexbuild, target="aarch64-linux-gnu")
    lines = check_locked(lock, {"arm-linux-gnueabihf": newer, f"{HEX}.2.35": changed, "aarch64-linux-gnu": other})
    assert lines == [
        f"aarch64-linux-gnu: not in {LOCK_FILE} (run `xrel lock --upgrade`)",
        f"arm-linux-gnueabihf: debian OTP 25.2.3 (1:25.2.3+dfsg-1+deb12u5) instead of the locked debian OTP "
        f"25.2.3 ({DEB})",
        f"{HEX}.2.35: OTP-27.3.tar.gz has sha256 {'00' * 32}, the lock has {'cd' * 32}",
    ]
    assert lock.for_target("armhf") == deb  # an alias finds its canonical entry


def test_locked_runtime_from_keeps_urls_but_debian_file_names():
    lock = sample_lock()
    hexbuild = lock.runtimes[f"{HEX}.2.35"]
    assert locked_runtime_from(fake_runtime(hexbuild), f"{HEX}.2.35") == hexbuild
    deb = lock.runtimes["arm-linux-gnueabihf"]
    mirrored = fake_runtime(deb, urls=[f"http://mirror/pool/{n}" for n, _ in deb.files])
    assert locked_runtime_from(mirrored) == deb


def test_debian_offers_the_wanted_revision_when_listed():
    stanzas = [{"Version": "1:25.2.3+dfsg-1+deb12u1"}, {"Version": DEB}]
    assert _wanted_or_newest(stanzas, None) == DEB
    assert _wanted_or_newest(stanzas, "1:25.2.3+dfsg-1+deb12u1") == "1:25.2.3+dfsg-1+deb12u1"
    assert _wanted_or_newest(stanzas, "1:25.2.3+dfsg-1+deb12u0") == DEB


# -- fetching the locked bytes (hex builds in their exact layout) ------------------------------------

def publish_changed(upstream, *, index_too: bool) -> bytes:
    """The same name, other bytes (a rebuilt tarball); builds.txt updated or still the old hash."""
    old, new = rf.hex_tarball(HEX, "27.3"), rf.hex_tarball(HEX, "27.3", False)
    assert old != new
    upstream.publish(f"{HEX_FOLDER}/builds.txt",
                     layouts.builds_txt([("27.3", rf.sha256(new if index_too else old))]).encode())
    upstream.publish(f"{HEX_FOLDER}/OTP-27.3.tar.gz", new)
    return new


def locked_hexbuild(upstream) -> LockedRuntime:
    archives = rf.publish_hex(upstream, HEX, {"27.3": True})
    entry = locked_runtime_from(fetch_runtime(HEX, otp="27.3", source="hexbuilds"))
    assert entry.files == ((upstream.url(f"{HEX_FOLDER}/OTP-27.3.tar.gz"), rf.sha256(archives["27.3"])),)
    return entry


def test_cached_locked_runtime_needs_no_network(upstream, isolated_cache):
    entry = locked_hexbuild(upstream)
    upstream.reset()  # nothing served any more
    runtime = fetch_locked(HEX, entry, offline=True)
    assert entry.matches(runtime) and upstream.seen == []


def test_locked_runtime_is_fetched_on_another_machine(upstream, isolated_cache, tmp_path, monkeypatch):
    entry = locked_hexbuild(upstream)
    rf.publish_hex(upstream, HEX, {"27.3": True, "27.3.4.1": True})  # a newer 27.3 patch appeared: the lock keeps 27.3
    monkeypatch.setenv("XREL_CACHE_DIR", str(tmp_path / "other-machine"))
    runtime = fetch_locked(HEX, entry)
    assert runtime.otp_version == "27.3" and entry.matches(runtime)
    assert runtime_entries(tmp_path / "other-machine") == [f"otp-27.3-{HEX}-hexbuilds"]


@pytest.mark.parametrize("index_too", [True, False], ids=["index-publishes-new-hash", "bytes-only"])
def test_changed_upstream_hash_is_refused_and_named(upstream, isolated_cache, tmp_path, monkeypatch, index_too):
    entry = locked_hexbuild(upstream)
    publish_changed(upstream, index_too=index_too)
    downloads = upstream.count(f"{HEX_FOLDER}/OTP-27.3.tar.gz")
    other = tmp_path / "other-machine"
    monkeypatch.setenv("XREL_CACHE_DIR", str(other))
    with pytest.raises(VerificationError) as e:
        fetch_locked(HEX, entry)
    assert "OTP-27.3.tar.gz" in e.value.message and "\n" not in str(e.value)
    if index_too:
        assert "upstream changed OTP-27.3.tar.gz" in e.value.message and "xrel lock --upgrade" in e.value.hint
        assert upstream.count(f"{HEX_FOLDER}/OTP-27.3.tar.gz") == downloads  # refused before downloading
    assert runtime_entries(other) == []
    leftovers = [p.name for p in other.rglob("*") if ".part" in p.name or ".tmp-" in p.name]
    assert leftovers == [] and not list((other / "downloads").glob("*OTP-27.3.tar.gz"))


def test_a_cached_runtime_that_differs_is_kept_when_the_locked_one_is_refused(upstream, isolated_cache):
    entry = locked_hexbuild(upstream)
    new = publish_changed(upstream, index_too=True)
    cached = fetch_runtime(HEX, otp="27.3", source="hexbuilds", force=True)  # the cache now has the new bytes
    assert cached.meta["sha256"]["OTP-27.3.tar.gz"] == rf.sha256(new) and not entry.matches(cached)
    with pytest.raises(VerificationError):
        fetch_locked(HEX, entry)
    assert fetch_runtime(HEX, otp="27.3", source="hexbuilds").meta == cached.meta  # untouched
    assert check_locked(Lock({HEX: entry}), {HEX: cached}) == [
        f"{HEX}: OTP-27.3.tar.gz has sha256 {rf.sha256(new)}, the lock has {entry.files[0][1]}"]


# -- Debian: a revision replaced at a point release ------------------------------------------------

@needs_apt
@pytest.mark.network
def test_vanished_debian_revision_names_the_current_one():
    gone = debian_entry("1:25.2.3+dfsg-1+deb12u2")  # replaced at a point release (u1 stays in -security)
    with pytest.raises(NotAvailableError) as e:
        fetch_locked("arm-linux-gnueabihf", gone)
    target = Target.parse("arm-linux-gnueabihf")
    index = suites.repo(suites.suites_for(target, name="bookworm")[0], target).packages()
    current = max((s["Version"] for s in index["erlang-base"]), key=Version)
    assert current != gone.revision
    assert e.value.message == (f"the locked erlang-base 1:25.2.3+dfsg-1+deb12u2 for arm-linux-gnueabihf is gone "
                               f"from Debian (it now has {current})")
    assert e.value.hint == "run `xrel lock --upgrade`"


@needs_apt
@pytest.mark.network
@pytest.mark.slow
def test_locked_debian_revision_is_fetched_exactly_even_when_not_the_newest():
    """bookworm-security still lists deb12u1 beside main's deb12u4: the lock gets u1, checked."""
    from xrel.runtimes.base import FetchOptions, get_source

    target = Target.parse("arm-linux-gnueabihf")
    wanted = "1:25.2.3+dfsg-1+deb12u1"
    offer = next(o for o in get_source("debian").offers(target, FetchOptions(request=(25,), revision=wanted)))
    if offer.details["debian_version"] != wanted:
        pytest.skip(f"Debian no longer lists {wanted}")
    repo = suites.repo(suites.suites_for(target, name="bookworm")[0], target)
    files = repo.resolve([f"{p}={wanted}" for p in offer.details["packages"]])
    entry = LockedRuntime(target.id, "debian", offer.version, tuple(sorted((f.filename, f.sha256) for f in files)),
                          wanted, {f.package: f.version for f in files})
    runtime = fetch_locked(target, entry)
    assert runtime.meta["debian_version"] == wanted and entry.matches(runtime)
    assert fetch_locked(target, entry, offline=True).root == runtime.root
