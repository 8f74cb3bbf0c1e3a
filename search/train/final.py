"""Final training of an exported architecture: the seeds' full recipe, checkpoints, test accuracy.

``train_final(spec, num_classes, data, config, out_dir)`` trains the network exactly as exported
(no width scaling, no subset), validates on the held-out split every epoch, and reads the test set
once, at the end. After every epoch it writes ``checkpoint.pt`` (weights, optimizer, epoch and
every random stream), so an interrupted run resumes where it stopped and ends exactly as an
uninterrupted one would (bit for bit on CPU).

out_dir holds: spec.yaml, checkpoint.pt, model.pt (final weights), result.json (metrics, history,
spec, config, seed, code version, package versions).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from blocks.counting import count_module_cost
from blocks.model import build_model
from search.files import atomic_path, write_atomic
from search.provenance import git_commit, package_versions
from search.train.augment import AugmentConfig
from search.train.data import DataSplits
from search.train.trainer import EpochStats, Recipe, Trainer
from space.spec import ArchSpec

__all__ = ["FINAL_PRESETS", "FinalConfig", "FinalResult", "train_final"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"


@dataclass(frozen=True)
class FinalConfig(Recipe):
    """A training recipe (see ``Recipe``) for the full-length training of one network."""

    train_on_val: bool = False  # also train on the validation images (the val curve then means nothing)


FINAL_PRESETS: dict[str, FinalConfig] = {
    # Seesaw-Net / IGCV3 CIFAR recipe (REFERENCE_MODELS.md section 5): SGD m0.9 (no Nesterov),
    # lr 0.1 x0.98 per epoch, wd 1e-4 on every parameter, batch 64, 400 epochs, crop + flip.
    "seeds": FinalConfig(
        epochs=400, batch_size=64, lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
        decay_norm_and_bias=True, schedule="exp", lr_decay=0.98, augment=AugmentConfig(crop_padding=4, flip=True),
    ),
    # PytorchInsight mobile recipe (its ImageNet values): cosine with 5 warm-up epochs, label
    # smoothing 0.1, no weight decay on BN and biases; add mixup / CutMix through ``augment``.
    "mobile": FinalConfig(
        epochs=300, batch_size=128, lr=0.1, nesterov=True, weight_decay=4e-5, schedule="cosine",
        warmup_epochs=5, label_smoothing=0.1,
    ),
}


@dataclass(frozen=True)
class FinalResult:
    """Accuracies in [0, 1]; NaN where not measured."""

    status: str  # "ok", or "diverged": a NaN / inf loss ended training (no test accuracy then)
    test_acc: float
    test_loss: float
    val_acc: float  # after the last epoch
    best_val_acc: float  # over the epochs, for reference; test_acc is of the last epoch's weights
    epochs_done: int
    train_time_s: float  # this launch and earlier ones of a resumed run
    images_per_s: float
    params: int
    macs: int
    history: tuple[EpochStats, ...]
    out_dir: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"history": [dataclasses.asdict(h) for h in self.history]}


def train_final(
    spec: ArchSpec,
    num_classes: int,
    data: DataSplits,
    config: FinalConfig,
    out_dir: str | os.PathLike,
    resume: bool = True,
    *,
    device: torch.device | str | None = None,
    seed: int = 0,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> FinalResult:
    """Train ``spec`` with ``config`` on ``data``; checkpoint every epoch; test at the end.

    resume: continue from ``out_dir/checkpoint.pt`` when one exists (it must come from the same
    spec, config and seed); False starts over and overwrites it. device: defaults to the data's.
    """
    config.validate()
    device = torch.device(device) if device is not None else data.device
    if data.device.type != device.type:
        raise ValueError(f"data are on {data.device} but training runs on {device}; load them with load_dataset(..., device={str(device)!r})")
    if num_classes != data.num_classes:
        raise ValueError(f"num_classes={num_classes} but the data have {data.num_classes} classes")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "spec.yaml", spec.to_yaml())

    train_x, train_y = data.train_x, data.train_y
    if config.train_on_val:
        train_x, train_y = torch.cat([train_x, data.val_x]), torch.cat([train_y, data.val_y])
    identity = {"spec_key": spec.canonical_key(), "config": _plain(config), "seed": seed, "data": data.describe()}

    torch.manual_seed(seed)  # the initial weights: same on every device (built on CPU, then moved)
    model = build_model(spec, num_classes)
    cost = count_module_cost(model, data.image_size)
    trainer = Trainer(
        model, config, device=device, seed=seed, num_classes=num_classes,
        mean=data.mean, std=data.std, train_images=len(train_y),
    )
    history: list[EpochStats] = []
    checkpoint = out / CHECKPOINT
    if resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        _check_same_run(state["identity"], identity, checkpoint)
        trainer.load_state_dict(state["trainer"])
        history = [EpochStats(**h) for h in state["history"]]
        log.info("resuming %s after epoch %d", out, trainer.epoch)

    def epoch_done(stats: EpochStats) -> None:
        history.append(stats)
        if not math.isfinite(stats.val_loss):  # diverged: keep the last good checkpoint
            return
        _save_checkpoint(checkpoint, trainer, history, identity)
        if on_epoch is not None:
            on_epoch(stats)

    fit = trainer.fit((train_x, train_y), (data.val_x, data.val_y), history=tuple(history), on_epoch=epoch_done)
    test_acc = test_loss = val_acc = math.nan
    if fit.status == "ok":
        test_acc, test_loss = trainer.evaluate(data.test_x, data.test_y)
        torch.save(trainer.model.state_dict(), out / "model.pt")
        val_acc = fit.last.val_acc
    images = fit.last.images if fit.last else 0
    result = FinalResult(
        status=fit.status,
        test_acc=test_acc,
        test_loss=test_loss,
        val_acc=val_acc,
        best_val_acc=max((h.val_acc for h in fit.history if not math.isnan(h.val_acc)), default=math.nan),
        epochs_done=trainer.epoch,
        train_time_s=fit.train_time_s,
        images_per_s=images / fit.train_time_s if fit.train_time_s > 0 else math.nan,
        params=cost.params,
        macs=cost.macs,
        history=fit.history,
        out_dir=str(out),
    )
    record = {
        **result.to_dict(),
        "spec": spec.to_dict(),
        "config": identity["config"],
        "seed": seed,
        "data": identity["data"],
        "device": str(device),
        "git_commit": git_commit(),
        "versions": package_versions(),
    }
    write_atomic(out / RESULT, json.dumps(_finite_or_none(record), indent=2, default=str))
    return result


# ----------------------------------------------------------------------------- checkpoints


def _plain(config: FinalConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _save_checkpoint(path: Path, trainer: Trainer, history: list[EpochStats], identity: dict) -> None:
    """Write beside and rename: a kill during the write leaves the previous checkpoint intact."""
    state = {
        "trainer": trainer.state_dict(),
        "history": [dataclasses.asdict(h) for h in history],
        "identity": identity,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _check_same_run(saved: dict, current: dict, path: Path) -> None:
    for key in ("spec_key", "config", "seed"):
        if saved.get(key) != current[key]:
            what = {"spec_key": "architecture", "config": "training config", "seed": "seed"}[key]
            raise ValueError(
                f"{path} was written for another {what}; pass another output folder, or resume=False to start over"
            )


def _finite_or_none(value: Any) -> Any:
    """NaN and inf become null: strict JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
