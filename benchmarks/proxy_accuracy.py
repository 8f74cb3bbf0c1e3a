"""Proxy accuracy of one network: a preset on real data, validation accuracy per epoch.

    python benchmarks/proxy_accuracy.py --model seesaw_0.5d_cifar10 --preset cpu \\
        --data-dir ../shared/data/cifar10-jpg.zip

``--model`` is a reference name or an exported YAML (``results/<run>/best_block.yaml``). Any preset
field can be overridden (``--epochs 10 --train-subset 45000``). ``--seed 1 2 3`` trains once per
seed and prints the spread, which says how large a difference between two trials of a search is
noise. Prints the data load time, one line per epoch, and the ProxyResult; ``--json PATH`` also
saves the results with the config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from search.train.data import load_dataset  # noqa: E402
from search.train.proxy import PRESETS, add_override_flags, evaluate_spec, overrides_from  # noqa: E402
from search.results.export import load_export  # noqa: E402
from space.references import get_reference  # noqa: E402

OVERRIDES = ("epochs", "train_subset", "batch_size", "lr", "width_scale", "val_images", "eval_every",
             "bn_recalibration_images", "refit_bias_images")  # ProxyConfig fields with a flag


def load_model(name: str):
    """A reference network by name, or the spec of an exported / spec YAML file."""
    if name.endswith((".yaml", ".yml")):
        return load_export(name)[0]
    return get_reference(name).spec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="seesaw_0.5d_cifar10", help="a reference network name or a YAML file")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    p.add_argument("--dataset", default="imagefolder")
    p.add_argument("--data-dir", default="../shared/data/cifar10-jpg.zip")
    add_override_flags(p, OVERRIDES)
    p.add_argument("--val-size", type=int, default=5000, help="training images held out for validation")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="one training per seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="also write the result and config here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = overrides_from(args, OVERRIDES)
    config = dataclasses.replace(PRESETS[args.preset], **overrides).validate()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}, load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir if args.dataset != "synthetic" else None, device=args.device,
                        val_size=args.val_size)
    print(f"data: {data.describe()}; loaded in {time.perf_counter() - t0:.1f} s")
    print(f"config ({args.preset} preset + {overrides}): {config}")
    spec = load_model(args.model)

    def report(s):
        print(f"epoch {s.epoch}: train loss {s.train_loss:.3f}, val acc {100 * s.val_acc:.2f}%, val loss {s.val_loss:.3f}, "
              f"{s.images} images, train {s.train_time_s:.0f} s, wall {s.elapsed_s:.0f} s", flush=True)

    runs = []
    for seed in args.seed:
        t0 = time.perf_counter()
        result = evaluate_spec(spec, data, config, device=args.device, seed=seed, on_epoch=report)
        wall = time.perf_counter() - t0
        print(f"{args.model} ({args.preset} preset, seed {seed}): status {result.status}, val acc {100 * result.val_acc:.2f}% "
              f"on {result.val_images} images, train {result.train_time_s:.0f} s + eval {result.eval_time_s:.0f} s "
              f"(trial wall {wall:.0f} s), {result.images_per_s:.0f} img/s; exported {result.params / 1e6:.2f}M params "
              f"{result.macs / 1e6:.0f}M MACs, proxy {result.proxy_params / 1e6:.2f}M params {result.proxy_macs / 1e6:.0f}M MACs; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        runs.append({"seed": seed, "result": result.to_dict(), "wall_s": wall})
    if len(runs) > 1:
        accs = [100 * r["result"]["val_acc"] for r in runs]
        print(f"{args.model}: val acc over seeds {args.seed}: mean {statistics.mean(accs):.2f}%, "
              f"std {statistics.stdev(accs):.2f}, range {min(accs):.2f}..{max(accs):.2f}%")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "config": dataclasses.asdict(config), "model": args.model},
                                              indent=2, default=str))

if __name__ == "__main__":
    main()
