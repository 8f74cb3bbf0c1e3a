"""Weights from the ecosystem: load a torchvision or timm state dict into our reference models.

Our modules register their parameters in the order torchvision and timm do (ShuffleNet's
projection branch before the main branch, a ResNet block's attention before its shortcut), so a
state dict of the same architecture maps onto ours entry by entry, in order. Each pair is checked:
the same kind of entry (``weight``, ``bias``, ``running_mean``, ...) and the same shape, where a
1x1 conv kernel (O, I, 1, 1) fits a Linear weight (O, I) and timm's ``LayerNorm2d`` (C,) fits our
``LayerNorm`` (C, 1, 1). The first pair that does not fit is named in a one-line ValueError.

The one convention that differs inside a module is remapped: timm's CBAM feeds its 7x7 spatial conv
[mean, max] over the channels, PytorchInsight's (ours) [max, mean].

    model = build_model(get_reference("resnet50_imagenet").spec, 1000)
    load_ecosystem_weights(model, torchvision.models.resnet50(weights="IMAGENET1K_V2").state_dict())

``ECOSYSTEM_MODELS`` lists the torchvision and timm models whose architecture is exactly one of
ours, with the spec to build (tested with randomly initialised source models).
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn as nn

from blocks.attention.cbam import CBAM
from space.references import get_reference
from space.references.shufflenet import torchvision_shufflenetv2
from space.spec import ArchSpec

__all__ = ["ECOSYSTEM_MODELS", "SOURCES", "convert_state_dict", "ecosystem_spec", "load_ecosystem_weights"]

SOURCES = ("torchvision", "timm")

# (source, model name) -> the spec of the same architecture (1000 classes).
ECOSYSTEM_MODELS: dict[tuple[str, str], Callable[[], ArchSpec]] = {
    ("torchvision", "mobilenet_v2"): lambda: get_reference("mobilenetv2_imagenet").spec,
    ("torchvision", "resnet50"): lambda: get_reference("resnet50_imagenet").spec,
    ("torchvision", "resnet101"): lambda: get_reference("resnet101_imagenet").spec,
    **{("torchvision", f"shufflenet_v2_x{w.replace('.', '_')}"): (lambda w=w: torchvision_shufflenetv2(w))
       for w in ("0.5", "1.0", "1.5", "2.0")},
    ("timm", "resnet50"): lambda: get_reference("resnet50_imagenet").spec,
    ("timm", "resnet101"): lambda: get_reference("resnet101_imagenet").spec,
    ("timm", "seresnet50"): lambda: get_reference("se_resnet50_imagenet").spec,
    ("timm", "seresnet101"): lambda: get_reference("se_resnet101_imagenet").spec,
}


def ecosystem_spec(source: str, name: str) -> ArchSpec:
    """The spec of our network that has the architecture of ``source``'s model ``name``."""
    try:
        return ECOSYSTEM_MODELS[source, name]()
    except KeyError:
        valid = ", ".join(f"{s}:{n}" for s, n in ECOSYSTEM_MODELS)
        raise ValueError(f"no spec known for {source} model {name!r}; known: {valid}") from None


def _trimmed(shape: torch.Size) -> tuple[int, ...]:
    """The shape without trailing size-1 dims: (O, I, 1, 1) -> (O, I), (C, 1, 1) -> (C,)."""
    dims = list(shape)
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def _remaps(model: nn.Module, source: str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Target key -> how to turn the source tensor into ours, where a convention differs."""
    remaps: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    if source == "timm":
        for prefix, module in model.named_modules():
            if isinstance(module, CBAM):  # timm: [mean, max] into the 7x7 conv; ours: [max, mean]
                remaps[f"{prefix}.spatial.0.weight".lstrip(".")] = lambda w: w.flip(1)
    return remaps


def convert_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module, source: str = "torchvision"
) -> dict[str, torch.Tensor]:
    """``state_dict`` (of a ``source`` model) rekeyed and reshaped to ``model``'s state dict."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
    theirs = list(state_dict.items())
    ours = list(model.state_dict().items())
    remaps = _remaps(model, source)
    out: dict[str, torch.Tensor] = {}
    for i in range(max(len(theirs), len(ours))):
        if i >= len(theirs) or i >= len(ours):
            extra = f"{source} has {theirs[i][0]!r} more" if i < len(theirs) else f"ours has {ours[i][0]!r} more"
            raise ValueError(f"cannot load the {source} state dict: {len(theirs)} entries for our {len(ours)}; "
                             f"at entry {i} {extra}; the architectures differ")
        (src_key, src), (key, dst) = theirs[i], ours[i]
        same_kind = src_key.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]
        if not same_kind or _trimmed(src.shape) != _trimmed(dst.shape):
            raise ValueError(f"cannot load the {source} state dict: entry {i}, {source} {src_key!r} "
                             f"{tuple(src.shape)} does not fit our {key!r} {tuple(dst.shape)}; the architectures differ there")
        value = remaps.get(key, lambda t: t)(src)
        out[key] = value.reshape(dst.shape).to(dtype=dst.dtype)
    return out


def load_ecosystem_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "torchvision") -> nn.Module:
    """Load a ``source`` ("torchvision" or "timm") state dict of the same architecture into
    ``model`` (see the module docstring); returns ``model``."""
    model.load_state_dict(convert_state_dict(state_dict, model, source), strict=True)
    return model
