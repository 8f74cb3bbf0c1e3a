"""Seed-to-seed spread of the proxy: several networks x several seeds, scored several ways.

    OMP_NUM_THREADS=1 python benchmarks/proxy_spread.py --preset cpu --seeds 1 2 3 4 5 --parallel 2 \\
        --dataset imagefolder --data-dir ../shared/data/cifar10-jpg.zip --out spread.jsonl

Each (network, seed) is one proxy run (``build_proxy_model`` + ``train_proxy``, as a search trial
with that run seed), scored on the first ``--val-images`` held-out images:

- ``proxy``: the run's own score (the preset's BN handling);
- ``recal N`` (``--recal N ...``): BN statistics recomputed on N training images first;
- ``ema D`` / ``ema D + recal`` (``--ema D ...``): an exponential moving average of the weights and
  buffers (decay D per step, ``torch.optim.swa_utils``), as averaged and with BN recomputed.

Prints, per scoring, each network's mean and standard deviation over seeds, and the standard
deviation over seeds of each pair's difference: under common random numbers (one data order per
run seed for every network) that paired spread is the noise in a comparison of two networks
within one search. Every finished run is appended to ``--out`` at once; a rerun with the same
options skips the runs already there, so an interrupted benchmark loses nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_MODELS = ("seesaw_0.5d_cifar10", "igcv3_0.5d_cifar10", "mobilenetv2_cifar10")
OVERRIDABLE = {"epochs": float, "train_subset": int, "batch_size": int, "lr": float, "warmup_epochs": float,
               "width_scale": float, "label_smoothing": float, "bn_recalibration_images": int}


def run_one(job: dict) -> dict:
    """Train one network under one seed and score it every requested way (runs in a worker)."""
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from search.train.data import load_dataset
    from search.train.proxy import PRESETS, build_proxy_model, train_proxy
    from search.train.trainer import Trainer
    from space.references import get_reference

    torch.set_num_threads(1)
    config = dataclasses.replace(PRESETS[job["preset"]], val_images=job["val_images"], **job["overrides"]).validate()
    data = load_dataset(job["dataset"], job["data_dir"], device="cpu", val_size=job["val_size"])
    model = build_proxy_model(get_reference(job["model"]).spec, config, data.num_classes, job["seed"])
    emas = {d: AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True) for d in job["ema"]}

    def on_step(step: int, total: int) -> None:
        for ema in emas.values():
            ema.update_parameters(model)

    t0 = time.perf_counter()
    result = train_proxy(model, data, config, device="cpu", seed=job["seed"], on_step=on_step)
    wall = time.perf_counter() - t0
    scores = {"proxy": result.val_acc}
    # A second trainer over the trained model only to score it; training is over.
    scorer = Trainer(model, config, device="cpu", seed=job["seed"], num_classes=data.num_classes, mean=data.mean,
                     std=data.std, train_images=result.train_images)
    val = (data.val_x[:config.val_images], data.val_y[:config.val_images])
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    for n in job["recal"]:
        model.load_state_dict(trained)
        scorer.recalibrate_bn(data.train_x, n)
        scores[f"recal {n}"] = scorer.evaluate(*val)[0]
    for d, ema in emas.items():
        model.load_state_dict(ema.module.state_dict())
        scores[f"ema {d}"] = scorer.evaluate(*val)[0]
        scorer.recalibrate_bn(data.train_x, max(job["recal"], default=4000))
        scores[f"ema {d} + recal"] = scorer.evaluate(*val)[0]
    return {"key": job_key(job), "model": job["model"], "seed": job["seed"], "scores": scores,
            "train_loss": [h.train_loss for h in result.history], "train_time_s": result.train_time_s, "wall_s": wall}


def job_key(job: dict) -> str:
    """What makes two runs the same run (the network, the seed and every option that changes a score)."""
    return json.dumps({k: job[k] for k in sorted(job) if k != "data_dir"}, sort_keys=True)


def summarize(rows: list[dict], models: list[str]) -> str:
    """Markdown: per scoring, mean/std per network over its seeds and the std of paired differences."""
    by_model = {m: {r["seed"]: r["scores"] for r in rows if r["model"] == m} for m in models}
    scorings = list(dict.fromkeys(k for r in rows for k in r["scores"]))
    pairs = list(itertools.combinations(models, 2))
    head = ["scoring", *models, *(f"{a} - {b}" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in scorings:
        cells = [s]
        for m in models:
            accs = [100 * v[s] for v in by_model[m].values()]
            cells.append(f"{statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f} (n={len(accs)})" if len(accs) > 1
                         else "n < 2")
        for a, b in pairs:
            seeds = sorted(set(by_model[a]) & set(by_model[b]))
            diffs = [100 * (by_model[a][k][s] - by_model[b][k][s]) for k in seeds]
            cells.append(f"{statistics.mean(diffs):+.2f} ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else "n < 2")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark; returns the rows of the runs asked for (finished now or before)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="reference network names")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--dataset", default="imagefolder")
    p.add_argument("--data-dir", default="../shared/data/cifar10-jpg.zip")
    p.add_argument("--val-size", type=int, default=5000, help="training images held out for validation")
    p.add_argument("--val-images", type=int, default=2000, help="held-out images scored")
    p.add_argument("--recal", type=int, nargs="*", default=[], help="also score after BN recalibration on N images")
    p.add_argument("--ema", type=float, nargs="*", default=[], help="also score a weight EMA with this decay")
    for name, kind in OVERRIDABLE.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"preset override: {name}")
    p.add_argument("--parallel", type=int, default=1, help="runs at once, one process and one thread each")
    p.add_argument("--out", required=True, help="JSON lines: every finished run, appended; reruns skip them")
    args = p.parse_args(argv)

    from search.train.proxy import PRESETS
    from space.references import get_reference

    if args.preset not in PRESETS:
        p.error(f"unknown preset {args.preset!r}; valid: {', '.join(PRESETS)}")
    for m in args.models:  # a one-line error for an unknown name, before any training
        try:
            get_reference(m)
        except ValueError:
            p.error(f"unknown reference network {m!r}; `python launch_search.py --references` lists them")
    overrides = {k: getattr(args, k) for k in OVERRIDABLE if getattr(args, k) is not None}
    jobs = [{"model": m, "seed": s, "preset": args.preset, "overrides": overrides, "dataset": args.dataset,
             "data_dir": args.data_dir, "val_size": args.val_size, "val_images": args.val_images,
             "recal": args.recal, "ema": args.ema} for s in args.seeds for m in args.models]
    out = Path(args.out)
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    keys = {job_key(j) for j in jobs}
    rows = [r for r in done if r["key"] in keys]
    todo = [j for j in jobs if job_key(j) not in {r["key"] for r in rows}]
    print(f"{args.preset} preset + {overrides}; {len(jobs)} runs, {len(rows)} already in {out}; "
          f"{args.parallel} at once; load average {os.getloadavg()[0]:.1f}", flush=True)
    with ProcessPoolExecutor(args.parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, j): j for j in todo}
        for future in as_completed(futures):
            row = future.result()
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
            scores = ", ".join(f"{k} {100 * v:.2f}" for k, v in row["scores"].items())
            print(f"{row['model']} seed {row['seed']}: {scores} ({row['wall_s']:.0f} s)", flush=True)
    print(summarize(rows, args.models))
    return rows


if __name__ == "__main__":
    main()
