"""benchmarks/gpu_check.py --smoke: the device check's code paths on a CPU, so it cannot rot while
no GPU is at hand (its GPU figures are in BENCHMARKS.md, "GPU check", where a device was lent)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def run_check(tmp_path: Path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OUT": str(out), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {proc.stderr[-2000:]}"
    result = json.loads(lines[-1])  # the last line is the JSON object
    assert json.loads((out / "gpu_check.json").read_text()) == result
    return proc, result


@pytest.mark.slow
def test_smoke_run_measures_every_phase_on_the_cpu(tmp_path):
    # the smoke run's sizes are fixed; a budget above its default 110 s only keeps a busy machine from cutting it
    proc, r = run_check(tmp_path, "--budget-s", "240", timeout=300)
    assert proc.returncode == 0, (r, proc.stderr[-2000:])
    assert r["mode"] == "smoke" and r["device"].startswith("cpu")
    phases = {name: p["status"] for name, p in r["phases"].items()}
    assert phases == {"data": "ok", "throughput": "ok", "host_syncs": phases["host_syncs"], "workers": "ok",
                      "search": "ok"}, r
    assert phases["host_syncs"].startswith("skipped") and "GPU" in phases["host_syncs"]  # CUDA's debug mode only
    # ours vs the DataLoader pipeline, side by side
    assert r["images_per_s_ours"] > 0 and r["images_per_s_dataloader"] > 0
    assert math.isfinite(r["ratio"]) and r["ratio"] == pytest.approx(
        r["images_per_s_ours"] / r["images_per_s_dataloader"], rel=1e-3)
    # concurrent trials: both counts of the smoke run measured, with finished trials
    assert set(r["trials_per_min_by_workers"]) == {"1", "2"}
    assert all(v > 0 for v in r["trials_per_min_by_workers"].values())
    assert all(e["ok"] >= 1 and e["status"] == "ok" for e in r["workers"]["by_workers"].values())
    # no GPU: null with the reason, never a made-up figure
    assert r["gpu_util_percent"] is None and "no GPU" in r["gpu_util_percent_reason"]
    assert r["gpu_mem_mb"] is None and r["gpu_mem_mb_reason"]
    # the short search through run_search: its budget met, in measured wall time
    assert r["search_trials"] == r["search"]["budget"] >= 1 and r["search_wall_s"] > 0
    assert r["search"]["statuses"]["ok"] >= 1
    assert r["projected_200_trial_min"] > 0 and "projection" in r["projection_basis"]
    assert r["elapsed_s"] < r["budget_s"]
    assert r["ray_imported"] is False  # the device machine has no ray
    assert (tmp_path / "out" / "gpu_check_trials.csv").exists()


@pytest.mark.slow
def test_a_short_budget_still_ends_with_the_json_in_time(tmp_path):
    """The check stops itself: phases that do not fit are skipped or cut off, the JSON comes first."""
    proc, r = run_check(tmp_path, "--budget-s", "45", timeout=120)
    assert r["elapsed_s"] < r["budget_s"] == 45
    statuses = [p["status"] for p in r["phases"].values()]
    assert r.get("cut_off") or any(s.startswith("skipped") for s in statuses), r["phases"]
    assert proc.returncode in (0, 3)


def test_unpack_data_repacks_a_tar_xz_as_one_zip_and_passes_a_zip_through(tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks.gpu_check import unpack_data
    from search.train.data import _list_zip

    src = tmp_path / "src"
    for split in ("train", "test"):
        (src / split / "cat").mkdir(parents=True)
        (src / split / "cat" / "0.jpg").write_bytes(split.encode())
    with tarfile.open(tmp_path / "c.tar.xz", "w:xz") as tar:
        tar.add(src, arcname=".")  # as gpu_wheels.sh packs: ./train/<class>/*, ./test/<class>/*
    packed = Path(unpack_data(str(tmp_path / "c.tar.xz"), tmp_path))
    assert packed == tmp_path / "c.zip"
    with zipfile.ZipFile(packed) as zf:
        assert zf.read("train/cat/0.jpg") == b"train" and zf.read("test/cat/0.jpg") == b"test"
    assert _list_zip(packed) == {"train": {"cat": ["train/cat/0.jpg"]}, "test": {"cat": ["test/cat/0.jpg"]}}
    assert unpack_data(str(tmp_path / "data.zip"), tmp_path / "y") == str(tmp_path / "data.zip")


def test_install_wheels_installs_nothing_where_the_tool_imports_already(tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks.gpu_check import TOOL_PACKAGES, install_wheels

    assert set(TOOL_PACKAGES.values()) == {"optuna", "pyyaml", "tqdm", "filelock", "scipy", "plotly"}
    result = install_wheels(str(tmp_path))  # every package is installed here: pip is not called
    assert result["missing_before"] == result["missing_after"] == [] and "pip_rc" not in result
