"""Attention modules behind one registry (timm's ``create_attn`` contract).

Every module takes ``channels`` first and maps (N, C, H, W) -> (N, C, H, W), so any of them plugs
into any block. ``create_attention(None, c)`` gives ``nn.Identity`` so forwards read straight.
The registry lives in ``blocks.attention.registry``; importing this package registers every module.
"""

from blocks.attention.registry import ATTENTION_MODULES, AttentionFactory, create_attention, register_attention
from blocks.attention import modules  # noqa: E402,F401  (registers every module)

__all__ = ["ATTENTION_MODULES", "AttentionFactory", "create_attention", "register_attention"]
