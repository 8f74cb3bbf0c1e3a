"""The CLI's commands that train or open a study: a search, an export, a final training. Imported
only for them (they pull in torch and optuna); the information commands are in ``seesaw_cli.info``."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from pathlib import Path
from typing import Any

from search.config import MAX_SEED, SearchConfig
from search.errors import SearchError
from search.results.export import load_export
from search.runner import export_trial_of_run, run_search
from search.train.data import load_dataset
from search.train.final import FINAL_PRESETS, train_final
from search.train.trainer import EpochStats, resolve_device
from seesaw_cli.parser import EXIT_FAILED, FinalTrainConfig, final_train_config

__all__ = ["PROXY_OVERRIDES", "final_train", "run_command", "search_config"]

# Options that override a field of the proxy preset (search.train.proxy.ProxyConfig).
PROXY_OVERRIDES = ("epochs", "train_subset", "batch_size", "width_scale")


def run_command(args: argparse.Namespace) -> int:
    """``--final-train``, ``--export`` or a search, from the parsed options; the exit status."""
    if args.final_train is not None:
        return final_train(final_train_config(args))
    cfg = search_config(args).validate()
    if args.export is not None:
        print(export_trial_of_run(cfg, args.export))
        return 0
    summary = run_search(cfg)
    if summary.get("interrupted"):
        return 130
    if summary.get("finished") and not summary.get("front"):
        print(f"error: no trial of run {cfg.name!r} finished with a result (every trial failed; see the failure "
              f"column of {cfg.run_dir / 'trials.csv'})", file=sys.stderr)
        return EXIT_FAILED
    return 0


def search_config(args: argparse.Namespace) -> SearchConfig:
    """The search's settings from the parsed options: every option named like a SearchConfig field."""
    values: dict[str, Any] = {f.name: getattr(args, f.name) for f in dataclasses.fields(SearchConfig)
                              if hasattr(args, f.name)}
    values["name"] = args.name if args.name is not None else f"{args.space}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    values["proxy_overrides"] = {k: getattr(args, k) for k in PROXY_OVERRIDES if getattr(args, k) is not None}
    values["gpus_per_trial"] = args.gpus_per_trial if args.gpus_per_trial is not None else -1.0  # -1: auto
    return SearchConfig(**values)


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
