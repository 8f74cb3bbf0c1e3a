"""The (accuracy up, MACs down) Pareto front, its hypervolume, and picking one trial from it."""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.engine.attributes import ATTR, STATUS, counted


class Point(NamedTuple):
    acc: float
    macs: float
    number: int


def feasible_trials(study: optuna.Study, max_macs: int | None = None) -> list[FrozenTrial]:
    """Trained trials with a result (duplicates excluded: they repeat their twin's point)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get(ATTR.STATUS) != STATUS.OK:
            continue
        if max_macs is not None and t.values[1] > max_macs:
            continue
        out.append(t)
    return out


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Non-dominated points (higher acc, lower MACs), sorted by MACs ascending."""
    front: list[Point] = []
    for p in sorted(points, key=lambda p: (p.macs, -p.acc)):
        if not front or p.acc > front[-1].acc:
            front.append(p)
    return front


def front_trials(study: optuna.Study, max_macs: int | None = None) -> list[FrozenTrial]:
    """The discovered Pareto front, sorted by MACs: Optuna's ``best_trials`` (non-dominated,
    constraints honoured), less duplicates (their twin stands for them) and, of trials with equal
    values, all but the first."""
    front: dict[tuple[float, ...], FrozenTrial] = {}
    for t in sorted(study.best_trials, key=lambda t: t.number):
        if t.user_attrs.get(ATTR.STATUS) == STATUS.OK and (max_macs is None or t.values[1] <= max_macs):
            front.setdefault(tuple(t.values), t)
    return sorted(front.values(), key=lambda t: (t.values[1], -t.values[0]))


def hypervolume_2d(points: Sequence[Point], ref_macs: float, ref_acc: float = 0.0) -> float:
    """Area dominated by ``points`` with acc above ``ref_acc`` and MACs below ``ref_macs``.

    Hand-rolled: in 2-D this is a sort and a sum of strips, and Optuna's hypervolume is private API.
    """
    front = pareto_front([p for p in points if p.macs < ref_macs and p.acc > ref_acc])
    area = 0.0
    for i, p in enumerate(front):  # each front point owns the strip up to the next cheaper-is-worse point
        next_macs = front[i + 1].macs if i + 1 < len(front) else ref_macs
        area += (next_macs - p.macs) * (p.acc - ref_acc)
    return area


def hypervolume_history(trials: Sequence[FrozenTrial], ref_macs: float) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the front of all trials up to it), MACs in millions."""
    history, points = [], []
    for t in sorted(trials, key=lambda t: t.number):
        points.append(Point(t.values[0], t.values[1] / 1e6, t.number))
        history.append((t.number, hypervolume_2d(points, ref_macs / 1e6)))
    return history


def hypervolume_by_budget(trials: Sequence[FrozenTrial], ref_macs: float, ref_acc: float = 0.0) -> list[float]:
    """Hypervolume after each counted trial: entry k-1 is the front's after the first k trials
    that count towards the budget (by trial number). A counted trial without a result (failed,
    diverged) or repeating an earlier one (duplicate) spends budget and adds no point; trials
    that do not count (infeasible, prescreened, stale) are skipped. MACs in millions."""
    history, points = [], []
    for t in sorted(trials, key=lambda t: t.number):
        if not counted(t):
            continue
        if t.state == TrialState.COMPLETE and t.user_attrs.get(ATTR.STATUS) == STATUS.OK:
            points.append(Point(t.values[0], t.values[1] / 1e6, t.number))
        history.append(hypervolume_2d(points, ref_macs / 1e6, ref_acc))
    return history


def pick_trial(front: Sequence[FrozenTrial], how: str) -> FrozenTrial:
    """accuracy: the most accurate; smallest: the cheapest; knee: the point farthest from the
    line between the front's ends (normalised axes), a common default trade-off."""
    if not front:
        raise ValueError("the Pareto front is empty: no trial finished with a result")
    if how == "accuracy":
        return max(front, key=lambda t: (t.values[0], -t.values[1]))
    if how == "smallest":
        return min(front, key=lambda t: (t.values[1], -t.values[0]))
    if how == "knee":
        if len(front) < 3:
            return max(front, key=lambda t: (t.values[0], -t.values[1]))
        accs = [t.values[0] for t in front]
        macs = [t.values[1] for t in front]
        a0, a1, m0, m1 = min(accs), max(accs), min(macs), max(macs)
        norm = [((m - m0) / ((m1 - m0) or 1), (a - a0) / ((a1 - a0) or 1)) for m, a in zip(macs, accs)]
        (x0, y0), (x1, y1) = norm[0], norm[-1]
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        dist = [abs((y1 - y0) * x - (x1 - x0) * y + x1 * y0 - y1 * x0) / length for x, y in norm]
        return front[max(range(len(front)), key=dist.__getitem__)]
    raise ValueError(f"unknown pick {how!r}; valid: accuracy, knee, smallest")
