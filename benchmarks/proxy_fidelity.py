"""Proxy fidelity: does the proxy rank architectures as a longer training does?

    python benchmarks/proxy_fidelity.py --size cpu --threads 1 \\
        --dataset imagefolder --data-dir ../shared/data/cifar10-jpg.zip

Samples N architectures of a space, stratified over MACs (a seeded pool of random samples is
sorted by MACs, cut into N equal strata and one is drawn from each), adds the space's reference
networks, and trains every one twice from the same initial weights: with the proxy recipe and with
a longer schedule (the "final" accuracy). Reports the Spearman and Kendall rank correlations of
proxy accuracy with final accuracy, next to what params and MACs alone achieve (the baselines any
proxy must beat) and what the zero-cost proxies of ``search/engine/zero_cost.py`` achieve without
training. A bootstrap over architectures gives a 90% interval for each Spearman value.

Sizes (``--size``; any field can be overridden with ``--n``, ``--proxy-set``, ``--long-set``):
  quick  3 architectures, the smoke preset at 128 images and width 0.125 vs 2 epochs of it; for
         checking the script (synthetic ok)
  cpu    10 + references; proxy: cpu preset on 4k images, 1 epoch, quarter width; final: the same
         4k images for 3 epochs (3x the steps), same width. 1.9 h on 2 busy CPU cores, about 1 h idle
         (BENCHMARKS.md); a 2k-image proxy left half of the networks at chance accuracy
  cpu-preset  the same 10 + references; proxy: the cpu preset as a search trains it (half width,
         5k images, 2 epochs); final: the same recipe for 6 epochs (3x the steps)
  gpu    40 + references; proxy: the gpu preset as is; final: 30 epochs on all 45k training
         images at full width (as exported)

Trained results are cached by canonical key in ~/.cache/seesaw-nas/benchmarks/ (one file per
data/recipe/seed), so a re-run or a larger N only trains what is new. Processes may share a cache:
split the work with ``--only proxy`` / ``--only final``, and ``--reverse`` for a second process
that trains from the last network back (a network being trained is claimed: no two processes
train it). ``--write`` stores the
measured numbers in search/results/fidelity_results.json, which each search's summary quotes for the
proxy configuration it used.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from result_cache import ResultCache  # noqa: E402
from seesaw_cli.parser import positive_int  # noqa: E402

RESULTS_FILE = ROOT / "search" / "results" / "fidelity_results.json"  # package data: search.results.fidelity reads it

SIZES: dict[str, dict[str, Any]] = {
    "quick": dict(n=3, references=False, pool=12, proxy="smoke", proxy_set=dict(train_subset=128, width_scale=0.125),
                  long_set=dict(epochs=2, train_subset=128, width_scale=0.125)),
    "cpu": dict(n=10, references=True, pool=80, proxy="cpu",
                proxy_set=dict(train_subset=4000, epochs=1, width_scale=0.25, batch_size=64, lr=0.1,
                               warmup_epochs=0.25, val_images=2000),
                long_set=dict(train_subset=4000, epochs=3, width_scale=0.25, batch_size=64, lr=0.1,
                              warmup_epochs=0.5, val_images=2000)),
    # The cpu preset as a search trains it, against the same recipe for 3x the epochs (issue 12, 4b).
    "cpu-preset": dict(n=10, references=True, pool=80, proxy="cpu", proxy_set={}, long_set=dict(epochs=6)),
    "gpu": dict(n=40, references=True, pool=400, proxy="gpu", proxy_set={},
                long_set=dict(epochs=30, train_subset=None, width_scale=1.0, warmup_epochs=2)),
}


# ----------------------------------------------------------------------------- statistics


def rank_correlation(x: Sequence[float], y: Sequence[float], *, seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    """spearman, kendall and n of the finite pairs; spearman_ci90: a 90% bootstrap interval
    (resampling architectures)."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 3:
        return dict(spearman=None, kendall=None, spearman_ci90=None, n=len(pairs))
    xs, ys = np.array(pairs).T
    rho = float(stats.spearmanr(xs, ys).statistic)
    tau = float(stats.kendalltau(xs, ys).statistic)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(resamples):
        idx = rng.integers(0, len(xs), len(xs))
        if len(set(xs[idx])) > 1 and len(set(ys[idx])) > 1:
            boots.append(stats.spearmanr(xs[idx], ys[idx]).statistic)
    ci = [float(np.nanpercentile(boots, 5)), float(np.nanpercentile(boots, 95))] if boots else None
    return dict(spearman=_r(rho), kendall=_r(tau), spearman_ci90=[_r(c) for c in ci] if ci else None, n=len(pairs))


