"""The attention registry: kind -> ``factory(channels, spec) -> nn.Module``.

Kept apart from the package ``__init__`` so the modules can register themselves without importing
the package that imports them.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from space.spec import AttentionSpec

__all__ = ["ATTENTION_MODULES", "AttentionFactory", "create_attention", "register_attention"]

AttentionFactory = Callable[[int, AttentionSpec], nn.Module]
ATTENTION_MODULES: dict[str, AttentionFactory] = {}


def register_attention(kind: str) -> Callable[[AttentionFactory], AttentionFactory]:
    """Decorator: ``factory(channels, spec) -> nn.Module`` for an attention kind; a kind
    registered twice is a ValueError naming it."""

    def deco(fn: AttentionFactory) -> AttentionFactory:
        if kind in ATTENTION_MODULES:
            raise ValueError(f"attention kind {kind!r} is already registered (by {ATTENTION_MODULES[kind].__qualname__})")
        ATTENTION_MODULES[kind] = fn
        return fn

    return deco


def create_attention(spec: AttentionSpec | None, channels: int) -> nn.Module:
    """The attention module for ``spec`` over ``channels`` channels; Identity when spec is None."""
    if spec is None:
        return nn.Identity()
    try:
        factory = ATTENTION_MODULES[spec.kind]
    except KeyError:
        raise ValueError(
            f"unknown attention {spec.kind!r}; valid: {', '.join(sorted(ATTENTION_MODULES))}"
        ) from None
    return factory(channels, spec)
