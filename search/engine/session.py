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
from search.engine.ladder import Ladder
from search.engine.prescreen import Prescreener, make_prescreener
from search.engine.study import (STUDY_LADDER, STUDY_PROXY, STUDY_RECIPE, check_search, make_sampler, open_study,
                                 recorded_settings)
from search.engine.trial import AfterTrial, TrialSteps
from search.errors import SearchError
from search.train.data import load_dataset
from search.train.augment import AugmentConfig
from search.train.evaluator import ProxyEvaluator
from search.train.proxy import PRESETS, ProxyConfig, accuracy_settings, settings_in_full
from search.train.trainer import resolve_device
from space.spaces import SearchSpace, get_space

__all__ = ["Run", "check_max_latency_of", "check_max_macs", "check_max_macs_of", "open_run", "proxy_config", "proxy_name",
           "sampler_seed", "worker_device"]

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
    ladder: Ladder | None = None  # with --rungs or --repeats above 1

    def steps(self, after_trial: AfterTrial | None = None, *,
              wait_for_twins: bool = True) -> TrialSteps:
        """This process's trial step over the run's study."""
        return TrialSteps(self.study, self.cfg, self.space, num_classes=self.num_classes, count_cost=self.count_cost,
                          prescreen=self.prescreen, after_trial=after_trial, wait_for_twins=wait_for_twins,
                          ladder=self.ladder)


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


def recorded_proxy(cfg: SearchConfig, attrs: dict[str, Any], device: str) -> SearchConfig:
    """``cfg`` set to train with the proxy recipe a study recorded (``attrs``: ``recorded_settings``),
    even when the preset has changed since or ``--proxy auto`` would pick another on this host.
    Proxy settings that change what a trial's accuracy means (another ``--proxy``, ``--epochs`` ...)
    are refused: one study would hold two recipes' accuracies. A study from before the preset's
    name was recorded gives nothing to take: ``open_study`` still refuses another recipe."""
    name, recorded = attrs.get(STUDY_PROXY), attrs.get(STUDY_RECIPE)
    if name not in PRESETS or not isinstance(recorded, dict):
        return cfg
    fields = {f.name for f in dataclasses.fields(ProxyConfig)}
    # a field the study does not record (it may be older than the field) takes its absent value, not the preset's now
    recorded = settings_in_full(recorded)
    values = {k: (AugmentConfig(**v) if k == "augment" else v) for k, v in recorded.items() if k in fields}
    kept = dataclasses.replace(cfg, proxy=name, proxy_overrides={
        **{k: v for k, v in values.items() if getattr(PRESETS[name], k) != v}, **cfg.proxy_overrides})
    now = proxy_config(cfg if cfg.proxy not in ("auto", name) else kept, device)
    given = settings_in_full(accuracy_settings(dataclasses.asdict(now)))
    changed = [k for k in sorted({*recorded, *given}) if recorded.get(k) != given.get(k)]
    if changed:
        shown = ", ".join(f"{k} {recorded.get(k)!r} -> {given.get(k)!r}" for k in changed)
        raise SearchError(f"--resume: run {cfg.name!r} trained its networks with the {name} proxy; these settings "
                          f"change it ({shown}); leave them out to continue with the run's, or start a new --name")
    return kept


