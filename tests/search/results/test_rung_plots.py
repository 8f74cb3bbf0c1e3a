"""The Pareto plot of a run with rungs and repeats: error bars (95% CI) and the rung of each point."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from search.engine.attributes import ATTR, STATUS
from search.engine.study import DIRECTIONS
from search.results.plots import pareto_plot_data, render_pareto, render_pareto_png, write_pareto_plot
from space.spaces import get_space

SPACE = get_space("seesaw")
A_SPEC = SPACE.spec_from_params(SPACE.smallest_params()).to_dict()


def study_with_rungs() -> optuna.Study:
    study = optuna.create_study(directions=list(DIRECTIONS))
    for acc, macs, ref, rung, ci in [(0.5, 10e6, "small_ref", 1, 0.02), (0.7, 30e6, None, 1, 0.01),
                                     (0.6, 40e6, None, 0, None)]:
        attrs = {ATTR.STATUS: STATUS.OK, ATTR.MACS: macs, ATTR.PARAMS: 1000, ATTR.SPEC: A_SPEC,
                 ATTR.RUNG_REACHED: rung, ATTR.ACC_CI95: ci, **({ATTR.REFERENCE: ref} if ref else {})}
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[acc, macs], user_attrs=attrs))
    return study


def test_plot_data_carry_the_ci_and_rung_of_each_point():
    data = pareto_plot_data(study_with_rungs())
    assert data.errors == {"trial 0": 2.0, "small_ref": 2.0, "trial 1": 1.0}
    assert data.rungs == {"trial 0": 1, "small_ref": 1, "trial 1": 1, "trial 2": 0}


def test_both_renderers_draw_error_bars_and_rungs(tmp_path):
    data = pareto_plot_data(study_with_rungs())
    fig = render_pareto(data, "t")
    trials = fig.data[0]
    assert list(trials.error_y.array) == [2.0, 1.0, 0.0]
    assert "rung 1" in trials.text[0] and "95% CI ±1.00" in trials.text[1]
    assert list(trials.marker.size) == [10, 10, 7]
    ax = render_pareto_png(data, "t").axes[0]
    assert "95% CI of the mean" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(t.get_text() for t in ax.texts if t.get_text().startswith("r")) == ["r1", "r1"]
    written = write_pareto_plot(study_with_rungs(), tmp_path, "t")
    assert "rung 1" in (tmp_path / "pareto.html").read_text() and len(written) == 3


def test_a_run_without_rungs_draws_no_error_bars():
    study = optuna.create_study(directions=list(DIRECTIONS))
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.5, 1e6],
                                 user_attrs={ATTR.STATUS: STATUS.OK, ATTR.MACS: 1e6, ATTR.SPEC: A_SPEC}))
    data = pareto_plot_data(study)
    assert data.errors == {} and data.rungs == {}
    assert render_pareto(data, "t").data[0].error_y.array is None


def test_the_y_range_holds_every_error_bar():
    data = pareto_plot_data(study_with_rungs())  # trial 0: 50% +- 2, trial 1: 70% +- 1
    wide = data._replace(errors={**data.errors, "trial 1": 30.0})  # a bar from 40% to 100%
    for d in (data, wide):
        low, high = render_pareto_png(d, "t").axes[0].get_ylim()
        for number, _, y in d.trials:
            e = d.errors.get(f"trial {number}", 0.0)
            assert low < y - e and y + e < high
