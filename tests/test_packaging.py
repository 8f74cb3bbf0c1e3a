"""`pip install .` gives a `seesaw-nas` command that works from any directory (packages found
automatically, the fidelity table shipped as package data)."""

from __future__ import annotations

import json
import site
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv (seeing this interpreter's site-packages for torch & co.) with the project installed.

    A ``.pth`` file lists this interpreter's site-packages: ``system_site_packages`` would show the base
    interpreter's instead, which lack the requirements when the tests run inside a venv.
    """
    where = tmp_path_factory.mktemp("venv")
    venv.create(where / "v", with_pip=True)
    python = where / "v" / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "host_site_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
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


def readme_rebuild_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    after = text.split("Rebuild an exported network", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_readme_rebuild_snippet_runs_from_any_directory_after_install(installed, tmp_path):
    """The README's snippet, verbatim, on an exported YAML in results/RUN/, run outside the checkout."""
    from optuna.trial import TrialState, create_trial

    from blocks import count_cost
    from search.engine.attributes import ATTR
    from search.results.export import export_trial
    from space.spaces import get_space

    space = get_space("seesaw")
    spec = space.spec_from_params(space.smallest_params())
    cost = count_cost(spec, 10, 32)
    trial = create_trial(state=TrialState.COMPLETE, values=[0.5, float(cost.macs)], user_attrs={
        ATTR.SPEC: spec.to_dict(), ATTR.MACS: cost.macs, ATTR.PARAMS: cost.params})
    export_trial(trial, tmp_path / "results" / "RUN" / "best_block.yaml", run={"name": "RUN", "num_classes": 10})
    out = subprocess.run([installed / "python", "-c", readme_rebuild_snippet()], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                      "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"Cost(params={cost.params}, macs={cost.macs})"
