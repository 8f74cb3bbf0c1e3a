"""A whole search run: set up the run folder and study, run the executor, write every artifact.

    run_search(SearchConfig(space="seesaw", budget=200))

leaves in ``results/<name>/``: the study (``study.journal``), ``trials.csv``, ``pareto.html``
(+ ``pareto.png`` with a Chrome), ``hypervolume.csv``/``.html``, ``best_block.yaml``, ``run.json``
and ``search.log``; and prints a summary table.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna

from search.config import SearchConfig, SearchError
from search.study import (
    ATTR,
    StudyError,
    enqueue_references,
    finished_count,
    make_sampler,
    open_study,
    recover_stale_trials,
)

log = logging.getLogger("seesaw_nas.search")


@dataclass
class Run:
    """Everything one process needs to run trials of a search."""

    cfg: SearchConfig
    study: optuna.Study
    space: Any
    evaluator: Any
    num_classes: int
    device: str
    proxy: Any
    count_cost: Callable[..., Any]
    prescreen: Any = None  # search.prescreen.Prescreener with --prescreen


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SearchError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return name


def proxy_config(cfg: SearchConfig, device: str) -> Any:
    from search.proxy import PRESETS

    name = cfg.proxy if cfg.proxy != "auto" else ("gpu" if device.startswith("cuda") else "cpu")
    if name not in PRESETS:
        raise SearchError(f"unknown --proxy preset {name!r}; valid: {', '.join(PRESETS)}")
    try:
        return dataclasses.replace(PRESETS[name], **cfg.proxy_overrides)
    except TypeError as exc:
        raise SearchError(f"bad proxy setting: {exc}") from None


def configure_logging(run_dir: Path, worker_index: int) -> None:
    """Per-trial lines go to results/<name>/search.log (all workers append to one file)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "search.log")
    handler.setFormatter(logging.Formatter(f"%(asctime)s w{worker_index} %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_run(cfg: SearchConfig, worker_index: int = 0, *, create: bool = False) -> Run:
    """Open the study and load data and evaluator for one worker process."""
    import torch

    from blocks import count_cost
    from search.data import load_dataset
    from search.objective import ProxyEvaluator
    from space.spaces import get_space

    configure_logging(cfg.run_dir, worker_index)
    device = resolve_device(cfg.device)
    if cfg.workers > 1 and device == "cpu":
        # several trial processes share the cores instead of over-subscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.workers))
    proxy = proxy_config(cfg, device)
    space = get_space(cfg.space, dataset=cfg.dataset, shared_block=cfg.shared_block)
    # data first: a missing data set must not leave an empty study behind
    data = load_dataset(cfg.dataset, cfg.data_dir, device=device, val_size=cfg.val_size, seed=cfg.seed)
    study = open_study(cfg.storage_url, cfg.name, make_sampler(cfg.sampler, cfg.seed + worker_index),
                       resume=cfg.resume or not create)
    if worker_index or len(study.get_trials(deepcopy=False)):
        # Another worker or a resumed run: a sampler seeded like the first launch's would repeat
        # its first samples. Fresh runs stay reproducible from --seed alone.
        study.sampler = make_sampler(cfg.sampler, hash((cfg.seed, worker_index, len(study.get_trials(deepcopy=False)))) % 2**31)
    evaluator = ProxyEvaluator(data, proxy, device, data.num_classes)
    prescreen = None
    if cfg.prescreen is not None:
        from search.prescreen import make_prescreener

        prescreen = make_prescreener(cfg.prescreen, cfg.prescreen_keep, space=space, data=data,
                                     num_classes=data.num_classes, max_macs=cfg.max_macs, count_cost=count_cost,
                                     width_scale=proxy.width_scale, seed=cfg.seed)
    return Run(cfg, study, space, evaluator, data.num_classes, device, proxy, count_cost, prescreen)


def check_max_macs(run: Run) -> None:
    """Refuse a --max-macs below the smallest network of the space, before any trial."""
    if run.cfg.max_macs is None:
        return
    smallest = run.space.spec_from_params(run.space.smallest_params())
    macs = run.count_cost(smallest, run.num_classes, run.space.input_size).macs
    if macs > run.cfg.max_macs:
        raise SearchError(
            f"--max-macs {run.cfg.max_macs:,} is below the smallest network of space {run.cfg.space!r} "
            f"({macs:,} MACs at {run.space.input_size}x{run.space.input_size}); raise it above {macs:,}"
        )


def run_search(cfg: SearchConfig) -> dict[str, Any]:
    """Run (or resume) a search to its budget and write every artifact; returns the summary."""
    from search.artifacts import write_run_json

    cfg.validate()
    if cfg.executor == "ray":
        from search.ray_executor import preflight  # settings and the cluster's address; Ray is not imported

        preflight(cfg)
    run_dir = cfg.run_dir
    if not cfg.resume and (run_dir / "study.journal").exists() and cfg.storage is None:
        raise SearchError(f"{run_dir} already holds a search; pass --resume to continue it or --name for a new run")
    run = open_run(cfg, create=True)
    check_max_macs(run)
    from search.local import ask_lock

    with ask_lock(cfg.run_dir):
        recovered = recover_stale_trials(run.study)
    if recovered:
        print(f"resume: trials {recovered} were cut off by a dead process; their architectures run again")
    added = enqueue_references(run.study, run.space.reference_params()) if cfg.references else 0
    write_run_json(run_dir, cfg.to_dict(), run.device, {
        "proxy_name": proxy_name(cfg, run.device), "proxy": dataclasses.asdict(run.proxy),
        "num_classes": run.num_classes, "input_size": run.space.input_size,
    })
    done = finished_count(run.study)
    print(f"search {cfg.name!r}: space {cfg.space} ({run.space.size():.2e} choices), {cfg.dataset}, "
          f"device {run.device}, proxy {proxy_name(cfg, run.device)}, sampler {cfg.sampler}, "
          f"{done}/{cfg.budget} trials done, {added} references enqueued; folder {run_dir}")
    interrupted = False
    try:
        if cfg.executor == "ray":
            from search.ray_executor import run_ray

            run_ray(run)
        else:
            run_local(run)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: finished trials are saved; continue with --resume")
    summary = finalize(run)
    summary["interrupted"] = interrupted
    return summary


def proxy_name(cfg: SearchConfig, device: str) -> str:
    return cfg.proxy if cfg.proxy != "auto" else ("gpu" if device.startswith("cuda") else "cpu")


def run_local(run: Run) -> None:
    from search.local import run_worker, start_extra_workers
    from search.progress import TrialProgress

    from search.artifacts import write_trials_csv

    procs = start_extra_workers(run.cfg, run.cfg.workers - 1) if run.cfg.workers > 1 else []
    try:
        with TrialProgress(run.study, run.cfg) as progress:
            def after_trial(trial: optuna.trial.FrozenTrial) -> None:
                progress.update(trial)
                write_trials_csv(run.study, run.cfg.run_dir / "trials.csv")  # readable while the run goes on

            run_worker(run.study, run.cfg, run.space, run.evaluator, num_classes=run.num_classes,
                       count_cost=run.count_cost, after_trial=after_trial, prescreen=run.prescreen)
    finally:
        for p in procs:
            p.join()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        print(f"warning: {len(failed)} worker process(es) exited with codes {failed}; see search.log", file=sys.stderr)


def finalize(run: Run) -> dict[str, Any]:
    """Write trials.csv, plots, hypervolume, best_block.yaml; print and return the summary."""
    from search.summary import write_artifacts

    return write_artifacts(run.study, run.cfg, num_classes=run.num_classes, input_size=run.space.input_size,
                           proxy=proxy_name(run.cfg, run.device), proxy_config=dataclasses.asdict(run.proxy))


def export_trial_of_run(cfg: SearchConfig, trial_number: int, out: Path | None = None) -> Path:
    """``launch_search.py --export N --name RUN``: write trial N's architecture to YAML."""
    from search.export import export_trial
    from search.study import make_sampler as _sampler

    run_dir = cfg.run_dir
    if cfg.storage is None and not (run_dir / "study.journal").exists():
        raise SearchError(f"no search in {run_dir}; pass the run's --name (and --results-dir) or --storage")
    study = open_study(cfg.storage_url, cfg.name, _sampler("random", 0), resume=True)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if trial_number not in trials:
        raise SearchError(f"run {cfg.name!r} has no trial {trial_number}; it has trials 0..{max(trials, default=-1)}")
    trial = trials[trial_number]
    if ATTR.SPEC not in trial.user_attrs:
        raise SearchError(f"trial {trial_number} has no architecture recorded (state {trial.state.name}); pick another")
    path = out or run_dir / f"trial_{trial_number}.yaml"
    run_info = _run_info(cfg)
    export_trial(trial, path, run=run_info, pick=f"trial {trial_number}")
    return path


def _run_info(cfg: SearchConfig) -> dict[str, Any]:
    import json

    info: dict[str, Any] = {"name": cfg.name, "space": cfg.space, "dataset": cfg.dataset, "seed": cfg.seed}
    path = cfg.run_dir / "run.json"
    if path.exists():
        saved = json.loads(path.read_text())
        info.update(num_classes=saved.get("num_classes"), proxy=saved.get("proxy_name"))
        info.update({k: saved["config"][k] for k in ("space", "dataset", "seed") if k in saved.get("config", {})})
    if not info.get("num_classes"):
        info["num_classes"] = 100 if info.get("dataset") == "cifar100" else 10
    return info


__all__ = ["Run", "StudyError", "export_trial_of_run", "open_run", "run_search"]
