"""Two Ray nodes on this machine (a head and a second node, each started with `ray start`, own
ports and temp dir, loopback only), the study in a real PostgreSQL server: trials run on both
nodes; the second node killed mid-run: its trial is retried elsewhere and the budget ends exact.
Every Ray process started here is stopped by its process group and its temp dir, never by name."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.engine.attributes import ATTR, STATUS, counted, trial_status
from search.engine.study import make_sampler, open_study
from search.executors.ray_tune import NODE_ATTR

ROOT = Path(__file__).resolve().parents[3]
FAST = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "64",
        "--train-subset", "64", "--batch-size", "32"]
# Several nodes on one machine: Ray must allow a "cluster" here; loopback addresses only.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_CHDIR_TO_TRIAL_DIR": "0", "OMP_NUM_THREADS": "1"}
RAY = str(Path(sys.executable).parent / "ray") if (Path(sys.executable).parent / "ray").exists() else "ray"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def node_ports() -> list[str]:
    names = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")
    return [x for name, port in zip(names, free_ports(len(names))) for x in (name, str(port))]


def processes_using(path: str) -> list[int]:
    """Pids of the processes whose command line names ``path`` (our nodes' own temp dirs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if path in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def kill_node(pgid: int | None, temp_dir: str) -> None:
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in processes_using(temp_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive_nodes(address: str, env: dict) -> int:
    out = subprocess.run([RAY, "status", "--address", address], capture_output=True, text=True, env=env, timeout=120).stdout
    active = out.split("Active:")[-1].split("Pending:")[0] if "Active:" in out else ""
    return active.count("node_")


@pytest.mark.slow
def test_two_ray_nodes_share_the_trials_and_survive_losing_one(pg_url, tmp_path):
    env = {**os.environ, **RAY_ENV}
    # short temp dirs: Ray's socket paths must stay under the 107-character limit
    head_dir, node_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp"), tempfile.mkdtemp(prefix="rn", dir="/tmp")
    port, dashboard = free_ports(2)
    address = f"127.0.0.1:{port}"
    head_pgid = node = None
    try:
        head = subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                                 "--num-cpus", "1", "--num-gpus", "0", "--temp-dir", head_dir, "--include-dashboard",
                                 "false", "--dashboard-port", str(dashboard), "--disable-usage-stats", *node_ports()],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        head_pgid = head.pid  # the daemons it starts stay in its process group
        out, _ = head.communicate(timeout=300)
        assert head.returncode == 0, out[-3000:]
        node = subprocess.Popen([RAY, "start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                                 "--num-gpus", "0", "--temp-dir", node_dir, "--disable-usage-stats", "--block",
                                 *node_ports()], env=env, stdout=open(tmp_path / "node2.log", "w"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 300
        while alive_nodes(address, env) < 2:
            assert time.time() < deadline and node.poll() is None, (tmp_path / "node2.log").read_text()[-3000:]
            time.sleep(2)

        open_study(pg_url, "ray2", make_sampler("random", 0), resume=False)
        driver = subprocess.Popen(
            [sys.executable, str(ROOT / "launch_search.py"), "--space", "seesaw", "--budget", "8", "--name", "ray2",
             "--storage", pg_url, "--resume", "--no-references", "--results-dir", str(tmp_path), *FAST, "--epochs", "2",
             "--executor", "ray", "--ray-address", address, "--cpus-per-trial", "1", "--max-retries", "2"],
            env=env, stdout=open(tmp_path / "driver.out", "w"), stderr=subprocess.STDOUT, cwd=tmp_path,
            start_new_session=True)

        def trials() -> list:
            return optuna.load_study(study_name="ray2", storage=pg_url).get_trials(deepcopy=False)

        # both nodes trained a trial and trials are running: kill the second node (its trial dies with it)
        deadline = time.time() + 600
        while True:
            ts = trials()
            nodes = {t.user_attrs.get(NODE_ATTR) for t in ts if t.state == TrialState.COMPLETE} - {None}
            if len(nodes) >= 2 and sum(t.state == TrialState.RUNNING for t in ts) >= 2:  # both nodes busy
                break
            assert time.time() < deadline and driver.poll() is None, (tmp_path / "driver.out").read_text()[-3000:]
            time.sleep(0.5)
        kill_node(node.pid, node_dir)
        node.wait()
        try:
            driver.wait(900)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            pytest.fail("the search did not finish after the node was lost: " + (tmp_path / "driver.out").read_text()[-3000:])
        assert driver.returncode == 0, (tmp_path / "driver.out").read_text()[-3000:]
        ts = trials()
        assert sum(counted(t) for t in ts) == 8, [(t.number, t.state.name, trial_status(t)) for t in ts]
        assert not [t for t in ts if t.state == TrialState.RUNNING]
        assert len({t.user_attrs.get(NODE_ATTR) for t in ts if counted(t)} - {None}) == 2
        trained = [t.user_attrs[ATTR.KEY] for t in ts if t.user_attrs.get(ATTR.STATUS) == STATUS.OK]
        assert len(trained) == len(set(trained))
        # the trial that died with the node (Ray wrote its error): retried by Tune and finished, or
        # (when Tune's retries hit the dead actor again) not counted and its architecture run again
        hit = {int(p.parent.name.removeprefix("trial_")) for p in (tmp_path / "ray2" / "ray").glob("tune-*/trial_*/error.txt")}
        assert hit, "no trial was running on the second node when it was killed"
        by_number = {t.number: t for t in ts}
        for number in hit:
            t = by_number[number]
            if not counted(t):
                assert "Ray node was lost" in t.user_attrs.get(ATTR.FAILURE, ""), t.user_attrs
                assert any(counted(r) and r.user_attrs.get(ATTR.KEY) == t.user_attrs[ATTR.KEY] for r in ts if r.number > number)
            else:
                assert trial_status(t) == STATUS.OK, (number, trial_status(t), t.user_attrs.get(ATTR.FAILURE))
    finally:
        if node is not None:
            kill_node(node.pid, node_dir)
        kill_node(head_pgid, head_dir)
        time.sleep(1)
        leftover = processes_using(head_dir) + processes_using(node_dir)
        shutil.rmtree(head_dir, ignore_errors=True)
        shutil.rmtree(node_dir, ignore_errors=True)
        assert not leftover, f"Ray processes left running: {leftover}"


def test_node_lost_reads_ray_s_messages_of_a_dead_node():
    from search.executors.ray_tune import node_lost

    # Ray 2.60's words, from the error.txt of trials whose node was killed by the test above
    assert node_lost("The actor 7a1b is unavailable: The actor is temporarily unavailable: RpcError: RPC error: failed "
                     "to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.2:19498: Failed to connect to remote host")
    assert node_lost("The actor 5f05 is unavailable: The actor is temporarily unavailable: RpcError: Socket closed")
    assert not node_lost("RuntimeError: CUDA out of memory")
    assert not node_lost("no message")
    # what the searcher classifies is Ray's whole text: its one-line summary can lose the message
    from search.executors.ray_tune import error_summary
    indented = "Failure # 1 (occurred at x)\n  The actor 5f05 is unavailable: RpcError: Socket closed"
    assert error_summary(indented) == "no message" and node_lost(indented)
