"""The Pareto front of the run's objectives (by default accuracy up, MACs down), its hypervolume,
and picking one trial from it. Which objectives, their directions and a trial's value of each:
``search.engine.objectives``."""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.engine.attributes import ATTR, STATUS, counted
from search.engine.objectives import DEFAULT_OBJECTIVES, Objectives

_DEFAULT = Objectives.parse(DEFAULT_OBJECTIVES)


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
        if max_macs is not None and t.user_attrs.get(ATTR.MACS, 0) > max_macs:
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


def front_order(objectives: Objectives) -> Callable[[FrozenTrial], tuple[float, ...]]:
    """Sort key of front trials: the cost objectives ascending, then the others descending (by
    default: MACs ascending, then accuracy descending)."""
    order = [objectives.index(o.name) for o in objectives.costs()] + [
        i for i, o in enumerate(objectives) if o.maximize]
    signs = [1.0 if not objectives[i].maximize else -1.0 for i in order]
    return lambda t: tuple(s * t.values[i] for s, i in zip(signs, order))


def front_trials(study: optuna.Study, max_macs: int | None = None) -> list[FrozenTrial]:
    """The discovered Pareto front, sorted by the cost objectives (MACs by default): Optuna's
    ``best_trials`` (non-dominated, constraints honoured), less duplicates (their twin stands for
    them) and, of trials with equal values, all but the first."""
    front: dict[tuple[float, ...], FrozenTrial] = {}
    for t in sorted(study.best_trials, key=lambda t: t.number):
        if t.user_attrs.get(ATTR.STATUS) == STATUS.OK and (max_macs is None or t.user_attrs.get(ATTR.MACS, 0) <= max_macs):
            front.setdefault(tuple(t.values), t)
    return sorted(front.values(), key=front_order(Objectives.of_study(study)))


def pair_front(trials: Sequence[FrozenTrial], objectives: Objectives, x: str, y: str) -> list[FrozenTrial]:
    """The trials no other of ``trials`` beats on both objectives ``x`` and ``y`` (one of equal
    pairs), sorted by ``x`` ascending: the 2-D front of a pair of a run's objectives."""
    sx = 1.0 if objectives[objectives.index(x)].maximize else -1.0  # +: larger is better
    sy = 1.0 if objectives[objectives.index(y)].maximize else -1.0
    pts = [(sx * objectives.value(t, x), sy * objectives.value(t, y), t) for t in trials]
    front: list[tuple[float, float, FrozenTrial]] = []
    for px, py, t in sorted(pts, key=lambda p: (-p[0], -p[1], p[2].number)):  # best x first
        if not front or py > front[-1][1]:
            front.append((px, py, t))
    return sorted((t for _, _, t in front), key=lambda t: (objectives.value(t, x), t.number))


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


def hypervolume(points: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """Volume dominated by ``points`` beyond the reference point ``ref``, every coordinate to be
    maximised (negate the ones to minimise); two or three dimensions.

    Hand-rolled (Optuna's is private API): in 2-D the strips of ``hypervolume_2d``, in the same
    order and arithmetic; in 3-D the 2-D areas of slabs along the last coordinate."""
    pts = [tuple(p) for p in points if all(v > r for v, r in zip(p, ref))]
    if len(ref) == 2:
        front: list[tuple[float, ...]] = []
        for p in sorted(pts, key=lambda p: (-p[1], -p[0])):
            if not front or p[0] > front[-1][0]:
                front.append(p)
        area = 0.0
        for i, p in enumerate(front):
            next_y = front[i + 1][1] if i + 1 < len(front) else ref[1]
            area += (p[1] - next_y) * (p[0] - ref[0])
        return area
    if len(ref) == 3:
        pts = [p for p in pts if not any(q != p and all(a >= b for a, b in zip(q, p)) for q in pts)]  # the front
        pts.sort(key=lambda p: -p[2])
        volume = 0.0
        for i, p in enumerate(pts):
            next_z = pts[i + 1][2] if i + 1 < len(pts) else ref[2]
            if p[2] > next_z:
                volume += (p[2] - next_z) * hypervolume([q[:2] for q in pts[: i + 1]], ref[:2])
        return volume
    raise ValueError(f"hypervolume of {len(ref)} objectives: two or three only")


def oriented(t: FrozenTrial, objectives: Objectives) -> tuple[float, ...]:
    """A trial's values in hypervolume units (``Objective.hv_divisor``), each to be maximised."""
    return tuple((1.0 if o.maximize else -1.0) * (v / o.hv_divisor) for o, v in zip(objectives, t.values))


def hypervolume_ref(objectives: Objectives, bounds: dict[str, float]) -> tuple[float, ...]:
    """The reference point in the units of ``oriented``: 0 for what is maximised (accuracy), and
    ``bounds[name]`` (a cost's limit, in its own units) for the costs."""
    return tuple(0.0 if o.maximize else -(bounds[o.name] / o.hv_divisor) for o in objectives)


def hypervolume_history(trials: Sequence[FrozenTrial], ref_macs: float, *, objectives: Objectives | None = None,
                        bounds: dict[str, float] | None = None) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the front of all trials up to it), MACs in millions.
    ``objectives`` (default: accuracy, macs) with the costs' ``bounds`` (default: MACs below ``ref_macs``)."""
    objectives = objectives or _DEFAULT
    if objectives.is_default and bounds is None:
        history, points = [], []
        for t in sorted(trials, key=lambda t: t.number):
            points.append(Point(t.values[0], t.values[1] / 1e6, t.number))
            history.append((t.number, hypervolume_2d(points, ref_macs / 1e6)))
        return history
    ref = hypervolume_ref(objectives, bounds or {"macs": ref_macs})
    history, pts = [], []
    for t in sorted(trials, key=lambda t: t.number):
        pts.append(oriented(t, objectives))
        history.append((t.number, hypervolume(pts, ref)))
    return history


