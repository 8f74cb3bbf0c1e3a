"""Batched data augmentation on the training device: one call per batch, no per-image Python.

Per-image randomness (crop offsets, flips, cutout centres, mixing partners) comes from a
``torch.Generator`` on the batch's device; per-batch scalars (mixup / CutMix weights) from a
``random.Random``. Both are seeded per trial, so a seed fixes every augmentation exactly.

Crop and flip run on uint8 (4x less memory traffic than float); cutout and mixing run after
normalisation, so cutout's zeros are the data mean (as in DeVries & Taylor's code).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "AugmentConfig",
    "augment_batch",
    "crop",
    "cutmix",
    "cutout",
    "hflip",
    "make_normalizer",
    "mixup",
    "random_crop",
    "random_hflip",
]


@dataclass(frozen=True)
class AugmentConfig:
    crop_padding: int = 4  # pixels of zero padding before a random crop back to size; 0 = off (seeds: 4)
    flip: bool = True  # random horizontal flip with p = 1/2
    cutout: int = 0  # side of a zeroed square at a random centre, pixels; 0 = off (DeVries & Taylor 2017: 16)
    mixup_alpha: float = 0.0  # mixing weight ~ Beta(alpha, alpha); 0 = off (PytorchInsight mobile recipe: 0.2)
    cutmix_alpha: float = 0.0  # box area ~ Beta(alpha, alpha); 0 = off (CutMix paper: 1.0)
    # With both mixup and CutMix on, each batch uses one of them, chosen with p = 1/2 (as timm does).

    def validate(self) -> "AugmentConfig":
        for name in ("crop_padding", "cutout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"augment.{name} must be an integer >= 0 (pixels), got {value!r}")
        for name in ("mixup_alpha", "cutmix_alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"augment.{name} must be a number >= 0 (0 = off), got {value!r}")
        return self

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


# ----------------------------------------------------------------------------- geometry (uint8 or float)


def crop(x: torch.Tensor, padding: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Zero-pad each image by ``padding`` and cut an HxW window at offsets (dy, dx) in [0, 2*padding].

    Offsets (padding, padding) give the image back unchanged. Two gathers, one per axis.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = dy.view(n, 1, 1, 1) + torch.arange(h, device=x.device).view(1, 1, h, 1)
    x = padded.gather(2, rows.expand(n, c, h, w + 2 * padding))
    cols = dx.view(n, 1, 1, 1) + torch.arange(w, device=x.device).view(1, 1, 1, w)
    return x.gather(3, cols.expand(n, c, h, w))


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """torchvision's ``RandomCrop(size, padding)`` for a whole batch, one offset pair per image."""
    if padding == 0:
        return x
    dy, dx = torch.randint(0, 2 * padding + 1, (2, len(x)), device=x.device, generator=generator)
    return crop(x, padding, dy, dx)


def hflip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror the images where ``mask`` (bool, one per image) is set; the rest pass through."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    mask = torch.rand(len(x), device=x.device, generator=generator) < 0.5
    return hflip(x, mask)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a ``size``x``size`` square per image at a uniform random centre (clipped at the edges)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w, (n, 1, 1, 1), device=x.device, generator=generator)
    ys = torch.arange(h, device=x.device).view(1, 1, h, 1) - cy + size // 2
    xs = torch.arange(w, device=x.device).view(1, 1, 1, w) - cx + size // 2
    inside = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)
    return x.masked_fill(inside, 0)


# ----------------------------------------------------------------------------- mixing (float, soft targets)


def _one_hot(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    return F.one_hot(y, num_classes).to(dtype)


def mixup(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, alpha: float, generator: torch.Generator | None, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """mixup (Zhang et al. 2018): blend each image with a random partner; soft targets blend alike."""
    lam = rng.betavariate(alpha, alpha)
    perm = torch.randperm(len(x), device=x.device, generator=generator)
    target = _one_hot(y, num_classes, x.dtype)
    return x.lerp(x[perm], 1 - lam), target.lerp(target[perm], 1 - lam)


def cutmix(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, alpha: float, generator: torch.Generator | None, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019): paste a box from a random partner; targets weighted by area."""
    n, _, h, w = x.shape
    lam = rng.betavariate(alpha, alpha)
    cut = math.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = rng.randrange(h), rng.randrange(w)
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
    perm = torch.randperm(n, device=x.device, generator=generator)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    pasted = (y1 - y0) * (x1 - x0) / (h * w)  # the clipped box, not the drawn one, sets the weight
    target = _one_hot(y, num_classes, x.dtype)
    return x, target.lerp(target[perm], pasted)


# ----------------------------------------------------------------------------- one batch


def make_normalizer(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 [0, 255] -> float32 (x / 255 - mean) / std, folded into one multiply-add."""
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    scale = 1 / (255 * std_t)
    shift = -torch.tensor(mean, device=device).view(1, -1, 1, 1) / std_t
    return lambda x: torch.addcmul(shift, x.float(), scale)


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    config: AugmentConfig,
    num_classes: int,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator | None,
    rng: random.Random,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and int64 labels -> augmented float images and targets.

    Targets are the labels unchanged, or class probabilities (N, num_classes) when mixup/CutMix
    mixed the batch; ``F.cross_entropy`` takes either.
    """
    x = random_crop(x, config.crop_padding, generator)
    if config.flip:
        x = random_hflip(x, generator)
    x = normalize(x)
    if config.cutout:
        x = cutout(x, config.cutout, generator)
    if not config.mixes:
        return x, y
    use_mixup = config.mixup_alpha > 0 and (config.cutmix_alpha == 0 or rng.random() < 0.5)
    if use_mixup:
        return mixup(x, y, num_classes, config.mixup_alpha, generator, rng)
    return cutmix(x, y, num_classes, config.cutmix_alpha, generator, rng)
