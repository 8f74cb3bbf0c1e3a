"""Pareto data extraction (what the plots draw) and every ``--pick``, on a real in-memory study."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from search.engine.attributes import ATTR, STATUS
from search.engine.study import DIRECTIONS
from search.results.pareto import feasible_trials, front_trials, pick_trial
from search.results.plots import pareto_plot_data


def study_with(rows):
    """rows: (status, acc, macs, reference) -> a study holding those trials in order."""
    study = optuna.create_study(directions=list(DIRECTIONS))
    for status, acc, macs, ref in rows:
        attrs = {ATTR.STATUS: status, ATTR.MACS: macs, **({ATTR.REFERENCE: ref} if ref else {})}
        if acc is None:
            study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=attrs))
        else:
            study.add_trial(create_trial(state=TrialState.COMPLETE, values=[acc, macs], user_attrs=attrs))
    return study


ROWS = [
    (STATUS.OK, 0.50, 10e6, "small_ref"),  # 0: front
    (STATUS.OK, 0.70, 30e6, None),  # 1: front
    (STATUS.OK, 0.60, 40e6, "mid_ref"),  # 2: dominated by 1
    (STATUS.DUPLICATE, 0.70, 30e6, None),  # 3: twin of 1, never a point of its own
    (STATUS.FAILED, None, 20e6, None),  # 4: no point
    (STATUS.OK, 0.80, 60e6, None),  # 5: front
    (STATUS.INFEASIBLE, 0.0, 500e6, None),  # 6: never trained
    (STATUS.OK, 0.75, 50e6, None),  # 7: front (between 1 and 5)
]


def test_plot_data_holds_trained_trials_front_and_labelled_references():
    data = pareto_plot_data(study_with(ROWS))
    assert [p[0] for p in data.trials] == [0, 1, 2, 5, 7]
    assert [p[0] for p in data.front] == [0, 1, 7, 5]  # by MACs
    assert data.front[0] == (0, 10.0, 50.0)  # (number, MMACs, accuracy %)
    assert sorted(data.references) == [("mid_ref", 40.0, 60.0), ("small_ref", 10.0, 50.0)]
    assert data.max_macs_m is None


def test_plot_data_with_max_macs_cuts_the_front_not_the_trials():
    data = pareto_plot_data(study_with(ROWS), max_macs=int(45e6))
    assert [p[0] for p in data.front] == [0, 1]
    assert len(data.trials) == 5 and data.max_macs_m == 45.0


def test_front_skips_duplicates_failures_and_infeasible():
    study = study_with(ROWS)
    assert [t.number for t in front_trials(study)] == [0, 1, 7, 5]
    assert [t.number for t in feasible_trials(study)] == [0, 1, 2, 5, 7]
    assert front_trials(study_with([(STATUS.FAILED, None, 1e6, None)])) == []


@pytest.mark.parametrize("how, expected", [("accuracy", 5), ("smallest", 0), ("knee", 1)])
def test_every_pick(how, expected):
    front = front_trials(study_with(ROWS))
    assert pick_trial(front, how).number == expected


def test_knee_of_a_short_front_is_the_most_accurate():
    front = front_trials(study_with(ROWS[:2]))
    assert pick_trial(front, "knee").number == 1


def test_pick_refuses_an_empty_front_and_an_unknown_rule():
    with pytest.raises(ValueError, match="empty"):
        pick_trial([], "accuracy")
    with pytest.raises(ValueError, match="unknown pick"):
        pick_trial(front_trials(study_with(ROWS)), "median")
