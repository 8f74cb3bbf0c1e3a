"""The run as the results read it when networks train beyond rung 0 (``--rungs``/``--repeats``).

``rung_view`` is an in-memory copy of the main study in which each trial with a result is valued
at its network's highest rung (the mean over the seeds there) and carries, as user attributes,
the rung reached, the accuracy per rung, mean, std, 95% CI and seeds. The front, plots, hypervolume,
trials.csv and best_block.yaml then read it exactly as they read the study itself: one record per
architecture, one code path.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import optuna
from optuna.trial import TrialState

from search.config import SearchConfig
from search.engine.attributes import ATTR, STATUS
from search.engine.ladder import collect, network_values, open_jobs_study, repeat_seed
from search.engine.objectives import Objectives
from search.results.confidence import Network, estimate, reference_claims

__all__ = ["ladder_columns", "network_claims", "rung_view"]


def ladder_columns(rungs: int) -> tuple[str, ...]:
    """The trials.csv columns of a run with rungs or repeats."""
    return (ATTR.RUNG_REACHED, *(f"{ATTR.ACC_RUNG}{r}" for r in range(rungs)), ATTR.ACC_MEAN, ATTR.ACC_STD,
            ATTR.ACC_CI95, ATTR.SEEDS)


def _number(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


def rung_view(study: optuna.Study, cfg: SearchConfig) -> optuna.Study:
    """The main study with every trial that has a result valued at its highest rung (see above)."""
    jobs = open_jobs_study(study, create=False)
    trials = study.get_trials(deepcopy=False)
    results, _, _ = collect(trials, jobs.get_trials(deepcopy=False) if jobs is not None else [])
    values = network_values(results)
    per_rung = {(r.parent, r.rung): r.acc for r in results if r.repeat == 0}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created in memory" line on the console
    try:
        objectives = Objectives.of_study(study)
        view = optuna.create_study(directions=objectives.directions, study_name=study.study_name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    view.set_metric_names(objectives.metric_names)
    accuracy = objectives.index("accuracy")  # a run with a ladder has accuracy among its objectives
    for t in trials:
        t = copy.deepcopy(t)
        value = values.get(t.number)
        if t.state == TrialState.COMPLETE and t.user_attrs.get(ATTR.STATUS) == STATUS.OK and value is not None:
            est = estimate(value.accs)
            attrs: dict[str, Any] = {
                ATTR.RUNG_REACHED: value.rung, ATTR.ACC_MEAN: est.mean, ATTR.ACC_STD: _number(est.std),
                ATTR.ACC_CI95: _number(est.ci), ATTR.SEEDS: est.n, ATTR.ACC_SEEDS: list(value.accs),
                ATTR.TRAINING_SEEDS: [repeat_seed(cfg.seed, i) for i in range(est.n)],
            }
            attrs.update({f"{ATTR.ACC_RUNG}{r}": per_rung[(t.number, r)] for r in range(value.rung + 1)
                          if (t.number, r) in per_rung})
            t.user_attrs = {**t.user_attrs, **attrs}
            t.values = [est.mean if i == accuracy else v for i, v in enumerate(t.values)]
        view.add_trial(t)
    return view


def network_claims(view: optuna.Study) -> list[str]:
    """The summary's sentences: for each reference, which discovered networks dominate it with
    confidence (``search.results.confidence``)."""
    networks = []
    for t in view.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if a.get(ATTR.STATUS) != STATUS.OK or ATTR.ACC_SEEDS not in a:
            continue
        networks.append(Network(t.number, a.get(ATTR.REFERENCE), float(a[ATTR.MACS]), estimate(a[ATTR.ACC_SEEDS]),
                                a[ATTR.RUNG_REACHED]))
    return reference_claims(networks)

