"""Multi-fidelity promotion and repeats through the command line, on synthetic data with the smoke
proxy: the right trials are promoted, the results read the top rung, repeats give mean/std and the
summary's claims, and 2 workers with a kill -9 during a promotion lose or duplicate no job."""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

import launch_search
from search import faults
from search.engine.attributes import ATTR, COUNTED_STATUSES, JOB_KINDS, STATUS
from search.engine.ladder import JOBS_SUFFIX, checkpoint_path, collect, due_promotions

FAST = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "64",
        "--train-subset", "64", "--batch-size", "32"]


def studies(run_dir: Path, name: str) -> tuple[list, list]:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal")))
    main = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    jobs = optuna.load_study(study_name=name + JOBS_SUFFIX, storage=storage).get_trials(deepcopy=False)
    return main, jobs


def rows(run_dir: Path) -> dict[int, dict]:
    with open(run_dir / "trials.csv") as f:
        return {int(r["number"]): r for r in csv.DictReader(f)}


def replay_promotions(main: list) -> list[int]:
    """What one worker must promote, in order: after each rung-0 result, every due promotion."""
    results, taken, promoted = [], set(), []
    for t in sorted(main, key=lambda t: t.number):
        if t.state != TrialState.COMPLETE or t.user_attrs.get(ATTR.STATUS) != STATUS.OK:
            continue
        results += collect([t], [])[0]
        while due := due_promotions(results, taken, rungs=2, eta=2):
            taken.add(due[0])
            promoted.append(due[0][0])
    return promoted


