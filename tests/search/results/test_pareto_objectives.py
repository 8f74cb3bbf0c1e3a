"""Fronts, hypervolume and picks of runs with other objectives than (accuracy, MACs), on real
in-memory Optuna studies; the default's numbers stay those of the 2-D code."""

from __future__ import annotations

import itertools
import random

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.engine.attributes import ATTR, STATUS
from search.engine.objectives import Objectives, parse_latency_ms
from search.errors import SearchError
from search.results.pareto import (Point, front_trials, hypervolume, hypervolume_2d, hypervolume_by_budget, pair_front,
                                   pick_trial)
from search.results.plots import pareto_plot_data

TRI = Objectives.parse("accuracy,macs,latency")


def tri_study(rows):
    """rows: (acc, macs, latency_ms, reference) -> a 3-objective study of ok trials."""
    study = optuna.create_study(directions=TRI.directions)
    study.set_metric_names(TRI.metric_names)
    for acc, macs, lat, ref in rows:
        attrs = {ATTR.STATUS: STATUS.OK, ATTR.MACS: macs, ATTR.LATENCY: lat, **({ATTR.REFERENCE: ref} if ref else {})}
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[acc, macs, lat], user_attrs=attrs))
    return study


ROWS = [
    (0.50, 10e6, 9.0, "small_ref"),  # 0: cheapest MACs, slow
    (0.70, 30e6, 4.0, None),  # 1: fast
    (0.60, 40e6, 5.0, None),  # 2: dominated by 1 on all three
    (0.80, 60e6, 6.0, None),  # 3: most accurate
    (0.55, 50e6, 3.0, None),  # 4: fastest
]


def brute_hypervolume(points, ref, hi, grid):
    """The dominated volume counted on a grid of cells (exact when the points sit on cell edges)."""
    steps = [(h - r) / grid for h, r in zip(hi, ref)]
    cell = 1.0
    for s in steps:
        cell *= s
    count = 0
    for idx in itertools.product(range(grid), repeat=len(ref)):
        c = [r + (i + 0.5) * s for r, i, s in zip(ref, idx, steps)]
        count += any(all(p[k] >= c[k] for k in range(len(ref))) for p in points)
    return count * cell


def test_generic_hypervolume_equals_the_2d_code_exactly_and_a_grid_count_in_3d():
    rng = random.Random(3)
    pts = [Point(rng.random(), rng.uniform(1, 100), i) for i in range(30)]
    assert hypervolume([(p.acc, -p.macs) for p in pts], (0.0, -120.0)) == hypervolume_2d(pts, ref_macs=120.0)
    pts3 = [(rng.randint(1, 8) / 8, rng.randint(1, 8) / 8, rng.randint(1, 8) / 8) for _ in range(12)]
    assert hypervolume(pts3, (0.0, 0.0, 0.0)) == pytest.approx(brute_hypervolume(pts3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 16))
    assert hypervolume([(1.0, 1.0, 1.0)], (0.0, 0.0, 0.0)) == 1.0
    assert hypervolume([(1.0, 2.0, 3.0), (1.0, 2.0, 3.0)], (0.0, 0.0, 0.0)) == 6.0


def test_three_objective_front_pairs_and_plot_data():
    study = tri_study(ROWS)
    assert {t.number for t in front_trials(study)} == {0, 1, 3, 4}
    assert [t.number for t in pair_front(front_trials(study), TRI, "latency", "accuracy")] == [4, 1, 3]
    assert [t.number for t in pair_front(front_trials(study), TRI, "macs", "accuracy")] == [0, 1, 3]
    data = pareto_plot_data(study, axes=("latency", "accuracy"), max_latency_ms=7.5)
    assert [p[0] for p in data.front] == [4, 1, 3] and data.front[0] == (4, 3.0, 55.00000000000001)
    assert data.x_title.startswith("latency") and data.max_macs_m == 7.5 and data.x_limit_label == "--max-latency"
    assert data.references == [("small_ref", 9.0, 50.0)]
    assert pareto_plot_data(study).x_title.startswith("MACs")  # default axes: the first cost against accuracy


def test_picks_honour_the_chosen_cost_objective():
    front = front_trials(tri_study(ROWS))
    assert pick_trial(front, "accuracy", TRI).number == 3
    assert pick_trial(front, "smallest", TRI).number == 0  # fewest MACs: the first cost objective
    assert pick_trial(front, "smallest", TRI, ("latency", "accuracy")).number == 4  # the fastest
    assert pick_trial(front, "knee", TRI, ("latency", "accuracy")).number == 1
    with pytest.raises(ValueError):
        pick_trial(front, "median", TRI)


def test_hypervolume_by_budget_in_three_objectives_grows_with_the_front():
    study = tri_study(ROWS)
    history = hypervolume_by_budget(study.trials, 0.0, objectives=TRI, bounds={"macs": 100e6, "latency": 10.0})
    assert len(history) == 5 and history == sorted(history) and history[2] == history[1]  # trial 2 is dominated
    # trial 0 alone: accuracy 0.5 x (100 - 10) MMACs x (10 - 9) ms
    assert history[0] == pytest.approx(0.5 * 90 * 1.0)


def test_objectives_parse_and_latency_units():
    assert Objectives.parse("accuracy,macs").is_default
    assert Objectives.parse(["accuracy", "latency"]).directions == ["maximize", "minimize"]
    assert Objectives.parse("accuracy,macs,latency").pairs() == [
        ("macs", "accuracy"), ("latency", "accuracy"), ("macs", "latency")]
    for bad in ("accuracy", "accuracy,accuracy", "accuracy,flops", "a,b,c,d", ""):
        with pytest.raises(SearchError):
            Objectives.parse(bad)
    assert parse_latency_ms("5ms") == 5.0 and parse_latency_ms("800us") == 0.8 and parse_latency_ms("0.01s") == 10.0
    for bad in ("5", "5 min", "-1ms", "0ms", "ms", "nan ms"):
        with pytest.raises(ValueError):
            parse_latency_ms(bad)
