"""`xrel build` with real mix, real zig and real Debian runtimes (OTP 25 from bookworm)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

import xrel
from conftest import needs_apt, needs_make, needs_mix
from helpers import XREL, copy_fixtures, host_release, marker, tree_digest
from xrel.errors import InspectionError, UsageError
from xrel.inspection import binaries

pytestmark = [needs_mix, needs_make, needs_apt, pytest.mark.slow]

LINUX = ["arm-linux-gnueabihf", "aarch64-linux-gnu", "x86_64-linux-gnu"]
MACHINES = {"arm-linux-gnueabihf": (40, 32), "aarch64-linux-gnu": (183, 64), "x86_64-linux-gnu": (62, 64)}


@pytest.fixture(scope="module")
def three_targets(tmp_path_factory):
    """nif_make (C NIF + port program) with a host build first, then one xrel build for three
    Linux targets; the user's tree is hashed before and after."""
    root = copy_fixtures(tmp_path_factory.mktemp("build"), "nif_make")
    project = root / "nif_make"
    host = host_release(project)
    assert host.returncode == 0, host.stdout + host.stderr
    before = tree_digest(root, exclude=("nif_make/_build/xrel",))
    result = xrel.build(project, LINUX, tarball=True)
    after = tree_digest(root, exclude=("nif_make/_build/xrel",))
    return project, result, before, after


def test_every_native_file_is_the_targets(three_targets):
    _project, result, _b, _a = three_targets
    assert [t.target for t in result.targets] == LINUX
    for t in result.targets:
        machine, bits = MACHINES[t.target]
        natives = list(binaries.native_files(Path(t.release_dir)))
        assert any(p.name == "beam.smp" for p in natives) and any(p.name == "fixture_nif.so" for p in natives)
        for path in natives:
            info = binaries.read(path)
            assert (info.machine, info.bits) == (machine, bits), f"{path} is {info}"
        assert t.glibc_floor == "2.34"  # bookworm's ERTS sets the floor, not zig's NIF


def test_armhf_nif_was_compiled_against_32bit_headers(three_targets):
    _project, result, _b, _a = three_targets
    by_target = {t.target: Path(t.release_dir) for t in result.targets}
    nif = lambda t: next(by_target[t].glob("lib/nif_make-*/priv/fixture_nif.so"))  # noqa: E731
    assert marker(nif("arm-linux-gnueabihf")) == "xrel-fixture:arch=arm:header_sizeof_long=4"
    assert marker(nif("aarch64-linux-gnu")) == "xrel-fixture:arch=aarch64:header_sizeof_long=8"
    info = binaries.read(nif("arm-linux-gnueabihf"))
    assert info.float_abi == "hard"


def test_users_tree_is_untouched_and_host_release_still_works(three_targets):
    project, _result, before, after = three_targets
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, f"xrel changed the user's files: {sorted(changed)[:10]}"
    again = host_release(project)
    assert again.returncode == 0, again.stdout + again.stderr
    run = subprocess.run([str(project / "_build/prod/rel/nif_make/bin/nif_make"), "eval", "IO.puts(Fixture.report())"],
                         capture_output=True, text=True, timeout=120)
    assert "nif_arch=x86_64" in run.stdout and "port=x86_64:ping" in run.stdout


def test_tarballs_sha256_files_and_manifest_agree(three_targets):
    project, result, _b, _a = three_targets
    manifest = json.loads(Path(result.manifest).read_text())
    by_target = {a["target"]: a for a in manifest["artifacts"]}
    assert set(by_target) == set(LINUX)
    for t in result.targets:
        tarball = Path(t.tarball)
        assert tarball.name == f"nif_make-0.1.0-otp25-{t.target}.tar.gz"
        assert tarball.with_name(f"nif_make-0.1.0-{t.target}.tar.gz").resolve() == tarball.resolve()  # the old name
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        assert digest == t.sha256 == by_target[t.target]["sha256"]
        assert (tarball.parent / (tarball.name + ".sha256")).read_text() == f"{digest}  {tarball.name}\n"
        with tarfile.open(tarball) as tar:
            names = tar.getnames()
        assert "bin/nif_make" in names and any(n.endswith("priv/fixture_nif.so") for n in names)
        assert by_target[t.target]["otp"] == t.otp_version == "25.2.3"
        assert by_target[t.target]["runtime_source"] == "debian"


