"""How many trials share one GPU, from its memory and a trial process's measured footprint.

A small proxy leaves most of a large GPU idle, so several trial processes (local ``--workers N``
on one device) or Ray trials holding a fraction of a GPU (``--gpus-per-trial``) can share it.
Memory bounds how many fit; whether they run faster together is measured, not assumed
(``benchmarks/gpu_check.py``: trials_per_min_by_workers).
"""

from __future__ import annotations

import math

__all__ = ["gpu_fraction", "trials_per_device"]


def trials_per_device(device_mb: float, process_mb: float, *, reserve_fraction: float = 0.1, cap: int = 8) -> int:
    """Concurrent trial processes whose footprints fit in ``device_mb`` with ``reserve_fraction`` left free.

    ``process_mb``: one trial process's device memory (CUDA context, cached allocations, the
    resident data set, its largest network's training), e.g. (memory used with N processes -
    memory used before them) / N. At least 1 (a trial that does not fit fails on its own, with
    its reason), at most ``cap``.
    """
    if not (device_mb > 0 and math.isfinite(device_mb)):
        raise ValueError(f"device_mb must be a finite number > 0, got {device_mb!r}")
    if not (process_mb > 0 and math.isfinite(process_mb)):
        raise ValueError(f"process_mb must be a finite number > 0, got {process_mb!r}")
    if not 0 <= reserve_fraction < 1:
        raise ValueError(f"reserve_fraction must be in [0, 1), got {reserve_fraction!r}")
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap!r}")
    return max(1, min(cap, math.floor(device_mb * (1 - reserve_fraction) / process_mb)))


def gpu_fraction(trials: int) -> float:
    """Ray's ``num_gpus`` per trial for ``trials`` trials on one GPU: 1/trials, rounded down to
    Ray's 4 decimals so that ``trials`` of them never exceed the GPU (1/3 -> 0.3333)."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be an integer >= 1, got {trials!r}")
    return math.floor(10_000 / trials) / 10_000
