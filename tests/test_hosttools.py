"""The host toolchain, provided: Elixir sources against layout-exact local servers (Elixir's release
zips, hex's builds), the installed-or-provided choice, the load check; live: Debian bookworm's
OTP 25 + Elixir 1.14 run mix without the system's Erlang, and trixie's Elixir 1.18 is refused on it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import elixir_layouts as ex
from conftest import have, needs_apt
from xrel import hosttools
from xrel.errors import NotAvailableError, UsageError, VerificationError
from xrel.hosttools import debian, hexbuilds, loadcheck, sources, zips
from xrel.runtimes import Runtime

ZIP = "v{v}/elixir-otp-{m}.zip"


@pytest.fixture
def elixir_upstream(upstream, monkeypatch):
    monkeypatch.setenv("XREL_ELIXIR_ZIPS_URL", upstream.url("elixir_zips"))
    monkeypatch.setenv("XREL_HEX_BUILDS_URL", upstream.url("hex_elixir"))
    return upstream


def publish_zip(server, version: str, otp: int, data: bytes | None = None, checksum_of: bytes | None = None) -> bytes:
    data = data if data is not None else ex.elixir_zip(version)
    path = f"elixir_zips/{ZIP.format(v=version, m=otp)}"
    server.publish(path, data)
    server.publish(path + ".sha256sum", ex.sha256sum(checksum_of or data, f"elixir-otp-{otp}.zip").encode())
    return data


def entries(root: Path) -> list[str]:
    base = root / "runtimes"
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


def elixir(request: str | None, host_otp: int, source: str, offline: bool = False):
    return hosttools.provide_elixir(sources.parse_request(request) if request else None, host_otp, [source], offline)


# -- Elixir's release zips ------------------------------------------------------------------------

def test_zips_verified_download_for_the_host_otp(elixir_upstream, isolated_cache):
    wanted = publish_zip(elixir_upstream, "1.18.3", 25)
    publish_zip(elixir_upstream, "1.18.3", 27)
    publish_zip(elixir_upstream, "1.17.3", 27, ex.elixir_zip("1.17.3", top="elixir"))  # in one top folder
    root, meta, _alt = elixir("1.18.3", 26, "elixir_zips")  # no build for 26: 25 is the highest below it
    assert root.name == "elixir-1.18.3-otp-25-elixir_zips" and root.parent == isolated_cache / "runtimes"
    assert (meta["version"], meta["source"], meta["otp"]) == ("1.18.3", "elixir_zips", 25)
    assert meta["sha256"] == {"elixir-otp-25.zip": ex.sha256(wanted)}
    assert meta["urls"][0] == elixir_upstream.url("elixir_zips/v1.18.3/elixir-otp-25.zip")
    assert json.loads((root / sources.METADATA).read_text()) == meta
    assert os.access(root / "bin" / "mix", os.X_OK) and (root / "lib/elixir/ebin/elixir.app").is_file()
    assert elixir_upstream.count("elixir_zips/v1.18.3/elixir-otp-26.zip.sha256sum") == 1
    assert elixir_upstream.count("elixir_zips/v1.18.3/elixir-otp-27.zip.sha256sum") == 0
    root27, meta27, _alt = elixir("1.17", 27, "elixir_zips")
    assert root27.name == "elixir-1.17.3-otp-27-elixir_zips" and (root27 / "bin" / "iex").is_file()

    elixir_upstream.seen.clear()  # second call: the cache, no network
    assert elixir("1.18.3", 26, "elixir_zips")[0] == root and elixir("1.17", 28, "elixir_zips")[0] == root27
    assert elixir_upstream.seen == []
    assert not [p for p in (isolated_cache / "runtimes").iterdir() if p.name.startswith(".tmp-")]


def test_zips_changed_upstream_file_is_refused(elixir_upstream, isolated_cache):
    publish_zip(elixir_upstream, "1.17.3", 25, checksum_of=b"the file upstream published first")
    with pytest.raises(VerificationError) as e:
        elixir("1.17", 25, "elixir_zips")
    assert "sha256 mismatch for" in str(e.value) and "v1.17.3/elixir-otp-25.zip" in str(e.value)
    assert "\n" not in str(e.value)
    assert entries(isolated_cache) == []
    assert not any(p.name.endswith(".part") for p in (isolated_cache / "downloads").iterdir())


def test_zips_bad_checksum_file_and_wrong_contents(elixir_upstream, isolated_cache):
    path = "elixir_zips/v1.16.3/elixir-otp-25.zip"
    elixir_upstream.publish(path, ex.elixir_zip("1.16.3"))
    elixir_upstream.publish(path + ".sha256sum", b"<html>moved</html>\n")
    with pytest.raises(VerificationError, match="is not a `<sha256>  elixir-otp-25.zip` checksum file"):
        elixir("1.16.3", 25, "elixir_zips")
    publish_zip(elixir_upstream, "1.16.3", 25, ex.elixir_zip("1.16.2", top="elixir"))
    with pytest.raises(VerificationError, match=r"holds Elixir 1\.16\.2, not 1\.16\.3"):
        elixir("1.16.3", 25, "elixir_zips")
    assert entries(isolated_cache) == []


def test_zips_offline_names_what_to_put_where(elixir_upstream, isolated_cache):
    with pytest.raises(NotAvailableError) as e:
        elixir("1.15.8", 25, "elixir_zips", offline=True)
    assert "offline" in e.value.message
    assert f"put that file at {isolated_cache / 'downloads'}/index-elixir_zips-v1.15.8-elixir-otp-25" in str(e.value)
    data = publish_zip(elixir_upstream, "1.15.8", 25)
    offer, _seen = sources.choose((1, 15, 8), ["elixir_zips"], sources.Options(host_otp=25))  # checksum only
    with pytest.raises(NotAvailableError) as e:
        elixir("1.15.8", 25, "elixir_zips", offline=True)
    archive = isolated_cache / "downloads" / f"{ex.sha256(data)[:16]}-elixir-otp-25.zip"
    assert f"put that file at {archive}" in str(e.value) and offer.url in str(e.value)
    archive.write_bytes(data)
    elixir_upstream.seen.clear()
    root, meta, _alt = elixir("1.15.8", 25, "elixir_zips", offline=True)
    assert meta["version"] == "1.15.8" and elixir_upstream.seen == []


def test_zips_missing_version_names_what_exists(elixir_upstream, isolated_cache):
    with pytest.raises(NotAvailableError) as e:
        elixir("1.99", 25, "elixir_zips")
    assert re.search(r"Elixir 1\.99 is not available \(elixir_zips has [\d., ]*1\.18\.4", e.value.message)
    with pytest.raises(NotAvailableError) as e:  # an exact version asked for is looked up upstream
        elixir("1.18.9", 25, "elixir_zips")
    assert "v1.18.9/elixir-otp-25.zip.sha256sum does not exist (HTTP 404)" in e.value.message


# -- hex's Elixir builds --------------------------------------------------------------------------

def publish_hex(server, builds: dict[str, bytes | None]) -> None:
    """builds.txt with `builds` ({ref: zip or None for a line without a hash}) and their zips."""
    server.publish("hex_elixir/builds.txt",
                   ex.builds_txt([(ref, ex.sha256(z) if z else None) for ref, z in builds.items()]).encode())
    for ref, data in builds.items():
        server.publish(f"hex_elixir/{ref}.zip", data or ex.elixir_zip(ref[1:].split("-")[0]))


def test_builds_txt_parsing():
    text = ex.builds_txt([("v1.18.3-otp-27", "ab" * 32), ("v1.14.0-otp-25", None), ("v1.19.0-rc.0-otp-28", None)])
    builds = {(b.version, b.otp): b for b in hexbuilds.parse_builds_txt(text + "junk\nv1.2 x\n")}
    assert set(builds) == {("1.18.3", 27), ("1.14.0", 25)}  # no branches, pre-releases or junk
    assert builds[("1.18.3", 27)].sha256 == "ab" * 32 and builds[("1.14.0", 25)].sha256 is None


def test_hexbuilds_verified_download_and_cache(elixir_upstream, isolated_cache):
    wanted = ex.elixir_zip("1.18.3")
    publish_hex(elixir_upstream, {"v1.18.3-otp-27": ex.elixir_zip("1.18.3", top="x"), "v1.18.3-otp-26": wanted,
                                  "v1.17.3-otp-26": ex.elixir_zip("1.17.3")})
    root, meta, _alt = elixir("1.18", 26, "hexbuilds")
    assert root.name == "elixir-1.18.3-otp-26-hexbuilds"
    assert meta["sha256"] == {"v1.18.3-otp-26.zip": ex.sha256(wanted)} and meta["trust"] == "builds.txt"
    assert (root / "bin/elixir").read_text() == ex.SCRIPT.format(name="elixir", version="1.18.3")
    elixir_upstream.seen.clear()
    assert elixir("1.18", 26, "hexbuilds")[0] == root and elixir_upstream.seen == []


def test_hexbuilds_refuses_builds_without_or_with_a_changed_hash(elixir_upstream, isolated_cache):
    publish_hex(elixir_upstream, {"v1.14.0-otp-25": None})
    with pytest.raises(VerificationError, match="builds.txt publishes no sha256 for v1.14.0-otp-25.zip"):
        elixir("1.14", 25, "hexbuilds")
    publish_hex(elixir_upstream, {"v1.15.8-otp-25": ex.elixir_zip("1.15.8")})
    elixir_upstream.publish("hex_elixir/v1.15.8-otp-25.zip", ex.elixir_zip("1.15.8", top="changed"))
    with pytest.raises(VerificationError) as e:
        elixir("1.15", 25, "hexbuilds")
    assert "sha256 mismatch for" in str(e.value) and "v1.15.8-otp-25.zip" in str(e.value)
    assert entries(isolated_cache) == []


def test_hexbuilds_missing_version_and_offline(elixir_upstream, isolated_cache):
    with pytest.raises(NotAvailableError) as e:
        elixir("1.18", 27, "hexbuilds", offline=True)
    assert f"put that file at {isolated_cache / 'downloads' / 'index-hex_builds-elixir-builds.txt'}" in str(e.value)
    publish_hex(elixir_upstream, {"v1.18.3-otp-27": ex.elixir_zip("1.18.3"), "v1.17.3-otp-27": ex.elixir_zip("1.17.3")})
    with pytest.raises(NotAvailableError, match=r"Elixir 1\.16 is not available \(hexbuilds has 1\.18\.3, 1\.17\.3"):
        elixir("1.16", 27, "hexbuilds")


# -- choosing, requests, the load check -----------------------------------------------------------

def test_requests_and_sources():
    assert sources.parse_request("1.14") == (1, 14) and sources.parse_request("v1.18.3") == (1, 18, 3)
    assert sources.matches((1, 14), "1.14.0") and not sources.matches((1, 14), "1.15.0")
    with pytest.raises(UsageError, match="'1.x' is not an Elixir version"):
        sources.parse_request("1.x")
    with pytest.raises(UsageError, match="unknown Elixir source 'kiex'"):
        hosttools.provide("25", "1.14", elixir_source="kiex")
    assert debian.upstream_version("1.14.0.dfsg-2") == "1.14.0" and debian.upstream_version("1.18.3.dfsg-1") == "1.18.3"
    offers = [sources.ElixirOffer("s", "1.18.3", m) for m in (24, 25, 27, 28)]
    assert [o.otp for o in sources.ranked(offers, 26)] == [25, 24, 27, 28]
    newer = sources.ElixirOffer("s", "1.18.4", 27)
    assert sources.ranked([newer, *offers], 25)[:2] == [offers[1], offers[0]]  # what fits beats what is newer
    assert zips.built_for("1.18.0", 25) == [25, 26, 27, 28]


def test_hosttools_env():
    tools = hosttools.HostTools(Path("/o"), "25.2.3", Path("/e"), "1.14.0", True, "why", {})
    assert tools.path_prefix() == "/e/bin:/o/bin"
    assert tools.env({"PATH": "/usr/bin", "HOME": "/h"}) == {"PATH": "/e/bin:/o/bin:/usr/bin", "HOME": "/h"}
    assert tools.env({})["PATH"] == "/e/bin:/o/bin"


def test_load_check_message(monkeypatch, tmp_path):
    monkeypatch.setattr(loadcheck, "load_modules", lambda o, e: loadcheck.LoadResult(79, 273, ("elixir",)))
    with pytest.raises(NotAvailableError) as e:
        loadcheck.require_loadable(tmp_path, "25.2.3", tmp_path, "1.18.3", "debian", "1.14.0 from debian")
    assert str(e.value) == ("Elixir 1.18.3 (from debian) was compiled by a newer OTP than 25.2.3: 79 of 273 modules "
                            "fail to load (pin an Elixir built for OTP 25, e.g. 1.14.0 from debian)")


needs_erl = pytest.mark.skipif(not (have("erl") and have("elixir")), reason="no installed Erlang/Elixir")


@needs_erl
def test_installed_tools_when_they_match():
    from xrel import host

    erl = host.host_erlang()
    tools = hosttools.provide(erl.otp_release, None)
    assert not tools.provided and tools.otp_root == erl.root and tools.why.startswith("pinned otp")
    assert (tools.elixir_root / "bin" / "elixir").is_file() and tools.elixir_version == host.elixir_version()
    found, why = hosttools.installed(str(erl.otp_major + 1), None)
    assert found is None and why == f"installed OTP {tools.otp_version} does not match pin {erl.otp_major + 1}"
    found, why = hosttools.installed(None, "0.9")
    assert found is None and why == f"installed Elixir {tools.elixir_version} does not match pin 0.9"


@needs_erl
def test_provide_runs_the_load_check_on_the_host_otp(elixir_upstream, isolated_cache, monkeypatch):
    """provide() end to end, with the installed OTP standing in for a provided one."""
    from xrel import host

    erl = host.host_erlang()
    otp = hosttools.otp_full_version(erl.root, erl.otp_release)
    runtime = Runtime(erl.root, {"otp_version": otp, "otp_major": erl.otp_major, "source": "debian"})
    monkeypatch.setattr(hosttools, "installed", lambda o, e: (None, "no erl on PATH"))
    monkeypatch.setattr(hosttools, "provide_otp", lambda request, offline: runtime)
    publish_zip(elixir_upstream, "1.17.3", erl.otp_major)
    tools = hosttools.provide(None, "1.17", elixir_source="elixir_zips")
    assert tools.provided and tools.why == "provided: no erl on PATH" and tools.elixir_version == "1.17.3"
    assert tools.sources["elixir"]["sha256"] and tools.sources["otp"]["version"] == otp
    assert list((isolated_cache / "host").glob("elixir-load-*.json"))


def test_a_host_otp_built_here_is_used_before_any_download(isolated_cache, monkeypatch):
    """`xrel build-erts <host>.2.28 --otp 27.x` gives an OTP major Debian builds only for a newer glibc."""
    from xrel.targets import host_target

    def downloaded(*args, **kwargs):
        raise LookupError("downloaded")

    root = isolated_cache / "runtimes" / f"otp-27.3.4.1-{host_target().name}-build-abc"
    root.mkdir(parents=True)
    meta = {"target": host_target().name, "otp_version": "27.3.4.1", "otp_major": 27, "source": "build",
            "glibc_floor": "2.25"}
    (root / "xrel-runtime.json").write_text(json.dumps(meta))
    monkeypatch.setattr(hosttools, "fetch_runtime", downloaded)
    assert hosttools.provide_otp((27,)).root == root
    (root / "xrel-runtime.json").write_text(json.dumps({**meta, "glibc_floor": "9.99"}))  # cannot run here
    with pytest.raises(LookupError, match="downloaded"):
        hosttools.provide_otp((27,))


# -- live: Debian's packages ----------------------------------------------------------------------

@pytest.fixture
def nothing_installed(monkeypatch):
    monkeypatch.setattr(hosttools, "installed", lambda o, e: (None, "no erl on PATH"))


@pytest.mark.slow
@pytest.mark.network
@needs_apt
def test_bookworm_otp_25_and_elixir_1_14_provided(nothing_installed, tmp_path):
    tools = hosttools.provide("25", "1.14", elixir_source="debian")
    assert tools.provided and tools.otp_version.startswith("25.") and tools.elixir_version == "1.14.0"
    assert tools.sources["elixir"]["suite"] == "bookworm" and tools.sources["elixir"]["debian_version"]
    assert tools.elixir_root.name == "elixir-1.14.0-debian"
    for tool in ("erl", "erlc", "escript"):
        assert os.access(tools.otp_root / "bin" / tool, os.X_OK), tool
    subprocess.run([tools.otp_root / "bin" / "erl", "-noshell", "-eval", "halt()."], check=True, timeout=60)
    env = tools.env({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"})
    which = subprocess.run(["sh", "-c", "command -v erl"], env=env, capture_output=True, text=True)
    assert which.stdout.strip() == str(tools.otp_root / "bin" / "erl")
    mix = subprocess.run(["mix", "--version"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert mix.returncode == 0 and "Mix 1.14.0" in mix.stdout, mix.stderr
    assert hosttools.provide("25", "1.14", elixir_source="debian") == tools  # cached


@pytest.mark.slow
@pytest.mark.network
@needs_apt
def test_trixie_elixir_refused_on_otp_25(nothing_installed):
    with pytest.raises(NotAvailableError) as e:
        hosttools.provide("25", "1.18", elixir_source="debian")
    assert re.fullmatch(r"Elixir 1\.18\.\d+ \(from debian\) was compiled by a newer OTP than 25\.[\d.]+: "
                        r"\d+ of \d+ modules fail to load", e.value.message), e.value.message
    assert e.value.hint == "pin an Elixir built for OTP 25, e.g. 1.14.0 from debian"

