"""Attention modules behind one registry (timm's ``create_attn`` contract).

Every module takes ``channels`` first and maps (N, C, H, W) -> (N, C, H, W), so any of them plugs
into any block. ``create_attention(None, c)`` gives ``nn.Identity`` so forwards read straight.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from space.spec import AttentionSpec

AttentionFactory = Callable[[int, AttentionSpec], nn.Module]
ATTENTION_MODULES: dict[str, AttentionFactory] = {}


def register_attention(kind: str) -> Callable[[AttentionFactory], AttentionFactory]:
    """Decorator: ``factory(channels, spec) -> nn.Module`` for an attention kind."""

    def deco(fn: AttentionFactory) -> AttentionFactory:
        ATTENTION_MODULES[kind] = fn
        return fn

    return deco


def create_attention(spec: AttentionSpec | None, channels: int) -> nn.Module:
    """The attention module for ``spec`` over ``channels`` channels; Identity when spec is None."""
    if spec is None:
        return nn.Identity()
    _load_modules()
    try:
        factory = ATTENTION_MODULES[spec.kind]
    except KeyError:
        raise ValueError(
            f"unknown attention {spec.kind!r}; valid: {', '.join(sorted(ATTENTION_MODULES))}"
        ) from None
    return factory(channels, spec)


def _load_modules() -> None:
    # Importing the modules registers them; kept lazy so this package imports cheaply.
    import blocks.attention.modules  # noqa: F401
