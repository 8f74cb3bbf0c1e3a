"""The Ray Tune executor: trial bookkeeping without a cluster, then whole searches on a private
local Ray instance and on a cluster started with ``ray start --head`` and joined by address."""

from __future__ import annotations

import csv
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

# Before anything imports Ray (some settings are read at import): loopback only, no token auth, no
# usage stats. run_ray sets the same for the instance it starts; the joined cluster needs them too.
TEST_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
}
for _key, _value in TEST_RAY_ENV.items():
    os.environ.setdefault(_key, _value)

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

import launch_search  # noqa: E402
from blocks import build_model, count_cost, count_module_cost  # noqa: E402
from search.config import SearchConfig, SearchError  # noqa: E402
from search.results.export import load_export  # noqa: E402
from search.executors.ray_tune import (  # noqa: E402
    SETUP_FAILED,
    check_ray_config,
    study_searcher_class,
    trial_resources,
    unpack_result,
)
from search.engine.session import Run  # noqa: E402
from search.engine.attributes import ATTR  # noqa: E402
from search.engine.study import finished_count, make_sampler, open_study  # noqa: E402
from space.spaces import get_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
# The same tiny trials as tests/test_search.py
FAST = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "64",
        "--train-subset", "64", "--batch-size", "32"]
RAY_FLAGS = ["--executor", "ray", "--cpus-per-trial", "1"]
COUNTED = ("ok", "duplicate", "failed", "diverged")


