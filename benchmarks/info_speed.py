"""How long the commands that train nothing take, each in a fresh process, against their goals.

    OMP_NUM_THREADS=1 python benchmarks/info_speed.py [--trials 20] [--repeat 1]

- ``--describe``: ``launch_search.py --space seesaw --describe`` (choices, size, cost range over 100
  random samples, the references), wall time of the whole process. Goal <= 5 s.
- ``--references``: ``launch_search.py --references`` (the zoo counted vs published). Goal <= 3 s.
- the non-training work per trial: in a fresh process, the tool's own trial step
  (``search.engine.trial.run_trial``: ask under the run's lock, claim, propose = sample + count +
  constraint + twin check, record, log) on a journal study with the default TPE sampler, the
  training replaced by a constant evaluation. Goal <= 0.1 s per trial (mean over ``--trials``;
  the first trial, which pays the first count of each block, is shown apart).
- the import of the command line (``import launch_search``), which every command above pays.

Part counts persist in a file per machine (``blocks/cost.py``), so each command runs twice on a
fresh, empty cache folder (``SEESAW_CACHE_DIR``): *cold* (the first run on a machine, or after the
code of ``blocks/`` changed) and *warm* (every later run). The per-trial work is measured cold: a
new search's networks are new.

Prints one row per measurement: seconds, goal, and seconds / goal (<= 1 meets the goal). With
``--baseline DIR`` (a checkout of another version, e.g. ``git worktree add /tmp/base REV``), the
info commands also run from DIR, alternating with this checkout in every repeat, and a column gives
this checkout's time / the baseline's (< 1: faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GOALS = {"--describe": 5.0, "--references": 3.0, "per trial (mean)": 0.1}


def timed(cmd: list[str], cache_dir: str, root: str = ROOT) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "SEESAW_CACHE_DIR": cache_dir}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return elapsed


def trial_worker(trials: int) -> dict:
    """Runs in a fresh process: setup, then ``trials`` trial steps with a constant evaluation."""
    t0 = time.perf_counter()
    import random

    from blocks import count_cost
    from search.config import SearchConfig
    from search.engine.study import make_sampler, open_study
    from search.engine.trial import TrialSteps, run_trial
    from search.train.evaluator import Evaluation
    from space.spaces import get_space

    rng = random.Random(0)

    def evaluate(spec, seed, cost=None, **_):  # the training, replaced
        return Evaluation(status="ok", val_acc=rng.random())

    with tempfile.TemporaryDirectory() as tmp:
        cfg = SearchConfig(name="speed", results_dir=tmp, budget=trials, references=False)
        space = get_space(cfg.space)
        study = open_study(cfg.storage_url, cfg.name, make_sampler(cfg.sampler, 0), resume=False)
        steps = TrialSteps(study, cfg, space, num_classes=10, count_cost=count_cost)
        setup = time.perf_counter() - t0
        times = []
        while True:
            t = time.perf_counter()
            if run_trial(steps, evaluate) is None:
                break
            times.append(time.perf_counter() - t)
    return {"setup_s": setup, "first_s": times[0], "mean_s": sum(times) / len(times),
            "mean_after_first_s": sum(times[1:]) / max(1, len(times) - 1), "max_s": max(times), "trials": len(times)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20, help="trial steps timed in the per-trial measurement")
    p.add_argument("--repeat", type=int, default=1, help="runs of each command; the best is shown")
    p.add_argument("--baseline", metavar="DIR", default=None,
                   help="a checkout of another version: its info commands are timed side by side")
    p.add_argument("--trial-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, "launch_search.py")):
        p.error(f"--baseline {args.baseline}: no launch_search.py there; give a checkout of seesaw-nas")
    if args.trial_worker is not None:
        print(json.dumps(trial_worker(args.trial_worker)))
        return 0

    py = sys.executable
    rows = []  # (measurement, seconds, the baseline's seconds or None, goal or None)
    roots = [ROOT] + ([os.path.abspath(args.baseline)] if args.baseline else [])

    def cold_and_warm(label: str, cmd: list[str], goal: float | None) -> None:
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.repeat):
            for root in roots:  # alternating, so that both see the same phases of a noisy machine
                with tempfile.TemporaryDirectory() as cache_dir:
                    for state in ("cold", "warm"):
                        best[root, state] = min(best.get((root, state), float("inf")), timed(cmd, cache_dir, root))
        for state in ("cold", "warm"):
            rows.append((f"{label} ({state})", best[ROOT, state], best.get((roots[-1], state)) if args.baseline else None,
                         goal))

    rows.append(("import launch_search", min(timed([py, "-c", "import launch_search"], tempfile.gettempdir())
                                             for _ in range(args.repeat)), None, None))
    cold_and_warm("--describe", [py, "launch_search.py", "--space", "seesaw", "--describe"], GOALS["--describe"])
    cold_and_warm("--references", [py, "launch_search.py", "--references"], GOALS["--references"])
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "SEESAW_CACHE_DIR": cache_dir}
        out = subprocess.run([py, os.path.abspath(__file__), "--trial-worker", str(args.trials)], cwd=ROOT, env=env,
                             capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"trial worker failed: {out.stderr.strip()[-500:]}")
    t = json.loads(out.stdout.strip().splitlines()[-1])
    rows.append((f"per trial (mean of {t['trials']})", t["mean_s"], None, GOALS["per trial (mean)"]))
    rows.append(("per trial (first)", t["first_s"], None, None))
    rows.append(("per trial (mean after the first)", t["mean_after_first_s"], None, None))
    rows.append(("per trial (max)", t["max_s"], None, None))
    rows.append(("trial process setup (imports, space, study)", t["setup_s"], None, None))

    width = max(len(r[0]) for r in rows)
    extra = f"  {'baseline':>8}  {'/ base':>6}" if args.baseline else ""
    print(f"{'measurement':<{width}}  {'seconds':>8}  {'goal':>6}  {'ratio':>6}{extra}")
    for name, seconds, base, goal in rows:
        g = f"{goal:g}" if goal else "-"
        ratio = f"{seconds / goal:.2f}" if goal else "-"
        line = f"{name:<{width}}  {seconds:8.3f}  {g:>6}  {ratio:>6}"
        if args.baseline:
            line += f"  {base:8.3f}  {seconds / base:6.2f}" if base else f"  {'-':>8}  {'-':>6}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
