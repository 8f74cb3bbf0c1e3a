"""optuna-dashboard (the tool Optuna users run) serves a run's study.journal as the README says:
started on loopback on a free port, its HTTP API lists the study and every trial with its values
and our user attributes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from optuna.trial import TrialState, create_trial

from search.config import SearchConfig
from search.engine.attributes import ATTR, STATUS
from search.engine.study import make_sampler, open_study


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_command() -> str:
    found = shutil.which("optuna-dashboard") or str(Path(sys.executable).with_name("optuna-dashboard"))
    assert Path(found).exists(), "optuna-dashboard is pinned in requirements-test.txt"
    return found


def get_json(url: str, deadline: float, proc: subprocess.Popen) -> dict:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"optuna-dashboard did not serve {url}: {proc.communicate()[1][-2000:]}")
            time.sleep(0.5)


def test_optuna_dashboard_serves_the_runs_study_and_its_trials(tmp_path):
    cfg = SearchConfig(name="dash", results_dir=str(tmp_path))
    study = open_study(cfg.storage_url, cfg.name, make_sampler("random", 0), resume=False)
    for acc, macs, ref in [(0.5, 10e6, "seesaw_0.5d_cifar10"), (0.7, 30e6, None), (0.6, 20e6, None)]:
        attrs = {ATTR.STATUS: STATUS.OK, ATTR.MACS: macs, **({ATTR.REFERENCE: ref} if ref else {})}
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[acc, macs], user_attrs=attrs))
    journal = cfg.run_dir / "study.journal"
    assert journal.is_file()

    port = free_port()
    # the README's command, with loopback and a free port
    proc = subprocess.Popen([dashboard_command(), str(journal), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        studies = get_json(f"http://127.0.0.1:{port}/api/studies", deadline, proc)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["dash"]
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}", deadline, proc)
        trials = detail["trials"]
        assert [t["values"] for t in trials] == [[0.5, 10e6], [0.7, 30e6], [0.6, 20e6]]
        assert all(t["state"] == "Complete" for t in trials)
        attrs = {a["key"]: a["value"] for a in trials[0]["user_attrs"]}
        assert attrs[ATTR.REFERENCE] == "seesaw_0.5d_cifar10"
        assert len(detail["directions"]) == 2
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