def trials_csv(run_dir: Path) -> list[dict]:
    with open(run_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- no cluster


def make_run(tmp_path: Path, budget: int, **cfg: object) -> Run:
    config = SearchConfig(space="seesaw", budget=budget, dataset="synthetic", name="u", results_dir=str(tmp_path),
                          executor="ray", device="cpu", references=False, **cfg)
    study = open_study(config.storage_url, config.name, make_sampler("random", 0), resume=False)
    return Run(config, study, get_space("seesaw", dataset="synthetic"), evaluator=None, num_classes=10,
               device="cpu", proxy=None, count_cost=count_cost)


def ok_result(val_acc: float) -> dict:
    # as Tune hands it to the searcher: flattened
    return {"seesaw/status": "ok", "seesaw/val_acc": val_acc, "seesaw/failure": None, "seesaw/worker": "node:1",
            "seesaw/metrics/val_acc": val_acc, "seesaw/metrics/train_time_s": 1.5, "training_iteration": 1}


def test_searcher_records_trials_like_the_local_executor(tmp_path):
    run = make_run(tmp_path, budget=3)
    searcher = study_searcher_class()(run)
    configs = [searcher.suggest(tid) for tid in "abc"]
    assert [c["number"] for c in configs] == [0, 1, 2]
    assert all(c["seed"] == run.cfg.seed for c in configs) and configs[0]["spec"] == run.study.trials[0].user_attrs[ATTR.SPEC]
    assert searcher.suggest("d") is None  # budget covered by running trials: wait, do not finish
    searcher.on_trial_complete("a", result=ok_result(0.5))
    searcher.on_trial_complete("b", result={"seesaw": {"status": "diverged", "val_acc": float("nan"), "metrics": {"epochs": 1},
                                                       "failure": "diverged: loss became NaN or inf at epoch 1"}})
    searcher.on_trial_complete("c", error=True)  # the Ray worker died; the message comes from a callback
    searcher.record_worker_error("c", "The actor died unexpectedly before finishing this task.")
    t0, t1, t2 = run.study.get_trials()
    assert t0.state == TrialState.COMPLETE and t0.values == [0.5, float(t0.user_attrs[ATTR.MACS])]
    assert t0.user_attrs[ATTR.STATUS] == "ok" and t0.user_attrs["metric_train_time_s"] == 1.5
    assert t1.state == TrialState.FAIL and t1.user_attrs[ATTR.STATUS] == "diverged" and "NaN" in t1.user_attrs[ATTR.FAILURE]
    assert t2.state == TrialState.FAIL and t2.user_attrs[ATTR.STATUS] == "failed"
    assert "actor died" in t2.user_attrs[ATTR.FAILURE]
    assert finished_count(run.study) == 3 and searcher.suggest("e") == searcher.FINISHED


def test_duplicates_and_over_budget_samples_never_become_ray_trials(tmp_path):
    run = make_run(tmp_path, budget=3, max_macs=60_000_000)
    searcher = study_searcher_class()(run)
    first = searcher.suggest("a")
    searcher.on_trial_complete("a", result=ok_result(0.25))
    twin_number = len(run.study.trials)
    run.study.enqueue_trial(run.study.trials[first["number"]].params)  # the same architecture again
    second = searcher.suggest("b")
    trials = run.study.get_trials()
    twin = trials[twin_number]
    assert twin.user_attrs[ATTR.STATUS] == "duplicate" and twin.user_attrs[ATTR.DUPLICATE_OF] == first["number"]
    assert twin.values[0] == 0.25 and second["number"] > twin_number
    skipped = [t for t in trials if t.number not in (first["number"], second["number"])]
    assert {t.user_attrs[ATTR.STATUS] for t in skipped} <= {"duplicate", "infeasible"}
    assert all(t.user_attrs[ATTR.MACS] > 60_000_000 for t in skipped if t.user_attrs[ATTR.STATUS] == "infeasible")
    assert all(trials[c["number"]].user_attrs[ATTR.MACS] <= 60_000_000 for c in (first, second))
    # Ctrl-C: Tune stops the running trial without telling the searcher; close() records it for --resume
    assert searcher.close() == 1
    cut = run.study.trials[second["number"]]
    assert cut.state == TrialState.FAIL and cut.user_attrs[ATTR.STATUS] == "interrupted"
    assert run.study.get_trials(states=(TrialState.WAITING,))[0].system_attrs["fixed_params"] == cut.params


def test_a_worker_without_data_stops_the_run_and_its_trial_runs_again(tmp_path):
    run = make_run(tmp_path, budget=3)
    searcher = study_searcher_class()(run)
    config = searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", result={"seesaw/status": SETUP_FAILED, "seesaw/failure": "worker h:1 could not load the data: X"})
    assert searcher.suggest("c") == searcher.FINISHED and "could not load" in searcher.stop_reason
    trial = run.study.trials[config["number"]]
    assert trial.user_attrs[ATTR.STATUS] == "interrupted" and finished_count(run.study) == 0
    assert run.study.get_trials(states=(TrialState.WAITING,))[0].system_attrs["fixed_params"] == trial.params


def test_searcher_pickles_without_its_study(tmp_path):
    import ray.cloudpickle

    searcher = study_searcher_class()(make_run(tmp_path, budget=1))
    searcher.suggest("a")
    assert len(ray.cloudpickle.dumps(searcher)) < 10_000  # Tune writes it to tuner.pkl


def test_unpack_result_reads_nested_and_flattened_results():
    nested = {"seesaw": {"status": "ok", "val_acc": 0.5, "metrics": {"epochs": 1}}}
    assert unpack_result(nested)["metrics"] == {"epochs": 1}
    flat = unpack_result(ok_result(0.5))
    assert flat["status"] == "ok" and flat["metrics"] == {"val_acc": 0.5, "train_time_s": 1.5}
    assert unpack_result({"training_iteration": 1}) is None and unpack_result(None) is None


@pytest.mark.parametrize("gpus, device, nodes, expect", [
    (-1.0, "cpu", [{"CPU": 2.0}], (1.0, 0.0, 2)),
    (-1.0, "cuda", [{"CPU": 16.0, "GPU": 1.0}], (1.0, 0.25, 4)),  # auto: four trials per GPU
    (0.5, "cuda", [{"CPU": 16.0, "GPU": 2.0}, {"CPU": 16.0, "GPU": 2.0}], (1.0, 0.5, 8)),
    (-1.0, "cuda", [{"CPU": 8.0}], "no GPU"),
    (0.25, "cpu", [{"CPU": 8.0, "GPU": 1.0}], "--device cuda"),
    (0.0, "cuda", [{"CPU": 8.0, "GPU": 1.0}], "--device cpu"),
    (2.0, "cuda", [{"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}], "no Ray node"),
])
def test_trial_resources(gpus, device, nodes, expect):
    cfg = SearchConfig(executor="ray", gpus_per_trial=gpus, cpus_per_trial=1.0)
    if isinstance(expect, str):
        with pytest.raises(SearchError, match=expect):
            trial_resources(cfg, device, nodes)
    else:
        r = trial_resources(cfg, device, nodes)
        assert (r.cpus, r.gpus, r.max_concurrent) == expect
        assert r.device == ("cuda" if expect[1] > 0 else "cpu")


@pytest.mark.parametrize("changes, words", [
    ({"scheduler": "asha"}, "two objectives"),
    ({"workers": 2}, "--max-concurrent"),
    ({"cpus_per_trial": 0.0}, "--cpus-per-trial"),
    ({"gpus_per_trial": 1.5}, "whole number"),
])
def test_settings_the_ray_executor_refuses(changes, words):
    with pytest.raises(SearchError, match=words):
        check_ray_config(SearchConfig(executor="ray", **changes))


@pytest.mark.parametrize("flags, words", [
    (["--scheduler", "asha"], ["ASHA", "early-stopped"]),
    (["--ray-address", "127.0.0.1:1"], ["nothing answers", "ray start --head"]),
    (["--ray-address", "headnode"], ["HOST:PORT"]),
])
def test_refusals_are_one_line_and_leave_no_study_behind(tmp_path, capsys, flags, words):
    code = launch_search.main(["--budget", "2", "--name", "s", *FAST, *RAY_FLAGS, *flags, "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not (tmp_path / "s" / "study.journal").exists()  # the same command works once fixed, without --resume


# ----------------------------------------------------------------------------- real Ray


@pytest.fixture
def one_torch_thread():
    """The local executor trains in this process: one thread, like a Ray trial with one CPU (two
    threads on a busy two-core machine are several times slower, not faster)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_ray_search_leaves_the_same_artifacts_as_the_local_executor(tmp_path, capsys, monkeypatch, one_torch_thread):
    monkeypatch.setenv("RAY_OVERRIDE_RESOURCES", '{"CPU": 2}')  # the private instance gets 2 CPUs
    common = ["--space", "seesaw", "--budget", "4", *FAST, "--results-dir", str(tmp_path)]
    assert launch_search.main([*common, "--name", "local"]) == 0
    assert launch_search.main([*common, "--name", "ray", *RAY_FLAGS]) == 0
    out = capsys.readouterr()
    assert "Trial status" not in out.out + out.err and "Configuration for experiment" not in out.out  # Tune is quiet
    import ray

    assert not ray.is_initialized()  # the instance the run started is gone
    local_dir, ray_dir = tmp_path / "local", tmp_path / "ray"
    names = ("study.journal", "trials.csv", "pareto.html", "hypervolume.csv", "best_block.yaml", "run.json", "search.log")
    for name in names:
        assert (ray_dir / name).exists(), name
    local_rows, ray_rows = trials_csv(local_dir), trials_csv(ray_dir)
    assert len([r for r in ray_rows if r["status"] in COUNTED]) == 4
    # the same sampler and seed ask the same architectures in the same order, references first, and
    # one-thread CPU training with the same trial seeds gives the same accuracies
    same = ("number", "state", "status", "reference", "canonical_key", "params", "macs", "val_acc", "failure")
    assert [{k: r[k] for k in same} for r in ray_rows] == [{k: r[k] for k in same} for r in local_rows]
    assert ray_rows[0]["reference"].startswith(("seesaw", "igcv3", "mobilenetv2"))
    trained = [r for r in ray_rows if r["status"] == "ok"]
    assert len(trained) == 4 and all(0 <= float(r["val_acc"]) <= 1 for r in trained)
    # the exported best block rebuilds to what the search recorded
    spec, num_classes = load_export(ray_dir / "best_block.yaml")
    cost = count_module_cost(build_model(spec, num_classes), 32)
    best = next(r for r in ray_rows if r["canonical_key"] == spec.canonical_key())
    assert (cost.params, cost.macs) == (int(best["params"]), int(best["macs"]))
    # Ray's own records live in the run folder, one folder per trial named by its number
    tune_dirs = list((ray_dir / "ray").glob("tune-*"))
    assert len(tune_dirs) == 1 and (tune_dirs[0] / "trial_0").is_dir()
    log = (ray_dir / "search.log").read_text()
    assert "1 node(s)" in log and "up to 2 at once" in log


@pytest.mark.slow
def test_promotions_and_repeats_run_as_ray_trials_and_match_the_local_executor(tmp_path, capsys, monkeypatch,
                                                                               one_torch_thread):
    """--rungs/--repeats with --executor ray: each promotion and repeat is a Ray trial of its own that
    continues from its checkpoint, and one trial at a time gives what the local executor gives."""
    from search.engine.ladder import JOBS_SUFFIX

    monkeypatch.setenv("RAY_OVERRIDE_RESOURCES", '{"CPU": 2}')
    common = ["--space", "seesaw", "--budget", "4", "--no-references", "--rungs", "2", "--eta", "2", "--repeats", "2",
              *FAST, "--results-dir", str(tmp_path)]
    assert launch_search.main([*common, "--name", "local"]) == 0
    assert launch_search.main([*common, "--name", "ray", *RAY_FLAGS, "--max-concurrent", "1"]) == 0
    capsys.readouterr()
    local_rows, ray_rows = trials_csv(tmp_path / "local"), trials_csv(tmp_path / "ray")
    # rung reached, accuracy per rung, mean, std and seeds: the same jobs ran, from the same checkpoints
    ladder = [k for k in ray_rows[0] if "rung" in k or k.startswith(("acc_", "n_seeds"))]
    assert {"rung_reached", "acc_rung1", "acc_mean", "acc_std", "n_seeds"} <= set(ladder)
    assert [{k: r[k] for k in ["number", "val_acc", *ladder]} for r in ray_rows] == \
        [{k: r[k] for k in ["number", "val_acc", *ladder]} for r in local_rows]
    assert any(r["rung_reached"] == "1" for r in ray_rows) and any(r["n_seeds"] == "2" for r in ray_rows)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "ray" / "study.journal")))
    jobs = optuna.load_study(study_name="ray" + JOBS_SUFFIX, storage=storage).get_trials()
    promotions = [j for j in jobs if j.user_attrs[ATTR.JOB] == "promotion"]
    assert promotions and all(j.state == TrialState.COMPLETE for j in jobs)
    assert not any(j.user_attrs.get(ATTR.FROM_SCRATCH) for j in jobs)  # one machine: every checkpoint was found
    assert all(j.user_attrs["metric_epochs"] == 2 for j in promotions)  # 1 epoch at rung 0, 1 more from it
    # each job is a Ray trial with a folder of its own, named after its network, rung and repeat
    [tune_dir] = (tmp_path / "ray" / "ray").glob("tune-*")
    for j in jobs:
        a = j.user_attrs
        assert (tune_dir / f"trial_{a[ATTR.PARENT]}_rung{a[ATTR.RUNG]}_repeat{a[ATTR.REPEAT]}").is_dir()


def test_a_ray_worker_without_the_checkpoint_trains_the_rung_from_scratch(tmp_path):
    """A promotion whose checkpoint another node wrote: the worker leaves it out and says so."""
    from search.executors.ray_tune import job_train_kwargs

    kept = tmp_path / "r0.pt"
    kept.write_bytes(b"state")
    config = {"train": {"epochs": 2.0, "resume_from": str(kept), "save_to": None}}
    assert job_train_kwargs(config) == ({"epochs": 2.0, "resume_from": kept}, False)
    kept.unlink()
    assert job_train_kwargs(config) == ({"epochs": 2.0}, True)
    assert job_train_kwargs({"number": 3}) == ({}, False)  # a rung-0 trial of a run without promotion


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """``ray start --head`` on loopback with 2 CPUs, stopped afterwards (only the processes it started)."""
    port = free_port()
    temp_dir = f"/tmp/ray_{uuid.uuid4().hex[:6]}"  # short: Unix socket paths must stay under 108 bytes
    env = {**os.environ, **TEST_RAY_ENV}
    env.pop("RAY_OVERRIDE_RESOURCES", None)
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
           "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
           f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    head = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            probe = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='{address}', logging_level='ERROR'); "
                                    "print(ray.cluster_resources().get('CPU'))"], env=env, capture_output=True, text=True)
            if probe.returncode == 0 and probe.stdout.strip().endswith("2.0"):
                break
            if head.poll() is not None:
                pytest.fail(f"ray start --head exited: {head.stdout.read()[-2000:]}")
            time.sleep(1)
        else:
            pytest.fail("ray start --head did not come up in 120 s")
        yield address
    finally:
        # --block: on SIGTERM the head stops the processes it started; then clear its process group
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_joins_a_cluster_by_address_and_leaves_it_running(tmp_path, ray_head, capsys):
    args = ["--space", "seesaw", "--budget", "2", "--name", "j", "--no-references", *FAST, *RAY_FLAGS,
            "--ray-address", ray_head, "--results-dir", str(tmp_path)]
    assert launch_search.main(args) == 0, capsys.readouterr().err
    rows = trials_csv(tmp_path / "j")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j" / "study.journal")))
    trials = optuna.load_study(study_name="j", storage=storage).get_trials()
    assert all(":" in t.user_attrs["ray_worker"] for t in trials)  # trained by the cluster's workers
    assert all(not math.isnan(t.values[0]) for t in trials)
    # the cluster outlives the run: a resumed run joins it again and adds a trial
    assert launch_search.main([*args[:3], "3", *args[4:], "--resume"]) == 0
    assert len(trials_csv(tmp_path / "j")) == 3
