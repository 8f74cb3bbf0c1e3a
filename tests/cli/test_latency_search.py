"""Searches with --objectives and latency, end to end on synthetic data with the smoke proxy (real
Optuna, real torch timing on this CPU): outputs, --max-latency, --resume, bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import optuna
import pytest
import torch
import yaml

import launch_search
from search.engine.objectives import LatencyMeter
from search.results.plots import pareto_plot_data
from space.spaces import get_space

FAST = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "64",
        "--train-subset", "64", "--batch-size", "32"]


@pytest.fixture(autouse=True)
def latency_cache(tmp_path, monkeypatch):
    """The latency table lives in the user's cache folder: a fresh one per test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEESAW_CACHE_DIR", str(cache / "seesaw-nas"))  # workers inherit it
    return cache


def main(args, capsys):
    try:
        code = launch_search.main(args)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


def rows_of(run_dir: Path) -> list[dict]:
    with open(run_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def load(run_dir: Path, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def test_three_objective_run_writes_latency_and_draws_every_pair(tmp_path, capsys, latency_cache):
    code, out = main(["--budget", "2", "--name", "tri", "--no-references", "--objectives", "accuracy,macs,latency",
                      "--plot-axes", "latency,accuracy", *FAST, "--results-dir", str(tmp_path)], capsys)
    assert code == 0, out.err
    run_dir = tmp_path / "tri"
    ok = [r for r in rows_of(run_dir) if r["status"] == "ok"]
    assert len(ok) == 2
    for r in ok:
        assert float(r["latency_ms"]) > 0 and r["latency_target"].startswith("cpu: ") and "batch 1" in r["latency_target"]
        assert r["latency_mode"] == "lookup"
    study = load(run_dir, "tri")
    assert study.metric_names == ["val_acc", "macs", "latency_ms"]
    assert [t.values[2] for t in study.trials] == [float(r["latency_ms"]) for r in ok]
    for stem in ("pareto", "pareto_macs_accuracy", "pareto_latency_accuracy", "pareto_macs_latency"):
        assert (run_dir / f"{stem}.html").is_file() and (run_dir / f"{stem}.png").is_file(), stem
    data = pareto_plot_data(study, axes=("latency", "accuracy"))
    assert data.x_title.startswith("latency") and sorted(p[1] for p in data.trials) == sorted(float(r["latency_ms"]) for r in ok)
    doc = yaml.safe_load((run_dir / "best_block.yaml").read_text())
    assert doc["metrics"]["latency_ms"] > 0 and doc["metrics"]["latency_target"].startswith("cpu: ")
    assert doc["provenance"]["objectives"] == ["accuracy", "macs", "latency"]
    assert "objectives: accuracy (max), macs (min), latency (min)" in out.out
    assert (latency_cache / "seesaw-nas" / "latency.json").is_file()  # the lookup table, shared by runs


def test_exact_latency_times_the_whole_network(tmp_path, capsys, latency_cache):
    code, out = main(["--budget", "1", "--name", "ex", "--no-references", "--objectives", "accuracy,latency",
                      "--latency", "exact", *FAST, "--results-dir", str(tmp_path)], capsys)
    assert code == 0, out.err
    (row,) = rows_of(tmp_path / "ex")
    assert row["latency_mode"] == "exact" and float(row["latency_ms"]) > 0
    # exact mode adds no table entry; the file holds the speed probe's calibration, the unit of both modes
    (section,) = json.loads((latency_cache / "seesaw-nas" / "latency.json").read_text())["targets"].values()
    assert section["entries"] == {} and section["probe_s"] > 0
    assert (tmp_path / "ex" / "pareto.png").is_file() and not (tmp_path / "ex" / "pareto_latency_accuracy.png").exists()


def test_max_latency_makes_a_slow_sample_infeasible_without_training(tmp_path, capsys):
    # The space's first reference (seesaw 1.0d) is about twice as slow as the second (0.5d): a
    # limit between the two, timed with the table the search will read, rejects the first only.
    space = get_space("seesaw", dataset="synthetic")
    refs = list(space.reference_params().items())
    meter = LatencyMeter()
    slow, fast = (1e3 * meter.seconds(space.spec_from_params(p), 10, 32) for _, p in refs[:2])
    assert slow > fast
    limit = math.sqrt(slow * fast)
    code, out = main(["--budget", "1", "--name", "ml", "--max-latency", f"{limit:.6f}ms", *FAST,
                      "--results-dir", str(tmp_path)], capsys)
    assert code == 0, out.err
    rows = [r for r in rows_of(tmp_path / "ml") if r["status"] != "waiting"]  # the other references stay queued
    assert [r["status"] for r in rows] == ["infeasible", "ok"]
    assert rows[0]["reference"] == refs[0][0] and float(rows[0]["latency_ms"]) > limit
    assert rows[0]["val_acc"] == "" and rows[0]["train_time_s"] == ""  # not trained
    assert float(rows[1]["latency_ms"]) <= limit and rows[1]["train_time_s"] != ""
    study = load(tmp_path / "ml", "ml")
    assert study.trials[0].constraints["max_latency"] > 0 and study.trials[1].constraints["max_latency"] <= 0
    assert study.metric_names == ["val_acc", "macs"]  # a constraint, not an objective


def test_max_latency_below_every_network_is_refused_and_leaves_no_run(tmp_path, capsys):
    code, out = main(["--budget", "1", "--name", "tiny", "--max-latency", "1us", *FAST, "--results-dir", str(tmp_path)],
                     capsys)
    assert code == 2 and "--max-latency" in out.err and len(out.err.strip().splitlines()) == 1
    assert not (tmp_path / "tiny").exists()


def test_resume_with_other_objectives_is_refused(tmp_path, capsys):
    assert main(["--budget", "1", "--name", "r", "--no-references", *FAST, "--results-dir", str(tmp_path)], capsys)[0] == 0
    journal = (tmp_path / "r" / "study.journal").read_bytes()
    code, out = main(["--budget", "2", "--name", "r", "--resume", "--no-references", "--objectives", "accuracy,latency",
                      *FAST, "--results-dir", str(tmp_path)], capsys)
    assert code == 2 and "--objectives accuracy,macs" in out.err and len(out.err.strip().splitlines()) == 1
    assert (tmp_path / "r" / "study.journal").read_bytes() == journal
    # the study itself refuses too (another host with --storage has no run.json to compare with)
    (tmp_path / "r" / "run.json").unlink()
    code, out = main(["--budget", "2", "--name", "r", "--resume", "--no-references", "--objectives", "accuracy,params",
                      *FAST, "--results-dir", str(tmp_path)], capsys)
    assert code == 2 and "optimises accuracy,macs" in out.err
    assert len(rows_of(tmp_path / "r")) == 1


NO_CUDA = [] if torch.cuda.is_available() else [(["--objectives", "accuracy,latency", "--latency-device", "cuda"], "CUDA")]
BAD = [
    (["--objectives", "accuracy,speed"], "unknown objective 'speed'"),
    (["--objectives", "accuracy"], "two or three"),
    (["--objectives", "latency,latency"], "twice"),
    (["--objectives", "accuracy,macs,params,latency"], "two or three"),
    (["--objectives", ""], "unknown objective"),
    (["--objectives", "accuracy,latency", "--latency-device", "cuda:99"], "--latency-device"),
    (["--max-latency", "5ms", "--latency-device", "cuda:99"], "--latency-device"),
    (["--objectives", "accuracy,latency", "--latency-device", "tpu"], "--latency-device"),
    *NO_CUDA,
    (["--max-latency", "5"], "--max-latency"),
    (["--max-latency", "5 minutes"], "--max-latency"),
    (["--max-latency", "-1ms"], "--max-latency"),
    (["--max-latency", "0s"], "--max-latency"),
    (["--plot-axes", "latency,accuracy"], "not an objective of this run"),
    (["--plot-axes", "accuracy,accuracy"], "--plot-axes"),
    (["--objectives", "macs,params"], "--pick accuracy"),
    (["--latency", "guess"], "--latency"),
    (["--latency-batch", "0"], "--latency-batch"),
]


@pytest.mark.parametrize("args, words", BAD)
def test_bad_objective_and_latency_input_is_one_line_exit_2_nothing_on_disk(tmp_path, args, words, capsys, latency_cache):
    code, out = main(["--budget", "1", "--name", "bad", *FAST, "--results-dir", str(tmp_path / "results"), *args], capsys)
    assert code == 2
    assert words in out.err and len(out.err.strip().splitlines()) == 1, out.err
    assert not (tmp_path / "results").exists() and not latency_cache.exists()


def test_two_workers_share_one_latency_table(tmp_path, capsys, latency_cache):
    code, out = main(["--budget", "4", "--name", "w", "--workers", "2", "--no-references", "--objectives",
                      "accuracy,latency", *FAST, "--epochs", "4", "--results-dir", str(tmp_path)], capsys)
    assert code == 0, out.err
    rows = rows_of(tmp_path / "w")
    assert len(rows) == 4 and all(float(r["latency_ms"]) > 0 for r in rows)
    table = json.loads((latency_cache / "seesaw-nas" / "latency.json").read_text())  # whole, valid JSON
    (section,) = table["targets"].values()
    assert len(section["entries"]) >= 4  # every worker's parts merged into one file
    assert not list((latency_cache / "seesaw-nas").glob("*.tmp"))
    log = (tmp_path / "w" / "search.log").read_text()
    assert " w0 " in log and " w1 " in log  # both workers ran (and timed) trials