def test_release_uses_target_otp_apps_and_relocatable_erl(three_targets):
    _project, result, _b, _a = three_targets
    arm = Path(result.targets[0].release_dir)
    crypto = next(arm.glob("lib/crypto-*/priv/lib/crypto.so"))
    assert binaries.read(crypto).machine == 40
    erl = next(arm.glob("erts-*/bin/erl")).read_text()
    assert "/usr/lib/erlang" not in erl
    assert json.loads((arm / "releases" / "xrel.json").read_text())["target"] == "arm-linux-gnueabihf"


def test_pure_project_and_path_dependency_with_a_nif(tmp_path):
    root = copy_fixtures(tmp_path, "pure_app", "uses_dep", "nif_make")
    pure = xrel.build(root / "pure_app", ["aarch64-linux-gnu"], tarball=True)
    assert Path(pure.targets[0].tarball).name == "pure_app-1.2.0-otp25-aarch64-linux-gnu.tar.gz"
    # the project's own release config is honoured: vm.args template, overlays, a custom step
    rel = Path(pure.targets[0].release_dir)
    assert "## xrel-fixture-vm-args" in (rel / "releases" / "1.2.0" / "vm.args").read_text()
    assert (rel / "NOTICE.txt").read_text() == "shipped by an overlay\n"
    assert (rel / "STAMP").read_text() == "built by a custom step\n"
    dep = xrel.build(root / "uses_dep", ["arm-linux-gnueabihf"])
    release = Path(dep.targets[0].release_dir)
    nif = next(release.glob("lib/nif_make-*/priv/fixture_nif.so"))
    assert marker(nif) == "xrel-fixture:arch=arm:header_sizeof_long=4"
    assert not list((root / "nif_make").rglob("*.so")), "the path dep's own tree got a build output"


def test_umbrella_with_a_nif_child(tmp_path):
    root = copy_fixtures(tmp_path, "umbrella")
    result = xrel.build(root / "umbrella", ["arm-linux-gnueabihf", "aarch64-linux-gnu"])
    for t in result.targets:
        nif = next(Path(t.release_dir).glob("lib/calc-*/priv/calc_nif.so"))
        assert binaries.read(nif).machine == MACHINES[t.target][0]
        assert (Path(t.release_dir) / "bin" / "umbrella").is_file()


def test_a_hard_coded_gcc_is_caught_and_named(tmp_path):
    root = copy_fixtures(tmp_path, "uses_hardcoded", "hardcoded_gcc")
    with pytest.raises(InspectionError) as err:
        xrel.build(root / "uses_hardcoded", ["arm-linux-gnueabihf"])
    message = str(err.value)
    assert "hardcoded_nif.so" in message and "dependency hardcoded_gcc" in message and "x86-64" in message
    out = root / "uses_hardcoded" / "_build" / "xrel"
    assert not list(out.rglob("uses_hardcoded*")), "a rejected release was left in the output dir"


def test_bad_input_gives_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="no mix.exs"):
        xrel.build(tmp_path, ["aarch64-linux-gnu"])
    root = copy_fixtures(tmp_path / "p", "pure_app")
    with pytest.raises(UsageError, match="unknown target"):
        xrel.build(root / "pure_app", ["aarch64-linux-gnuu"])
    with pytest.raises(UsageError, match="older than this machine's OTP"):
        xrel.build(root / "pure_app", ["aarch64-linux-gnu"], otp="24")
    cli = subprocess.run([*XREL, "build", str(tmp_path), "-t", "armhf"], capture_output=True, text=True)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert cli.stderr.strip().startswith("xrel: error: no mix.exs") and len(cli.stderr.strip().splitlines()) == 1


