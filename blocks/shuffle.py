"""Channel shuffle (ShuffleNet, IGCV3's permutation) and its inverse.

``channel_shuffle(x, g)`` reads the C channels as a (g, C/g) grid and transposes it, so channel
``i * C/g + j`` moves to ``j * g + i`` (torchvision's ``channel_shuffle``, IGCV3's
``PermutationBlock``). Transposing a (C/g, g) grid undoes it: the inverse of a g-group shuffle is
a (C/g)-group shuffle, IGCV3's permutation after its second group conv.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["ChannelShuffle", "ChannelUnshuffle", "channel_shuffle", "channel_unshuffle"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` contiguous channel groups of an (N, C, H, W) tensor."""
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"channel shuffle needs groups dividing the channels, got {groups} groups for {c}")
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def channel_unshuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The inverse of ``channel_shuffle(x, groups)``."""
    c = x.shape[1]
    if c % groups:
        raise ValueError(f"channel unshuffle needs groups dividing the channels, got {groups} groups for {c}")
    return channel_shuffle(x, c // groups)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ChannelUnshuffle(nn.Module):
    """Undoes ``ChannelShuffle(groups)``."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_unshuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
