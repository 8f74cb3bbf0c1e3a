#!/usr/bin/env python
"""Per-trial overhead of the Ray executor against the local one, on the same tiny trials.

    python benchmarks/ray_overhead.py --trials 12

Both executors run the same search in this one process, one after the other: synthetic data, the
smoke proxy cut down to a few batches, seed 0 (so both train the same architectures in the same
order), one trial at a time, one torch thread per trial. Ray runs on a private local instance.

Per-trial overhead = wall time from one finished trial to the next minus the training time the
later trial measured itself (``metric_train_time_s``); the median over every trial after the
first. It includes the work both executors do around training (sampling, counting MACs, building
the network, recording), so the difference between the two is what Ray adds. The first trial also
pays for starting the executor (Ray: the instance, a worker process, its imports and the data;
both: loading the data on the driver), reported apart as "time to first trial".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search.config import SearchConfig  # noqa: E402

# A trial of well under a second: 2 batches of 32 images at a quarter width, 64 validation images.
TINY_PROXY = {"epochs": 1, "train_subset": 64, "batch_size": 32, "val_images": 64, "width_scale": 0.25}


def measure(executor: str, trials: int, results_dir: str) -> dict[str, float]:
    import optuna

    from search.run import run_search
    from search.study import counted, open_study, make_sampler

    cfg = SearchConfig(
        space="seesaw", budget=trials, dataset="synthetic", proxy="smoke", proxy_overrides=TINY_PROXY, val_size=64,
        sampler="random", seed=0, name=executor, results_dir=results_dir, device="cpu", references=False,
        executor=executor, cpus_per_trial=1.0, gpus_per_trial=0.0, max_concurrent=1,
    )
    start = time.time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_search(cfg)
    wall = time.time() - start
    study = open_study(cfg.storage_url, cfg.name, make_sampler("random", 0), resume=True)
    done = sorted((t for t in study.get_trials(deepcopy=False) if counted(t)), key=lambda t: t.datetime_complete)
    assert len(done) == trials and all(t.state == optuna.trial.TrialState.COMPLETE for t in done), "a trial failed"
    ends = [t.datetime_complete.timestamp() for t in done]
    train = [t.user_attrs["metric_train_time_s"] for t in done]
    walls = [b - a for a, b in zip(ends, ends[1:])]
    return {
        "first_s": ends[0] - start,
        "per_trial_s": statistics.median(walls),
        "train_s": statistics.median(train[1:]),
        "overhead_s": statistics.median(w - t for w, t in zip(walls, train[1:])),
        "wall_s": wall,
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
          f"{os.getloadavg()[0]:.1f} at the end; medians over trials 2..{args.trials}")
    print("| executor | time to first trial (s) | wall per trial (s) | training per trial (s) | overhead per trial (s) | whole run (s) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['first_s']:.2f} | {r['per_trial_s']:.3f} | {r['train_s']:.3f} | {r['overhead_s']:.3f} | {r['wall_s']:.1f} |")
    local, ray = results["local"]["overhead_s"], results["ray"]["overhead_s"]
    print(f"ray / local overhead per trial: {ray / local:.1f}x ({ray - local:+.3f} s per trial)")


if __name__ == "__main__":
    main()
