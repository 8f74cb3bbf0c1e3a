"""The evaluator a trial step calls: train one spec with the proxy recipe, never raise.

It turns ``train.proxy.evaluate_spec`` into an ``Evaluation`` (status ok | diverged | failed, the
validation accuracy and the metrics a trial records), so a crashing or diverging network is
recorded with its reason and the search goes on. Any executor may run it, on any process that
holds the data.
"""

from __future__ import annotations

import dataclasses
import math
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from blocks.cost import Cost
from search.train.data import DataSplits
from search.train.proxy import ProxyConfig, evaluate_spec
from search.train.trainer import EpochStats, StepCallback
from space.spec import ArchSpec

__all__ = ["Evaluation", "ProxyEvaluator", "describe_exception"]


@dataclass
class Evaluation:
    """What training a proxy found. status: ok | diverged | failed."""

    status: str
    val_acc: float = float("nan")
    metrics: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None


def describe_exception(exc: BaseException) -> str:
    """One line: the exception type and message, and where in our code it came from."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "out of memory" in message.lower() or type(exc).__name__ == "OutOfMemoryError":
        return f"out of memory: {message[:200]}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "site-packages" not in f.filename]
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {message[:300]}{where}"


class ProxyEvaluator:
    """Trains one spec with the proxy recipe on the process's resident data; never raises."""

    def __init__(self, data: DataSplits, config: ProxyConfig, device: Any, num_classes: int) -> None:
        self.data = data
        self.config = config
        self.device = device
        self.num_classes = num_classes

    def __call__(self, spec: ArchSpec, seed: int, on_epoch: Callable[[EpochStats], None] | None = None,
                 cost: Cost | None = None, on_step: StepCallback | None = None, *, epochs: float | None = None,
                 resume_from: Path | None = None, save_to: Path | None = None) -> Evaluation:
        """``cost``: the spec's Cost if already counted (the trial step did), to skip counting it again.
        ``on_epoch``/``on_step``: progress callbacks (``search.results.progress.TrialTicker``).
        ``epochs``/``resume_from``/``save_to``: a promotion's total epochs and checkpoints
        (``search.train.proxy.evaluate_spec``)."""
        config = self.config if epochs is None else dataclasses.replace(self.config, epochs=epochs)
        try:
            result = evaluate_spec(spec, self.data, config, device=self.device, seed=seed, on_epoch=on_epoch,
                                   exported=cost, on_step=on_step, resume_from=resume_from, save_to=save_to)
        except Exception as exc:  # a crashing trial is recorded, the search goes on
            return Evaluation(status="failed", failure=describe_exception(exc))
        metrics = {
            "val_acc": result.val_acc, "val_loss": result.val_loss, "train_time_s": result.train_time_s,
            "images_per_s": result.images_per_s, "epochs": result.epochs_done,
            "proxy_params": result.proxy_params, "proxy_macs": result.proxy_macs,
        }
        metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        if result.status != "ok":
            return Evaluation(status=result.status, metrics=metrics,
                              failure=f"{result.status}: the loss became NaN or inf in epoch {result.epochs_done}")
        return Evaluation(status="ok", val_acc=result.val_acc, metrics=metrics)
