"""Search efficiency: hypervolume of the (accuracy, MACs) front after k trials, per sampler.

    python benchmarks/search_efficiency.py --threads 1 \\
        --dataset imagefolder --data-dir ../shared/data/cifar10-jpg.zip

Runs the tool's own local worker (``search.executors.local.run_worker``: propose, cheap checks, record) on
in-memory studies, for the default sampler (TPE), NSGA-II and random search, several seeds each,
and optionally with the zero-cost pre-screen, all on one fixed and cheap objective. Prints the
hypervolume after k = 25, 50, 100, 200 counted trials (mean and range over seeds) and how many
trials random search needs to reach the default sampler's hypervolume at 100.

The objective is a fixed function of the architecture, cached by canonical key (here and across
runs, in ~/.cache/seesaw-nas/benchmarks/), so samplers that propose the same network pay once:

  zero-cost:NAME  (default jacob_cov) the zero-cost score of the proxy-width network on a fixed
                  batch of 64 training images, weights drawn from the architecture's seed: a
                  fixed, deterministic, ~1 s function of the architecture that exercises the
                  samplers on this space's real encoding and MACs. It is *not* a stand-in for
                  accuracy: on seesaw its rank correlation with trained accuracy is negative
                  (BENCHMARKS.md, proxy fidelity), so its numbers rank samplers, not networks.
  proxy           real proxy training (the cpu preset on ``--train-subset`` images, ``--epochs``,
                  ``--width-scale``): the objective the issue asks for first; about 40 s per
                  network on this 2-core machine, so 3 samplers x 3 seeds x 200 trials would take
                  ~20 hours here; fine on a GPU (``--device cuda``).

The hypervolume uses one reference point for every run (objective minimum over all evaluated
networks, 1.05 x their maximum MACs) and is normalised by the box it spans, so 1.0 would be a
single network with the best objective at zero MACs. Trials over k count like ``--budget``: a
duplicate spends a trial, a pre-screened candidate does not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from result_cache import ResultCache  # noqa: E402

KS = (25, 50, 100, 200)


class CachedObjective:
    """The evaluator the worker calls: a fixed function of the architecture, cached by key.

    The worker's per-trial seed is ignored on purpose: the same network always gets the same value,
    whichever sampler or seed proposed it.
    """

    def __init__(self, evaluate, cache: ResultCache) -> None:
        self.evaluate, self.cache = evaluate, cache
        self.computed = self.reused = 0
        self.seconds = 0.0

    def __call__(self, spec: Any, seed: int, on_epoch: Any = None, cost: Any = None) -> Any:
        from search.train.evaluator import Evaluation

        key = spec.canonical_key()
        if key in self.cache:
            self.reused += 1
        else:
            t0 = time.perf_counter()
            value = self.evaluate(spec)
            self.seconds += time.perf_counter() - t0
            self.computed += 1
            self.cache.put(key, value if value is not None and math.isfinite(value) else None)
        value = self.cache.get(key)
        if value is None:
            return Evaluation(status="failed", failure="objective not finite")
        return Evaluation(status="ok", val_acc=value, metrics={"val_acc": value})


class CachedCost:
    """``count_cost`` with a per-key memo (the meta-device count takes ~1 s per network here)."""

    def __init__(self, cache: ResultCache) -> None:
        self.cache = cache

    def __call__(self, spec: Any, num_classes: int, input_size: int) -> Any:
        from blocks import Cost, count_cost

        key = spec.canonical_key()
        if key not in self.cache:
            c = count_cost(spec, num_classes, input_size)
            self.cache.data[key] = {"params": c.params, "macs": c.macs}
            if len(self.cache.data) % 50 == 0:
                self.cache.save()
        return Cost(**self.cache.get(key))


def make_objective(args: argparse.Namespace, data: Any, space: Any):
    """(evaluate(spec) -> float, the settings that determine its values)."""
    from search.engine.prescreen import SCORE_IMAGES
    from search.train.proxy import architecture_seed
    from space.scaling import scale_width

    if args.objective.startswith("zero-cost:"):
        from search.engine.zero_cost import score_batch, score_spec

        name = args.objective.split(":", 1)[1]
        images, labels = score_batch(data.train_x, data.train_y, SCORE_IMAGES, args.objective_seed)

        def evaluate(spec: Any) -> float:
            scored = scale_width(spec, args.width_scale) if args.width_scale != 1 else spec
            seed = architecture_seed(spec.canonical_key(), args.objective_seed)
            return score_spec([name], scored, data.num_classes, images, labels, seed=seed)[name]

        return evaluate, {"objective": args.objective, "width_scale": args.width_scale, "images": SCORE_IMAGES}
    if args.objective == "proxy":
        import dataclasses

        from search.train.proxy import PRESETS, evaluate_spec

        cfg = dataclasses.replace(PRESETS["cpu"], train_subset=args.train_subset, epochs=args.epochs,
                                  width_scale=args.width_scale, val_images=args.val_images).validate()

        def evaluate(spec: Any) -> float:
            r = evaluate_spec(spec, data, cfg, device=args.device, seed=args.objective_seed)
            return r.val_acc if r.status == "ok" else math.nan

        return evaluate, {"objective": "proxy", "config": dataclasses.asdict(cfg)}
    raise SystemExit(f"error: unknown --objective {args.objective!r}; valid: zero-cost:NAME, proxy")


def run_one(sampler: str, seed: int, budget: int, *, space: Any, evaluator: CachedObjective, cost: CachedCost,
            num_classes: int, prescreen: tuple[str, float] | None, prescore) -> list[Any]:
    """One search with the tool's worker; returns its frozen trials."""
    import optuna

    from search.config import SearchConfig
    from search.executors.local import run_worker
    from search.engine.prescreen import Prescreener
    from search.engine.study import DIRECTIONS, make_sampler

    study = optuna.create_study(directions=list(DIRECTIONS), sampler=make_sampler(sampler, seed))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SearchConfig(space=space.name, budget=budget, sampler=sampler, seed=seed, name="bench", results_dir=tmp,
                           references=False)
        screen = None
        if prescreen is not None:
            screen = Prescreener(prescreen[0], prescreen[1], prescore, space, num_classes, None, cost)
        run_worker(study, cfg, space, evaluator, num_classes=num_classes, count_cost=cost, prescreen=screen)
    return study.get_trials(deepcopy=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 samplers x 1 seed x 12 trials on synthetic-sized settings")
    p.add_argument("--space", default="seesaw")
    p.add_argument("--samplers", nargs="*", default=["tpe", "nsga2", "random"])
    p.add_argument("--seeds", type=int, default=3, help="seeds per sampler (0 .. N-1)")
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--prescreen", nargs="*", default=["synflow:0.25"], metavar="PROXY:KEEP",
                   help="also run the default sampler with these pre-screens ('' for none)")
    p.add_argument("--objective", default="zero-cost:jacob_cov", help="zero-cost:NAME or proxy")
    p.add_argument("--objective-seed", type=int, default=0, help="seed of the objective's batch and initial weights")
    p.add_argument("--width-scale", type=float, default=0.25, help="width of the scored / trained network")
    p.add_argument("--train-subset", type=int, default=2000, help="--objective proxy: training images")
    p.add_argument("--epochs", type=float, default=1, help="--objective proxy: epochs")
    p.add_argument("--val-images", type=int, default=1000, help="--objective proxy: validation images")
    p.add_argument("--dataset", default="imagefolder")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpg.zip"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared CPU)")
    p.add_argument("--cache-dir", default=None, help="default ~/.cache/seesaw-nas/benchmarks")
    p.add_argument("--json", default=None, help="also write every run's history here")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.samplers, args.seeds, args.budget = args.samplers[:2], 1, 12
    if args.threads:
        torch.set_num_threads(args.threads)
    import optuna

    from search.train.data import load_dataset
    from search.results.pareto import hypervolume_by_budget
    from search.engine.prescreen import SCORE_IMAGES
    from search.train.proxy import architecture_seed
    from search.engine.attributes import ATTR
    from search.engine.zero_cost import score_batch, score_spec
    from space.scaling import scale_width
    from space.spaces import get_space

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    started = time.perf_counter()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    val_size = 256 if args.dataset == "synthetic" else 5000
    data = load_dataset(args.dataset, args.data_dir if args.dataset != "synthetic" else None, device=args.device,
                        val_size=val_size, seed=0)
    space = get_space(args.space, dataset=args.dataset)
    evaluate, settings = make_objective(args, data, space)
    data_id = {"dataset": args.dataset, "data": Path(args.data_dir).name, "seed": args.objective_seed,
               "num_classes": data.num_classes}
    objective = CachedObjective(evaluate, ResultCache.for_settings("objective", {**data_id, **settings}, args.cache_dir))
    cost = CachedCost(ResultCache.for_settings("cost", {"num_classes": data.num_classes, "input_size": space.input_size},
                                               args.cache_dir))
    print(f"objective: {args.objective} {settings} ({len(objective.cache)} networks cached)")

    # pre-screen scores: same batch and per-architecture seed as a real --prescreen run
    images, labels = score_batch(data.train_x, data.train_y, SCORE_IMAGES, 0)
    prescore_cache: dict[str, ResultCache] = {}

    def prescorer(name: str):
        cache = prescore_cache.setdefault(name, ResultCache.for_settings(
            "prescreen", {**data_id, "proxy": name, "width_scale": args.width_scale}, args.cache_dir))

        def score(spec: Any) -> dict[str, float]:
            key = spec.canonical_key()
            if key not in cache:
                scored = scale_width(spec, args.width_scale) if args.width_scale != 1 else spec
                s = score_spec([name], scored, data.num_classes, images, labels, seed=architecture_seed(key, 0))
                cache.data[key] = {k: (v if math.isfinite(v) else None) for k, v in s.items()}
                if len(cache.data) % 50 == 0:
                    cache.save()
            return {k: (math.nan if v is None else v) for k, v in cache.get(key).items()}

        return score

    variants: list[tuple[str, str, tuple[str, float] | None]] = [(s, s, None) for s in args.samplers]
    for item in (x for x in args.prescreen if x):
        name, keep = item.split(":") if ":" in item else (item, "0.25")
        variants.append((f"{args.samplers[0]}+{name}@{keep}", args.samplers[0], (name, float(keep))))

    runs: dict[str, list[dict[str, Any]]] = {}
    for label, sampler, prescreen in variants:
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            before = objective.computed
            trials = run_one(sampler, seed, args.budget, space=space, evaluator=objective, cost=cost,
                             num_classes=data.num_classes, prescreen=prescreen,
                             prescore=prescorer(prescreen[0]) if prescreen else None)
            cost.cache.save()
            for c in prescore_cache.values():
                c.save()
            points = [(t.values[0], t.values[1]) for t in trials
                      if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get(ATTR.STATUS) == "ok"]
            runs.setdefault(label, []).append({"seed": seed, "trials": trials, "points": points})
            print(f"{label:22s} seed {seed}: {len(trials)} trials asked, {objective.computed - before} new evaluations, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)

    # one reference point for all runs
    all_points = [p for rs in runs.values() for r in rs for p in r["points"]]
    ref_acc = min(a for a, _ in all_points)
    ref_acc -= 0.01 * (max(a for a, _ in all_points) - ref_acc or 1.0)
    ref_macs = 1.05 * max(m for _, m in all_points)
    box = (max(a for a, _ in all_points) - ref_acc) * ref_macs / 1e6
    curves: dict[str, list[list[float]]] = {}
    for label, rs in runs.items():
        curves[label] = [[hv / box for hv in hypervolume_by_budget(r["trials"], ref_macs, ref_acc)] for r in rs]

    ks = [k for k in KS if k <= args.budget] or [args.budget]
    print()
    print(f"normalised hypervolume after k counted trials (mean [min, max] over {args.seeds} seeds; "
          f"objective {args.objective}, space {args.space})")
    header = f"{'sampler':22s} " + " ".join(f"{'k=' + str(k):>22s}" for k in ks)
    print(header)
    table: dict[str, dict[int, dict[str, float]]] = {}
    for label, cs in curves.items():
        cells, table[label] = [], {}
        for k in ks:
            vals = [c[min(k, len(c)) - 1] for c in cs if c]
            m = sum(vals) / len(vals)
            table[label][k] = {"mean": m, "min": min(vals), "max": max(vals)}
            cells.append(f"{m:.4f} [{min(vals):.4f}, {max(vals):.4f}]")
        print(f"{label:22s} " + " ".join(f"{c:>22s}" for c in cells))

    default, k_ref = args.samplers[0], min(100, args.budget)
    target = table[default][k_ref]["mean"] if default in table else None
    match: dict[str, Any] = {}
    for label, cs in curves.items():
        if label == default or target is None:
            continue
        mean_curve = [sum(c[min(i, len(c) - 1)] for c in cs) / len(cs) for i in range(args.budget)]
        reach = next((i + 1 for i, v in enumerate(mean_curve) if v >= target), None)
        match[label] = reach
        said = f"{reach} trials" if reach else f"more than {args.budget} trials (mean at {args.budget}: {mean_curve[-1]:.4f})"
        print(f"{label} needs {said} to reach {default}'s mean hypervolume at {k_ref} ({target:.4f})")
    wall = time.perf_counter() - started
    print(f"objective: {objective.computed} networks evaluated ({objective.seconds / max(objective.computed, 1):.1f} s each), "
          f"{objective.reused} reused from the cache; wall time {wall / 60:.1f} min")
    result = {"table": table, "match": match, "ref": {"acc": ref_acc, "macs": ref_macs}, "wall_s": wall,
              "args": vars(args), "curves": curves}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
