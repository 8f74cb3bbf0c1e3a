"""Proxy training: a short, seeded training run that ranks architectures during the search.

``evaluate_spec(spec, data, config, ...)`` is what the search calls per trial: it counts the
exported network's params and MACs, builds the (optionally width-scaled) proxy with a seeded
initialisation and trains it with ``train_proxy``. Validation accuracy comes from the held-out
split; the test set is never touched here.

Presets: ``gpu`` is sized so that a mid-size Seesaw network trains in about 10 s on a modern GPU
(see BENCHMARKS.md), ``cpu`` gives a useful ranking signal in a few minutes on two CPU cores,
``smoke`` runs in seconds for tests and dry runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from blocks.cost import Cost, count_cost
from blocks.counting import count_module_cost
from blocks.model import build_model
from search.files import atomic_path
from search.train.augment import AugmentConfig
from search.train.data import DataSplits
from search.train.trainer import EpochStats, Recipe, StepCallback, Trainer
from space.scaling import scale_width
from space.spec import ArchSpec

__all__ = ["LATER_FIELDS", "PRESETS", "REPORTING_ONLY_FIELDS", "EpochStats", "ProxyConfig", "ProxyResult", "accuracy_settings",
           "add_override_flags", "architecture_seed", "build_proxy_model", "evaluate_spec", "get_preset", "overrides_from",
           "settings_in_full", "train_proxy"]


@dataclass(frozen=True)
class ProxyConfig(Recipe):
    """A training recipe (see ``Recipe``) plus how much of the data and network the proxy uses."""

    train_subset: int | None = None  # training images per epoch: a fixed random subset of the train split; None = all
    width_scale: float = 1.0  # width factor of the trained network (space.scaling.scale_width); 1 = as exported
    val_images: int | None = None  # validation images evaluated (a fixed subset); None = all
    eval_every: int = 1  # epochs between validation passes; the last epoch is always evaluated
    bn_recalibration_images: int = 0  # BN statistics recomputed on this many training images before scoring
    refit_bias_images: int = 0  # output bias refit on this many training images before scoring (Trainer.refit_output_bias)
    eval_flip: bool = False  # score from the mean logits of each held-out image and its mirror image

    def validate(self) -> "ProxyConfig":
        super().validate()
        for name in ("train_subset", "val_images"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be None (all) or an integer >= 1, got {v!r}")
        if not (isinstance(self.width_scale, (int, float)) and 0 < self.width_scale and math.isfinite(self.width_scale)):
            raise ValueError(f"width_scale must be a finite number > 0, got {self.width_scale!r}")
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise ValueError(f"eval_every must be an integer >= 1, got {self.eval_every!r}")
        for name in ("bn_recalibration_images", "refit_bias_images"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if not isinstance(self.eval_flip, bool):
            raise ValueError(f"eval_flip must be True or False, got {self.eval_flip!r}")
        return self


# Label smoothing and a linear decay to 0 make short runs rank networks more stably; batch sizes
# keep >= ~50 steps per epoch so that BN statistics and momentum settle.
PRESETS: dict[str, ProxyConfig] = {
    # ~100k images in bf16 + channels_last; its time per trial on a GPU is not measured yet
    # (BENCHMARKS.md, "GPU check": benchmarks/gpu_check.py measures it where a GPU is lent).
    "gpu": ProxyConfig(
        epochs=5, train_subset=20000, batch_size=256, lr=0.2, warmup_epochs=1, schedule="linear",
        weight_decay=5e-4, label_smoothing=0.1, eval_batch_size=2500,
    ),
    # Two CPU cores: half width (~1/4 of the MACs), 5k images for 2 epochs, a few minutes per trial.
    # Scored once at the end (mid-run scores at a high lr mostly measure stale BN statistics) on all
    # held-out images (5k by default): over 5 seeds of seesaw_0.5d, igcv3_0.5d and mobilenetv2 the mean
    # std is 1.06 points against 1.27 with 2k images (paired differences 1.31 against 1.84; igcv3's
    # own std 1.11 against 1.04), for a few seconds more per trial; over 10 seeds it is 1.44. Most of that
    # is the training's own spread, which more scored images cannot remove, and neither label smoothing 0
    # nor test-time flips (eval_flip) reduce it for every network (BENCHMARKS.md, "Where the spread
    # comes from" and "Ten seeds"). Small evaluation batches: on a CPU they run ~2x faster per image
    # than 500 (cache).
    # Peak lr 0.05, not 0.1: over 5 seeds the three networks score 0.7-4.9 points higher, with a mean
    # std of 1.27 points against 1.88; lr 0.025, batch 32, BN recalibration and a weight EMA did not
    # help (BENCHMARKS.md, "Remedies side by side"). It ranks 15 seesaw networks as 3x its epochs does
    # at Spearman +0.96 (90% CI [+0.84, +0.99]; BENCHMARKS.md, "The current `cpu` preset against 3x its epochs").
    # The output bias is refit on the 5,000 training images before scoring: over 10 seeds the std falls
    # from 1.63 / 1.18 / 0.77 to 0.89 / 0.70 / 0.75 points and the mean paired std from 1.61 to 1.14, for
    # one more evaluation pass; it ranks the same 15 networks at +0.88 (as trained +0.91 on the same
    # trainings: no measurable difference) (BENCHMARKS.md, "Refitting the output bias").
    "cpu": ProxyConfig(
        epochs=2, train_subset=5000, batch_size=64, lr=0.05, warmup_epochs=0.5, schedule="linear",
        weight_decay=5e-4, label_smoothing=0.1, width_scale=0.5, val_images=None, eval_every=2,
        eval_batch_size=64, refit_bias_images=5000,
    ),
    # Seconds on a CPU: for tests and dry runs of the search machinery, not for ranking.
    "smoke": ProxyConfig(
        epochs=1, train_subset=256, batch_size=64, lr=0.05, schedule="linear", width_scale=0.25,
        val_images=256, eval_batch_size=256, augment=AugmentConfig(),
    ),
}


# Fields of a ProxyConfig that change when and how fast validation runs, never the accuracy a trial
# reports (the last epoch is always evaluated, in eval mode): ignored when configurations are
# compared, so retuning them neither hides a measured fidelity (search/results/fidelity.py), nor
# retrains cached benchmarks, nor changes a study's recorded recipe.
REPORTING_ONLY_FIELDS = ("eval_every", "eval_batch_size")
# Fields added to ProxyConfig after entries and cached results were stored, with the value that
# behaves as their absence did: left out at that value, so the stored results keep matching.
LATER_FIELDS = {"eval_flip": False, "refit_bias_images": 0}


def accuracy_settings(proxy_config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a proxy configuration (as a dict) that determine the accuracy it reports."""
    plain = json.loads(json.dumps(proxy_config, default=str))  # as JSON stores it: tuples -> lists
    return {k: v for k, v in plain.items()
            if k not in REPORTING_ONLY_FIELDS and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}


