"""Several "hosts" on one study in a real PostgreSQL server (tests/pg_server.py): worker processes
with their own host id (SEESAW_HOST_ID) and results folder, as on separate machines. Exact budget,
no architecture trained twice, a kill -9, a database restart, a wrong password or database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.engine.attributes import ATTR, STATUS, counted, trial_status
from search.engine.study import make_sampler, open_study
from space.spaces import get_space

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "64",
        "--train-subset", "64", "--batch-size", "32"]
NAME = "mh"
TRAINED = (STATUS.OK, STATUS.DIVERGED)


def start_worker(tmp_path: Path, host: str, url: str, budget: int, *extra: str) -> subprocess.Popen:
    """One worker "host": its own results folder and host id, the shared study, --resume (joins)."""
    folder = tmp_path / host
    folder.mkdir(exist_ok=True)
    cmd = [sys.executable, str(ROOT / "launch_search.py"), "--space", "seesaw", "--budget", str(budget), "--name", NAME,
           "--storage", url, "--resume", "--no-references", "--results-dir", str(folder), *FAST, *extra]
    env = {**os.environ, "SEESAW_HOST_ID": host, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=open(folder / "stdout", "w"), stderr=open(folder / "stderr", "w"), env=env,
                            cwd=folder, start_new_session=True)


def create_study(url: str, copies_of_one_architecture: int = 0) -> dict:
    """The study, created up front (as the first host does); optionally one architecture enqueued
    several times, so that workers draw the same one at once."""
    study = open_study(url, NAME, make_sampler("random", 0), resume=False)
    params = get_space("seesaw", dataset="synthetic").smallest_params()
    for _ in range(copies_of_one_architecture):
        study.enqueue_trial(params)
    return params


def wait_all(procs: dict[str, subprocess.Popen], tmp_path: Path, timeout: float = 900) -> None:
    deadline = time.time() + timeout
    for host, proc in procs.items():
        try:
            proc.wait(max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for p in procs.values():
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            pytest.fail(f"worker {host} did not finish; stderr: {(tmp_path / host / 'stderr').read_text()[-2000:]}")


def load(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=NAME, storage=url).get_trials(deepcopy=False)


def assert_budget_exact_and_nothing_trained_twice(trials: list, budget: int) -> None:
    assert sum(counted(t) for t in trials) == budget, [(t.number, t.state.name, trial_status(t)) for t in trials]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    trained = [t.user_attrs[ATTR.KEY] for t in trials if t.user_attrs.get(ATTR.STATUS) in TRAINED]
    assert len(trained) == len(set(trained)), "an architecture was trained twice"


def test_three_hosts_finish_the_budget_exactly_and_train_no_architecture_twice(pg_url, tmp_path):
    params = create_study(pg_url, copies_of_one_architecture=3)
    procs = {h: start_worker(tmp_path, h, pg_url, 12) for h in ("host-a", "host-b", "host-c")}
    wait_all(procs, tmp_path)
    for host, proc in procs.items():
        assert proc.returncode == 0, (tmp_path / host / "stderr").read_text()[-2000:]
    trials = load(pg_url)
    assert_budget_exact_and_nothing_trained_twice(trials, 12)
    # the architecture enqueued three times: trained once, the other two recorded as its duplicates
    copies = [t for t in trials if t.system_attrs.get("fixed_params") == params]
    assert sorted(trial_status(t) for t in copies) == ["duplicate", "duplicate", "ok"], copies
    hosts = {t.user_attrs[ATTR.HOST] for t in trials if counted(t)}
    assert hosts <= set(procs) and len(hosts) >= 2, hosts  # several hosts ran trials (load decides how many)


def test_a_killed_host_s_trial_is_recovered_by_a_survivor_after_the_grace(pg_url, tmp_path):
    create_study(pg_url)
    grace = ["--heartbeat-grace", "3"]
    procs = {h: start_worker(tmp_path, h, pg_url, 8, "--epochs", "3", *grace) for h in ("victim", "host-b", "host-c")}
    deadline, victim_trial = time.time() + 600, None
    while victim_trial is None:  # the victim is training a trial: kill -9 it now
        assert time.time() < deadline and procs["victim"].poll() is None, (tmp_path / "victim" / "stderr").read_text()[-2000:]
        time.sleep(0.3)
        victim_trial = next((t for t in load(pg_url) if t.state == TrialState.RUNNING
                             and t.user_attrs.get(ATTR.HOST) == "victim" and t.user_attrs.get(ATTR.TRAINING)), None)
    os.killpg(procs["victim"].pid, signal.SIGKILL)  # mid-trial: its trial stays RUNNING in the study
    procs["victim"].wait()
    finished_before = {t.number: t.values for t in load(pg_url) if t.state == TrialState.COMPLETE}
    survivors = {h: p for h, p in procs.items() if h != "victim"}
    wait_all(survivors, tmp_path)
    for host, proc in survivors.items():
        assert proc.returncode == 0, (tmp_path / host / "stderr").read_text()[-2000:]
    trials = load(pg_url)
    assert_budget_exact_and_nothing_trained_twice(trials, 8)
    by_number = {t.number: t for t in trials}
    killed = by_number[victim_trial.number]
    assert killed.state == TrialState.FAIL and trial_status(killed) == STATUS.STALE and not counted(killed)
    rerun = [t for t in trials if t.number > killed.number and t.user_attrs.get(ATTR.KEY) == victim_trial.user_attrs[ATTR.KEY]]
    assert rerun and counted(rerun[0]) and rerun[0].user_attrs[ATTR.HOST] in survivors  # its architecture ran again
    assert all(by_number[n].values == v for n, v in finished_before.items())  # nothing finished was lost
    logs = "".join((tmp_path / h / NAME / "search.log").read_text() for h in survivors)
    assert f"trial {killed.number} stale" in logs


def test_a_database_restart_mid_run_is_ridden_out(own_pg_server, tmp_path):
    url = own_pg_server.url(own_pg_server.create_database())
    create_study(url)
    procs = {h: start_worker(tmp_path, h, url, 6, "--epochs", "2") for h in ("host-a", "host-b")}
    deadline = time.time() + 600
    while time.time() < deadline and not any(t.state == TrialState.COMPLETE for t in load(url)):
        assert all(p.poll() is None for p in procs.values()), "a worker ended before the restart"
        time.sleep(0.5)
    finished_before = {t.number: t.values for t in load(url) if t.state == TrialState.COMPLETE}
    assert finished_before
    own_pg_server.stop()
    time.sleep(5)
    own_pg_server.start()
    wait_all(procs, tmp_path)
    for host, proc in procs.items():
        assert proc.returncode == 0, (tmp_path / host / "stderr").read_text()[-2000:]
    trials = load(url)
    assert_budget_exact_and_nothing_trained_twice(trials, 6)
    assert all({t.number: t.values for t in trials}[n] == v for n, v in finished_before.items())
    errs = [(tmp_path / h / "stderr").read_text() for h in procs]
    noticed = [e for e in errs if "unreachable" in e]
    assert noticed, errs  # at least one worker was talking to the server when it went away
    for err in noticed:  # one line per outage, no traceback
        lines = [line for line in err.splitlines() if "unreachable" in line]
        assert len(lines) == 1 and "retrying" in lines[0] and "Traceback" not in err, err


@pytest.mark.parametrize("what", ["password", "database"])
def test_a_wrong_password_or_database_is_one_line_exit_2_before_any_training(pg_server, tmp_path, what):
    url = pg_server.url("postgres", password="not-the-password") if what == "password" else pg_server.url("no_such_db")
    proc = subprocess.run([sys.executable, str(ROOT / "launch_search.py"), "--space", "seesaw", "--budget", "2", "--name",
                           NAME, "--storage", url, "--results-dir", str(tmp_path), *FAST],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert ("password" in err and "not-the-password" not in err) if what == "password" else "no_such_db" in err
    assert "trial" not in proc.stdout and not (tmp_path / NAME / "trials.csv").exists()


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_heartbeat_grace_that_is_not_positive_is_one_line_exit_2(tmp_path, value, capsys):
    import launch_search

    code = launch_search.main(["--budget", "2", *FAST, "--heartbeat-grace", value, "--results-dir", str(tmp_path),
                               "--name", "g"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--heartbeat-grace" in err, err
    assert not (tmp_path / "g").exists()


def test_a_host_with_another_proxy_recipe_is_refused_and_the_study_keeps_its_trials(pg_url, tmp_path):
    """The first host's launch records its recipe in the study; a host joining with other epochs
    (no run.json on that host to compare with) is refused in one line and adds no trial."""
    create = [sys.executable, str(ROOT / "launch_search.py"), "--space", "seesaw", "--budget", "1", "--name", NAME,
              "--storage", pg_url, "--no-references", "--results-dir", str(tmp_path / "host-a"), *FAST]  # no --resume
    done = subprocess.run(create, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    trials = load(pg_url)
    joiner = start_worker(tmp_path, "host-b", pg_url, 3, "--epochs", "2")
    wait_all({"host-b": joiner}, tmp_path)
    err = (tmp_path / "host-b" / "stderr").read_text()
    assert joiner.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "trained its networks with the smoke proxy; these settings change it (epochs 1 -> 2.0)" in err, err
    assert not (tmp_path / "host-b" / NAME).exists()  # the refused host wrote no run folder
    assert [(t.number, t.state) for t in load(pg_url)] == [(t.number, t.state) for t in trials]
