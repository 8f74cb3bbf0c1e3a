"""kill -9 of the launching process with --workers 2: the spawned worker ends too (issue 14 item 5)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

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
