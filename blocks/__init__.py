"""Torch modules for every block family of the seed papers and ``build_model(spec, num_classes)``.

The names below load on first use (PEP 562): ``blocks.count_cost`` and ``blocks.cost`` stay
torch-free, so a command whose part counts are cached (``--references``, ``--describe``) starts
without importing torch; every other name imports its torch module when first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, for type checkers and editors
    from blocks.attention import create_attention  # noqa: F401
    from blocks.cost import Cost, count_cost  # noqa: F401
    from blocks.counting import count_module_cost  # noqa: F401
    from blocks.layers import ConvBNAct, make_act  # noqa: F401
    from blocks.model import Network, build_model  # noqa: F401
    from blocks.registry import build_block, register_block  # noqa: F401

# name -> the module that defines it
_HOMES = {
    "ConvBNAct": "blocks.layers",
    "Cost": "blocks.cost",
    "Network": "blocks.model",
    "build_block": "blocks.registry",
    "build_model": "blocks.model",
    "count_cost": "blocks.cost",
    "count_module_cost": "blocks.counting",
    "create_attention": "blocks.attention",
    "make_act": "blocks.layers",
    "register_block": "blocks.registry",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'blocks' has no attribute {name!r}")
    if _HOMES[name] != "blocks.cost":
        importlib.import_module("blocks.model")  # imports every block module: the registry is full
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
