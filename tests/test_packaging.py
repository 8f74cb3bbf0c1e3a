"""`pip install .` gives a `seesaw-nas` command that works from any directory (packages found
automatically, the fidelity table shipped as package data)."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv (seeing this interpreter's site-packages for torch & co.) with the project installed."""
    where = tmp_path_factory.mktemp("venv")
    venv.create(where / "v", system_site_packages=True, with_pip=True)
    python = where / "v" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(ROOT)],
                   check=True, timeout=300, capture_output=True)
    return where / "v" / "bin"


@pytest.mark.slow
def test_installed_command_runs_outside_the_checkout(installed, tmp_path):
    env = {"PATH": f"{installed}:/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    refs = subprocess.run([installed / "seesaw-nas", "--references", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert refs.returncode == 0, refs.stderr
    assert any(r["name"] == "seesaw_1.0d_cifar10" for r in json.loads(refs.stdout))
    desc = subprocess.run([installed / "seesaw-nas", "--space", "seesaw", "--describe"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert desc.returncode == 0, desc.stderr
    assert "s3_expansion" in desc.stdout and "reference networks in this space" in desc.stdout


@pytest.mark.slow
def test_installed_package_reads_its_own_files_not_the_checkout(installed, tmp_path):
    code = ("import search.results.fidelity as f, search, seesaw_cli, space.spaces, space.references; "
            "print(f.RESULTS_FILE.is_file(), len(f.load_fidelity()) > 0, search.__file__)")
    out = subprocess.run([installed / "python", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    is_file, has_entries, where = out.stdout.split()
    assert is_file == "True" and has_entries == "True"
    assert str(ROOT) not in where  # the installed copy, not the checkout
