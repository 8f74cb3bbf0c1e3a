#!/usr/bin/env python
"""Per-trial overhead of the Ray executor against the local one, on the same tiny trials.

    python benchmarks/ray_overhead.py --trials 12

Both executors run the same search in this one process, one after the other: synthetic data, the
smoke proxy cut down to two batches, the random sampler with seed 0 (so both train the same
architectures in the same order), one trial at a time, one torch thread per trial. Ray runs on a
private local instance.

For each trial after the first:

    wall     = time from the previous trial's end to this trial's end (as the study records them)
    propose  = sampling + counting MACs on the driver (the same work for both executors)
    evaluate = building and training the proxy: ProxyEvaluator for the local executor, the whole
               trainable call in the Ray worker (Tune's time_this_iter_s, from Ray's result.json)
    overhead = wall - propose - evaluate: what the executor itself costs per trial (asking and
               telling the study, logging, the progress bar; for Ray also scheduling the trial on
               a reused worker and moving its config and result)

Medians over the trials. The first trial also pays for starting the executor (Ray: the instance,
a worker process, its imports and the data), reported apart as "time to first trial".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search.config import SearchConfig  # noqa: E402

# A trial of about a second on a CPU: two batches of 32 images at a quarter width, 64 validation images.
TINY_PROXY = {"epochs": 1, "train_subset": 64, "batch_size": 32, "val_images": 64, "width_scale": 0.25}


@contextlib.contextmanager
def timed(owner: Any, name: str, seconds: dict[int, float], number_of: Callable[..., int]):
    """Replace ``owner.name`` by a wrapper that records its duration per trial number."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[number_of(*args, **kwargs)] = time.perf_counter() - start

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def ray_worker_seconds(run_dir: Path) -> dict[int, float]:
    out = {}
    for path in run_dir.glob("ray/tune-*/trial_*/result.json"):
        lines = path.read_text().splitlines()
        out[int(path.parent.name.split("_")[1])] = json.loads(lines[-1])["time_this_iter_s"]
    return out


def measure(executor: str, trials: int, results_dir: str) -> dict[str, float]:
    import search.engine.trial
    import search.train.evaluator
    from search.runner import run_search
    from search.engine.attributes import ATTR, counted
    from search.engine.study import make_sampler, open_study

    cfg = SearchConfig(
        space="seesaw", budget=trials, dataset="synthetic", proxy="smoke", proxy_overrides=TINY_PROXY, val_size=64,
        sampler="random", seed=0, name=executor, results_dir=results_dir, device="cpu", references=False,
        executor=executor, cpus_per_trial=1.0, gpus_per_trial=0.0, max_concurrent=1,
    )
    propose_s: dict[int, float] = {}
    evaluate_s: dict[int, float] = {}
    module = search.engine.trial  # both executors propose through the one trial step
    start = time.time()
    with contextlib.ExitStack() as stack:
        stack.enter_context(timed(module, "propose", propose_s, lambda trial, *a, **k: trial.number))
        stack.enter_context(timed(search.train.evaluator.ProxyEvaluator, "__call__", evaluate_s,
                                  lambda self, spec, seed, **k: spec.canonical_key()))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        run_search(cfg)
    whole = time.time() - start
    if executor == "ray":
        evaluate_s = ray_worker_seconds(cfg.run_dir)
    study = open_study(cfg.storage_url, cfg.name, make_sampler("random", 0), resume=True)
    done = sorted((t for t in study.get_trials(deepcopy=False) if counted(t)), key=lambda t: t.datetime_complete)
    if executor != "ray":  # timed by architecture (every trial trains with the run's seed): by trial number
        evaluate_s = {t.number: evaluate_s[t.user_attrs[ATTR.KEY]] for t in done}
    assert len(done) == trials and all(t.user_attrs[ATTR.STATUS] == "ok" for t in done), "a trial failed"
    rows = []
    for before, t in zip(done, done[1:]):
        wall = t.datetime_complete.timestamp() - before.datetime_complete.timestamp()
        rows.append((wall, propose_s[t.number], evaluate_s[t.number], t.user_attrs[ATTR.TRAIN_TIME]))
    return {
        "first_s": done[0].datetime_complete.timestamp() - start,
        "wall_s": statistics.median(r[0] for r in rows),
        "propose_s": statistics.median(r[1] for r in rows),
        "evaluate_s": statistics.median(r[2] for r in rows),
        "train_s": statistics.median(r[3] for r in rows),
        "overhead_s": statistics.median(r[0] - r[1] - r[2] for r in rows),
        "whole_s": whole,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="trials per executor (>= 3)")
    args = parser.parse_args()
    if args.trials < 3:
        parser.error("--trials must be >= 3")
    import torch

    torch.set_num_threads(1)  # the local executor trains in this process: one thread, like a 1-CPU Ray trial
    with tempfile.TemporaryDirectory(prefix="ray_overhead_") as tmp:
        results = {name: measure(name, args.trials, tmp) for name in ("local", "ray")}
    print(f"{args.trials} tiny trials per executor, one at a time; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the end; medians over trials 2..{args.trials}, seconds")
    print("| executor | time to first trial | wall per trial | propose | evaluate (training) | overhead per trial | whole run |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['first_s']:.2f} | {r['wall_s']:.3f} | {r['propose_s']:.3f} | "
              f"{r['evaluate_s']:.3f} ({r['train_s']:.3f}) | {r['overhead_s']:.3f} | {r['whole_s']:.1f} |")
    local, ray = results["local"]["overhead_s"], results["ray"]["overhead_s"]
    print(f"ray / local overhead per trial: {ray / local:.1f}x ({ray - local:+.3f} s per trial)")


if __name__ == "__main__":
    main()