def hypervolume_by_budget(trials: Sequence[FrozenTrial], ref_macs: float, ref_acc: float = 0.0, *,
                          objectives: Objectives | None = None, bounds: dict[str, float] | None = None) -> list[float]:
    """Hypervolume after each counted trial: entry k-1 is the front's after the first k trials
    that count towards the budget (by trial number). A counted trial without a result (failed,
    diverged) or repeating an earlier one (duplicate) spends budget and adds no point; trials
    that do not count (infeasible, prescreened, stale) are skipped. MACs in millions.
    ``objectives``/``bounds``: as ``hypervolume_history`` (then ``ref_acc`` is 0)."""
    objectives = objectives or _DEFAULT
    default = objectives.is_default and bounds is None
    ref = None if default else hypervolume_ref(objectives, bounds or {"macs": ref_macs})
    history, points = [], []
    for t in sorted(trials, key=lambda t: t.number):
        if not counted(t):
            continue
        if t.state == TrialState.COMPLETE and t.user_attrs.get(ATTR.STATUS) == STATUS.OK:
            points.append(Point(t.values[0], t.values[1] / 1e6, t.number) if default else oriented(t, objectives))
        history.append(hypervolume_2d(points, ref_macs / 1e6, ref_acc) if default else hypervolume(points, ref))
    return history


def pick_trial(front: Sequence[FrozenTrial], how: str, objectives: Objectives | None = None,
               axes: tuple[str, str] | None = None) -> FrozenTrial:
    """accuracy: the most accurate; smallest: the cheapest; knee: the point farthest from the
    line between the front's ends (normalised axes), a common default trade-off.

    With other ``objectives`` than (accuracy, macs): on the pair ``axes`` (x, y) (default
    ``objectives.axes()``: the first cost against accuracy): smallest is the lowest x, knee the
    knee of the 2-D front of the pair, accuracy the most accurate (ties: lowest x)."""
    if not front:
        raise ValueError("the Pareto front is empty: no trial finished with a result")
    objectives = objectives or _DEFAULT
    if not objectives.is_default or (axes is not None and tuple(axes) != ("macs", "accuracy")):
        return _pick_on(front, how, objectives, tuple(axes or objectives.axes()))
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


def _pick_on(front: Sequence[FrozenTrial], how: str, objectives: Objectives, axes: tuple[str, str]) -> FrozenTrial:
    x, y = axes
    ox = objectives[objectives.index(x)]
    cost, gain = (x, y) if not ox.maximize else (y, x)  # the axis to minimise, the other

    def better(name: str, t: FrozenTrial) -> float:  # larger is better
        return objectives.value(t, name) * (1.0 if objectives[objectives.index(name)].maximize else -1.0)

    if how == "accuracy":
        if "accuracy" not in objectives:
            raise ValueError("--pick accuracy needs accuracy among the objectives")
        return max(front, key=lambda t: (objectives.value(t, "accuracy"), better(cost, t), -t.number))
    if how == "smallest":
        return max(front, key=lambda t: (better(cost, t), better(gain, t), -t.number))
    if how == "knee":
        pair = pair_front(front, objectives, cost, gain)
        if len(pair) < 3:
            return max(pair, key=lambda t: (better(gain, t), better(cost, t), -t.number))
        xs = [better(cost, t) for t in pair]
        ys = [better(gain, t) for t in pair]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        norm = [((a - x0) / ((x1 - x0) or 1), (b - y0) / ((y1 - y0) or 1)) for a, b in zip(xs, ys)]
        (ax, ay), (bx, by) = norm[0], norm[-1]
        length = math.hypot(bx - ax, by - ay) or 1.0
        dist = [abs((by - ay) * px - (bx - ax) * py + bx * ay - by * ax) / length for px, py in norm]
        return pair[max(range(len(pair)), key=dist.__getitem__)]
    raise ValueError(f"unknown pick {how!r}; valid: accuracy, knee, smallest")