def test_rungs_2_eta_2_promotes_the_right_trials_and_the_front_reads_the_top_rung(tmp_path, capsys):
    code = launch_search.main([*FAST, "--budget", "6", "--no-references", "--rungs", "2", "--eta", "2",
                               "--name", "p", "--results-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert ("training cost: at least 9 rung-0 units (6 networks at rung 0, promotions to 2 rungs with eta 2; "
            "asynchronous promotion adds some)") in out
    run_dir = tmp_path / "p"
    main, jobs = studies(run_dir, "p")
    assert sum(t.user_attrs.get(ATTR.STATUS) in COUNTED_STATUSES for t in main) == 6
    done = [j for j in sorted(jobs, key=lambda j: j.number) if j.state == TrialState.COMPLETE]
    assert [j.user_attrs[ATTR.PARENT] for j in done] == replay_promotions(main)
    assert len(done) >= 3 and all(j.user_attrs[ATTR.JOB] == JOB_KINDS.PROMOTION for j in done)
    assert all(j.user_attrs[ATTR.RUNG] == 1 and "metric_epochs" in j.user_attrs for j in done)
    assert all(j.user_attrs["metric_epochs"] == 2 for j in done)  # 2 x the one rung-0 epoch, continued
    for j in done:  # the progress output has a line for each promotion that ended, as for a trial
        assert (f"promotion of trial {j.user_attrs[ATTR.PARENT]} to rung 1 (repeat 0, seed 0, 2 epochs, from its "
                f"checkpoint): val_acc={j.values[0]:.4f} | ") in err, err
    table = rows(run_dir)
    promoted = {j.user_attrs[ATTR.PARENT]: j.values[0] for j in done}
    for number, row in table.items():
        if number in promoted:
            assert row["rung_reached"] == "1"
            assert float(row["acc_rung1"]) == float(row["acc_mean"]) == promoted[number]
        elif row["status"] == "ok":
            assert row["rung_reached"] == "0" and row["acc_rung1"] == ""
            assert float(row["acc_mean"]) == float(row["val_acc"])
    # a finished promotion deleted the rung-0 state it continued from; an unpromoted network keeps its own
    kept = {p.name for p in (run_dir / "checkpoints").glob("*.pt")}
    ok = [t for t in main if t.user_attrs.get(ATTR.STATUS) == STATUS.OK]
    assert {checkpoint_path(run_dir, t.user_attrs[ATTR.KEY], 0, 0).name for t in ok if t.number not in promoted} == kept
    best = yaml.safe_load((run_dir / "best_block.yaml").read_text())
    number = best["provenance"]["trial"]
    assert best["metrics"]["rung"] == int(table[number]["rung_reached"])
    assert best["metrics"]["val_acc_mean"] == float(table[number]["acc_mean"])
    # the front holds no network that another dominates at the values the front uses
    front = [n for n, r in table.items() if r["status"] == "ok" and not any(
        float(o["acc_mean"]) >= float(r["acc_mean"]) and int(o["macs"]) <= int(r["macs"])
        and (float(o["acc_mean"]) > float(r["acc_mean"]) or int(o["macs"]) < int(r["macs"]))
        for o in table.values() if o["status"] == "ok")]
    assert number in front


def test_repeats_write_mean_and_std_and_the_summary_says_who_dominates_each_reference(tmp_path, capsys):
    code = launch_search.main([*FAST, "--budget", "6", "--rungs", "1", "--repeats", "2",
                               "--name", "k", "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    run_dir = tmp_path / "k"
    main, jobs = studies(run_dir, "k")
    references = [t for t in main if t.user_attrs.get(ATTR.REFERENCE) and t.user_attrs.get(ATTR.STATUS) == STATUS.OK]
    assert len(references) == 5
    repeated = Counter(j.user_attrs[ATTR.PARENT] for j in jobs if j.state == TrialState.COMPLETE)
    assert all(repeated[t.number] == 1 for t in references)  # seed 1 at rung 0; seed 0 is the trial itself
    assert all(j.user_attrs[ATTR.SEED] != 0 and j.user_attrs[ATTR.REPEAT] == 1 for j in jobs)
    table = rows(run_dir)
    for t in references:
        row = table[t.number]
        assert row["n_seeds"] == "2" and row["acc_std"] != "" and row["acc_ci95"] != ""
        job = next(j for j in jobs if j.user_attrs[ATTR.PARENT] == t.number)
        assert abs(float(row["acc_mean"]) - (t.values[0] + job.values[0]) / 2) < 1e-12
    claims = out.split("95% confidence):\n", 1)[1]
    for t in references:
        name = t.user_attrs[ATTR.REFERENCE]
        assert (f"{name}: no discovered network dominates it with confidence" in claims
                or f"{name}: dominated with 95% confidence by trial" in claims)
    best = yaml.safe_load((run_dir / "best_block.yaml").read_text())
    assert best["metrics"]["seeds"][0] == 0 and len(best["metrics"]["seeds"]) == len(best["metrics"]["val_acc_seeds"])


def test_repeats_with_accuracy_second_among_the_objectives_read_the_mean_at_its_place(tmp_path, capsys):
    """--objectives puts accuracy anywhere: the rung view replaces that value by the mean over seeds."""
    code = launch_search.main([*FAST, "--budget", "5", "--repeats", "2", "--objectives", "params,accuracy",
                               "--pick", "accuracy", "--name", "o", "--results-dir", str(tmp_path)])
    capsys.readouterr()
    assert code == 0
    main, jobs = studies(tmp_path / "o", "o")
    table = rows(tmp_path / "o")
    repeated = {j.user_attrs[ATTR.PARENT]: j.values[0] for j in jobs if j.state == TrialState.COMPLETE}
    assert repeated
    for number, acc in repeated.items():
        trial = next(t for t in main if t.number == number)
        assert abs(float(table[number]["acc_mean"]) - (trial.values[1] + acc) / 2) < 1e-12


def test_repeats_without_accuracy_among_the_objectives_are_refused_in_one_line(tmp_path, capsys):
    code = launch_search.main([*FAST, "--budget", "3", "--repeats", "2", "--objectives", "macs,params",
                               "--pick", "smallest", "--name", "n", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "accuracy, which is not among --objectives" in err and err.count("\n") == 1
    assert not (tmp_path / "n").exists()


def _child(args: list[str], fault: str | None, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = open(fd, "w", buffering=1)
    faults.configure(fault)
    try:
        code = launch_search.main(args)
    except SystemExit as exc:
        code = exc.code
    os._exit(code if isinstance(code, int) else 1)


def launch(args: list[str], fault: str | None, log: Path) -> int:
    proc = mp.get_context("fork").Process(target=_child, args=(args, fault, str(log)))
    proc.start()
    proc.join(timeout=600)
    return proc.exitcode


def test_two_workers_and_a_kill_during_a_promotion_lose_or_duplicate_no_job(tmp_path):
    args = [*FAST, "--budget", "8", "--no-references", "--rungs", "2", "--eta", "2", "--workers", "2",
            "--heartbeat-grace", "4", "--name", "w", "--results-dir", str(tmp_path)]
    log = tmp_path / "launch.log"
    # the launching process dies by SIGKILL once its first promotion is trained, before it records it
    assert launch(args, "job-evaluated:1", log) == -signal.SIGKILL, log.read_text()[-3000:]
    main, jobs = studies(tmp_path / "w", "w")
    cut = [j for j in jobs if j.state == TrialState.RUNNING]
    assert cut, "the killed promotion is left running"
    assert launch([*args, "--resume"], None, log) == 0, log.read_text()[-3000:]
    main, jobs = studies(tmp_path / "w", "w")
    assert sum(t.user_attrs.get(ATTR.STATUS) in COUNTED_STATUSES for t in main) == 8
    assert not [j for j in jobs if j.state == TrialState.RUNNING]
    done = Counter((j.user_attrs[ATTR.PARENT], j.user_attrs[ATTR.RUNG], j.user_attrs[ATTR.REPEAT])
                   for j in jobs if j.state == TrialState.COMPLETE)
    assert max(done.values()) == 1  # no promotion twice
    for j in cut:  # the cut-off promotion was redone
        assert done[(j.user_attrs[ATTR.PARENT], j.user_attrs[ATTR.RUNG], j.user_attrs[ATTR.REPEAT])] == 1
    results, taken, _ = collect(main, jobs)
    assert due_promotions(results, taken, rungs=2, eta=2) == []  # none lost
    assert len(done) >= 8 // 2


def test_rungs_1_and_repeats_1_leave_the_run_as_it_was(tmp_path):
    from search.results.artifacts import TRIAL_COLUMNS

    assert launch_search.main([*FAST, "--budget", "2", "--no-references", "--rungs", "1", "--repeats", "1",
                               "--name", "o", "--results-dir", str(tmp_path)]) == 0
    run_dir = tmp_path / "o"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal")))
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["o"]
    assert not (run_dir / "checkpoints").exists()
    with open(run_dir / "trials.csv") as f:
        assert tuple(next(csv.reader(f))) == TRIAL_COLUMNS


def test_bad_ladder_settings_are_one_line_and_leave_nothing(tmp_path, capsys):
    for extra, message in ((["--eta", "1"], "--eta must be a whole number >= 2, got 1"),
                           (["--rungs", "0"], "--rungs must be a whole number >= 1, got 0"),
                           (["--repeats", "0"], "--repeats must be a whole number >= 1, got 0")):
        assert launch_search.main([*FAST, "--budget", "2", "--name", "bad", "--results-dir", str(tmp_path), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()


def test_a_promotion_killed_after_its_outcome_was_stored_is_finished_with_it_not_trained_again(tmp_path):
    args = [*FAST, "--budget", "4", "--no-references", "--rungs", "2", "--eta", "2", "--name", "o",
            "--results-dir", str(tmp_path)]
    log = tmp_path / "launch.log"
    # one worker: trials 0 and 1, then the first promotion (the 3rd outcome recorded): killed before tell
    assert launch(args, "outcome-recorded:3", log) == -signal.SIGKILL, log.read_text()[-3000:]
    _, jobs = studies(tmp_path / "o", "o")
    assert [j.state for j in jobs] == [TrialState.RUNNING] and ATTR.OUTCOME in jobs[0].user_attrs
    assert launch([*args, "--resume"], None, log) == 0, log.read_text()[-3000:]
    _, jobs = studies(tmp_path / "o", "o")
    assert jobs[0].state == TrialState.COMPLETE and jobs[0].values == [jobs[0].user_attrs[ATTR.OUTCOME]["values"][0]]
    keys = [(j.user_attrs[ATTR.PARENT], j.user_attrs[ATTR.RUNG]) for j in jobs]
    # the killed one is not trained again; more are due after 4 results (how many depends on the
    # resumed sampler's networks: a resumed launch draws its sampler seed from the OS)
    assert len(keys) == len(set(keys)) >= 2 and all(j.state == TrialState.COMPLETE for j in jobs)
    # a job logs its line after tell: the killed one never did, and a second training would have
    assert f"promotion of trial {keys[0][0]} to rung 1" not in (tmp_path / "o" / "search.log").read_text()
