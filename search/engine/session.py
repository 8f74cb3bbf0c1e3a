"""What one process needs to run trials of a search: the study, the space, the data, the evaluator.

``open_run(cfg)`` is called once by the launching process and once by each extra worker process
(local ``--workers N``); the Ray executor's workers load only the data (``executors.ray_tune``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
import torch

from blocks import count_cost
from search.config import SearchConfig
from search.engine.prescreen import Prescreener, make_prescreener
from search.engine.study import host_id, make_sampler, open_study
from search.engine.trial import TrialSteps
from search.errors import SearchError
from search.train.data import load_dataset
from search.train.evaluator import ProxyEvaluator
from search.train.proxy import PRESETS, ProxyConfig
from search.train.trainer import resolve_device
from space.spaces import SearchSpace, get_space

__all__ = ["Run", "check_max_macs", "open_run", "proxy_config", "proxy_name"]

log = logging.getLogger("seesaw_nas.search")


@dataclass
class Run:
    """Everything one process needs to run trials of a search."""

    cfg: SearchConfig
    study: optuna.Study
    space: SearchSpace
    evaluator: ProxyEvaluator
    num_classes: int
    device: str
    proxy: ProxyConfig
    count_cost: Callable[..., Any]
    prescreen: Prescreener | None = None  # with --prescreen

    def steps(self, after_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None, *,
              wait_for_twins: bool = True) -> TrialSteps:
        """This process's trial step over the run's study."""
        return TrialSteps(self.study, self.cfg, self.space, num_classes=self.num_classes, count_cost=self.count_cost,
                          prescreen=self.prescreen, after_trial=after_trial, wait_for_twins=wait_for_twins)


def proxy_name(cfg: SearchConfig, device: str) -> str:
    """The proxy preset a run uses: ``--proxy``, or gpu on CUDA and cpu elsewhere."""
    return cfg.proxy if cfg.proxy != "auto" else ("gpu" if device.startswith("cuda") else "cpu")


def proxy_config(cfg: SearchConfig, device: str) -> ProxyConfig:
    """The proxy preset with the run's overrides (``--epochs`` ...), validated."""
    name = proxy_name(cfg, device)
    if name not in PRESETS:
        raise SearchError(f"unknown --proxy preset {name!r}; valid: {', '.join(PRESETS)}")
    try:
        return dataclasses.replace(PRESETS[name], **cfg.proxy_overrides).validate()
    except (TypeError, ValueError) as exc:
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
                       resume=cfg.resume or not create, heartbeat_grace_s=cfg.heartbeat_grace_s)
    if worker_index or len(study.get_trials(deepcopy=False)):
        # Another worker or a resumed run: a sampler seeded like the first launch's would repeat
        # its first samples. Fresh runs stay reproducible from --seed alone.
        # Hosts that join a study at once have the same worker index and see the same trials: the
        # host id and the pid keep their samplers apart.
        study.sampler = make_sampler(cfg.sampler, hash((cfg.seed, worker_index, len(study.get_trials(deepcopy=False)),
                                                        host_id(), os.getpid())) % 2**31)
    evaluator = ProxyEvaluator(data, proxy, device, data.num_classes)
    prescreen = None
    if cfg.prescreen is not None:
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
