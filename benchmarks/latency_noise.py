"""How reproducible is the per-block latency lookup on this machine, with and without the speed probe?

    OMP_NUM_THREADS=1 python benchmarks/latency_noise.py --mode probe --n 20
    OMP_NUM_THREADS=1 python benchmarks/latency_noise.py --mode plain --n 20

Builds two fresh lookup tables, one after the other, for the same N random networks of a space
(CPU, batch 1, 1 thread, thread clock) and prints how far the two predictions agree (Spearman,
median relative difference). ``probe`` times every part between calls of the table's speed probe
(``blocks.latency.SpeedProbe``, the default of ``LatencyTable``); ``plain`` times parts without it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scipy.stats import spearmanr  # noqa: E402

from blocks.latency import LatencyTable, LatencyTarget  # noqa: E402
from space.spaces import get_space  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("plain", "probe"), default="probe")
    p.add_argument("--space", default="seesaw")
    p.add_argument("--n", type=int, default=12)
    args = p.parse_args()
    target = LatencyTarget("cpu", batch=1, threads=1)
    space = get_space(args.space)
    specs = space.random_specs(args.n, seed=0)
    preds = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as tmp:
            table = LatencyTable(Path(tmp) / "latency.json", target, probe=args.mode == "probe")
            preds.append([table.predict(s, 10, space.input_size) for s in specs])
    a, b = preds
    print(f"{args.mode} {args.space} n={args.n}: two fresh tables agree to Spearman {spearmanr(a, b).statistic:.3f}, "
          f"median relative difference {100 * statistics.median(abs(x - y) / y for x, y in zip(a, b)):.1f}%; "
          f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
