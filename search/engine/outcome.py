"""A trial's outcome is written in one record before ``tell``, so a crash in between loses nothing.

``record`` (``search.engine.trial``) first stores the whole outcome (status, the attributes to set,
the objective values or a failure) as one user attribute, ``ATTR.OUTCOME``: one journal line or one
database row, written entirely or not at all. Then it sets the attributes and tells the study.
A process killed after the outcome was stored leaves a RUNNING trial that carries its result:
recovery (``search.engine.study.recover_stale_trials``) finishes it with ``finish`` instead of
training its architecture a second time.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import faults
from search.engine.attributes import ATTR

__all__ = ["finish", "make_outcome", "recorded_outcome"]


def make_outcome(attrs: dict[str, Any], values: list[float] | None) -> dict[str, Any]:
    """The outcome record: attributes to set, then ``values`` (COMPLETE) or None (FAIL)."""
    return {"attrs": attrs, "values": None if values is None else [float(v) for v in values]}


def finish(study: optuna.Study, trial: optuna.Trial | FrozenTrial, outcome: dict[str, Any]) -> FrozenTrial:
    """Set the outcome's attributes on the running ``trial`` and tell the study; returns the finished trial."""
    live = trial if isinstance(trial, optuna.Trial) else optuna.Trial(study, trial._trial_id)
    for key, value in outcome["attrs"].items():
        live.set_user_attr(key, value)
    if outcome["values"] is None:
        frozen = study.tell(trial.number, state=TrialState.FAIL)
    else:
        frozen = study.tell(trial.number, outcome["values"])
    faults.point("told")
    return frozen


def recorded_outcome(trial: FrozenTrial) -> dict[str, Any] | None:
    """The outcome a trial stored before its process died, if any."""
    outcome = trial.user_attrs.get(ATTR.OUTCOME)
    return outcome if isinstance(outcome, dict) and "attrs" in outcome and "values" in outcome else None