def _r(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(v, 4)


# ----------------------------------------------------------------------------- architectures


def select_architectures(space: Any, n: int, *, pool: int, seed: int, references: bool, cost_of) -> list[tuple[str, Any]]:
    """(name, spec): ``n`` drawn one per MACs stratum of a seeded pool, then the references."""
    specs = {s.canonical_key(): s for s in space.random_specs(pool, seed=seed)}
    ordered = sorted(specs.values(), key=lambda s: cost_of(s)["macs"])
    rng = random.Random(seed)
    chosen = []
    for stratum in np.array_split(np.arange(len(ordered)), n):
        if len(stratum):
            chosen.append(ordered[int(rng.choice(list(stratum)))])
    out = [(f"sample{i}", s) for i, s in enumerate(chosen)]
    if references:
        out += [(name, spec) for name, spec in space.references().items()]
    return out


# ----------------------------------------------------------------------------- main


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """['epochs=2', 'train_subset=None'] -> {'epochs': 2, 'train_subset': None} (JSON values)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"error: expected FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v) if v not in ("None", "none") else None
        except json.JSONDecodeError:
            out[k] = v
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", default="cpu", choices=SIZES, help="benchmark size (see the module docstring)")
    p.add_argument("--quick", action="store_true", help="same as --size quick")
    p.add_argument("--space", default="seesaw")
    p.add_argument("--n", type=int, default=None, help="sampled architectures (references come on top)")
    p.add_argument("--no-references", dest="references", action="store_false", default=None)
    p.add_argument("--proxy", default=None, help="proxy preset (default: the size's)")
    p.add_argument("--proxy-set", nargs="*", default=[], metavar="FIELD=VALUE", help="override proxy fields")
    p.add_argument("--long-set", nargs="*", default=[], metavar="FIELD=VALUE", help="override fields of the final schedule")
    p.add_argument("--zero-cost", nargs="*", default=None, help="zero-cost proxies to score (default: all)")
    p.add_argument("--dataset", default="imagefolder")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpg.zip"))
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared CPU: see BENCHMARKS.md)")
    p.add_argument("--proxy-repeats", type=positive_int, default=1, metavar="K",
                   help="train the proxy with K training seeds (seed, seed+1, ...; same data split) and also rank "
                        "by their mean, as a search's --repeats does")
    p.add_argument("--only", choices=("proxy", "final"), default=None,
                   help="train only these results and stop (no zero-cost scores, no table): to share the work "
                        "between two processes on one cache")
    p.add_argument("--reverse", action="store_true",
                   help="train the networks last to first: a second process on the same cache meets the first "
                        "in the middle (each skips what the other has saved)")
    p.add_argument("--cache-dir", default=None, help="default ~/.cache/seesaw-nas/benchmarks")
    p.add_argument("--write", action="store_true", help="store the numbers in search/results/fidelity_results.json")
    p.add_argument("--label", default=None, help="name of the stored entry (default: SPACE-SIZE-DATASET)")
    p.add_argument("--finals-from", default=None, metavar="LABEL",
                   help="take each network's final accuracy from this stored entry instead of training it: "
                        "to rank another proxy against long trainings already measured")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.size = "quick"
    if args.dataset == "synthetic":
        args.val_size = min(args.val_size, 256)
    size = SIZES[args.size]
    stored = stored_entry(args.finals_from, args.dataset, args.space) if args.finals_from else None
    if stored is not None and args.write and args.label in (None, args.finals_from):
        sys.exit(f"error: --write with --finals-from needs a --label other than {args.finals_from!r} (it would replace it)")
    if args.threads:
        torch.set_num_threads(args.threads)

    from blocks import count_cost
    from search.train.data import load_dataset
    from search.engine.prescreen import SCORE_IMAGES
    from search.train.proxy import PRESETS, accuracy_settings, architecture_seed, evaluate_spec
    from search.engine.zero_cost import ZERO_COST_PROXIES, members, score_batch, score_spec, vote_scores
    from filelock import Timeout
    from space.scaling import scale_width
    from space.spaces import get_space

    started = time.perf_counter()
    n = args.n if args.n is not None else size["n"]
    references = size["references"] if args.references is None else args.references
    proxy_name = args.proxy or size["proxy"]
    proxy_set = {**size["proxy_set"], **parse_sets(args.proxy_set)}
    long_set = {**size["long_set"], **parse_sets(args.long_set)}
    proxy_cfg = dataclasses.replace(PRESETS[proxy_name], **proxy_set).validate()
    long_cfg = dataclasses.replace(PRESETS[proxy_name], **long_set).validate()
    zc_names = args.zero_cost if args.zero_cost is not None else list(ZERO_COST_PROXIES)
    singles = [m for name in zc_names for m in members(name)]
    singles = list(dict.fromkeys(singles))

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}, load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir if args.dataset != "synthetic" else None, device=args.device,
                        val_size=args.val_size, seed=args.seed)
    print(f"data: {data.describe()} (loaded in {time.perf_counter() - t0:.1f} s)")
    print(f"proxy: {proxy_name} + {proxy_set}\nfinal: {proxy_name} + {long_set}")
    space = get_space(args.space, dataset=args.dataset)
    data_id = {"dataset": args.dataset, "data": Path(args.data_dir).name if args.dataset != "synthetic" else None,
               "val_size": args.val_size, "seed": args.seed, "num_classes": data.num_classes}
    costs = ResultCache.for_settings("cost", {"num_classes": data.num_classes, "input_size": space.input_size}, args.cache_dir)

    def cost_of(spec):
        key = spec.canonical_key()
        if key not in costs:
            c = count_cost(spec, data.num_classes, space.input_size)
            costs.data[key] = {"params": c.params, "macs": c.macs}
        return costs.get(key)

    t0 = time.perf_counter()
    archs = select_architectures(space, n, pool=size["pool"] if args.n is None else max(size["pool"], 8 * n),
                                 seed=args.seed, references=references, cost_of=cost_of)
    costs.save()
    print(f"{len(archs)} architectures ({n} sampled over MACs strata + {len(archs) - n} references), chosen in "
          f"{time.perf_counter() - t0:.0f} s")

    proxy_settings = {**data_id, "config": accuracy_settings(dataclasses.asdict(proxy_cfg))}
    caches = {
        # training seed args.seed + j; j = 0 keeps the settings (and cached results) of single-seed runs
        **{proxy_name_of(j): ResultCache.for_settings("train", proxy_settings | ({"train_seed": args.seed + j} if j else {}),
                                                      args.cache_dir) for j in range(args.proxy_repeats)},
        "final": ResultCache.for_settings("train", {**data_id, "config": accuracy_settings(dataclasses.asdict(long_cfg))}, args.cache_dir),
    }
    configs = {**{proxy_name_of(j): (proxy_cfg, args.seed + j) for j in range(args.proxy_repeats)},
               "final": (long_cfg, args.seed)}
    stored_finals = None
    if stored is not None:
        stored_finals = {r["key"]: r["final_acc"] for r in stored["rows"]}
        missing_keys = [name for name, spec in archs if spec.canonical_key() not in stored_finals]
        if missing_keys:
            sys.exit(f"error: entry {args.finals_from!r} has no final accuracy for {', '.join(missing_keys)}; "
                     f"use the --size, --n and --seed it was measured with")
        long_set, long_cfg = stored["final_overrides"], stored["final_config"]
        del configs["final"]
    if args.only:
        configs = {k: v for k, v in configs.items() if k.startswith(args.only)}
        singles = []
    zc_cache = ResultCache.for_settings("zero-cost", {**data_id, "width_scale": proxy_cfg.width_scale,
                                                      "images": SCORE_IMAGES}, args.cache_dir)
    images, labels = score_batch(data.train_x, data.train_y, SCORE_IMAGES, args.seed)

    rows_at: dict[int, dict[str, Any]] = {}
    for i in (reversed(range(len(archs))) if args.reverse else range(len(archs))):
        name, spec = archs[i]
        key = spec.canonical_key()
        row = {"name": name, "key": key, **cost_of(spec)}
        # evaluate_spec seeds each architecture's initial weights and data order from the seed and its key
        for which, (cfg, seed) in configs.items():
            cache = caches[which]
            # Claimed while it trains, so a second process on this cache does not train it too: with
            # --only it moves on, else it waits for the result. The OS frees the claim of a dead process.
            with contextlib.suppress(Timeout), cache.claim(key, wait=not args.only):
                cache.reload()  # another process on this cache may have trained it meanwhile
                if key not in cache:
                    t0 = time.perf_counter()
                    try:
                        r = evaluate_spec(spec, data, cfg, device=args.device, seed=seed)
                        value = {"val_acc": r.val_acc if r.status == "ok" else None, "status": r.status,
                                 "train_time_s": r.train_time_s, "eval_time_s": r.eval_time_s}
                        if r.status == "ok" and r.history and r.history[-1].val_acc_as_trained is not None:
                            value["val_acc_as_trained"] = r.history[-1].val_acc_as_trained  # refit_bias_images
                    except Exception as exc:  # noqa: BLE001 - a failing architecture is reported, not fatal
                        value = {"val_acc": None, "status": f"failed: {type(exc).__name__}: {exc}"[:200]}
                    value["wall_s"] = time.perf_counter() - t0
                    cache.put(key, value)
            row[which] = cache.get(key)
        missing = [m for m in singles if m not in (zc_cache.get(key) or {})]
        if missing:
            scored = scale_width(spec, proxy_cfg.width_scale) if proxy_cfg.width_scale != 1 else spec
            t0 = time.perf_counter()
            new = score_spec(missing, scored, data.num_classes, images, labels, seed=architecture_seed(key, args.seed))
            zc_cache.put(key, {**(zc_cache.get(key) or {}), **{k: (v if math.isfinite(v) else None) for k, v in new.items()},
                               "wall_s": time.perf_counter() - t0})
        row["zero_cost"] = zc_cache.get(key) or {}
        if stored_finals is not None:
            row["final"] = {"val_acc": stored_finals[key]}
        rows_at[i] = row
        done = "  ".join(f"{which} {_pct(row[which]['val_acc'])} ({row[which]['wall_s']:.0f}s)" if row[which]
                         else f"{which} (another process trains it)" for which in configs)
        print(f"[{i + 1}/{len(archs)}] {name:22s} {row['macs'] / 1e6:7.1f}M MACs {row['params'] / 1e6:5.2f}M params  "
              f"{done}", flush=True)
    if args.only:
        print(f"trained the {args.only} results; run without --only for the table")
        return {}
    rows = [rows_at[i] for i in sorted(rows_at)]

    final = [r["final"]["val_acc"] for r in rows]
    signals: dict[str, list[float | None]] = {
        "proxy": [r["proxy"]["val_acc"] for r in rows],
        **({f"proxy mean of {args.proxy_repeats}": [_mean([r[proxy_name_of(j)]["val_acc"] for j in range(args.proxy_repeats)])
                                                    for r in rows]} if args.proxy_repeats > 1 else {}),
        **({"proxy as trained": [r["proxy"].get("val_acc_as_trained") for r in rows]}  # before the output-bias refit
           if all("val_acc_as_trained" in r["proxy"] for r in rows) else {}),
        "params": [r["params"] for r in rows],
        "macs": [r["macs"] for r in rows],
    }
    for m in singles:
        signals[m] = [r["zero_cost"].get(m) for r in rows]
    if "vote" in zc_names:
        member_rows = [{m: (r["zero_cost"].get(m) if r["zero_cost"].get(m) is not None else math.nan) for m in members("vote")}
                       for r in rows]
        signals["vote"] = vote_scores(member_rows)
    table = {name: rank_correlation(values, final, seed=args.seed) for name, values in signals.items()}
    wall = time.perf_counter() - started

    print()
    print(f"rank correlation with the final accuracy ({len(rows)} architectures, {args.space}, {args.dataset}):")
    print(f"{'signal':18s} {'spearman':>9s} {'kendall':>8s}  {'90% CI (spearman)':18s} {'n':>3s}")
    for name, c in table.items():
        ci = f"[{c['spearman_ci90'][0]:+.2f}, {c['spearman_ci90'][1]:+.2f}]" if c["spearman_ci90"] else "-"
        print(f"{name:18s} {_num(c['spearman']):>9s} {_num(c['kendall']):>8s}  {ci:18s} {c['n']:>3d}")
    final_ok = [a for a in final if a is not None]
    proxy_ok = [a for a in signals["proxy"] if a is not None]
    print(f"final accuracy {min(final_ok) * 100:.1f}..{max(final_ok) * 100:.1f}%, proxy accuracy "
          f"{min(proxy_ok) * 100:.1f}..{max(proxy_ok) * 100:.1f}%; wall time {wall / 60:.1f} min")

    entry = {
        "label": args.label or f"{args.space}-{args.size}-{args.dataset}",
        "space": args.space,
        "dataset": args.dataset,
        "architectures": len(rows),
        "proxy_preset": proxy_name,
        "proxy_overrides": proxy_set,
        "proxy_config": json.loads(json.dumps(dataclasses.asdict(proxy_cfg))),
        "final_overrides": long_set,
        "final_config": long_cfg if stored_finals is not None else json.loads(json.dumps(dataclasses.asdict(long_cfg))),
        **({"finals_from": args.finals_from} if stored_finals is not None else {}),
        "correlations": table,
        "command": "python benchmarks/proxy_fidelity.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "wall_s": round(wall),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {args.device}",
        "date": time.strftime("%Y-%m-%d"),
        "rows": [{k: r[k] for k in ("name", "key", "params", "macs")} | {"proxy_acc": r["proxy"]["val_acc"],
                 "final_acc": r["final"]["val_acc"],
                 **{f"proxy_acc_seed{args.seed + j}": r[proxy_name_of(j)]["val_acc"] for j in range(1, args.proxy_repeats)},
                 **{f"zc_{m}": r["zero_cost"].get(m) for m in singles}} for r in rows],
    }
    if args.write:
        write_entry(entry)
        print(f"stored as {entry['label']!r} in {RESULTS_FILE}")
    return entry


def stored_entry(label: str, dataset: str, space: str, path: Path | None = None) -> dict[str, Any]:
    """The stored entry ``label`` (measured on ``dataset`` and ``space``), or exit with a one-line error."""
    path = path or RESULTS_FILE
    entries = json.loads(path.read_text())["entries"] if path.exists() else []
    entry = next((e for e in entries if e["label"] == label), None)
    if entry is None:
        sys.exit(f"error: no stored entry {label!r} in {path.name}; stored: {', '.join(e['label'] for e in entries) or 'none'}")
    if (entry["dataset"], entry["space"]) != (dataset, space):
        sys.exit(f"error: entry {label!r} was measured on {entry['space']} / {entry['dataset']}, not {space} / {dataset}")
    return entry


def write_entry(entry: dict[str, Any], path: Path | None = None) -> None:
    path = path or RESULTS_FILE
    doc = json.loads(path.read_text()) if path.exists() else {"entries": []}
    doc["entries"] = [e for e in doc["entries"] if e["label"] != entry["label"]] + [entry]
    path.write_text(json.dumps(doc, indent=1) + "\n")


def proxy_name_of(j: int) -> str:
    """The row key of the proxy result with training seed offset ``j`` ("proxy" for the first)."""
    return "proxy" if j == 0 else f"proxy_s{j}"


def _mean(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values) / len(values)


def _pct(v: float | None) -> str:
    return "  -   " if v is None else f"{100 * v:5.1f}%"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:+.3f}"


if __name__ == "__main__":
    main()
