"""The training engine shared by proxy and final training (airbench's habits, general models).

Data stay on the device as uint8; a batch is an index slice of them, augmented on the device. The
loss is read back only every few steps on a GPU (a read is a sync, and NaN propagates, so a lagged
check loses nothing but those steps). Optimizer: SGD with (Nesterov) momentum, per-step learning
rate from warm-up then cosine / linear / per-epoch exponential decay, weight decay only on conv and
linear weights unless a recipe asks for all. On CUDA: bf16/fp16 autocast and channels_last.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from search.errors import SearchError
from search.train.augment import AugmentConfig, augment_batch, make_normalizer

__all__ = ["EpochStats", "FitResult", "Recipe", "StepCallback", "Trainer", "lr_factor", "resolve_device", "sync",
           "total_steps"]

# Called after every optimizer step with (steps done, total steps): progress inside an epoch. It
# must be cheap and must not read the GPU (the callee throttles what it shows).
StepCallback = Callable[[int, int], None]

SCHEDULES = ("cosine", "linear", "exp")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}
# Steps between reads of the running loss on CUDA (each read waits for the GPU). On CPU every
# step is read: the CPU has computed it already, so a read costs nothing.
CUDA_FINITE_CHECK_STEPS = 16
# Fixed-point steps of refit_output_bias: on 5,000 CIFAR-10 images at the cpu preset a step moves
# the bias by under 1e-6 after about 20 and by rounding only after 50; each costs microseconds.
REFIT_ITERATIONS = 100


@dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, schedule, augmentation, precision. Units in the comments."""

    epochs: float = 10  # passes over the training images; a fraction ends the last pass early
    batch_size: int = 128  # images per optimizer step
    lr: float = 0.1  # peak learning rate (after warm-up)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # L2 coefficient on conv / linear weights
    decay_norm_and_bias: bool = False  # the seeds decay every parameter; the mobile recipe spares BN and biases
    schedule: str = "cosine"  # after warm-up: "cosine" or "linear" to 0 at the last step, "exp" x lr_decay per epoch
    warmup_epochs: float = 0.0  # linear warm-up from lr / steps to lr, epochs (fractions allowed)
    lr_decay: float = 0.98  # per-epoch factor of the "exp" schedule (seeds: 0.98)
    label_smoothing: float = 0.0  # PytorchInsight mobile recipe: 0.1
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    amp: str = "bf16"  # autocast dtype on CUDA: bf16 | fp16 | off (CPU always trains in float32)
    channels_last: bool = True  # NHWC on CUDA: cuDNN's fast layout for depthwise and 1x1 convs
    eval_batch_size: int = 1000  # images per evaluation step

    def validate(self) -> "Recipe":
        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")

        for name in ("batch_size", "eval_batch_size"):
            positive_int(name)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float)) or not 0 < self.epochs < math.inf:
            raise ValueError(f"epochs must be a finite number > 0, got {self.epochs!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"unknown amp {self.amp!r}; valid: {', '.join(AMP_DTYPES)}")
        self.augment.validate()
        return self


def total_steps(recipe: Recipe, steps_per_epoch: int) -> int:
    return max(1, round(recipe.epochs * steps_per_epoch))


def lr_factor(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) as a fraction of ``recipe.lr``."""
    warmup = round(recipe.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if recipe.schedule == "exp":
        return recipe.lr_decay ** (step // steps_per_epoch)
    total = total_steps(recipe, steps_per_epoch)
    progress = (step - warmup) / max(1, total - warmup)
    if recipe.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1 - progress


@dataclass(frozen=True)
class EpochStats:
    """One epoch, as reported to callbacks and kept in the history. NaN where not measured."""

    epoch: int  # 1-based; the last one may be a partial pass when epochs is a fraction
    train_loss: float  # mean training loss of the epoch (augmented, smoothed targets)
    val_acc: float  # top-1 on the validation split, in [0, 1]
    val_loss: float
    lr: float  # at the last step of the epoch
    images: int  # training images seen so far
    train_time_s: float  # training time so far, evaluation excluded
    elapsed_s: float  # wall time so far, evaluation included
    val_acc_as_trained: float | None = None  # top-1 without the refit output bias; None when none was refit


@dataclass(frozen=True)
class FitResult:
    """How ``Trainer.fit`` ended: status "ok" or "diverged" (a NaN / inf loss), and every epoch."""

    status: str
    history: tuple[EpochStats, ...]
    train_time_s: float  # training steps only, earlier launches of a resumed run included
    eval_time_s: float  # validation passes of this launch

    @property
    def last(self) -> EpochStats | None:
        return self.history[-1] if self.history else None


def resolve_device(name: str) -> str:
    """``auto`` -> cuda when available, else cpu; refuses cuda on a machine without it."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(name).type
    except (RuntimeError, TypeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda", "mps"):
        raise SearchError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N")
    if kind == "cuda" and torch.device(name).index is not None and torch.cuda.is_available() \
            and torch.device(name).index >= torch.cuda.device_count():
        raise SearchError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise SearchError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SearchError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return name


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock times are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """A model, its optimizer and the random streams of one run, over device-resident data.

    ``seed`` fixes the batch order and every augmentation (a generator on the device plus a Python
    ``random.Random``) and the global torch seed (dropout). The model's initial weights are the
    caller's: seed before building it.
    """

    def __init__(
        self,
        model: nn.Module,
        recipe: Recipe,
        *,
        device: torch.device | str,
        seed: int,
        num_classes: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        train_images: int,
    ) -> None:
        self.recipe = recipe.validate()
        self.device = torch.device(device)
        self.num_classes = num_classes
        self.train_images = train_images
        self.steps_per_epoch = max(1, train_images // recipe.batch_size)  # drop the ragged last batch
        self.total_steps = total_steps(recipe, self.steps_per_epoch)
        self.step = 0
        self.epoch = 0

        cuda = self.device.type == "cuda"
        self.channels_last = cuda and recipe.channels_last
        self.amp_dtype = AMP_DTYPES[recipe.amp] if cuda else None
        self.model = model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.optimizer = self._make_optimizer()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.normalize = make_normalizer(mean, std, self.device)

        torch.manual_seed(seed)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.rng = random.Random(seed)
        self.logit_bias: torch.Tensor | None = None  # added to every scored logit (refit_output_bias)

    # ------------------------------------------------------------------ setup
    def _make_optimizer(self) -> torch.optim.SGD:
        r = self.recipe
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                # ndim <= 1: BN scales and shifts, biases. Decaying them only shrinks the output scale.
                (decay if p.ndim > 1 or r.decay_norm_and_bias else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": r.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.SGD([g for g in groups if g["params"]], lr=r.lr, momentum=r.momentum, nesterov=r.nesterov and r.momentum > 0)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    # ------------------------------------------------------------------ training
    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    def train_epoch(self, images: torch.Tensor, labels: torch.Tensor, on_step: StepCallback | None = None) -> float:
        """One pass over the first ``train_images`` of ``images`` in a fresh random order (cut short
        where the recipe's fractional epochs end).

        Returns the mean training loss, or NaN as soon as a non-finite loss is seen (the epoch
        stops there: the weights are lost to NaN already).
        """
        r = self.recipe
        self.model.train()
        check_every = CUDA_FINITE_CHECK_STEPS if self.device.type == "cuda" else 1
        order = torch.randperm(self.train_images, device=self.device, generator=self.generator)
        loss_sum = torch.zeros((), device=self.device)
        steps = min(self.steps_per_epoch, self.total_steps - self.step)
        for i in range(steps):
            lr = r.lr * lr_factor(r, self.step, self.steps_per_epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            idx = order[i * r.batch_size : (i + 1) * r.batch_size]
            x, target = augment_batch(
                images[idx], labels[idx], r.augment, self.num_classes, self.normalize, self.generator, self.rng
            )
            with self._autocast():
                logits = self.model(self._prepare(x))
            loss = F.cross_entropy(logits.float(), target, label_smoothing=r.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            loss_sum += loss.detach()
            if on_step is not None:
                on_step(self.step, self.total_steps)
            if (i + 1) % check_every == 0 and not torch.isfinite(loss_sum).item():
                return math.nan
        self.epoch += 1
        mean = loss_sum.item() / max(1, steps)
        return mean if math.isfinite(mean) else math.nan

    @torch.no_grad()
    def recalibrate_bn(self, images: torch.Tensor, count: int) -> None:
        """Recompute every BatchNorm's running statistics as the plain average over the first
        ``count`` training images (no augmentation), in place of the momentum-weighted ones.

        Short proxy runs end at a high learning rate, where the running statistics lag the
        weights; scoring with stale statistics adds noise that has nothing to do with the
        architecture. The images are a fixed slice, the same for every trial of a run.
        """
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms or count <= 0:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every batch weighs the same
        self.model.train()
        batch = self.recipe.eval_batch_size
        for start in range(0, min(count, len(images)), batch):
            x = self.normalize(images[start : min(start + batch, count)])
            with self._autocast():
                self.model(self._prepare(x))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum

    @torch.no_grad()
    def refit_output_bias(self, images: torch.Tensor, labels: torch.Tensor, count: int) -> None:
        """Refit the output layer's bias, the rest of the network frozen, by maximum likelihood on the
        first ``count`` training images (no augmentation); every later score adds it to the logits.

        A short run ends with a classifier skewed towards some classes (on real CIFAR-10 at the
        ``cpu`` preset, a fifth of the held-out predictions in excess of a uniform spread), and how
        skewed depends on the seed: the refit takes that out of the score (BENCHMARKS.md, "Refitting
        the output bias"). The likelihood is convex in the bias and its optimum is where the mean
        predicted probability of each class equals its frequency among the images: the fixed-point
        iteration of Saerens et al. (2002) reaches it in a few dozen steps over cached logits (10
        numbers; a general optimizer would add nothing). The weights and checkpoints are unchanged.
        """
        self.logit_bias = None
        count = min(count, len(labels))
        if count <= 0:
            return
        logits = torch.cat([chunk for _, chunk in self._logits(images[:count])]).double()
        classes = logits.shape[1]
        # add-one smoothing: a class absent from the images gets a finite bias, not -inf
        log_prior = ((torch.bincount(labels[:count], minlength=classes).double() + 1) / (count + classes)).log()
        bias = torch.zeros(classes, dtype=torch.float64, device=logits.device)
        for _ in range(REFIT_ITERATIONS):
            bias += log_prior - torch.softmax(logits + bias, dim=1).mean(0).log()
        self.logit_bias = bias.float()

    def fit(
        self,
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        *,
        eval_every: int = 1,
        bn_recalibration_images: int = 0,
        refit_bias_images: int = 0,
        eval_flip: bool = False,
        history: Sequence[EpochStats] = (),
        on_epoch: Callable[[EpochStats], None] | None = None,
        on_step: StepCallback | None = None,
    ) -> FitResult:
        """The one epoch loop: train to the recipe's last step, validate every ``eval_every``
        epochs and after the last, time it honestly, stop at the first non-finite loss.

        ``history``: the epochs of an earlier launch when resuming from a checkpoint (times go on
        from there). ``on_epoch`` is called after every epoch; an exception it raises ends the run
        and propagates. Epochs that are not validated repeat the last validation's numbers.
        ``bn_recalibration_images``: recompute BN statistics on that many training images before
        each validation (``recalibrate_bn``); 0 keeps the running statistics. ``refit_bias_images``:
        refit the output bias on that many training images before each validation
        (``refit_output_bias``); 0 scores the logits as trained. ``eval_flip``: validate
        with test-time flips (``evaluate(..., flip=True)``).
        ``on_step(step, total_steps)`` is called after every optimizer step (progress display).
        """
        history = list(history)
        train_time = history[-1].train_time_s if history else 0.0
        eval_time = 0.0
        started = time.perf_counter() - (history[-1].elapsed_s if history else 0.0)
        images_per_step = min(self.recipe.batch_size, self.train_images)
        status, val_acc, val_loss, val_acc_as_trained = "ok", math.nan, math.nan, None
        while not self.done:
            sync(self.device)
            t0 = time.perf_counter()
            train_loss = self.train_epoch(*train, on_step=on_step)
            sync(self.device)
            train_time += time.perf_counter() - t0
            if math.isnan(train_loss):
                status = "diverged"
            elif self.done or self.epoch % eval_every == 0:
                t0 = time.perf_counter()
                self.recalibrate_bn(train[0], bn_recalibration_images)
                self.refit_output_bias(*train, refit_bias_images)
                val_acc, val_loss, val_acc_as_trained = self._score(*val, flip=eval_flip)
                eval_time += time.perf_counter() - t0
                if not math.isfinite(val_loss):
                    status = "diverged"
            if status == "diverged":
                val_acc, val_loss, val_acc_as_trained = math.nan, math.nan, None
            stats = EpochStats(
                # a diverged epoch stops before it counts itself
                epoch=self.epoch + math.isnan(train_loss), train_loss=train_loss, val_acc=val_acc,
                val_loss=val_loss, lr=self.lr, images=self.step * images_per_step, train_time_s=train_time,
                elapsed_s=time.perf_counter() - started, val_acc_as_trained=val_acc_as_trained,
            )
            history.append(stats)
            if on_epoch is not None:
                on_epoch(stats)
            if status == "diverged":
                break
        return FitResult(status, tuple(history), train_time, eval_time)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # ------------------------------------------------------------------ evaluation
    def _logits(self, images: torch.Tensor, flip: bool = False) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, float logits) per evaluation batch, in eval mode, as trained (without ``logit_bias``); no
        augmentation, or with ``flip`` the mean of the logits of each image and its mirror image. Callers
        disable gradients."""
        self.model.eval()
        try:
            for start in range(0, len(images), self.recipe.eval_batch_size):
                x = self._prepare(self.normalize(images[start : start + self.recipe.eval_batch_size]))
                with self._autocast():
                    logits = self.model(x).float()
                    if flip:
                        logits = (logits + self.model(x.flip(-1)).float()) / 2
                yield start, logits
        finally:
            self.model.train()

    def _with_bias(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.logit_bias is None else logits + self.logit_bias

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, flip: bool = False) -> tuple[float, float]:
        """(top-1 accuracy in [0, 1], mean cross-entropy) of the model in eval mode; no augmentation, or
        with ``flip`` from the mean of the logits of each image and its mirror image."""
        return self._score(images, labels, flip)[:2]

    @torch.no_grad()
    def _score(self, images: torch.Tensor, labels: torch.Tensor, flip: bool) -> tuple[float, float, float | None]:
        """``evaluate``'s pair and the top-1 accuracy without the refit output bias (None when none)."""
        if len(labels) == 0:
            return math.nan, math.nan, None
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        correct_as_trained = torch.zeros((), dtype=torch.int64, device=self.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        for start, as_trained in self._logits(images, flip):
            logits = self._with_bias(as_trained)
            y = labels[start : start + len(logits)]
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            if self.logit_bias is not None:
                correct_as_trained += (as_trained.argmax(1) == y).sum()
        as_trained = correct_as_trained.item() / len(labels) if self.logit_bias is not None else None
        return correct.item() / len(labels), loss_sum.item() / len(labels), as_trained

    @torch.no_grad()
    def predict(self, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
        """The predicted class of every image (int64, on the trainer's device), as ``evaluate`` scores them;
        ``flip``: from the mean of the logits of each image and its mirror image (test-time augmentation)."""
        return torch.cat([self._with_bias(logits).argmax(1) for _, logits in self._logits(images, flip)]) if len(images) else \
            torch.empty(0, dtype=torch.int64, device=self.device)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything needed to continue exactly where this left off (CPU tensors only)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "generator": self.generator.get_state(),
            "rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.generator.set_state(state["generator"])
        self.rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
