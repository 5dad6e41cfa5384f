"""The wheel carries what xrel needs at run time outside its Python modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_finds_its_recipes(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT),
                    "-w", str(tmp_path)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("xrel-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("xrel/_recipes/targets.toml", "xrel/_recipes/sources.toml", "xrel/_recipes/packages.toml",
                   "xrel/_recipes/sonames.toml", "xrel/release/wrapper.exs", "xrel/release/xrel_mix.ex"):
        assert needed in names, needed
    assert any(n.startswith("xrel/_recipes/alpine-keys/") and n.endswith(".rsa.pub") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "import xrel.recipes as r; print(r.recipes_dir()); import xrel; print(len(xrel.all_targets()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(site / "xrel" / "_recipes"), "14"]


@pytest.mark.skipif(not os.environ.get("CI"), reason="CI only: a developer may test an editable install")
def test_ci_tests_the_installed_wheel_not_the_source_tree():
    """scripts/setup.sh installs a wheel of the checkout; CI must test that, so a module or data
    file left out of the wheel fails the suite instead of being found in the source tree."""
    import xrel

    package = Path(xrel.__file__).resolve().parent
    assert ROOT / "toolchain" not in package.parents, f"xrel imported from the source tree: {package}"
    assert (package / "_recipes" / "targets.toml").is_file()
    direct_url = json.loads(next(package.parent.glob("xrel-*.dist-info/direct_url.json")).read_text())
    assert "archive_info" in direct_url and direct_url["url"].endswith(".whl"), direct_url
