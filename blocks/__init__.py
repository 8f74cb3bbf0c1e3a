"""Torch modules for every block family of the seed papers and ``build_model(spec, num_classes)``."""

from blocks.attention import create_attention
from blocks.cost import Cost, count_cost, count_module_cost
from blocks.layers import ConvBNAct, make_act
from blocks.model import Network, build_model
from blocks.registry import build_block, register_block

__all__ = [
    "ConvBNAct",
    "Cost",
    "Network",
    "build_block",
    "build_model",
    "count_cost",
    "count_module_cost",
    "create_attention",
    "make_act",
    "register_block",
]
