"""The names the command line offers, and the small parsers of its values, importable without torch
or optuna: ``--help``, ``--references`` and ``--describe`` start in about a second instead of
three (``import torch`` alone takes 1.6-2.5 s on our 2-core machines).

Names defined here are the source for the modules that implement them (samplers, executors,
picks, data sets, objectives); the proxy presets and zero-cost proxies are dictionaries of torch
objects, so their names are repeated here and ``tests/cli/test_help.py`` checks the two agree.
"""

from __future__ import annotations

import math
import re

__all__ = ["DATASETS", "DEFAULT_OBJECTIVES", "EXECUTORS", "LATENCY_MODES", "OBJECTIVE_CHOICES", "PICKS",
           "PROXY_PRESETS", "SAMPLERS", "ZERO_COST_PROXY_NAMES", "default_num_classes", "parse_latency_ms"]

SAMPLERS = ("tpe", "nsga2", "random", "gp", "qmc")
EXECUTORS = ("local", "ray")
PICKS = ("accuracy", "knee", "smallest")
DATASETS = ("cifar10", "cifar100", "imagefolder", "synthetic")
# Classes of a data set known before it is loaded (an image folder has as many as its folders).
KNOWN_NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "synthetic": 10}
OBJECTIVE_CHOICES = ("accuracy", "macs", "params", "latency")  # search.engine.objectives.OBJECTIVES
DEFAULT_OBJECTIVES = ("accuracy", "macs")
LATENCY_MODES = ("lookup", "exact")
PROXY_PRESETS = ("gpu", "cpu", "smoke")  # search.train.proxy.PRESETS
ZERO_COST_PROXY_NAMES = ("synflow", "jacob_cov", "snip", "grad_norm", "vote")  # search.engine.zero_cost


def default_num_classes(name: str) -> int:
    """The number of classes of data set ``name`` without loading it (10 for an image folder)."""
    return KNOWN_NUM_CLASSES.get(name, 10)


_UNITS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}


def parse_latency_ms(text: str) -> float:
    """'5ms', '800us', '0.01s' -> milliseconds (a unit is required); ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|us|µs|s)\s*", str(text))
    if not m:
        raise ValueError(f"expected a latency with its unit like 5ms, 800us or 0.01s, got {text!r}")
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"expected a positive latency, got {text!r}")
    return value