def configure_logging(run_dir: Path, worker_index: int) -> None:
    """Per-trial lines go to results/<name>/search.log (all workers append to one file)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(run_dir / "search.log")
    except OSError as exc:
        raise SearchError(f"cannot write the run folder {run_dir}: {exc.strerror}; pass a writable --results-dir") from None
    handler.setFormatter(logging.Formatter(f"%(asctime)s w{worker_index} %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def sampler_seed(cfg: SearchConfig, worker_index: int, trials_so_far: int) -> tuple[int, str]:
    """The sampler seed of this process, and where it came from (for search.log).

    A fresh run's first process uses ``--seed`` (reproducible). Any other process (an extra worker,
    a resumed or concurrent launch, a host joining with --resume) draws one from the OS: two
    processes seeded alike would propose the same architectures, and two launches cannot know of
    each other."""
    if worker_index == 0 and trials_so_far == 0 and not cfg.resume:
        return cfg.seed, "--seed"
    return int.from_bytes(os.urandom(4), "little") % 2**31, f"os.urandom (worker {worker_index}, pid {os.getpid()})"


def worker_device(device: str, worker_index: int, cuda_devices: int) -> str:
    """The device of worker ``worker_index``: with plain ``cuda`` (``--device auto`` or ``cuda``) on a
    host with several GPUs, the workers take turns over them (worker i on ``cuda:i mod N``); an
    explicit ``cuda:N``, one GPU, or any other device is used as given."""
    if device == "cuda" and cuda_devices > 1:
        return f"cuda:{worker_index % cuda_devices}"
    return device


def open_run(cfg: SearchConfig, worker_index: int = 0, *, create: bool = False) -> Run:
    """Open the study and load data and evaluator for one worker process.

    Everything that can refuse the run (device, proxy settings, space, data, --max-macs) is checked
    before anything is written: a refused run leaves no run folder, log or study behind."""
    device = worker_device(resolve_device(cfg.device), worker_index,
                           torch.cuda.device_count() if torch.cuda.is_available() else 0)
    # A resume or a joining host reads the study's record before it loads any data, and takes the
    # proxy recipe from it; extra workers get the launching process's checked, resolved cfg
    # (open_study checks them all again).
    recorded = recorded_settings(cfg.storage_url, cfg.name) if create and cfg.resume else {}
    cfg = recorded_proxy(cfg, recorded, device)
    proxy = proxy_config(cfg, device)
    check_search(cfg.name, recorded, cfg.search_settings())
    cfg = cfg.with_ladder_defaults(proxy_name(cfg, device), recorded.get(STUDY_LADDER)).validate()
    try:
        space = get_space(cfg.space, dataset=cfg.dataset, shared_block=cfg.shared_block)
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    data = load_dataset(cfg.dataset, cfg.data_dir, device=device, val_size=cfg.val_size, seed=cfg.seed)
    if create:
        check_max_macs_of(cfg, space, data.num_classes)
        check_max_latency_of(cfg, space, data.num_classes)
    if cfg.workers > 1 and device == "cpu":
        # several trial processes share the cores instead of over-subscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.workers))
    configure_logging(cfg.run_dir, worker_index)
    study = open_study(cfg.storage_url, cfg.name, make_sampler(cfg.sampler, cfg.seed),
                       resume=cfg.resume or not create, heartbeat_grace_s=cfg.heartbeat_grace_s,
                       objectives=cfg.objective_set(), recipe=accuracy_settings(dataclasses.asdict(proxy)),
                       ladder=cfg.ladder_settings(), search=cfg.search_settings(), proxy=proxy_name(cfg, device))
    seed, origin = sampler_seed(cfg, worker_index, len(study.get_trials(deepcopy=False)))
    if seed != cfg.seed or origin != "--seed":
        study.sampler = make_sampler(cfg.sampler, seed)
    log.info(f"sampler {cfg.sampler} seeded with {seed} from {origin}")
    evaluator = ProxyEvaluator(data, proxy, device, data.num_classes)
    prescreen = None
    if cfg.prescreen is not None:
        prescreen = make_prescreener(cfg.prescreen, cfg.prescreen_keep, space=space, data=data,
                                     num_classes=data.num_classes, max_macs=cfg.max_macs, count_cost=count_cost,
                                     width_scale=proxy.width_scale, seed=cfg.seed,
                                     propose_options={"objectives": cfg.objective_set(), "latency": cfg.latency_meter(),
                                                      "max_latency_ms": cfg.max_latency_ms})
    ladder = Ladder(study, cfg, epochs0=proxy.epochs) if cfg.ladder else None
    return Run(cfg, study, space, evaluator, data.num_classes, device, proxy, count_cost, prescreen, ladder)


def check_max_macs(run: Run) -> None:
    """Refuse a --max-macs below the smallest network of the space, before any trial."""
    check_max_macs_of(run.cfg, run.space, run.num_classes)


def check_max_macs_of(cfg: SearchConfig, space: SearchSpace, num_classes: int) -> None:
    """``check_max_macs`` before a run exists (nothing written yet)."""
    if cfg.max_macs is None:
        return
    smallest = space.spec_from_params(space.smallest_params())
    macs = count_cost(smallest, num_classes, space.input_size).macs
    if macs > cfg.max_macs:
        raise SearchError(
            f"--max-macs {cfg.max_macs:,} is below the smallest network of space {cfg.space!r} "
            f"({macs:,} MACs at {space.input_size}x{space.input_size}); raise it above {macs:,}"
        )


def check_max_latency_of(cfg: SearchConfig, space: SearchSpace, num_classes: int) -> None:
    """Refuse a --max-latency below the latency of the space's network with the fewest MACs
    (timed on the run's target, as every trial is), before anything of the run is written."""
    meter = cfg.latency_meter()
    if cfg.max_latency_ms is None or meter is None:
        return
    smallest = space.spec_from_params(space.smallest_params())
    ms = 1e3 * meter.seconds(smallest, num_classes, space.input_size)
    if ms > cfg.max_latency_ms:
        raise SearchError(
            f"--max-latency {cfg.max_latency_ms:g}ms is below the latency of the smallest network of space "
            f"{cfg.space!r} ({ms:.3g} ms on {meter.describe()}); raise it above {ms:.3g}ms"
        )
