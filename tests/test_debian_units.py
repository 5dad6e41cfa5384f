"""Pure parts of the Debian machinery: apt sources parsing, dpkg version order, soname -> package."""

from __future__ import annotations

import pytest
from debian.debian_support import version_compare

from xrel.debian import apt
from xrel.debian.sysroot import closure, package_for
from xrel.errors import MissingToolError


@pytest.mark.parametrize("a,b,expected", [
    ("1:25.2.3+dfsg-1+deb12u4", "1:25.2.3+dfsg-1+deb12u1", 1),
    ("1:25.2.3+dfsg-1", "25.9", 1),  # the epoch wins
    ("1.0~rc1-1", "1.0-1", -1),  # ~ sorts before everything
    ("2.36-9+deb12u14", "2.36-9+deb12u14", 0),
    ("1.2.10-1", "1.2.9-1", 1),
    ("1.0a-1", "1.0-1", 1),
])
def test_dpkg_version_order(a, b, expected):
    """The order xrel relies on (newest erlang-base of a suite), as python-debian gives it."""
    assert _sign(version_compare(a, b)) == expected
    assert _sign(version_compare(b, a)) == -expected


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def test_packages_index_parses_stanzas_when_read():
    text = ("Package: erlang-base\nVersion: 1:25.2.3+dfsg-1\nSource: erlang\nDepends: libc6 (>= 2.34)\n\n"
            "Package: erlang-base\nVersion: 1:25.2.3+dfsg-1+deb12u1\nSource: erlang\n\n"
            "Package: zlib1g\nVersion: 1:1.2.13\n")
    index = apt.PackagesIndex(iter([text]))
    assert sorted(index) == ["erlang-base", "zlib1g"] and "zlib1g" in index
    assert [s["Version"] for s in index["erlang-base"]] == ["1:25.2.3+dfsg-1", "1:25.2.3+dfsg-1+deb12u1"]
    assert index["erlang-base"][0]["Depends"] == "libc6 (>= 2.34)"


def test_upstream_version_from_debian_version():
    assert apt.debian_version_to_upstream("1:27.3.4.1+dfsg-1+deb13u4") == "27.3.4.1"
    assert apt.debian_version_to_upstream("1:25.2.3+dfsg-1") == "25.2.3"


def test_sources_in_both_formats(tmp_path, monkeypatch):
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://mirror.example/debian bookworm main\n"
        "deb https://packages.example.com/apt stable main\n")
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    monkeypatch.setattr(apt, "SOURCES_FILES", (str(tmp_path / "sources.list"), str(tmp_path / "*.sources")))
    monkeypatch.delenv("XREL_DEBIAN_URL", raising=False)
    monkeypatch.delenv("XREL_DEBIAN_SECURITY_URL", raising=False)
    mirrors = apt.system_mirrors()
    assert [m.uri for m in mirrors] == ["http://mirror.example/debian", "http://deb.example/debian-security"]
    assert apt.mirror().uri == "http://mirror.example/debian"
    assert apt.mirror(security=True).uri == "http://deb.example/debian-security"
    monkeypatch.setenv("XREL_DEBIAN_URL", "http://override.example/debian/")
    assert apt.mirror().uri == "http://override.example/debian"


def test_soname_to_package():
    index = {"libc6": [{}], "zlib1g": [{}], "libsqlite3-0": [{}], "libssl3t64": [{}], "libgcc-s1": [{}],
             "libtinfo6": [{}]}
    assert package_for("libm.so.6", index) == "libc6"
    assert package_for("libz.so.1", index) == "zlib1g"
    assert package_for("libsqlite3.so.0", index) == "libsqlite3-0"  # policy name with a dash
    assert package_for("libcrypto.so.3", index) == "libssl3t64"  # trixie's time_t transition
    assert package_for("libtinfo.so.6", index) == "libtinfo6"
    assert package_for("libnothere.so.1", index) is None


def test_sysroot_closure_follows_library_dependencies_only():
    index = {
        "libssl3": [{"Depends": "libc6 (>= 2.34)"}],
        "libc6": [{"Depends": "libgcc-s1"}],
        "libgcc-s1": [{"Depends": "gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)"}],
        "gcc-12-base": [{}],
        "libpam-runtime": [{"Depends": "debconf"}],
        "libsystemd0": [{"Pre-Depends": "libc6, libzstd1 | libzstd-alt", "Depends": "libpam-runtime"}],
        "libzstd1": [{}],
    }
    assert closure({"libssl3", "libsystemd0"}, index) == ["libc6", "libgcc-s1", "libssl3", "libsystemd0", "libzstd1"]


def _ubuntu_sources(tmp_path, monkeypatch):
    """An Ubuntu host: its apt sources name only Ubuntu's archive, signed by Ubuntu's key."""
    (tmp_path / "ubuntu.sources").write_text(
        "Types: deb\nURIs: http://archive.ubuntu.example/ubuntu/\nSuites: noble noble-updates\n"
        "Components: main universe\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n")
    monkeypatch.setattr(apt, "SOURCES_FILES", (str(tmp_path / "*.sources"),))
    monkeypatch.delenv("XREL_DEBIAN_URL", raising=False)
    monkeypatch.delenv("XREL_DEBIAN_SECURITY_URL", raising=False)


def test_no_debian_mirror_falls_back_to_debians_own(tmp_path, monkeypatch, capsys):
    _ubuntu_sources(tmp_path, monkeypatch)
    keyring = tmp_path / "debian-archive-keyring.gpg"
    keyring.write_bytes(b"keyring")
    monkeypatch.setattr(apt, "default_keyring", lambda: str(keyring))
    assert apt.system_mirrors() == []
    assert apt.mirror() == apt.Mirror("http://deb.debian.org/debian", str(keyring), False)
    assert apt.mirror(security=True) == apt.Mirror("http://deb.debian.org/debian-security", str(keyring), True)
    assert "no Debian mirror in the system's apt sources; using http://deb.debian.org/debian" in capsys.readouterr().err


def test_no_debian_mirror_and_no_keyring_names_the_package(tmp_path, monkeypatch):
    _ubuntu_sources(tmp_path, monkeypatch)
    monkeypatch.setattr(apt, "default_keyring", lambda: str(tmp_path / "missing.gpg"))
    with pytest.raises(MissingToolError, match="apt-get install debian-archive-keyring"):
        apt.mirror()


def test_depends_of_a_package_without_any_is_quiet(caplog, capsys):
    from xrel.debian.sysroot import _depends

    assert _depends({"Package": "libc6"}) == []
    assert _depends({"Pre-Depends": "libc6 (>= 2.36)", "Depends": "zlib1g | libz-ng, libzstd1"}) == \
        ["libc6", "zlib1g", "libzstd1"]
    assert not caplog.records and capsys.readouterr().err == ""
