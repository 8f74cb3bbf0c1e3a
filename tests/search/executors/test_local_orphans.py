"""kill -9 of the launching process with --workers 2: the spawned worker ends too (issue 14 item 5)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from search.engine.study import load_study_readonly

ROOT = Path(__file__).resolve().parents[3]
FAST = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "64",
        "--train-subset", "64", "--batch-size", "32"]


def gone(pid: int) -> bool:
    """Not running any more (exited, or a zombie nobody reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def test_a_spawned_worker_exits_when_the_launching_process_is_killed(tmp_path):
    cmd = [sys.executable, str(ROOT / "launch_search.py"), "--space", "seesaw", "--budget", "50", "--name", "o",
           "--no-references", "--workers", "2", *FAST, "--epochs", "3", "--results-dir", str(tmp_path)]
    main = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True)
    log = tmp_path / "o" / "search.log"
    worker = []

    def worker_started() -> bool:
        m = re.search(r" w1 sampler .* pid (\d+)\)", log.read_text()) if log.exists() else None
        if m:
            worker.append(int(m.group(1)))
        return bool(m)

    try:
        assert wait_for(worker_started, 300), "the extra worker did not start"
        os.kill(main.pid, signal.SIGKILL)  # the launching process only, not its group
        main.wait()
        assert wait_for(lambda: gone(worker[0]), 60), "the worker outlived the killed launching process"
    finally:
        try:
            os.killpg(main.pid, signal.SIGKILL)  # whatever is left of the run (nothing, if the test passes)
        except ProcessLookupError:
            pass


def _sigint_as_on_a_terminal() -> None:
    """A shell starts background commands with SIGINT ignored, and Python keeps an ignored SIGINT:
    the test's run gets the default, as from a terminal, however pytest itself was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_to_the_launching_process_alone_stops_every_worker_and_keeps_the_run(tmp_path, sig):
    """A scheduler's SIGTERM (or a SIGINT that reaches only the launching process) ends the run like
    Ctrl-C on a terminal: exit 130, the spawned worker stops too, nothing is left running in the
    study (cut-off trials are re-enqueued), the artifacts are written, and --resume finishes it."""
    args = ["--space", "seesaw", "--budget", "4", "--name", "s", "--no-references", "--workers", "2", *FAST,
            "--epochs", "3", "--results-dir", str(tmp_path)]
    main = subprocess.Popen([sys.executable, str(ROOT / "launch_search.py"), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
                            preexec_fn=_sigint_as_on_a_terminal)
    log = tmp_path / "s" / "search.log"
    worker = []

    def worker_training() -> bool:
        text = log.read_text() if log.exists() else ""
        m = re.search(r" w1 sampler .* pid (\d+)\)", text)
        if m and not worker:
            worker.append(int(m.group(1)))
        return bool(worker) and _running_trials(tmp_path / "s") >= 1

    try:
        assert wait_for(worker_training, 300), "no trial started"
        os.kill(main.pid, sig)  # the launching process only, not its group
        _, err = main.communicate(timeout=180)
        assert main.returncode == 130, err
        assert wait_for(lambda: gone(worker[0]), 30), "the worker outlived the stopped run"
        assert _running_trials(tmp_path / "s") == 0
        assert (tmp_path / "s" / "trials.csv").exists() and (tmp_path / "s" / "run.json").exists()
    finally:
        try:
            os.killpg(main.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    resumed = subprocess.run([sys.executable, str(ROOT / "launch_search.py"), *args, "--resume"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    study = load_study_readonly(f"journal://{tmp_path / 's' / 'study.journal'}", "s")
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 4


def _running_trials(run_dir: Path) -> int:
    journal = run_dir / "study.journal"
    if not journal.exists():
        return 0
    try:
        study = load_study_readonly(f"journal://{journal}", run_dir.name)
    except Exception:  # the study is not created yet
        return 0
    return sum(t.state == optuna.trial.TrialState.RUNNING for t in study.trials)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


def test_a_benchmark_pool_worker_exits_when_the_benchmark_is_killed(tmp_path):
    """benchmarks/proxy_spread.py trains in a process pool (exit_with_parent as its initializer)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "proxy_spread.py"), "--preset", "cpu", "--dataset", "synthetic",
           "--val-size", "256", "--models", "seesaw_0.5d_cifar10", "--seeds", "1", "2", "--out", str(tmp_path / "s.jsonl")]
    main = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    workers = []

    def worker_started() -> bool:
        workers[:] = [p for p in _children(main.pid)
                      if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()] if main.poll() is None else []
        return bool(workers)

    try:
        assert wait_for(worker_started, 120), "no pool worker started"
        time.sleep(2)  # into the run: the worker has passed its initializer
        os.kill(main.pid, signal.SIGKILL)
        main.wait()
        assert wait_for(lambda: all(gone(p) for p in workers), 30), "a pool worker outlived the killed benchmark"
        assert not (tmp_path / "s.jsonl").exists()  # nothing half-written: no run had finished
    finally:
        try:
            os.killpg(main.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
