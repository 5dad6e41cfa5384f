"""Runtime sources against a local upstream serving archives built in the exact upstream layouts
(hex builds, erlef/otp_builds, Windows zips) with real zig-built target binaries."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

import runtime_fixtures as rf
import upstream_layouts as layouts
from xrel.errors import InspectionError, NotAvailableError, UsageError, VerificationError
from xrel.inspection import binaries
from xrel.runtimes import Runtime, cached_runtime, fetch_runtime, list_offers
from xrel.runtimes.base import METADATA
from xrel.runtimes.hexbuilds import parse_builds_txt
from xrel.targets import Target

ARCHIVE_LEFTOVERS = (".part", ".tmp-")


def runtime_entries(cache_root: Path) -> list[str]:
    base = cache_root / "runtimes"
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


def assert_target_binary(path: Path, target: str) -> None:
    t = Target.parse(target)
    info = binaries.read(path)
    assert (info.format, info.machine, info.bits) == (t.format, t.machine, t.bits), info


# -- hex builds ---------------------------------------------------------------------------------

def test_builds_txt_parsing():
    text = layouts.builds_txt([("27.3", "ab" * 32), ("25.0", None), ("28.0-rc1", "cd" * 32)])
    builds = {b.version: b for b in parse_builds_txt(text + "OTP-26.0 short\n")}
    assert set(builds) == {"27.3", "25.0"}  # no branches, pre-releases or malformed lines
    assert builds["27.3"].sha256 == "ab" * 32 and builds["25.0"].sha256 is None


@pytest.mark.parametrize("target", ["x86_64-linux-gnu", "aarch64-linux-gnu"])
def test_hexbuilds_installs_a_relocatable_root(upstream, isolated_cache, target):
    archives = rf.publish_hex(upstream, target, {"27.3.4.1": True}, tarball=lambda t, v: rf.hex_tarball(t, v, False))
    runtime = fetch_runtime(target, otp="27", source="hexbuilds")
    root = runtime.root
    meta = json.loads((root / METADATA).read_text())
    assert (meta["otp_version"], meta["source"], meta["ubuntu"], meta["ubuntu_glibc"]) == \
        ("27.3.4.1", "hexbuilds", "22.04", "2.35")
    assert meta["urls"] == [upstream.url(f"hexbuilds/{rf.HEX_ARCH[target]}/ubuntu-22.04/OTP-27.3.4.1.tar.gz")]
    assert meta["sha256"] == {"OTP-27.3.4.1.tar.gz": rf.sha256(archives["27.3.4.1"])}
    assert_target_binary(runtime.erts_dir / "bin" / "beam.smp", target)
    # what Install -minimal makes
    assert not (root / "Install").exists()
    assert os.readlink(root / "bin" / "epmd") == f"../erts-{runtime.erts_version}/bin/epmd"
    assert (root / "bin" / "start.boot").read_bytes() == (root / "releases/27/start_clean.boot").read_bytes()
    assert (root / "releases" / "start_erl.data").read_text() == f"{runtime.erts_version} 27\n"
    assert '"lib/kernel-' in (root / "releases" / "RELEASES").read_text()
    for script in ("bin/erl", "bin/start", f"erts-{runtime.erts_version}/bin/erl", "bin/start_erl"):
        text = (root / script).read_text()
        assert set(re.findall(r"%[A-Z_]+%", text)) <= {"%CopyrightBegin%", "%CopyrightEnd%"}, script
    assert {"kernel", "stdlib", "crypto", "ssl"} <= {a.rsplit("-", 1)[0] for a in meta["apps"]}


def test_hexbuilds_scripts_find_their_root_wherever_it_is(upstream, isolated_cache, tmp_path):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"27.3": True})
    runtime = fetch_runtime("x86_64-linux-gnu", otp="27.3", source="hexbuilds")
    moved = tmp_path / "moved root"
    shutil.copytree(runtime.root, moved, symlinks=True)
    erlexec = moved / f"erts-{runtime.erts_version}" / "bin" / "erlexec"
    erlexec.unlink()
    erlexec.write_text('#!/bin/sh\necho "$ROOTDIR"\n')
    erlexec.chmod(0o755)
    for script in ("bin/erl", f"erts-{runtime.erts_version}/bin/erl"):
        out = subprocess.run(["sh", str(moved / script)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == str(moved.resolve()), script


@pytest.mark.parametrize("request_text, expected", [
    ("27", "27.3.4.1"), ("27.3", "27.3.4.1"), ("OTP-27.3.4.1", "27.3.4.1"), ("27.2", "27.2"), ("otp-26", "26.2.5"),
])
def test_version_requests(upstream, isolated_cache, request_text, expected):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"26.2.5": True, "27.2": True, "27.3": True, "27.3.4.1": True},
                   serve=(expected,))
    assert fetch_runtime("x86_64-linux-gnu", otp=request_text, source="hexbuilds").otp_version == expected


def test_missing_version_names_the_nearest(upstream, isolated_cache):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"26.2.5": True, "27.2": True, "27.3.4.1": True}, serve=())
    with pytest.raises(NotAvailableError) as e:
        fetch_runtime("x86_64-linux-gnu", otp="27.1", source="hexbuilds")
    assert "OTP 27.1 is not available" in e.value.message and "27.2" in e.value.message
    assert "27.3.4.1" in e.value.message
    assert runtime_entries(isolated_cache) == []


def test_prefers_a_published_hash_then_the_lower_glibc(upstream, isolated_cache):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"25.3": False, "27.3": True}, serve=())
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"25.3": True, "27.3": True, "28.0": True},
                   os_name="ubuntu-24.04", serve=())
    offers = {o.version: o for o in list_offers("x86_64-linux-gnu", "hexbuilds")["hexbuilds"]}
    assert [offers[v].details["os"] for v in ("25.3", "27.3", "28.0")] == \
        ["ubuntu-24.04", "ubuntu-22.04", "ubuntu-24.04"]
    assert "glibc >= 2.39" in offers["28.0"].note and "glibc >= 2.35" in offers["27.3"].note
    floored = list_offers("x86_64-linux-gnu.2.35", "hexbuilds")["hexbuilds"]
    assert {o.version for o in floored} == {"25.3", "27.3"}
    assert all(o.details["os"] == "ubuntu-22.04" for o in floored)
    with pytest.raises(NotAvailableError, match="need glibc >= 2.35, above the floor of x86_64-linux-gnu.2.28"):
        fetch_runtime("x86_64-linux-gnu.2.28", otp="27", source="hexbuilds")


def test_no_published_hash_is_refused_unless_given(upstream, isolated_cache):
    archives = rf.publish_hex(upstream, "x86_64-linux-gnu", {"25.0": False})
    with pytest.raises(VerificationError) as e:
        fetch_runtime("x86_64-linux-gnu", otp="25.0", source="hexbuilds")
    assert "publishes no sha256" in e.value.message and "--sha256" in e.value.hint
    assert runtime_entries(isolated_cache) == [] and upstream.count(
        "hexbuilds/amd64/ubuntu-22.04/OTP-25.0.tar.gz") == 0
    runtime = fetch_runtime("x86_64-linux-gnu", otp="25.0", source="hexbuilds", sha256=rf.sha256(archives["25.0"]))
    assert runtime.meta["trust"] == "given"


def test_checksum_mismatch_deletes_the_download(upstream, isolated_cache):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"27.3": True}, serve=())  # index hash is not the file's
    upstream.publish("hexbuilds/amd64/ubuntu-22.04/OTP-27.3.tar.gz", rf.hex_tarball("x86_64-linux-gnu", "27.3"))
    with pytest.raises(VerificationError, match="sha256 mismatch"):
        fetch_runtime("x86_64-linux-gnu", otp="27.3", source="hexbuilds")
    assert runtime_entries(isolated_cache) == []
    assert not [p for p in (isolated_cache / "downloads").iterdir() if "OTP-27.3" in p.name]


def test_missing_tarball_and_missing_index(upstream, isolated_cache):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"27.3": True}, serve=())
    with pytest.raises(NotAvailableError, match="HTTP 404"):
        fetch_runtime("x86_64-linux-gnu", otp="27.3", source="hexbuilds")
    upstream.reset()
    with pytest.raises(NotAvailableError, match="builds.txt does not exist"):
        fetch_runtime("x86_64-linux-gnu", otp="27.3", source="hexbuilds")
    assert runtime_entries(isolated_cache) == []


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "device"])
def test_hostile_archives_are_refused(upstream, isolated_cache, kind):
    tree = layouts.hex_uninstalled(rf.installed_tree("x86_64-linux-gnu", True), isolated_cache.parent / "t",
                                   "27.3", "x86_64-linux-gnu")
    data = layouts.tar_gz(tree, top="OTP-27.3", extra=[layouts.hostile_member(kind)])
    upstream.publish("hexbuilds/amd64/ubuntu-22.04/builds.txt",
                     layouts.builds_txt([("27.3", rf.sha256(data))]).encode())
    upstream.publish("hexbuilds/amd64/ubuntu-22.04/OTP-27.3.tar.gz", data)
    with pytest.raises(VerificationError, match="refusing"):
        fetch_runtime("x86_64-linux-gnu", otp="27.3", source="hexbuilds")
    assert runtime_entries(isolated_cache) == []
    assert not Path("/tmp/xrel-evil").exists()


def test_offline_names_what_is_missing(upstream, isolated_cache):
    archives = rf.publish_hex(upstream, "x86_64-linux-gnu", {"27.3": True})
    with pytest.raises(NotAvailableError) as e:
        fetch_runtime("x86_64-linux-gnu", otp="27.3", source="hexbuilds", offline=True)
    assert "builds.txt was never fetched" in e.value.message and "index-hexbuilds-amd64" in e.value.hint
    list_offers("x86_64-linux-gnu", "hexbuilds")  # caches the indexes, not the tarball
    with pytest.raises(NotAvailableError) as e:
        fetch_runtime("x86_64-linux-gnu", otp="27.3", source="hexbuilds", offline=True)
    wanted = Path(e.value.hint.rsplit(" at ", 1)[1])
    assert "OTP-27.3.tar.gz" in e.value.message and wanted.parent == isolated_cache / "downloads"
    wanted.write_bytes(archives["27.3"])  # the user puts the file where xrel said
    upstream.reset()  # nothing is served any more
    assert fetch_runtime("x86_64-linux-gnu", otp="27.3", source="hexbuilds", offline=True).otp_version == "27.3"
    assert upstream.seen == []


def test_cached_runtime_is_used_without_the_network(upstream, isolated_cache):
    rf.publish_hex(upstream, "x86_64-linux-gnu", {"27.3": True})
    first = fetch_runtime("x86_64-linux-gnu", otp="27", source="hexbuilds")
    upstream.reset()
    assert fetch_runtime("x86_64-linux-gnu", otp="27", source="hexbuilds").root == first.root
    assert cached_runtime("x86_64-linux-gnu", "27.3", "hexbuilds").root == first.root
    assert upstream.seen == []


# -- erlef/otp_builds (macOS) -------------------------------------------------------------------

@pytest.mark.parametrize("target", ["aarch64-macos", "x86_64-macos"])
def test_otp_builds_macos(upstream, isolated_cache, target):
    archives = rf.publish_otp_builds(upstream, target, ("27.2", "27.3.4.1"))
    runtime = fetch_runtime(target, otp="27", source="otp_builds")
    assert runtime.otp_version == "27.3.4.1"
    triple = rf.MAC_TRIPLE[target]
    assert runtime.meta["urls"] == [upstream.url(f"otp_builds/OTP-27.3.4.1/otp-{triple}.tar.gz")]
    assert runtime.meta["sha256"] == {f"otp-{triple}.tar.gz": rf.sha256(archives["27.3.4.1"])}
    assert_target_binary(runtime.erts_dir / "bin" / "beam.smp", target)
    for script in ("bin/erl", f"erts-{runtime.erts_version}/bin/erl"):
        assert f"/tmp/otp-{triple}" not in (runtime.root / script).read_text()
    assert sorted(runtime.meta["relocated_scripts"]) == ["bin/erl", f"erts-{runtime.erts_version}/bin/erl"]
    offers = list_offers(target, "otp_builds")["otp_builds"]
    assert [o.version for o in offers] == ["27.3.4.1", "27.2"]  # the maint row is not an offer


def test_otp_builds_checksum_mismatch(upstream, isolated_cache):
    rf.publish_otp_builds(upstream, "aarch64-macos", ("27.3",))
    wrong = rf.otp_builds_tarball("aarch64-macos", "27.2")
    upstream.publish("otp_builds/OTP-27.3/otp-aarch64-apple-darwin.tar.gz", wrong)
    with pytest.raises(VerificationError):
        fetch_runtime("aarch64-macos", otp="27.3", source="otp_builds")
    assert runtime_entries(isolated_cache) == []


# -- Windows zips -------------------------------------------------------------------------------

def test_windows_zip_is_trusted_on_first_use(upstream, isolated_cache):
    data = rf.publish_windows(upstream, "27.3.4.1")
    runtime = fetch_runtime("x86_64-windows", otp="27.3.4.1", source="windows")
    root = runtime.root
    assert_target_binary(runtime.erts_dir / "bin" / "beam.smp.dll", "x86_64-windows")
    assert binaries.read(runtime.erts_dir / "bin" / "erlexec.dll").kind == "shared"
    assert not list(root.rglob("erl.ini"))
    for leftover in ("Install.exe", "Install.ini", "Uninstall.exe", "vc_redist.exe"):
        assert not (root / leftover).exists() and leftover in runtime.meta["removed_installer_files"]
    pin = isolated_cache / "pins" / "windows-otp_win64_27.3.4.1.zip.sha256"
    assert pin.read_text().split()[0] == rf.sha256(data)
    assert runtime.meta["trust"].startswith("first-use") and runtime.meta["sha256"] == {
        "otp_win64_27.3.4.1.zip": rf.sha256(data)}
    offer = next(o for o in list_offers("x86_64-windows", "windows", offline=True)["windows"]
                 if o.version == "27.3.4.1")
    assert offer.sha256 == rf.sha256(data) and "Visual C++" in offer.note


def test_windows_changed_upstream_file_is_refused(upstream, isolated_cache):
    rf.publish_windows(upstream, "27.2.4")
    fetch_runtime("x86_64-windows", otp="27.2.4", source="windows")
    for area in ("runtimes", "downloads"):  # a cleaned cache keeps its pins
        shutil.rmtree(isolated_cache / area)
    changed = rf.publish_windows(upstream, "27.2.4", rf.windows_zip("27.2"))
    with pytest.raises(VerificationError) as e:
        fetch_runtime("x86_64-windows", otp="27.2.4", source="windows")
    pin = isolated_cache / "pins" / "windows-otp_win64_27.2.4.zip.sha256"
    assert str(pin) in e.value.message and "--sha256" in e.value.hint
    assert runtime_entries(isolated_cache) == []
    # the user checked the new file another way: --sha256 accepts it and re-pins
    repinned = fetch_runtime("x86_64-windows", otp="27.2.4", source="windows", sha256=rf.sha256(changed))
    assert repinned.otp_version == "27.2"
    assert pin.read_text().split()[0] == rf.sha256(changed)


@pytest.mark.parametrize("request_text", ["26", "26.2.5", "27.0", "OTP-25.3"])
def test_windows_before_the_first_zip(upstream, isolated_cache, request_text):
    with pytest.raises(NotAvailableError) as e:
        fetch_runtime("x86_64-windows", otp=request_text, source="windows")
    assert "only as an installer" in e.value.message and ".exe" in e.value.message
    assert "27.1" in e.value.hint and upstream.seen == []


@pytest.mark.parametrize("member", ["../evil.dll", "/evil.dll", "C:/Windows/evil.dll"])
def test_hostile_zip_is_refused(upstream, isolated_cache, member):
    buf = io.BytesIO(rf.windows_zip("27.2.4"))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(member, b"MZ")
    rf.publish_windows(upstream, "27.2.4", buf.getvalue())
    with pytest.raises(VerificationError, match="refusing"):
        fetch_runtime("x86_64-windows", otp="27.2.4", source="windows")
    assert runtime_entries(isolated_cache) == []


def test_windows_exact_version_outside_the_known_list(upstream, isolated_cache):
    rf.publish_windows(upstream, "28.1.2")
    assert fetch_runtime("x86_64-windows", otp="28.1.2", source="windows").meta["sha256"]
    assert upstream.count("windows/OTP-28.1.2/otp_win64_28.1.2.zip", "HEAD") == 1
    with pytest.raises(NotAvailableError) as e:
        fetch_runtime("x86_64-windows", otp="28.9.9", source="windows")
    assert "28.0.2" in e.value.message  # the nearest known ones


# -- path: and url: -----------------------------------------------------------------------------

def _fingerprint(root: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(root)), p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*"))


def test_path_directory_is_copied_not_changed(isolated_cache, tmp_path):
    src = tmp_path / "my otp"
    shutil.copytree(rf.installed_tree("aarch64-linux-gnu", True), src)
    os.symlink("/usr/share/doc", src / "doc-link")  # points outside: left out of the copy
    os.symlink(str(src / "releases"), src / "lib" / "abs-inside")  # absolute, inside: made relative
    before = _fingerprint(src)
    runtime = fetch_runtime("aarch64-linux-gnu", otp=None, source=f"path:{src}")
    assert _fingerprint(src) == before
    assert runtime.source == "local" and runtime.root.name.startswith("otp-25.") and "-local-" in runtime.root.name
    assert runtime.meta["links_left_out"] == ["doc-link -> /usr/share/doc"]
    assert os.readlink(runtime.root / "lib" / "abs-inside") == "../releases"
    assert "/opt/otp-build-root" not in (runtime.root / "bin" / "erl").read_text()
    assert_target_binary(runtime.erts_dir / "bin" / "beam.smp", "aarch64-linux-gnu")
    again = fetch_runtime("aarch64-linux-gnu", otp=None, source=f"path:{src}")
    assert again.root == runtime.root


def test_path_archives_tar_and_zip(isolated_cache, tmp_path):
    hex_file = tmp_path / "OTP-27.3.tar.gz"
    hex_file.write_bytes(rf.hex_tarball("x86_64-linux-gnu", "27.3"))
    runtime = fetch_runtime("x86_64-linux-gnu", otp="27", source=f"path:{hex_file}")
    assert runtime.otp_version == "27.3" and (runtime.root / "bin" / "erl").is_file()  # installed
    assert runtime.meta["sha256"] == {"OTP-27.3.tar.gz": rf.sha256(hex_file.read_bytes())}
    win_file = tmp_path / "otp_win64_27.3.zip"
    win_file.write_bytes(rf.windows_zip("27.3"))
    assert fetch_runtime("x86_64-windows", otp=None, source=f"path:{win_file}").otp_version == "27.3"


def test_path_mistakes(isolated_cache, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        fetch_runtime("x86_64-linux-gnu", otp=None, source=f"path:{tmp_path / 'nope'}")
    with pytest.raises(UsageError, match="not an OTP root"):
        fetch_runtime("x86_64-linux-gnu", otp=None, source=f"path:{tmp_path}")
    with pytest.raises(InspectionError, match="do not match x86_64-linux-gnu"):
        fetch_runtime("x86_64-linux-gnu", source=f"path:{rf.installed_tree('aarch64-linux-gnu', True)}")
    assert runtime_entries(isolated_cache) == []


def test_url_source_needs_and_checks_a_sha256(upstream, isolated_cache):
    data = rf.otp_builds_tarball("aarch64-macos", "27.3")
    upstream.publish("mine/otp.tar.gz", data)
    url = upstream.url("mine/otp.tar.gz")
    with pytest.raises(UsageError, match="needs --sha256"):
        fetch_runtime("aarch64-macos", otp=None, source=f"url:{url}")
    with pytest.raises(VerificationError, match="sha256 mismatch"):
        fetch_runtime("aarch64-macos", otp=None, source=f"url:{url}", sha256="0" * 64)
    runtime = fetch_runtime("aarch64-macos", otp=None, source=f"url:{url}", sha256=rf.sha256(data))
    assert runtime.source == "url" and runtime.meta["urls"] == [url] and runtime.otp_version == "27.3"
    with pytest.raises(UsageError, match="not a sha256"):
        fetch_runtime("aarch64-macos", otp=None, source=f"url:{url}", sha256="abc")


def test_runtime_metadata_round_trip(upstream, isolated_cache):
    rf.publish_otp_builds(upstream, "aarch64-macos", ("27.3",))
    runtime = fetch_runtime("aarch64-macos", otp="27.3", source="otp_builds")
    assert Runtime.load(runtime.root).to_dict() == runtime.to_dict()
    assert tarfile.is_tarfile(next((isolated_cache / "downloads").glob("*-otp-aarch64-apple-darwin.tar.gz")))
