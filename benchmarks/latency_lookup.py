"""Does the per-block latency table predict whole-network latency? And do MACs?

    python benchmarks/latency_lookup.py --n 50 --threads 1

For N random networks of each space (``space.random_specs``, seeded), at the space's input size
(32 x 32) and num_classes: the lookup prediction (sum of the network's table entries, timed at
first use) against the whole network timed on its own (``mode="exact"``). The two are measured
interleaved, network by network (odd networks time the whole first), into a fresh table, so
both see the same load on a shared machine. Reported per space: Spearman of lookup vs measured
(goal >= 0.95), median absolute relative error (goal <= 10%), median ratio lookup / measured,
and the Spearman of MACs (``count_cost``) vs measured latency. Prints a table and a JSON summary.

The table times its parts with its speed probe unless ``--no-probe``. With ``--round-robin R`` the
whole networks are instead timed round robin (single calls, network after network, over R rounds,
no probe) and a network's latency is its fastest call: this machine's speed moves by up to 2x
within seconds, so the fastest call of calls spread over minutes is what reproduces (on 50 seesaw
networks, the even and odd rounds agreed to Spearman 0.97 by the fastest call and 0.58 by the
median, BENCHMARKS.md). The timing noise then compares the even rounds' fastest with the odd's.
With the probe, the whole networks are also timed by the table's ``measure`` (the exact mode, in
the lookup's unit) and the lookup is compared with that too (``*_vs_exact_probe``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_space(
    name: str, n: int, seed: int, target: Any, table_path: Path, part_time: float, network_time: float, rotate_bytes: int,
    repeats: int,
    macs_too: bool = True,
    rounds: int = 0,
    probe: bool = True,
) -> dict[str, Any]:
    import numpy

    from blocks.cost import count_cost
    from blocks.latency import LatencyTable, measure_latency
    from space.spaces import get_space

    space = get_space(name)
    num_classes = 100 if space.dataset == "cifar100" else 10
    table = LatencyTable(table_path, target, min_run_time=part_time, rotate_bytes=rotate_bytes, probe=probe)
    rows = []
    specs = space.random_specs(n, seed=seed)

    def whole(spec: Any) -> float:
        if rounds:  # timed round robin below
            return math.nan
        return measure_latency(spec, num_classes, space.input_size, target, min_run_time=network_time)

    t0 = time.perf_counter()
    for i, spec in enumerate(specs):  # pass 1: the network's parts and the whole, interleaved
        before = table.measurements
        if i % 2:
            measured = whole(spec)
            predicted = table.predict(spec, num_classes, space.input_size)
        else:
            predicted = table.predict(spec, num_classes, space.input_size)
            measured = whole(spec)
        rows.append({
            "key": spec.canonical_key(),
            "macs": count_cost(spec, num_classes, space.input_size).macs if macs_too else None,
            "predicted_s": predicted,
            "timings_s": [measured],
            "new_entries": table.measurements - before,
            # the whole network timed with the table's probe: the exact mode, in the lookup's unit
            "exact_probe_s": table.measure(spec, num_classes, space.input_size, min_run_time=network_time) if probe else None,
        })
    for r in range(1, repeats):  # later passes: the whole network again, at other moments
        order = list(range(len(specs)))[::-1 if r % 2 else 1]
        for i in order:
            rows[i]["timings_s"].append(whole(specs[i]))
    if rounds:  # round robin: every network timed a few calls per round, the rounds spread over the run
        rows_rr = round_robin(specs, num_classes, space.input_size, target, rounds)
        for row, calls in zip(rows, rows_rr):
            row["timings_s"] = [min(c for r, c in calls if r % 2 == 0), min(c for r, c in calls if r % 2 == 1)]
            row["rr_fastest_s"] = min(c for _, c in calls)
            row["rr_median_s"] = statistics.median(c for _, c in calls)
            row["rr_medians_s"] = [statistics.median(c for r, c in calls if r % 2 == p) for p in (0, 1)]
    for row in rows:
        row["measured_s"] = row.get("rr_fastest_s") or statistics.median(row["timings_s"])
    elapsed = time.perf_counter() - t0
    # how far one whole-network timing lies from the median of its repeats: the noise floor
    if rounds:  # how far the even rounds' fastest call lies from the odd rounds'
        spread = [abs(r["timings_s"][0] - r["timings_s"][1]) / r["measured_s"] for r in rows]
    else:
        spread = [statistics.median(abs(t - r["measured_s"]) / r["measured_s"] for t in r["timings_s"]) for r in rows]
    pred = [r["predicted_s"] for r in rows]
    meas = [r["measured_s"] for r in rows]
    macs = [r["macs"] for r in rows]
    rel = [abs(p - m) / m for p, m in zip(pred, meas)]
    ratio = [p / m for p, m in zip(pred, meas)]


    exact = [r["exact_probe_s"] for r in rows]
    vs_exact = {} if not probe else {
        "spearman_vs_exact_probe": rho(pred, exact),
        "median_abs_rel_error_vs_exact_probe": statistics.median(abs(p - e) / e for p, e in zip(pred, exact)),
        "median_ratio_vs_exact_probe": statistics.median(p / e for p, e in zip(pred, exact)),
        "median_ratio_exact_probe_vs_measured": statistics.median(e / m for e, m in zip(exact, meas)),
    }
    return {
        **vs_exact,
        "space": name,
        "n": n,
        "input_size": space.input_size,
        "rotate_bytes": table.rotate_bytes,
        "probe": table.probe,
        "spearman_lookup": rho(pred, meas),
        "median_abs_rel_error": statistics.median(rel),
        "p90_abs_rel_error": float(numpy.percentile(rel, 90)),
        "median_ratio": statistics.median(ratio),
        "repeats": repeats,
        "timing_noise": statistics.median(spread) if repeats > 1 or rounds else None,
        # the reference's own reproducibility: even rounds against odd rounds (a ceiling for the lookup)
        "spearman_rounds": rho([r["timings_s"][0] for r in rows], [r["timings_s"][1] for r in rows]) if rounds else None,
        # the same by each half's median call instead of its fastest (why the fastest is the reference)
        "spearman_rounds_by_median": rho(*zip(*(r["rr_medians_s"] for r in rows))) if rounds else None,
        "round_robin": rounds,
        "spearman_macs": rho(macs, meas) if macs_too else None,
        "measured_ms": [min(meas) * 1e3, statistics.median(meas) * 1e3, max(meas) * 1e3],
        "table_entries": table.measurements,
        "parts_per_network": statistics.median(r["new_entries"] for r in rows) if rows else 0,
        "seconds": elapsed,
        "rows": rows,
    }


def rho(a: list[float], b: list[float]) -> float | None:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) >= 3 else None


def round_robin(specs: list[Any], num_classes: int, input_size: int, target: Any, rounds: int,
                calls_per_round: int = 3) -> list[list[tuple[int, float]]]:
    """(round, seconds) of single forward passes of every network, network after network in each
    of ``rounds`` rounds (one untimed call first, to bring its weights back into cache), on the
    target's clock: a slow phase of a shared machine then hits every network alike."""
    import torch

    from blocks.latency import _on
    from blocks.model import build_model

    if target.device != "cpu":
        raise SystemExit("--round-robin times CPU targets only")
    clock = time.thread_time if target.clock == "thread" else time.perf_counter
    models = [build_model(s, num_classes).eval() for s in specs]
    x = torch.randn(target.batch, 3, input_size, input_size)
    out: list[list[tuple[int, float]]] = [[] for _ in specs]
    with _on(target):
        for m in models:
            m(x)
        for r in range(rounds):
            for i, m in enumerate(models):
                m(x)
                for _ in range(calls_per_round):
                    t0 = clock()
                    m(x)
                    out[i].append((r, clock() - t0))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=50, help="random networks per space")
    p.add_argument("--spaces", default="seesaw,shufflenet")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU only)")
    p.add_argument("--clock", default="auto", help="auto, wall or thread (see LatencyTarget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--part-time", type=float, default=0.1, help="seconds of timed calls per table entry")
    p.add_argument("--network-time", type=float, default=0.5, help="seconds of timed calls per whole network")
    p.add_argument("--repeats", type=int, default=3,
                   help="timings of each whole network, in separate passes; the measured latency is their median")
    p.add_argument("--round-robin", type=int, default=0, metavar="ROUNDS",
                   help="time the whole networks round robin over ROUNDS rounds (median of single calls; the timing "
                        "noise compares even with odd rounds) instead of --repeats blocked passes")
    p.add_argument("--rotate-bytes", type=int, default=0,
                   help="time each part over copies whose weights fill this many bytes, in turn (0: one copy, cache-hot)")
    p.add_argument("--no-probe", dest="probe", action="store_false",
                   help="time the table's parts without the speed probe (blocks.latency.SpeedProbe)")
    p.add_argument("--table", default=None, help="table file (default: a fresh temporary one, so every part is timed in this run)")
    p.add_argument("--smoke", action="store_true", help="2 networks of one space, short timings, no MAC count (for a test)")
    p.add_argument("--json", default=None, help="also write the summary (with per-network rows) here")
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.spaces, args.part_time, args.network_time, args.repeats = 2, "shufflenet", 0.005, 0.01, 2

    import torch

    from blocks.latency import LatencyTarget

    try:
        target = LatencyTarget(args.device, batch=args.batch, threads=None if args.device != "cpu" else args.threads, clock=args.clock)
    except ValueError as exc:
        p.error(str(exc))
    with tempfile.TemporaryDirectory() as tmp:
        table_path = Path(args.table) if args.table else Path(tmp) / "latency.json"
        results = [
            run_space(name, args.n, args.seed, target, table_path, args.part_time, args.network_time, args.rotate_bytes, args.repeats,
                      macs_too=not args.smoke, rounds=args.round_robin, probe=args.probe)
            for name in args.spaces.split(",")
        ]
    summary = {
        "target": target.describe(),
        "rotate_bytes": results[0]["rotate_bytes"] if results else None,
        "probe": args.probe,
        "command": "python benchmarks/latency_lookup.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
        "results": [{k: v for k, v in r.items() if k != "rows"} for r in results],
    }
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "results": results}, indent=1))
    print(f"target: {summary['target']}")
    print("| space | n | Spearman lookup | median abs rel error | p90 | median lookup/measured | Spearman MACs | timing noise | "
          "Spearman even/odd rounds | measured ms (min / median / max) | entries timed | run s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ms = " / ".join(f"{v:.2f}" for v in r["measured_ms"])
        sl = "-" if r["spearman_lookup"] is None else f"{r['spearman_lookup']:.3f}"
        noise = "-" if r["timing_noise"] is None else f"{r['timing_noise']:.1%}"
        sm = "-" if r["spearman_macs"] is None else f"{r['spearman_macs']:.3f}"
        rounds = "-" if r["spearman_rounds"] is None else f"{r['spearman_rounds']:.3f}"
        print(f"| {r['space']} | {r['n']} | {sl} | {r['median_abs_rel_error']:.1%} | {r['p90_abs_rel_error']:.1%} | "
              f"{r['median_ratio']:.3f} | {sm} | {noise} | {rounds} | "
              f"{ms} | {r['table_entries']} | {r['seconds']:.0f} |")
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
