"""The shared conv-BN-activation primitive and the activation registry."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

ACTIVATION_LAYERS: dict[str, Callable[[], nn.Module]] = {
    "none": nn.Identity,
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "hswish": lambda: nn.Hardswish(inplace=True),
}


def make_act(name: str) -> nn.Module:
    """An activation module by name (``"none"`` gives ``nn.Identity``)."""
    try:
        return ACTIVATION_LAYERS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATION_LAYERS)}") from None


class ConvBNAct(nn.Sequential):
    """Conv2d (bias-free unless asked) + BatchNorm2d + activation; padding keeps 'same' size at stride 1."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str = "relu",
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        padding = dilation * (kernel - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation=dilation, groups=groups, bias=bias),
            nn.BatchNorm2d(out_ch),
            make_act(act),
        )
