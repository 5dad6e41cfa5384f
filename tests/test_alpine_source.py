"""The Alpine runtime source against a local repository in the real apk v2 formats.

The packages hold OTP trees whose native files are real musl x86_64 binaries built by zig
(beam.smp and friends dynamically linked against musl, as Alpine's are); the index and the
packages are signed with a key generated here and trusted through XREL_ALPINE_KEYS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from alpine_repo import Package, Signer, alpine_layout, gz, index, tar_of
from otp_tree import RELEASE_APPS, build_otp_tree
from xrel.errors import InspectionError, NotAvailableError, UsageError, VerificationError
from xrel.host import host_erlang
from xrel.inspection import binaries
from xrel.runtimes import fetch_runtime, list_offers
from xrel.runtimes.alpine import SOURCE, so_depends, trusted_keys
from xrel.runtimes.apk import identity_digest, parse_index
from xrel.runtimes.base import FetchOptions
from xrel.targets import Target

TARGET = "x86_64-linux-musl"
KEY_NAME = "xrel-test-5f00d1e5.rsa.pub"
MUSL_DEPENDS = ["so:libc.musl-x86_64.so.1", "so:libcrypto.so.3", "so:libgcc_s.so.1",
                "so:libncursesw.so.6", "so:libstdc++.so.6", "so:libz.so.1"]


# -- session fixtures: keys, trees, built packages ----------------------------------------------

def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer(_private_key(), KEY_NAME)


@pytest.fixture(scope="session")
def musl_exe(tmp_path_factory) -> Path:
    """A dynamically linked musl x86_64 executable (interpreter /lib/ld-musl-x86_64.so.1)."""
    import xrel

    out = tmp_path_factory.mktemp("musl-exe")
    (out / "main.c").write_text("int main(void) { return 0; }\n")
    cc = xrel.zig_toolchain(TARGET).env()["CC"]
    subprocess.run([cc, "-O1", "-dynamic", str(out / "main.c"), "-o", str(out / "beam")], check=True)
    return out / "beam"


@pytest.fixture(scope="session")
def base_tree(tmp_path_factory, musl_exe) -> Path:
    """A musl OTP root built once (zig builds for a new target take up to a minute)."""
    root = build_otp_tree(TARGET, tmp_path_factory.mktemp("otp") / "root", apps=RELEASE_APPS)
    for name in ("beam.smp", "erlexec", "erl_child_setup"):
        shutil.copy2(musl_exe, next(root.glob("erts-*/bin")) / name)
    return root


@pytest.fixture(scope="session")
def built(tmp_path_factory, base_tree, signer):
    """built(name, version, kind) -> (Package, apk bytes); kind is musl, glibc or empty."""
    made: dict = {}

    def build(name: str, version: str, kind: str = "musl") -> list[tuple[Package, bytes]]:
        if (name, version, kind) in made:
            return made[(name, version, kind)]
        main = dev = None
        if kind != "empty":
            work = tmp_path_factory.mktemp(f"{name}-{version}-{kind}")
            root = work / "root"
            shutil.copytree(base_tree, root, symlinks=True)
            shutil.rmtree(root / "releases")
            (root / "releases" / version.split(".")[0]).mkdir(parents=True)
            (root / "releases" / version.split(".")[0] / "OTP_VERSION").write_text(version.split("-r")[0] + "\n")
            if kind == "glibc":  # the host's real Debian beam.smp, packaged as if it were musl
                host = host_erlang()
                shutil.copy2(host.root / f"erts-{host.erts_version}" / "bin" / "beam.smp",
                             next(root.glob("erts-*/bin")) / "beam.smp")
            main, dev = alpine_layout(root, work / "alpine")
        pkgs = [Package(name, version, main, MUSL_DEPENDS, [f"cmd:erl={version}"]),
                Package(f"{name}-dev", version, dev, [f"{name}={version}"])]
        made[(name, version, kind)] = [(p, p.build(signer)) for p in pkgs]
        return made[(name, version, kind)]

    return build


# -- the repository served per test --------------------------------------------------------------

class Repo:
    def __init__(self, server, signer: Signer):
        self.server, self.signer = server, signer

    def url(self, branch: str, filename: str) -> str:
        return self.server.url_for(f"/{branch}/community/x86_64/{filename}")

    def publish(self, branch: str, packages: list[tuple[Package, bytes]], *, signer: Signer | None = None,
                extra: tuple[str, ...] = (), served: dict[str, bytes] | None = None, arch: str = "x86_64") -> None:
        base = f"/{branch}/community/{arch}"
        records = [p.record(data) for p, data in packages] + list(extra)
        self.server.expect_request(f"{base}/APKINDEX.tar.gz").respond_with_data(
            index(records, signer or self.signer))
        for p, data in packages:
            self.server.expect_request(f"{base}/{p.filename}").respond_with_data((served or {}).get(p.filename, data))

    def requests(self, suffix: str) -> int:
        return sum(1 for request, _response in self.server.log if request.path.endswith(suffix))


# Records that must be ignored: a split GUI subpackage, a release candidate, an unrelated package.
NOISE = (
    "C:Q1" + base64.b64encode(b"w" * 20).decode() + "\nP:erlang27-wx\nV:27.3.4-r1\nA:x86_64\n",
    "C:Q1" + base64.b64encode(b"r" * 20).decode() + "\nP:erlang29\nV:29.0_rc1-r0\nA:x86_64\n",
    "C:Q1" + base64.b64encode(b"e" * 20).decode() + "\nP:elixir\nV:1.18.4-r0\nA:x86_64\nD:erlang\n",
)


@pytest.fixture
def repo(httpserver, signer, tmp_path, monkeypatch, isolated_cache) -> Repo:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / KEY_NAME).write_bytes(signer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    monkeypatch.setenv("XREL_ALPINE_KEYS", str(keys))
    monkeypatch.setenv("XREL_ALPINE_URL", httpserver.url_for("/").rstrip("/"))
    httpserver.no_handler_status_code = 404  # branches that are not published
    return Repo(httpserver, signer)


@pytest.fixture
def standard(repo, built) -> Repo:
    """v3.22 with erlang26/27/28 (26 and 28 without content), v3.21 with erlang 26.2.5.5."""
    repo.publish("v3.22", built("erlang26", "26.2.5.12-r0", "empty") + built("erlang27", "27.3.4-r1")
                 + built("erlang28", "28.0-r0", "empty"), extra=NOISE)
    repo.publish("v3.21", built("erlang", "26.2.5.5-r0"))
    return repo


def _runtimes_area(cache: Path) -> list[str]:
    area = cache / "runtimes"
    return sorted(p.name for p in area.iterdir()) if area.is_dir() else []


def _downloaded_apks(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "downloads").glob("*.apk*"))


# -- unit-level checks ----------------------------------------------------------------------------

def test_shipped_keys_match_their_pins(monkeypatch):
    monkeypatch.delenv("XREL_ALPINE_KEYS", raising=False)
    assert sorted(k.rsplit("-", 1)[1] for k in trusted_keys("x86_64")) == \
        ["4a6a0840.rsa.pub", "5261cecb.rsa.pub", "6165ee59.rsa.pub"]
    assert sorted(k.rsplit("-", 1)[1] for k in trusted_keys("aarch64")) == ["58199dcc.rsa.pub", "616ae350.rsa.pub"]


def test_index_records_and_so_depends():
    records = parse_index("C:Q1x\nP:a\nV:1-r0\nD:so:libz.so.1 so:libc.musl-x86_64.so.1 b>=2\n"
                          "p:so:libb.so.1=1\n\nP:b\nD:so:libb.so.1\n")
    assert [r["P"] for r in records] == ["a", "b"]
    assert so_depends(records) == ["libc.musl-x86_64.so.1", "libz.so.1"]


def test_package_checksum_forms():
    digest = hashlib.sha1(b"x").digest()
    assert identity_digest("Q1" + base64.b64encode(digest).decode()) == ("sha1", digest)
    assert identity_digest("X1" + digest.hex()) == ("sha1", digest)
    with pytest.raises(VerificationError):
        identity_digest(hashlib.md5(b"x").hexdigest())  # legacy MD5 identities are refused


# -- the source end to end ------------------------------------------------------------------------

@pytest.mark.slow
def test_fetch_verifies_unpacks_and_normalizes(standard, isolated_cache):
    runtime = fetch_runtime(TARGET, otp="27", source="alpine")
    root = runtime.root
    assert root == isolated_cache / "runtimes" / f"otp-27.3.4-{TARGET}-alpine"
    meta = json.loads((root / "xrel-runtime.json").read_text())
    assert meta["otp_version"] == "27.3.4" and meta["source"] == "alpine" and meta["branch"] == "v3.22"
    assert meta["packages"] == {"erlang27": "27.3.4-r1", "erlang27-dev": "27.3.4-r1"}
    assert meta["urls"] == [standard.url("v3.22", "erlang27-27.3.4-r1.apk"),
                            standard.url("v3.22", "erlang27-dev-27.3.4-r1.apk")]
    served = {r.path.rsplit("/", 1)[1]: resp.get_data() for r, resp in standard.server.log if r.path.endswith(".apk")}
    assert meta["sha256"] == {name: hashlib.sha256(data).hexdigest() for name, data in served.items()}
    assert meta["index_key"] == KEY_NAME and meta["index_description"] == "v3.22.0-1-gtest"
    assert meta["so_depends"] == sorted(d[3:] for d in MUSL_DEPENDS)
    assert meta["depends"]["erlang27-dev"] == ["erlang27=27.3.4-r1"]
    # the OTP root is usr/lib/erlang of both packages, headers from -dev included
    erts = runtime.erts_dir
    assert (erts / "include" / "erl_nif.h").is_file() and (root / "usr" / "include" / "erl_nif.h").is_file()
    assert {"kernel", "stdlib", "crypto", "ssl"} <= {a.rsplit("-", 1)[0] for a in meta["apps"]}
    assert not (root / ".packages").exists() and not (root / "usr" / "bin").exists()
    beam = binaries.read(erts / "bin" / "beam.smp")
    assert (beam.format, beam.machine, beam.libc) == ("elf", 62, "musl")
    assert beam.interpreter == "/lib/ld-musl-x86_64.so.1"
    # erl scripts no longer point at /usr/lib/erlang, and compute the root from where they are
    assert sorted(meta["relocated_scripts"]) == ["bin/erl", f"{erts.name}/bin/erl"]
    for script in ("bin/erl", f"{erts.name}/bin/erl"):
        text = (root / script).read_text()
        assert 'ROOTDIR="/usr/lib/erlang"' not in text and 'ROOTDIR="$ERL_ROOTDIR"' in text
        probe = root / script.replace("/erl", "/erl-probe")
        probe.write_text(text.replace('exec "$BINDIR/erlexec" ${1+"$@"}', 'echo "$ROOTDIR"'))
        out = subprocess.run(["sh", str(probe)], capture_output=True, text=True, check=True).stdout
        assert out.strip() == str(root.resolve())
        probe.unlink()


@pytest.mark.slow
def test_verified_packages_are_reused(standard, isolated_cache):
    fetch_runtime(TARGET, otp="27", source="alpine")
    assert standard.requests("erlang27-27.3.4-r1.apk") == 1
    fetch_runtime(TARGET, otp="27", source="alpine", force=True)
    assert standard.requests("erlang27-27.3.4-r1.apk") == 1  # re-verified from the cache
    assert standard.requests("APKINDEX.tar.gz") >= 4  # the index is always asked afresh


@pytest.mark.slow
def test_version_requests(standard, isolated_cache):
    offers = list_offers(TARGET, source="alpine")["alpine"]
    assert [o.version for o in offers] == ["28.0", "27.3.4", "26.2.5.12", "26.2.5.5"]
    assert {o.version: o.details["branch"] for o in offers}["26.2.5.5"] == "v3.21"
    for request in ("27", "27.3", "27.3.4", "OTP-27.3.4"):
        assert fetch_runtime(TARGET, otp=request, source="alpine").otp_version == "27.3.4"
    older = fetch_runtime(TARGET, otp="26.2.5.5", source="alpine")
    assert older.meta["branch"] == "v3.21" and older.meta["packages"] == {"erlang": "26.2.5.5-r0",
                                                                         "erlang-dev": "26.2.5.5-r0"}
    with pytest.raises(NotAvailableError) as missing:
        fetch_runtime(TARGET, otp="29", source="alpine")
    assert "28.0" in missing.value.message and "29" in missing.value.message


@pytest.mark.slow
def test_one_branch_can_be_asked(standard, isolated_cache):
    offers = SOURCE.offers(Target.parse(TARGET), FetchOptions(location="v3.21"))  # --source alpine:v3.21
    assert [(o.version, o.details["branch"]) for o in offers] == [("26.2.5.5", "v3.21")]
    # newest first, so a branch asked without --otp gives its newest OTP
    newest = SOURCE.offers(Target.parse(TARGET), FetchOptions(location="v3.22"))
    assert [o.version for o in newest] == ["28.0", "27.3.4", "26.2.5.12"]


def test_aarch64_reads_its_own_index(repo, signer, isolated_cache):
    packages = [Package(name, "28.0-r0", None, arch="aarch64") for name in ("erlang28", "erlang28-dev")]
    repo.publish("v3.22", [(p, p.build(signer)) for p in packages], arch="aarch64")
    offers = list_offers("aarch64-linux-musl", source="alpine")["alpine"]
    assert [(o.version, o.url) for o in offers] == [
        ("28.0", repo.server.url_for("/v3.22/community/aarch64/erlang28-28.0-r0.apk"))]


def test_user_key_directory_must_exist_and_hold_keys(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("XREL_ALPINE_KEYS", str(tmp_path / "nowhere"))
    with pytest.raises(UsageError):
        trusted_keys("x86_64")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "broken.rsa.pub").write_text("not a key\n")
    monkeypatch.setenv("XREL_ALPINE_KEYS", str(tmp_path / "junk"))
    with pytest.raises(UsageError):
        trusted_keys("x86_64")


@pytest.mark.slow
def test_sha256_signed_index_is_accepted(repo, built, isolated_cache):
    repo.publish("v3.22", built("erlang27", "27.3.4-r1"), signer=Signer(repo.signer.key, KEY_NAME, "RSA256"))
    assert [o.version for o in list_offers(TARGET, source="alpine")["alpine"]] == ["27.3.4"]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bad signature", "unknown key"])
def test_untrusted_index_is_refused(case, repo, built, isolated_cache):
    if case == "bad signature":
        other = Signer(_private_key(), KEY_NAME)  # right name, wrong key
    else:
        other = Signer(repo.signer.key, "someone-else-1234.rsa.pub")
    repo.publish("v3.22", built("erlang27", "27.3.4-r1"), signer=other)
    with pytest.raises(VerificationError) as refused:
        fetch_runtime(TARGET, otp="27", source="alpine")
    assert ("bad signature" if case == "bad signature" else "unknown key") in refused.value.message
    assert _runtimes_area(isolated_cache) == [] and _downloaded_apks(isolated_cache) == []
    assert repo.requests(".apk") == 0


@pytest.mark.slow
@pytest.mark.parametrize("part", ["control", "data"])
def test_tampered_package_is_refused(part, repo, built, isolated_cache):
    (main, apk_bytes), dev = built("erlang27", "27.3.4-r1")
    signature = apk_bytes[: len(apk_bytes) - len(main.control) - len(main.data)]
    if part == "control":  # .PKGINFO changed (here: depends dropped) -> C: no longer matches
        evil = Package(main.name, main.version, None)
        evil.build(repo.signer)
        tampered = signature + evil.control + main.data
    else:  # control intact, data replaced -> datahash no longer matches
        tampered = signature + main.control + gz(tar_of([("usr/lib/erlang/evil", b"x")], cut=False))
    repo.publish("v3.22", [(main, apk_bytes), dev], served={main.filename: tampered})
    with pytest.raises(VerificationError) as refused:
        fetch_runtime(TARGET, otp="27", source="alpine")
    assert ("index checksum" if part == "control" else "datahash") in refused.value.message
    assert _runtimes_area(isolated_cache) == [] and _downloaded_apks(isolated_cache) == []


@pytest.mark.slow
def test_glibc_erts_packaged_as_musl_is_refused(repo, built, isolated_cache):
    repo.publish("v3.22", built("erlang27", "27.3.4-r1", "glibc"))
    with pytest.raises(InspectionError) as refused:
        fetch_runtime(TARGET, otp="27", source="alpine")
    assert any("beam.smp" in p and "glibc" in p for p in refused.value.problems)
    assert _runtimes_area(isolated_cache) == []


@pytest.mark.slow
def test_offline_uses_the_cached_index_only(standard, isolated_cache):
    with pytest.raises(NotAvailableError) as never:
        SOURCE.offers(Target.parse(TARGET), FetchOptions(offline=True))
    assert "APKINDEX.tar.gz" in never.value.message
    installed = fetch_runtime(TARGET, otp="27", source="alpine")
    before = len(standard.server.log)
    offers = list_offers(TARGET, source="alpine", offline=True)["alpine"]
    assert [o.version for o in offers] == ["28.0", "27.3.4", "26.2.5.12", "26.2.5.5"]
    assert fetch_runtime(TARGET, otp="27", source="alpine", offline=True).root == installed.root
    with pytest.raises(NotAvailableError) as not_cached:
        fetch_runtime(TARGET, otp="26.2.5.5", source="alpine", offline=True)
    assert "offline" in not_cached.value.message
    assert len(standard.server.log) == before  # nothing was asked


def _xrel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrel", "-q", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_cli_fetch_erts(standard, isolated_cache):
    out = _xrel("fetch-erts", TARGET, "--source", "alpine", "--otp", "27", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["otp_version"] == "27.3.4" and data["source"] == "alpine"
    assert data["packages"] == {"erlang27": "27.3.4-r1", "erlang27-dev": "27.3.4-r1"}
    listed = json.loads(_xrel("otp-versions", TARGET, "--source", "alpine", "--json").stdout)
    assert [o["version"] for o in listed["sources"]["alpine"]["offers"]] == ["28.0", "27.3.4", "26.2.5.12", "26.2.5.5"]


@pytest.mark.slow
def test_cli_refuses_an_untrusted_index(repo, built, isolated_cache):
    repo.publish("v3.22", built("erlang27", "27.3.4-r1"), signer=Signer(repo.signer.key, "stranger-1.rsa.pub"))
    out = _xrel("fetch-erts", TARGET, "--source", "alpine", "--otp", "27")
    assert out.returncode == VerificationError.exit_code, out.stderr
    assert "unknown key (stranger-1.rsa.pub)" in out.stderr and "XREL_ALPINE_KEYS" in out.stderr
