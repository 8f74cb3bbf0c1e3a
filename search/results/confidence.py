"""Accuracy over repeated seeds: mean, standard deviation, 95% confidence interval of the mean, and
whether one network dominates another with confidence.

"Dominates with confidence": at most the other's MACs, and a mean accuracy higher by more than the
half-width of the 95% confidence interval of the difference of the two means (Welch's t interval:
the seeds of the two networks are separate trainings with their own spread). With fewer than two
seeds on either side there is no interval, and no claim.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

__all__ = ["Estimate", "Network", "dominates_with_confidence", "estimate", "reference_claims", "t_quantile"]

LEVEL = 0.95


def t_quantile(level: float, df: float) -> float:
    """Two-sided Student t quantile for ``level`` with ``df`` degrees of freedom."""
    from scipy import stats  # optional heavy import (seconds of start-up): only where intervals are computed

    return float(stats.t.ppf(0.5 + level / 2, df))


@dataclass(frozen=True)
class Estimate:
    """Accuracy over ``n`` seeds: mean, sample std (NaN with one seed), CI half-width (NaN with one seed)."""

    mean: float
    std: float
    n: int
    ci: float


def estimate(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """Mean, std and the ``level`` confidence interval half-width of the mean (Student t)."""
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Estimate(mean, math.nan, len(values), math.nan)
    std = statistics.stdev(values)
    return Estimate(mean, std, len(values), t_quantile(level, len(values) - 1) * std / math.sqrt(len(values)))


def difference_ci(a: Estimate, b: Estimate, level: float = LEVEL) -> float:
    """Half-width of the Welch t interval of ``a.mean - b.mean`` (NaN without two seeds each)."""
    if a.n < 2 or b.n < 2:
        return math.nan
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    return t_quantile(level, df) * se


def dominates_with_confidence(a: Estimate, a_macs: float, b: Estimate, b_macs: float, level: float = LEVEL) -> bool:
    """Whether ``a`` (at ``a_macs``) dominates ``b`` with confidence: no more MACs and a mean
    higher by more than the interval of the difference."""
    half = difference_ci(a, b, level)
    return a_macs <= b_macs and not math.isnan(half) and a.mean - b.mean > half


@dataclass(frozen=True)
class Network:
    """A network of the run as the claims see it."""

    number: int
    reference: str | None
    macs: float
    acc: Estimate
    rung: int


def reference_claims(networks: Sequence[Network]) -> list[str]:
    """One sentence per reference: which discovered networks dominate it with confidence, or that
    none does (and why no claim could be made, when the seeds are too few)."""
    found = [n for n in networks if not n.reference]
    lines = []
    for ref in sorted((n for n in networks if n.reference), key=lambda n: n.macs):
        winners = [n for n in found if dominates_with_confidence(n.acc, n.macs, ref.acc, ref.macs)]
        if winners:
            names = ", ".join(f"trial {n.number} ({100 * n.acc.mean:.2f}% vs {100 * ref.acc.mean:.2f}%, "
                              f"{n.macs / 1e6:.1f}M vs {ref.macs / 1e6:.1f}M MACs)" for n in winners)
            lines.append(f"{ref.reference}: dominated with 95% confidence by {names}")
        elif ref.acc.n < 2:
            lines.append(f"{ref.reference}: no discovered network dominates it with confidence "
                         f"(it has {ref.acc.n} seed; a claim needs >= 2, see --repeats)")
        else:
            lines.append(f"{ref.reference}: no discovered network dominates it with confidence")
    return lines
