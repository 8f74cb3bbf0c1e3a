"""End-to-end searches on synthetic data: artifacts, export, resume after kill -9, workers, bad input."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

import launch_search
from blocks import build_model, count_cost, count_module_cost
from search.results.export import load_export
from space import ArchSpec

ROOT = Path(__file__).resolve().parents[2]
# Tiny but real: synthetic data, the smoke proxy, networks scaled to a quarter width for training.
FAST = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "64",
        "--train-subset", "64", "--batch-size", "32"]


def run_cli(args, tmp_path, capsys=None):
    code = launch_search.main([*args, "--results-dir", str(tmp_path)])
    return code


def trials_csv(run_dir: Path) -> list[dict]:
    with open(run_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_tiny_search_writes_every_artifact_and_best_block_rebuilds(tmp_path, capsys):
    code = run_cli(["--space", "seesaw", "--budget", "4", "--name", "tiny", *FAST], tmp_path)
    out = capsys.readouterr().out
    assert code == 0, out
    run_dir = tmp_path / "tiny"
    for name in ("study.journal", "trials.csv", "pareto.html", "hypervolume.csv", "best_block.yaml", "run.json", "search.log"):
        assert (run_dir / name).exists(), name
    rows = trials_csv(run_dir)
    counted = [r for r in rows if r["status"] in ("ok", "duplicate", "failed", "diverged")]
    assert len(counted) == 4
    # warm start: the space's references come first and are labelled
    assert rows[0]["reference"].startswith(("seesaw", "igcv3", "mobilenetv2"))
    assert "best block" in out and "trial" in out
    run = json.loads((run_dir / "run.json").read_text())
    assert run["config"]["seed"] == 0 and "torch" in run["versions"] and run["device"] == "cpu"
    # the exported YAML rebuilds the same network: same params and MACs as recorded by the search
    doc = yaml.safe_load((run_dir / "best_block.yaml").read_text())
    spec, num_classes = load_export(run_dir / "best_block.yaml")
    model = build_model(spec, num_classes)
    cost = count_module_cost(model, 32)
    assert cost.params == doc["metrics"]["params"] and cost.macs == doc["metrics"]["macs"]
    assert spec.canonical_key() == doc["canonical_key"]
    assert doc["provenance"]["trial"] in {int(r["number"]) for r in rows}


def test_export_any_trial_and_resume_keeps_trials(tmp_path, capsys):
    assert run_cli(["--space", "seesaw", "--budget", "2", "--name", "r", "--no-references", *FAST], tmp_path) == 0
    assert run_cli(["--export", "1", "--name", "r"], tmp_path) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    spec, _ = load_export(path)
    rows = trials_csv(tmp_path / "r")
    row = next(r for r in rows if r["number"] == "1")
    assert count_cost(spec, 10, 32).macs == int(row["macs"])
    # resume to a larger budget: earlier trials kept, new ones added
    assert run_cli(["--space", "seesaw", "--budget", "3", "--name", "r", "--resume", "--no-references", *FAST], tmp_path) == 0
    rows2 = trials_csv(tmp_path / "r")
    assert rows2[:2] == rows[:2] and len([r for r in rows2 if r["status"] == "ok"]) >= 2
    assert len(rows2) == 3


def test_duplicate_architectures_are_not_trained_twice(tmp_path):
    # The same reference enqueued twice (via a resumed run re-enqueueing nothing and a manual enqueue)
    assert run_cli(["--space", "seesaw", "--budget", "1", "--name", "d", "--no-references", *FAST], tmp_path) == 0
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "d" / "study.journal")))
    study = optuna.load_study(study_name="d", storage=storage)
    first = study.trials[0]
    study.enqueue_trial(first.params)
    assert run_cli(["--space", "seesaw", "--budget", "2", "--name", "d", "--resume", "--no-references", *FAST], tmp_path) == 0
    rows = trials_csv(tmp_path / "d")
    assert rows[1]["status"] == "duplicate" and rows[1]["duplicate_of"] == "0"
    assert rows[1]["canonical_key"] == rows[0]["canonical_key"] and rows[1]["val_acc"] == rows[0]["val_acc"]


BAD_INPUT = [
    (["--space", "nope"], "--space: invalid choice: 'nope'"),
    (["--proxy", "fast"], "--proxy: invalid choice"),
    (["--prescreen", "zen"], "--prescreen: invalid choice"),
    (["--budget", "0"], "--budget"),
    (["--budget", "-3"], "--budget"),
    (["--dataset", "imagefolder", "--data-dir", "/nonexistent/cifar"], "/nonexistent/cifar"),
    (["--max-macs", "1k"], "--max-macs"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "storage"),
    (["--storage", "nonsense://x"], "storage"),
    (["--final-train", "/nonexistent.yaml"], "nonexistent.yaml"),
    (["--max-macs", "lots"], "--max-macs"),
]


def main_in_process(args, capsys):
    """Exit status and captured output of the CLI's main(); argparse's usage errors exit via SystemExit."""
    try:
        code = launch_search.main(args)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


@pytest.mark.parametrize("args, words", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = main_in_process(["--budget", "2", *FAST, "--results-dir", str(tmp_path), "--name", "bad", *args], capsys)
    assert code == 2, out.out + out.err
    err = out.err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert words in err, err


def test_bad_input_from_the_command_line_is_one_line_and_exit_2(tmp_path):
    """One real process: the script's exit status and stderr, as a shell sees them."""
    proc = subprocess.run([sys.executable, str(ROOT / "launch_search.py"), "--space", "nope", *FAST,
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "--space: invalid choice" in proc.stderr and not any(tmp_path.iterdir())


def test_broken_yaml_for_final_training_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: {stem: {channels: 32}, stages: [ {out_channels: 16, repeats: 1, stride: 1, block: {kind: inverted_residual, pw1_split: '1/3:2/3'}}]}\n")
    code, out = main_in_process(["--final-train", str(bad), *FAST], capsys)
    assert code == 2 and "pw1_split" in out.err and "Traceback" not in out.err
    assert "bad.yaml" in out.err  # names the file


def test_kill_9_then_resume_keeps_finished_trials_and_meets_budget(tmp_path):
    cmd = [sys.executable, str(ROOT / "launch_search.py"), "--space", "seesaw", "--budget", "5", "--name", "k",
           "--no-references", *FAST, "--epochs", "2", "--results-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True)
    journal = tmp_path / "k" / "study.journal"
    deadline = time.time() + 120
    # wait until at least one trial finished and another is running, then kill -9
    while time.time() < deadline:
        time.sleep(0.5)
        if journal.exists():
            study = optuna.load_study(study_name="k", storage=optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(str(journal))))
            states = [t.state for t in study.get_trials(deepcopy=False)]
            if states.count(optuna.trial.TrialState.COMPLETE) >= 1 and optuna.trial.TrialState.RUNNING in states:
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.number: t.values for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    assert before, "no trial finished before the kill"
    res = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    study = optuna.load_study(study_name="k", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    after = {t.number: t.values for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    assert all(after[n] == v for n, v in before.items())  # nothing finished was lost or re-run
    rows = trials_csv(tmp_path / "k")
    counted = [r for r in rows if r["status"] in ("ok", "duplicate", "failed", "diverged")]
    assert len(counted) == 5, rows
    assert any(r["status"] == "stale" for r in rows), rows  # the trial cut off by the kill, re-run
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))


def test_two_workers_share_one_study_exactly(tmp_path, capsys):
    # longer trials than FAST alone: the spawned worker must be up before the first one has run the budget
    assert run_cli(["--space", "seesaw", "--budget", "4", "--name", "w", "--workers", "2", "--no-references", *FAST,
                    "--epochs", "4"], tmp_path) == 0
    rows = trials_csv(tmp_path / "w")
    assert len(rows) == 4 and all(r["status"] in ("ok", "duplicate") for r in rows)
    log = (tmp_path / "w" / "search.log").read_text()
    # progress inside the trials of every worker that trained reaches the launching process's display
    # (captured: a log, so plain lines and no bar)
    err = capsys.readouterr().err
    for worker in ("w0", "w1"):
        if re.search(rf" {worker} trial \d+ ok ", log):  # a trained trial (a spawned worker may start too late)
            assert any(f"({worker}): epoch 1/" in ln and "val_acc" in ln and "run ETA" in ln for ln in err.splitlines()), err
    assert err.count("trials finished, run ETA") == 4 and "it/s]" not in err
    assert " w0 " in log and " w1 " in log  # both workers ran trials
    numbers = [int(r["number"]) for r in rows]
    assert sorted(numbers) == list(range(4))


def test_max_macs_rejects_over_budget_samples_without_training(tmp_path, capsys):
    limit = "60M"
    assert run_cli(["--space", "seesaw", "--budget", "2", "--name", "m", "--max-macs", limit, "--no-references", *FAST], tmp_path) == 0
    rows = trials_csv(tmp_path / "m")
    trained = [r for r in rows if r["status"] == "ok"]
    assert len(trained) == 2 and all(int(r["macs"]) <= 60e6 for r in trained)
    assert all(r["val_acc"] == "" for r in rows if r["status"] == "infeasible")


def test_max_macs_below_every_network_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = main_in_process(["--budget", "2", *FAST, "--max-macs", "1M", "--results-dir", str(tmp_path),
                                 "--name", "tiny"], capsys)
    assert code == 2 and "smallest network" in out.err and "Traceback" not in out.err


def test_existing_run_without_resume_is_refused(tmp_path):
    assert run_cli(["--space", "seesaw", "--budget", "1", "--name", "x", "--no-references", *FAST], tmp_path) == 0
    assert run_cli(["--space", "seesaw", "--budget", "1", "--name", "x", "--no-references", *FAST], tmp_path) == 2


def test_references_json_lists_the_zoo(capsys):
    assert launch_search.main(["--references", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert {"name", "dataset", "input_size", "params", "macs"} <= set(rows[0])
    assert round(by_name["seesaw_1.0d_cifar10"]["macs"] / 1e6) == 181


def test_describe_prints_choices_size_and_range(capsys):
    assert launch_search.main(["--space", "seesaw", "--describe"]) == 0
    out = capsys.readouterr().out
    assert "s3_expansion" in out and "size:" in out and "MACs over" in out and "seesaw_1.0d_cifar10" in out


def test_final_train_cli_reports_test_accuracy(tmp_path, capsys):
    from fractions import Fraction as F

    from space import HeadSpec, InvertedResidualSpec, StageSpec, StemSpec

    tiny = ArchSpec(StemSpec(channels=8), (StageSpec(16, 1, 2, InvertedResidualSpec(expansion=2, pw1_split=(F(1, 4), F(3, 4)))),),
                    HeadSpec(channels=32))
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"num_classes": 10, "spec": tiny.to_dict()}))
    args = ["--final-train", str(path), "--dataset", "synthetic", "--device", "cpu", "--epochs", "1", "--batch-size", "64",
            "--val-size", "64", "--results-dir", str(tmp_path), "--name", "fin"]
    assert launch_search.main(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "epoch 1:" in out
    result = json.loads((tmp_path / "fin" / "result.json").read_text())
    assert 0.0 <= result["test_acc"] <= 1.0 and result["epochs_done"] == 1


@pytest.mark.slow
def test_offline_default_command_names_the_alternative_and_leaves_nothing(tmp_path):
    """The users' command with no CIFAR-10 and no way to download it (CI and these machines are offline)."""
    proc = subprocess.run([sys.executable, str(ROOT / "launch_search.py"), "--space", "seesaw", "--budget", "200"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--dataset imagefolder --data-dir" in proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # no empty data/, no run folder with an empty log
