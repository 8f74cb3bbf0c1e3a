"""WeightNet dynamic convolutions (Ma et al., "WeightNet: Revisiting the Design Space of Weight
Networks", ECCV 2020; REFERENCE_MODELS.md s.4), after the official MegEngine code.

Per unit, ``WeightNetGap`` squeezes the unit's (main-branch) input into ``x_gap``:
global average pool -> 1x1 conv C -> max(16, C // 16) with bias. Every generated conv then maps
``x_gap`` to its own per-sample kernel:

- ``WeightNetConv`` (dense inp -> oup, kernel k): fc1 = 1x1 conv -> M*oup (+bias), sigmoid;
  fc2 = 1x1 conv M*oup -> oup*inp*k*k with groups G*oup, no bias.
- ``WeightNetDWConv`` (depthwise over inp channels): fc1 -> (M/G)*inp (+bias), sigmoid;
  fc2 = 1x1 conv (M/G)*inp -> inp*k*k with groups inp, no bias.

The kernels of the whole batch run as one grouped conv over a (1, N*C, H, W) view (groups = N *
the conv's own groups). For batch 1 this is exactly the static conv, so ``FlopCounterMode`` counts
the generated conv like a static one, plus the (small) fc1/fc2 convs on the 1x1 ``x_gap``.
M = G = 2 is the paper's "WeightNet (1x)": fc2 then has as many weights as the static conv.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["WeightNetConv", "WeightNetDWConv", "WeightNetGap", "weightnet_gap_channels"]


def weightnet_gap_channels(in_ch: int) -> int:
    """Width of the shared ``x_gap`` of a unit whose generated convs read ``in_ch`` channels."""
    return max(16, in_ch // 16)


class WeightNetGap(nn.Module):
    """Global average pool + 1x1 conv (with bias): the per-unit input of every weight generator."""

    def __init__(self, in_ch: int, out_ch: int | None = None) -> None:
        super().__init__()
        self.out_channels = weightnet_gap_channels(in_ch) if out_ch is None else out_ch
        self.reduce = nn.Conv2d(in_ch, self.out_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(x.mean(dim=(2, 3), keepdim=True))


def _per_sample_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int) -> torch.Tensor:
    """Convolve sample i of ``x`` with kernel block i of ``weight`` (N*out, in/groups, k, k)."""
    n, c, h, w = x.shape
    k = weight.shape[-1]
    out = F.conv2d(x.reshape(1, n * c, h, w), weight, stride=stride, padding=k // 2, groups=n * groups)
    return out.reshape(n, -1, out.shape[2], out.shape[3])


class WeightNetConv(nn.Module):
    """A dense kxk conv ``inp -> oup`` (no bias) whose kernel is generated per sample from x_gap."""

    def __init__(self, inp: int, oup: int, kernel: int, stride: int, gap_channels: int, M: int = 2, G: int = 2) -> None:
        super().__init__()
        if M % G or (inp * kernel * kernel) % G:
            raise ValueError(
                f"WeightNet needs G dividing M and inp*k*k, got M={M}, G={G}, inp={inp}, k={kernel}"
            )
        self.inp, self.oup, self.kernel, self.stride = inp, oup, kernel, stride
        self.fc1 = nn.Conv2d(gap_channels, M * oup, 1, bias=True)
        self.fc2 = nn.Conv2d(M * oup, oup * inp * kernel * kernel, 1, groups=G * oup, bias=False)

    def forward(self, x: torch.Tensor, x_gap: torch.Tensor) -> torch.Tensor:
        weight = self.fc2(torch.sigmoid(self.fc1(x_gap)))
        weight = weight.reshape(-1, self.inp, self.kernel, self.kernel)  # (N*oup, inp, k, k)
        return _per_sample_conv(x, weight, self.stride, groups=1)

    def extra_repr(self) -> str:
        return f"{self.inp}, {self.oup}, kernel={self.kernel}, stride={self.stride}"


class WeightNetDWConv(nn.Module):
    """A depthwise kxk conv over ``inp`` channels whose kernel is generated per sample from x_gap."""

    def __init__(self, inp: int, kernel: int, stride: int, gap_channels: int, M: int = 2, G: int = 2) -> None:
        super().__init__()
        if M % G:
            raise ValueError(f"WeightNet's depthwise generator needs G dividing M, got M={M}, G={G}")
        self.inp, self.kernel, self.stride = inp, kernel, stride
        self.fc1 = nn.Conv2d(gap_channels, M // G * inp, 1, bias=True)
        self.fc2 = nn.Conv2d(M // G * inp, inp * kernel * kernel, 1, groups=inp, bias=False)

    def forward(self, x: torch.Tensor, x_gap: torch.Tensor) -> torch.Tensor:
        weight = self.fc2(torch.sigmoid(self.fc1(x_gap)))
        weight = weight.reshape(-1, 1, self.kernel, self.kernel)  # (N*inp, 1, k, k)
        return _per_sample_conv(x, weight, self.stride, groups=self.inp)

    def extra_repr(self) -> str:
        return f"{self.inp}, kernel={self.kernel}, stride={self.stride}"