def test_a_glibc_floor_below_the_runtimes_is_an_error_naming_it(tmp_path):
    root = copy_fixtures(tmp_path, "pure_app")
    with pytest.raises(UsageError) as err:
        xrel.build(root / "pure_app", ["aarch64-linux-gnu.2.28"])
    assert "needs glibc 2.34" in str(err.value) and "2.28" in str(err.value)


def test_inspect_cli_on_a_tarball(three_targets):
    _project, result, _b, _a = three_targets
    arm = next(t for t in result.targets if t.target == "arm-linux-gnueabihf")
    out = subprocess.run([*XREL, "inspect", arm.tarball, "--json"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["ok"] and report["target"] == "arm-linux-gnueabihf" and report["glibc_floor"] == "2.34"
    files = {f["path"]: f for f in report["files"]}
    assert files["lib/nif_make-0.1.0/priv/port_prog"]["info"]["needed"] == ["libc.so.6"]
    assert "libcrypto.so.3" in report["needed"]
    wrong = subprocess.run([*XREL, "inspect", arm.tarball, "-t", "aarch64-linux-gnu"], capture_output=True, text=True)
    assert wrong.returncode == 8 and "do not match aarch64-linux-gnu" in wrong.stderr


def test_include_erts_false_is_honoured_and_said(tmp_path):
    root = copy_fixtures(tmp_path, "pure_app")
    mix_exs = root / "pure_app" / "mix.exs"
    mix_exs.write_text(mix_exs.read_text().replace('overlays: ["rel/overlays"],',
                                                   'overlays: ["rel/overlays"], include_erts: false,'))
    result = xrel.build(root / "pure_app", ["aarch64-linux-gnu"])
    t = result.targets[0]
    assert not list(Path(t.release_dir).glob("erts-*"))
    assert any("include_erts: false" in n and "OTP 25" in n for n in t.notes)


def test_two_builds_of_one_project_at_once_both_succeed(tmp_path):
    root = copy_fixtures(tmp_path, "nif_make")
    project = root / "nif_make"
    cmd = [*XREL, "-q", "build", str(project), "-t", "arm-linux-gnueabihf", "--tarball", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    shas = {json.loads(out)["targets"][0]["sha256"] for out, _err in outs}
    tarball = project / "_build" / "xrel" / "nif_make-0.1.0-arm-linux-gnueabihf.tar.gz"
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() in shas
    with tarfile.open(tarball) as tar:
        assert "bin/nif_make" in tar.getnames()


def test_the_readme_library_example_runs(tmp_path):
    """The API example in README.md, executed as written (on a fixture project)."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Library API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    project = copy_fixtures(tmp_path, "nif_make") / "nif_make"
    scope: dict = {}
    exec(code.replace('"path/to/project"', repr(str(project))), scope)  # noqa: S102
    assert scope["report"].ok and scope["smoke"].ok and scope["rt"].otp_version.startswith("25.")
    assert [r.target for r in scope["result"].targets] == ["arm-linux-gnueabihf", "aarch64-linux-gnu"]


def test_mix_target_selects_deps_and_build_dirs(tmp_path):
    root = copy_fixtures(tmp_path, "nerves_style", "nif_make")
    project = root / "nerves_style"
    plain = xrel.build(project, ["arm-linux-gnueabihf", "aarch64-linux-gnu"], out=tmp_path / "plain")
    assert not list(Path(plain.targets[0].release_dir).glob("lib/nif_make-*"))
    pi = xrel.build(project, ["arm-linux-gnueabihf", "aarch64-linux-gnu"], mix_target="rpi3", out=tmp_path / "pi")
    for t, arch in zip(pi.targets, ("arm", "aarch64")):
        nif = next(Path(t.release_dir).glob("lib/nif_make-*/priv/fixture_nif.so"))
        assert marker(nif).startswith(f"xrel-fixture:arch={arch}:")
