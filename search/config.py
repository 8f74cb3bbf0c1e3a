"""The settings of one search run, as plain data (the CLI parses into this; nothing below it sees argparse)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from search.choices import DATASETS, DEFAULT_OBJECTIVES, EXECUTORS, LATENCY_MODES, PICKS
from search.engine.objectives import LatencyMeter, Objectives
from search.engine.zero_cost import ZERO_COST_PROXIES
from search.errors import SearchError
from space.spaces import SPACES

__all__ = ["ETA_DEFAULT", "EXECUTORS", "LADDER_DEFAULTS", "PICKS", "SearchConfig", "SearchError"]

MAX_NAME_BYTES = 100  # a folder name and an Optuna study name; file systems allow 255 bytes
MAX_SEED = 2**31 - 1  # samplers take seeds below 2**32
# (--rungs, --repeats) when not given, by proxy preset (others: 1, 1 = off). cpu: no promotion
# (rung 0 alone ranks like 3x its epochs, Spearman +0.96: BENCHMARKS.md), 2 seeds at the end so that the README's 8-trial command
# gets error bars for under twice its cost; gpu: 3 rungs, 3 seeds (issue 12).
LADDER_DEFAULTS = {"gpu": (3, 3), "cpu": (1, 2)}
ETA_DEFAULT = 3


@dataclass(frozen=True)
class SearchConfig:
    space: str = "seesaw"
    budget: int = 200  # finished trials, resumed ones included
    dataset: str = "cifar10"
    data_dir: str = "data"
    proxy: str = "auto"  # proxy preset; auto = gpu preset on CUDA, cpu preset otherwise
    proxy_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 2}
    val_size: int = 5000  # images held out of the training set for validation
    sampler: str = "tpe"
    max_macs: int | None = None  # hard constraint, in multiply-adds
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES  # two or three of search.engine.objectives.OBJECTIVES
    max_latency_ms: float | None = None  # hard constraint, checked before training
    latency: str = "lookup"  # lookup (per-part table) or exact (whole network timed)
    latency_device: str = "cpu"  # cpu, cuda, cuda:N
    latency_batch: int = 1
    latency_threads: int = 1  # torch CPU threads while timing (ignored on CUDA)
    plot_axes: tuple[str, ...] | None = None  # (x, y) of pareto.html/png; default: first cost vs accuracy
    seed: int = 0
    name: str = "seesaw"
    results_dir: str = "results"
    resume: bool = False
    storage: str | None = None  # default: a journal file in the run folder
    executor: str = "local"
    heartbeat_grace_s: float = 60.0  # a running trial without a heartbeat for this long is stale and runs again
    workers: int = 1
    device: str = "auto"
    references: bool = True  # enqueue the space's reference networks first
    shared_block: bool = False
    pick: str = "accuracy"
    # multi-fidelity promotion and repeats (search/engine/ladder.py); None: LADDER_DEFAULTS of the preset
    rungs: int | None = None  # fidelities: rung r trains eta**r x the rung-0 epochs; 1 = off
    eta: int | None = None  # the top 1/eta of a rung go on to the next; None: ETA_DEFAULT
    repeats: int | None = None  # seeds at the top rung for the final front and the references; 1 = off
    prescreen: str | None = None  # zero-cost proxy that picks 1 of ceil(1/keep) samples to train
    prescreen_keep: float = 0.25
    # Ray Tune executor
    ray_address: str | None = None
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    max_concurrent: int = 0  # 0: as many as the resources allow
    max_retries: int = 0
    scheduler: str | None = None  # refused in multi-objective mode (see search/executors/ray_tune.py)

    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.name

    @property
    def uses_latency(self) -> bool:
        """Latency is measured only when it is an objective or constrained."""
        return "latency" in self.objectives or self.max_latency_ms is not None

    def search_settings(self) -> dict[str, Any]:
        """The settings that define what a run searches, besides its objectives (which the study holds
        as its directions): every process of one study must share them, or it would mix two searches.
        With latency measured, also where and how (one run's latencies must be comparable)."""
        keys = ("space", "shared_block", "dataset") + (
            ("latency", "latency_device", "latency_batch", "latency_threads") if self.uses_latency else ())
        return {k: getattr(self, k) for k in keys}

    def objective_set(self) -> Objectives:
        return Objectives.parse(self.objectives)

    def latency_meter(self) -> LatencyMeter | None:
        """The run's latency meter (None when latency is not used); SearchError for an absent device."""
        if not self.uses_latency:
            return None
        return LatencyMeter(self.latency_device, self.latency_batch, self.latency_threads, self.latency)

    @property
    def storage_url(self) -> str:
        """--storage, or the journal file in the run folder."""
        return self.storage or f"journal://{self.run_dir.resolve() / 'study.journal'}"

    def with_ladder_defaults(self, proxy_name: str, recorded: dict[str, Any] | None = None) -> "SearchConfig":
        """``--rungs``/``--eta``/``--repeats`` resolved: those not given are the study's ``recorded``
        ones (a resume, a joining host), else the defaults of the run's proxy preset."""
        off = "accuracy" not in self.objectives  # nothing to promote or repeat
        rungs, repeats = (1, 1) if off else LADDER_DEFAULTS.get(proxy_name, (1, 1))
        defaults = {"rungs": rungs, "repeats": repeats, "eta": ETA_DEFAULT}
        recorded = {k: v for k, v in (recorded or {}).items() if k in defaults and v is not None}
        return dataclasses.replace(self, **{k: v if (v := getattr(self, k)) is not None else recorded.get(k, default)
                                            for k, default in defaults.items()})

    @property
    def ladder(self) -> bool:
        """Whether any network trains beyond its rung-0 trial (promotion or repeats)."""
        return (self.rungs or 1) > 1 or (self.repeats or 1) > 1

    def ladder_settings(self) -> dict[str, int | None]:
        """``--rungs``, ``--eta`` (None without promotion, where it means nothing) and ``--repeats``, as
        resolved (``with_ladder_defaults``): what every process of one study must share."""
        rungs = self.rungs or 1
        return {"rungs": rungs, "eta": self.eta if rungs > 1 else None, "repeats": self.repeats or 1}

    def validate(self) -> "SearchConfig":
        if self.space not in SPACES:
            raise SearchError(f"unknown space {self.space!r}; valid spaces: {', '.join(sorted(SPACES))}")
        if self.budget <= 0:
            raise SearchError(f"--budget must be a positive number of trials, got {self.budget}")
        if self.dataset not in DATASETS:
            raise SearchError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if self.executor not in EXECUTORS:
            raise SearchError(f"unknown executor {self.executor!r}; valid: {', '.join(EXECUTORS)}")
        if self.scheduler and self.executor != "ray":
            raise SearchError("--scheduler applies to --executor ray only (and is refused there: see docs/scaling_out.md)")
        if not self.heartbeat_grace_s > 0:  # also refuses NaN
            raise SearchError(f"--heartbeat-grace must be a positive number of seconds, got {self.heartbeat_grace_s}")
        if self.workers < 1:
            raise SearchError(f"--workers must be >= 1, got {self.workers}")
        if self.max_macs is not None and self.max_macs <= 0:
            raise SearchError(f"--max-macs must be positive, got {self.max_macs}")
        for name, low in (("rungs", 1), ("eta", 2), ("repeats", 1)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                raise SearchError(f"--{name} must be a whole number >= {low}, got {v!r}")
        if self.ladder and "accuracy" not in self.objectives:
            raise SearchError(f"--rungs and --repeats above 1 train networks further for accuracy, which is not among "
                              f"--objectives ({','.join(self.objectives)}); add it or pass --rungs 1 --repeats 1")
        if self.pick not in PICKS:
            raise SearchError(f"unknown --pick {self.pick!r}; valid: {', '.join(PICKS)}")
        objectives = self.objective_set()
        if self.pick == "accuracy" and "accuracy" not in objectives:
            raise SearchError(f"--pick accuracy needs accuracy among --objectives ({','.join(self.objectives)}); "
                              "use --pick smallest or knee")
        if self.plot_axes is not None:
            axes = tuple(self.plot_axes)
            if len(axes) != 2 or axes[0] == axes[1]:
                raise SearchError(f"--plot-axes takes two different objectives like latency,accuracy, got {','.join(axes)!r}")
            missing = [a for a in axes if a not in objectives]
            if missing:
                raise SearchError(f"--plot-axes names {missing[0]!r}, which is not an objective of this run "
                                  f"({','.join(self.objectives)}); add it to --objectives or pick two of those")
        if self.max_latency_ms is not None and not (isinstance(self.max_latency_ms, (int, float))
                                                    and math.isfinite(self.max_latency_ms) and self.max_latency_ms > 0):
            raise SearchError(f"--max-latency must be a positive time like 5ms, got {self.max_latency_ms!r}")
        if self.latency not in LATENCY_MODES:
            raise SearchError(f"unknown --latency {self.latency!r}; valid: {', '.join(LATENCY_MODES)}")
        for name in ("latency_batch", "latency_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SearchError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
        self.latency_meter()  # refuses a latency device that is not there
        if self.prescreen is not None:
            if self.prescreen not in ZERO_COST_PROXIES:
                raise SearchError(f"unknown --prescreen {self.prescreen!r}; valid: {', '.join(ZERO_COST_PROXIES)}")
            if not 0 < self.prescreen_keep <= 1:
                raise SearchError(f"--prescreen-keep must be in (0, 1], got {self.prescreen_keep}")
            if self.executor != "local":
                raise SearchError("--prescreen runs with the local executor; leave out --executor ray or --prescreen")
        if (not isinstance(self.name, str) or not self.name.strip() or self.name in (".", "..")
                or any(c in self.name for c in "/\\\0") or not self.name.isprintable()):
            raise SearchError(f"--name must be a plain folder name, got {self.name!r}")
        if len(self.name.encode()) > MAX_NAME_BYTES:
            raise SearchError(f"--name is {len(self.name.encode())} bytes long; at most {MAX_NAME_BYTES} (it names a folder and the study)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise SearchError(f"--seed must be a whole number in [0, {MAX_SEED}], got {self.seed!r}")
        if isinstance(self.val_size, bool) or not isinstance(self.val_size, int) or self.val_size < 1:
            raise SearchError(f"--val-size must be a whole number of images >= 1 (trials are ranked on them), got {self.val_size!r}")
        if not str(self.results_dir).strip():
            raise SearchError("--results-dir must name a folder, got ''")
        if not str(self.data_dir).strip():
            raise SearchError("--data-dir must name a folder or file, got ''")
        if not str(self.proxy).strip():
            raise SearchError("--proxy must name a preset, got ''")
        if self.storage is not None:
            if not self.storage.strip():
                raise SearchError("--storage must be a URL (journal:///path or postgresql://...), got ''")
            if self.storage.startswith("journal://") and not self.storage[len("journal://"):].strip():
                raise SearchError("--storage journal:// needs a file path, e.g. journal:///data/runs/study.journal")
        for name, low in (("cpus_per_trial", 0.0), ("gpus_per_trial", None)):
            value = getattr(self, name)
            if not math.isfinite(value) or (low is not None and value <= low):
                raise SearchError(f"--{name.replace('_', '-')} must be a finite number{' > 0' if low is not None else ''}, got {value}")
        if self.gpus_per_trial < 0 and self.gpus_per_trial != -1:
            raise SearchError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}")
        for name in ("max_concurrent", "max_retries"):
            if getattr(self, name) < 0:
                raise SearchError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.ray_address is not None and not self.ray_address.strip():
            raise SearchError("--ray-address must be HOST:PORT, got ''")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
