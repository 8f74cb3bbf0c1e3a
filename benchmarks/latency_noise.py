"""How reproducible is the per-block latency lookup on this machine, and does a speed probe help?

    OMP_NUM_THREADS=1 python benchmarks/latency_noise.py --mode plain --n 12
    OMP_NUM_THREADS=1 python benchmarks/latency_noise.py --mode probe --n 12

Builds two fresh lookup tables, one after the other, for the same N random networks of a space
(CPU, batch 1, 1 thread, thread clock) and prints how far the two predictions agree (Spearman,
median relative difference). ``probe`` (an experiment, not in ``blocks.latency``): every part's
time is divided by the time of a fixed small conv module timed right before and after it, so a
slower phase of a shared machine (another job on the sibling hardware thread, a steal of the
virtual CPU) scales both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import blocks.latency as latency  # noqa: E402
from space.spaces import get_space  # noqa: E402

PROBE_SHAPE = (1, 32, 16, 16)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("plain", "probe"), default="plain")
    p.add_argument("--space", default="seesaw")
    p.add_argument("--n", type=int, default=12)
    args = p.parse_args()
    target = latency.LatencyTarget("cpu", batch=1, threads=1)
    torch.manual_seed(0)
    probe = nn.Sequential(nn.Conv2d(32, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1, groups=64),
                          nn.Conv2d(64, 32, 1)).eval()
    plain_time = latency.time_module

    def probed(module, shape, target, **kw):
        before, _ = plain_time(probe, PROBE_SHAPE, target, min_run_time=0.03)
        seconds, out = plain_time(module, shape, target, **kw)
        after, _ = plain_time(probe, PROBE_SHAPE, target, min_run_time=0.03)
        return seconds / ((before + after) / 2) * 1e-4, out  # in units of a nominal 0.1 ms probe

    if args.mode == "probe":
        latency.time_module = probed
    space = get_space(args.space)
    specs = space.random_specs(args.n, seed=0)
    preds = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as tmp:
            table = latency.LatencyTable(Path(tmp) / "latency.json", target)
            preds.append([table.predict(s, 10, space.input_size) for s in specs])
    a, b = preds
    print(f"{args.mode} {args.space} n={args.n}: two fresh tables agree to Spearman {spearmanr(a, b).statistic:.3f}, "
          f"median relative difference {100 * statistics.median(abs(x - y) / y for x, y in zip(a, b)):.1f}%; "
          f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