def settings_in_full(settings: dict[str, Any]) -> dict[str, Any]:
    """``accuracy_settings`` output with each left-out later field at the value that behaves as its
    absence: what two records are compared on, whichever of them is older than a field."""
    return {**LATER_FIELDS, **settings}


def add_override_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """A ``--field-name`` flag per ``ProxyConfig`` field, typed from the dataclass; unset keeps the preset's value."""
    hints = typing.get_type_hints(ProxyConfig)
    for name in names:
        kind = next(a for a in (*typing.get_args(hints[name]), hints[name]) if a is not type(None))
        if kind not in (int, float):
            raise TypeError(f"{name}: only int and float fields become flags, not {kind!r}")
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"override the preset's {name}")


def overrides_from(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The fields among ``names`` given on the command line, for ``dataclasses.replace(preset, **...)``."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def get_preset(name: str, **overrides: Any) -> ProxyConfig:
    """A preset by name, with fields replaced by ``overrides`` (e.g. ``epochs=2``), validated."""
    try:
        config = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown proxy preset {name!r}; valid: {', '.join(PRESETS)}") from None
    return dataclasses.replace(config, **overrides).validate()


@dataclass(frozen=True)
class ProxyResult:
    """Metrics of one proxy training run. Accuracies in [0, 1]; NaN where not measured."""

    status: str  # "ok", or "diverged": a NaN / inf loss ended the run
    val_acc: float  # top-1 on the validation split after the last epoch
    val_loss: float
    train_time_s: float  # seconds in training steps (evaluation excluded)
    eval_time_s: float  # seconds in validation passes
    images_per_s: float  # training images / train_time_s
    epochs_done: int  # passes over the training subset (the last one partial when epochs is a fraction)
    images_seen: int  # training images processed
    train_images: int  # size of the training subset
    val_images: int  # validation images evaluated
    params: int  # of the network as exported
    macs: int  # multiply-adds per image of the network as exported
    proxy_params: int  # of the network trained (differs from params when width_scale != 1)
    proxy_macs: int
    history: tuple[EpochStats, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain values only, for Optuna user attributes and JSON."""
        return dataclasses.asdict(self) | {"history": [dataclasses.asdict(h) for h in self.history]}


def train_proxy(
    model: nn.Module,
    data: DataSplits,
    config: ProxyConfig,
    *,
    device: torch.device | str,
    seed: int,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_step: StepCallback | None = None,
    resume_from: Path | None = None,
    save_to: Path | None = None,
) -> ProxyResult:
    """Train ``model`` on the training subset of ``data`` with ``config``; validate; report.

    Promotion (``search.engine.ladder``): ``resume_from`` is a checkpoint that ``save_to`` wrote
    after a shorter run; training goes on from its step to ``config.epochs`` in total. The learning
    rate follows the longer run's schedule from that step (with the linear presets it jumps from
    about 0 back to (1 - 1/eta) x lr and decays to 0 at the new end): no extra code path, and a
    promotion is the longer run's tail on the shorter run's weights. ``save_to``: the trainer's
    state after training, written atomically (only when it did not diverge).

    ``data`` must already be on ``device`` (load it once with ``load_dataset(..., device=...)``).
    ``on_epoch`` is called after every epoch; an exception it raises (e.g. optuna.TrialPruned)
    ends the run and propagates. params/macs of the result are those of ``model``;
    ``evaluate_spec`` replaces them with the exported network's.
    """
    config.validate()
    device = torch.device(device)
    if data.device.type != device.type or (device.index is not None and data.device != device):
        raise ValueError(
            f"data are on {data.device} but training runs on {device}; load them with "
            f"load_dataset(..., device={str(device)!r}) once per process"
        )
    train_images = min(config.train_subset or len(data.train_y), len(data.train_y))
    val_images = min(config.val_images or len(data.val_y), len(data.val_y))
    cost = count_module_cost(model, data.image_size)

    trainer = Trainer(
        model, config, device=device, seed=seed, num_classes=data.num_classes,
        mean=data.mean, std=data.std, train_images=train_images,
    )
    history: tuple[EpochStats, ...] = ()
    if resume_from is not None:
        state = torch.load(resume_from, map_location="cpu", weights_only=False)  # our own file, from save_to
        trainer.load_state_dict(state["trainer"])
        history = tuple(EpochStats(**h) for h in state["history"])
    fit = trainer.fit((data.train_x, data.train_y), (data.val_x[:val_images], data.val_y[:val_images]),
                      eval_every=config.eval_every, bn_recalibration_images=config.bn_recalibration_images,
                      refit_bias_images=config.refit_bias_images,
                      eval_flip=config.eval_flip,
                      on_epoch=on_epoch, on_step=on_step, history=history)
    if save_to is not None and fit.status == "ok":
        save_to.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(save_to) as tmp:
            torch.save({"trainer": trainer.state_dict(), "history": [dataclasses.asdict(h) for h in fit.history]}, tmp)
    images_seen = fit.last.images if fit.last else 0
    return ProxyResult(
        status=fit.status,
        val_acc=fit.last.val_acc if fit.last else math.nan,
        val_loss=fit.last.val_loss if fit.last else math.nan,
        train_time_s=fit.train_time_s,
        eval_time_s=fit.eval_time_s,
        images_per_s=images_seen / fit.train_time_s if fit.train_time_s > 0 else math.nan,
        epochs_done=trainer.epoch,
        images_seen=images_seen,
        train_images=train_images,
        val_images=val_images,
        params=cost.params,
        macs=cost.macs,
        proxy_params=cost.params,
        proxy_macs=cost.macs,
        history=fit.history,
    )


def architecture_seed(key: str, seed: int) -> int:
    """A 63-bit seed from an architecture's canonical key and the run's seed."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def build_proxy_model(spec: ArchSpec, config: ProxyConfig, num_classes: int, seed: int) -> nn.Module:
    """The network a proxy run trains: ``spec`` at ``config.width_scale``, built on CPU with the
    initial weights of ``architecture_seed(spec.canonical_key(), seed)``."""
    torch.manual_seed(architecture_seed(spec.canonical_key(), seed))
    return build_model(scale_width(spec, config.width_scale), num_classes)


def evaluate_spec(
    spec: ArchSpec,
    data: DataSplits,
    config: ProxyConfig,
    *,
    device: torch.device | str,
    seed: int,
    on_epoch: Callable[[EpochStats], None] | None = None,
    exported: Cost | None = None,
    on_step: StepCallback | None = None,
    resume_from: Path | None = None,
    save_to: Path | None = None,
) -> ProxyResult:
    """The per-trial evaluator: cost of ``spec`` as exported, then proxy training of its scaled copy.

    Common random numbers: ``seed`` (the run's) fixes the batch order and augmentation stream, the
    same for every network of a run, so two networks are compared under the same draw; the
    initial weights come from ``architecture_seed(key, seed)``, so the same architecture always
    starts alike. ``resume_from``/``save_to``: checkpoints of a promotion (``train_proxy``). The proxy is ``scale_width(spec, config.width_scale)``, built on CPU (the same
    initial weights on every device), then moved to ``device``. ``exported``: the spec's ``Cost``
    when the caller has already counted it (the search has), else counted here.
    """
    config.validate()
    if exported is None:
        exported = count_cost(spec, data.num_classes, data.image_size)
    model = build_proxy_model(spec, config, data.num_classes, seed)
    result = train_proxy(model, data, config, device=device, seed=seed, on_epoch=on_epoch, on_step=on_step,
                         resume_from=resume_from, save_to=save_to)
    return dataclasses.replace(result, params=exported.params, macs=exported.macs)
