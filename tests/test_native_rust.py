"""Rust NIFs built from source the Rustler way, cross-built by xrel with cargo + zig.

Fixtures: `rustler` (a stand-in for hex's rustler_mix 0.37: `use Rustler` runs
`cargo rustc --message-format=json-render-diagnostics` while the module compiles and copies the
artifact cargo names to priv/native/<crate>.so), `rust_nif` (a path dep with a dependency-free
cdylib NIF crate) and `uses_rust` (the project). Only the x86_64-unknown-linux-gnu Rust std is
installed here, so the full path runs on x86_64 (natively), with glibc floors; other targets get
the error that names `rustup target add`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import xrel
from conftest import needs_apt, needs_mix
from helpers import HOST_STD, XREL, copy_fixtures, has_rust_std, tree_digest
from otp_tree import RELEASE_APPS, build_otp_tree
from xrel.errors import BuildError, MissingToolError
from xrel.inspection import binaries
from xrel.release.workspace import project_key

needs_rust = pytest.mark.skipif(not has_rust_std(HOST_STD),
                                reason=f"cargo/rustc with the {HOST_STD} std are not installed")
pytestmark = [needs_mix, needs_rust, pytest.mark.slow]

RUST_FIXTURES = ("rustler", "rust_nif", "uses_rust")
NIF = "lib/rust_nif-0.2.0/priv/native/rust_nif.so"


def _copy(root: Path) -> Path:
    copy_fixtures(root, *RUST_FIXTURES)
    return root / "uses_rust"


def _workspace(project: Path, target_id: str) -> Path:
    """The target's build tree (one per runtime and compiler setup) in xrel's cache."""
    from xrel.storage import cache

    (found,) = (cache.area("builds") / project_key(project, "prod") / "prod").glob(f"{target_id}-*")
    return found


@pytest.fixture(scope="module")
def two_floors(tmp_path_factory):
    """One build for x86_64-linux-gnu (zig's default floor 2.28 for NIFs) and
    x86_64-linux-gnu.2.34 (seeded from the first: the Rustler module is compiled again)."""
    project = _copy(tmp_path_factory.mktemp("rust"))
    before = tree_digest(project.parent, exclude=("uses_rust/_build",))
    result = xrel.build(project, ["x86_64-linux-gnu", "x86_64-linux-gnu.2.34"])
    after = tree_digest(project.parent, exclude=("uses_rust/_build",))
    return project, result, before, after


@needs_apt
def test_rust_nif_is_built_by_zig_with_the_targets_glibc_floor(two_floors):
    _project, result, _b, _a = two_floors
    plain, floor_234 = (Path(t.release_dir) for t in result.targets)
    info = binaries.read(plain / NIF)
    assert (info.format, info.kind, info.machine, info.bits) == ("elf", "shared", 62, 64)
    assert info.glibc_floor == "2.28", info  # the host linker gives GLIBC_2.34 symbols to Rust's std
    assert "libgcc_s.so.1" not in info.needed  # zig links its own unwinder, not the host's libgcc_s
    # the second target's NIF was linked again, against glibc 2.34's symbol versions
    info_234 = binaries.read(floor_234 / NIF)
    assert binaries.version_key(info_234.glibc_floor) > (2, 28) and "libpthread.so.0" not in info_234.needed
    assert result.targets[0].glibc_floor == "2.34"  # the release's floor is the bookworm ERTS's


@needs_apt
def test_rustler_module_is_compiled_per_target_in_the_targets_tree(two_floors):
    project, result, before, after = two_floors
    for t in result.targets:
        ws = _workspace(project, t.target)
        log = (ws / "build.log").read_text()
        assert "Compiling crate rust_nif in release mode" in log, log[-2000:]
        copied = re.search(r"Copying (\S+) to priv/native/rust_nif.so", log).group(1)
        assert copied.startswith(str(ws / "cargo-target" / HOST_STD / "release")), copied
        mirror_priv = next(ws.glob("root/**/rust_nif/priv/native/rust_nif.so"))
        assert binaries.read(mirror_priv).glibc_floor == binaries.read(Path(t.release_dir) / NIF).glibc_floor
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, f"xrel wrote into the user's tree: {sorted(changed)[:10]}"
    assert not (project.parent / "rust_nif" / "priv").exists()
    assert not (project.parent / "rust_nif" / "native" / "rust_nif" / "target").exists()


@needs_apt
def test_release_runs_the_rust_nif_and_smoke_loads_it(two_floors):
    _project, result, _b, _a = two_floors
    release = Path(result.targets[0].release_dir)
    out = subprocess.run([*XREL, "-q", "run", str(release), "eval", "IO.puts(UsesRust.report())"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rust_arch=x86_64 pointer_bytes=8 lang=rust add=42" in out.stdout
    smoke = xrel.smoke(release)
    assert smoke.ok and NIF in smoke.nifs_loaded, smoke.to_dict()


def test_explicit_glibc_floor_reaches_the_rust_linker(tmp_path):
    """x86_64-linux-gnu.2.17 (below every runtime here, so a zig-built OTP tree stands in):
    the NIF's highest GLIBC_ symbol version stays within the floor."""
    project = _copy(tmp_path)
    tree = build_otp_tree("x86_64-linux-gnu", tmp_path / "otp", apps=RELEASE_APPS)
    result = xrel.build(project, ["x86_64-linux-gnu.2.17"], source=f"path:{tree}")
    info = binaries.read(Path(result.targets[0].release_dir) / NIF)
    assert info.machine == 62 and binaries.version_key(info.glibc_floor) <= (2, 17), info


def test_missing_rust_std_fails_early_with_the_rustup_command(tmp_path):
    if has_rust_std("aarch64-unknown-linux-gnu"):
        pytest.skip("the aarch64 Rust std is installed here, so there is no error to see")
    project = _copy(tmp_path)
    with pytest.raises(MissingToolError) as err:
        xrel.build(project, ["aarch64-linux-gnu"])
    assert "rustup target add aarch64-unknown-linux-gnu" in str(err.value)
    assert "rust_nif" in str(err.value)
    assert not list(xrel_cache_builds().glob(f"{project_key(project, 'prod')}/prod/*")), "it built before failing"
    cli = subprocess.run([*XREL, "build", str(project), "-t", "arm64"], capture_output=True, text=True)
    assert cli.returncode == 3 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert "`rustup target add aarch64-unknown-linux-gnu`" in cli.stderr


def test_old_rustler_and_missing_cargo_are_named(tmp_path, monkeypatch):
    project = _copy(tmp_path)
    mix = tmp_path / "rustler" / "mix.exs"
    mix.write_text(mix.read_text().replace('@version "0.37.1"', '@version "0.36.2"'))
    with pytest.raises(BuildError, match=r"rustler 0\.36\.2 .*upgrade the rustler dependency to 0\.37"):
        xrel.build(project, ["x86_64-linux-gnu"])
    cargo_dir = os.path.dirname(shutil.which("cargo"))
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != cargo_dir))
    if shutil.which("cargo"):
        pytest.skip("cargo is also installed elsewhere on PATH")
    with pytest.raises(MissingToolError, match=r"`cargo` is not on PATH \(rust_nif builds a Rust NIF"):
        xrel.build(project, ["x86_64-linux-gnu"])


def xrel_cache_builds() -> Path:
    from xrel.storage import cache

    return cache.area("builds")
