"""Pareto front and hypervolume, on hand-made trials."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState, create_trial

from search.results.pareto import Point, hypervolume_2d, hypervolume_by_budget, pareto_front
from search.engine.attributes import ATTR


def trial(number, status, acc=None, macs=None, state=None):
    state = state or (TrialState.COMPLETE if acc is not None else TrialState.FAIL)
    t = create_trial(state=state, values=[acc, macs] if acc is not None and state == TrialState.COMPLETE else None,
                     user_attrs={ATTR.STATUS: status})
    t.number = number
    return t


def test_front_and_hypervolume_2d():
    pts = [Point(0.5, 10, 0), Point(0.7, 30, 1), Point(0.6, 40, 2), Point(0.8, 60, 3)]
    assert [p.number for p in pareto_front(pts)] == [0, 1, 3]
    # strips: [10, 30) x 0.5 + [30, 60) x 0.7 + [60, 100) x 0.8
    assert hypervolume_2d(pts, ref_macs=100) == pytest.approx(20 * 0.5 + 30 * 0.7 + 40 * 0.8)
    assert hypervolume_2d(pts, ref_macs=100, ref_acc=0.6) == pytest.approx(30 * 0.1 + 40 * 0.2)


def test_hypervolume_by_budget_counts_like_the_budget():
    trials = [
        trial(0, "ok", 0.5, 10e6),
        trial(1, "prescreened", state=TrialState.PRUNED),  # not counted
        trial(2, "infeasible", 0.0, 500e6),  # not counted
        trial(3, "failed"),  # counted, no point
        trial(4, "duplicate", 0.5, 10e6),  # counted, no new point
        trial(5, "ok", 0.8, 50e6),
    ]
    history = hypervolume_by_budget(trials, ref_macs=100e6)
    assert history == pytest.approx([90 * 0.5, 90 * 0.5, 90 * 0.5, 40 * 0.5 + 50 * 0.8])


def test_reference_labels_of_nearby_points_do_not_overlap():
    from search.results.plots import label_positions

    # the two 0.5D references of the seesaw space sit 8M MACs and 0.15 points apart
    points = [(89.0, 30.95), (100.3, 35.45), (108.2, 35.60), (166.1, 34.90), (181.1, 32.05)]
    assert label_positions(points, x_span=145.0, y_span=13.0) == [
        "top center", "top center", "bottom center", "top center", "top center"]


def test_rendered_plot_has_every_reference_labelled_inside_the_axis():
    pytest.importorskip("plotly")
    from search.results.plots import ParetoPlotData, render_pareto

    data = ParetoPlotData(trials=[(0, 100.0, 35.0), (1, 180.0, 32.0), (2, 40.0, 27.0)], front=[(2, 40.0, 27.0)],
                          references=[("seesaw_1.0d", 180.0, 32.0), ("igcv3_0.5d", 100.0, 35.0)], max_macs_m=None)
    fig = render_pareto(data, "t")
    refs = next(t for t in fig.data if t.name == "references")
    assert list(refs.text) == ["igcv3_0.5d", "seesaw_1.0d"]
    lo, hi = fig.layout.xaxis.range
    assert lo < 40.0 and hi > 180.0 + 0.1 * 140.0  # room for the rightmost label
