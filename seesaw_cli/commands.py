"""The CLI's non-search commands: the reference table, a space's description, final training."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from blocks import count_cost
from search.config import MAX_SEED
from search.engine.study import StudyError
from search.errors import SearchError
from search.results.artifacts import format_table
from search.results.export import load_export
from search.train.data import DataError, default_num_classes, load_dataset
from search.train.final import FINAL_PRESETS, train_final
from search.train.trainer import EpochStats, resolve_device
from seesaw_cli.parser import FinalTrainConfig
from space.references import REFERENCES, agrees_with_printed
from space.spaces import get_space
from space.spec import SpecError

__all__ = ["KNOWN_ERRORS", "describe_space", "final_train", "print_references", "reference_rows"]

# Errors whose message is the one line the user sees (exit status 2).
KNOWN_ERRORS: tuple[type[BaseException], ...] = (SearchError, StudyError, SpecError, DataError)


def reference_rows() -> list[dict[str, Any]]:
    rows = []
    for name in sorted(REFERENCES):
        ref = REFERENCES[name]
        cost = count_cost(ref.spec, ref.num_classes, ref.input_size)
        pub = ref.published
        rows.append({
            "name": name, "dataset": ref.dataset, "input_size": ref.input_size, "num_classes": ref.num_classes,
            "params": cost.params, "macs": cost.macs, "published_params_m": pub.params_m,
            "published_macs_m": pub.macs_m, "published_top1": pub.top1, "canonical_key": ref.spec.canonical_key(),
            "matches_published": _matches(cost, pub), "gap": pub.gap or None,
        })
    return rows


def _matches(cost: Any, pub: Any) -> bool:
    """Counted params/MACs round to the printed numbers exactly (no tolerance)."""
    return all(agrees_with_printed(v, p) for v, p in ((cost.params, pub.params_m), (cost.macs, pub.macs_m)) if p)


def print_references(as_json: bool = False) -> int:
    rows = reference_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [(r["name"], r["dataset"], r["input_size"], f"{r['params'] / 1e6:.2f}", f"{r['macs'] / 1e6:.1f}",
              r["published_params_m"] or "-", r["published_macs_m"] or "-", r["published_top1"] or "-",
              "yes" if r["matches_published"] else "gap*") for r in rows]
    print(format_table(table, ("name", "dataset", "input", "Mparams", "MMACs", "paper Mparams", "paper MMACs",
                               "paper top-1", "match")))
    print("\nMACs = multiply-adds of conv/linear/matmul at batch 1 (FlopCounterMode / 2), counted from the built module.")
    for r in rows:
        if not r["matches_published"]:
            print(f"* {r['name']}: {r['gap']}")
    return 0


def describe_space(name: str, dataset: str, shared_block: bool, samples: int = 100) -> int:
    try:
        space = get_space(name, dataset=dataset, shared_block=shared_block)
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    print(f"space {space.name}: {space.description}")
    print(f"search input {space.input_size}x{space.input_size}, {'one shared block' if shared_block else 'one block per stage'}")
    choices = space.choices()
    print(format_table([(k, ", ".join(map(str, v))) for k, v in sorted(choices.items())], ("parameter", "options")))
    print(f"\nsize: {space.size():.3e} parameter assignments ({len(choices)} parameters, some conditional)")
    num_classes = default_num_classes(dataset)
    specs = space.random_specs(samples, seed=0)
    costs = [count_cost(s, num_classes, space.input_size) for s in specs]
    macs = sorted(c.macs for c in costs)
    params = sorted(c.params for c in costs)
    small = count_cost(space.spec_from_params(space.smallest_params()), num_classes, space.input_size)
    print(f"MACs over {samples} random samples: min {macs[0] / 1e6:.1f}M, median {macs[len(macs) // 2] / 1e6:.1f}M, "
          f"max {macs[-1] / 1e6:.1f}M (smallest network of the space: {small.macs / 1e6:.1f}M)")
    print(f"params over {samples} random samples: min {params[0] / 1e6:.2f}M, median {params[len(params) // 2] / 1e6:.2f}M, "
          f"max {params[-1] / 1e6:.2f}M")
    refs = space.references()
    if refs:
        rows = []
        for ref_name, spec in refs.items():
            c = count_cost(spec, num_classes, space.input_size)
            rows.append((ref_name, f"{c.macs / 1e6:.1f}", f"{c.params / 1e6:.2f}", spec.canonical_key()))
        print("\nreference networks in this space:")
        print(format_table(rows, ("reference", "MMACs", "Mparams", "canonical key")))
    return 0


def final_train(cfg: FinalTrainConfig) -> int:
    """Train an exported YAML with a full recipe (default: the seeds' 400 epochs); test at the end."""
    spec, num_classes = load_export(cfg.path)
    if cfg.recipe not in FINAL_PRESETS:
        raise SearchError(f"unknown --recipe {cfg.recipe!r}; valid: {', '.join(FINAL_PRESETS)}")
    overrides = {k: v for k, v in (("epochs", cfg.epochs), ("batch_size", cfg.batch_size)) if v is not None}
    try:
        config = dataclasses.replace(FINAL_PRESETS[cfg.recipe], **overrides).validate()
    except (TypeError, ValueError) as exc:
        raise SearchError(f"bad training setting: {exc}") from None
    if isinstance(cfg.val_size, bool) or not isinstance(cfg.val_size, int) or cfg.val_size < 1:
        raise SearchError(f"--val-size must be a whole number of images >= 1, got {cfg.val_size!r}")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise SearchError(f"--seed must be a whole number in [0, {MAX_SEED}], got {cfg.seed!r}")
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.data_dir, device=device, val_size=cfg.val_size, seed=cfg.seed)
    if data.num_classes != num_classes:
        raise SearchError(f"{cfg.path} was exported for {num_classes} classes but --dataset {cfg.dataset} has "
                          f"{data.num_classes}; pass the dataset it was searched on")
    out_dir = Path(cfg.out_dir) if cfg.out_dir else Path(cfg.path).with_suffix("").parent / f"final_{Path(cfg.path).stem}"
    print(f"final training of {cfg.path} ({spec.canonical_key()}): recipe {cfg.recipe}, {config.epochs:g} epochs, "
          f"{cfg.dataset}, device {device}; checkpoints in {out_dir} (rerun the same command to resume)")

    def on_epoch(stats: EpochStats) -> None:
        print(f"epoch {stats.epoch}: train loss {stats.train_loss:.4f}, val acc {100 * stats.val_acc:.2f}%, "
              f"lr {stats.lr:.4g}, {stats.elapsed_s:.0f}s", flush=True)

    result = train_final(spec, num_classes, data, config, out_dir, resume=True, device=device, seed=cfg.seed,
                         on_epoch=on_epoch)
    if result.status != "ok":
        print(f"training {result.status} after {result.epochs_done} epochs; see {out_dir}/result.json")
        return 1
    print(f"test accuracy {100 * result.test_acc:.2f}% (val {100 * result.val_acc:.2f}%, best val "
          f"{100 * result.best_val_acc:.2f}%), {result.params / 1e6:.2f}M params, {result.macs / 1e6:.1f}M MACs; "
          f"{out_dir}/result.json")
    return 0
