"""One trial, in three steps: ``propose`` (sample, count, constrain, de-duplicate; cheap, on the
process that owns the study), ``ProxyEvaluator`` (build and train; the expensive part, which any
executor may run elsewhere) and ``record`` (write the outcome to the study).

Cheap checks run first: a sample over ``--max-macs`` or already evaluated (same canonical key)
costs no training.
"""

from __future__ import annotations

import math
import os
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.study import ATTR
from space.spaces import SearchSpace
from space.spec import ArchSpec


@dataclass
class Proposal:
    """A sampled architecture and what the cheap checks found."""

    trial: optuna.Trial
    spec: ArchSpec
    key: str
    params: int
    macs: int
    reference: str | None = None
    infeasible: bool = False
    duplicate_of: FrozenTrial | None = None

    @property
    def cost(self) -> Any:
        from blocks.cost import Cost

        return Cost(self.params, self.macs)

    @property
    def needs_training(self) -> bool:
        return not self.infeasible and self.duplicate_of is None


@dataclass
class Evaluation:
    """What training a proxy found. status: ok | diverged | failed."""

    status: str
    val_acc: float = float("nan")
    metrics: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None


def propose(
    trial: optuna.Trial,
    space: SearchSpace,
    *,
    num_classes: int,
    max_macs: int | None,
    count_cost: Callable[[ArchSpec, int, int], Any],
) -> Proposal:
    """Sample the trial's spec, record its cost and constraint, and look for an earlier twin."""
    spec = space.sample(trial)
    key = spec.canonical_key()
    cost = count_cost(spec, num_classes, space.input_size)
    trial.set_user_attr(ATTR.KEY, key)
    trial.set_user_attr(ATTR.SPEC, spec.to_dict())
    trial.set_user_attr(ATTR.PARAMS, cost.params)
    trial.set_user_attr(ATTR.MACS, cost.macs)
    trial.set_user_attr(ATTR.STATUS, "running")
    if max_macs is not None:
        # Optuna 5: feasible iff <= 0; the samplers learn to stay under the budget.
        trial.set_constraint("max_macs", float(cost.macs - max_macs))
    reference = trial.user_attrs.get(ATTR.REFERENCE)
    proposal = Proposal(trial, spec, key, cost.params, cost.macs, reference=reference)
    proposal.infeasible = max_macs is not None and cost.macs > max_macs
    if not proposal.infeasible:
        proposal.duplicate_of = find_evaluated(trial.study, key, exclude=trial.number)
    return proposal


def find_evaluated(study: optuna.Study, key: str, exclude: int) -> FrozenTrial | None:
    """The first trained trial (ok or diverged) of the same architecture, if any."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if t.number != exclude and t.user_attrs.get(ATTR.KEY) == key and t.user_attrs.get(ATTR.STATUS) in ("ok", "diverged"):
            return t
    return None


def record(study: optuna.Study, proposal: Proposal, evaluation: Evaluation | None) -> FrozenTrial:
    """Tell the study how the trial ended; returns the finished trial."""
    trial = proposal.trial
    if proposal.infeasible:
        trial.set_user_attr(ATTR.STATUS, "infeasible")
        return study.tell(trial, [0.0, float(proposal.macs)])
    if proposal.duplicate_of is not None:
        twin = proposal.duplicate_of
        trial.set_user_attr(ATTR.STATUS, "duplicate")
        trial.set_user_attr(ATTR.DUPLICATE_OF, twin.number)
        for k, v in twin.user_attrs.items():
            if k.startswith("metric_"):
                trial.set_user_attr(k, v)
        if twin.state == TrialState.FAIL:
            trial.set_user_attr(ATTR.FAILURE, f"same architecture as trial {twin.number}, which diverged")
            return study.tell(trial, state=TrialState.FAIL)
        return study.tell(trial, list(twin.values))
    assert evaluation is not None, "a trained proposal needs an evaluation"
    for k, v in evaluation.metrics.items():
        trial.set_user_attr(f"metric_{k}", v)
    trial.set_user_attr(ATTR.STATUS, evaluation.status)
    if evaluation.status != "ok":
        trial.set_user_attr(ATTR.FAILURE, evaluation.failure or evaluation.status)
        return study.tell(trial, state=TrialState.FAIL)
    return study.tell(trial, [float(evaluation.val_acc), float(proposal.macs)])


def record_interrupted(study: optuna.Study, proposal: Proposal) -> None:
    """Ctrl-C during a trial: mark it, and enqueue the same architecture for the resumed run."""
    trial = proposal.trial
    trial.set_user_attr(ATTR.STATUS, "interrupted")
    trial.set_user_attr(ATTR.FAILURE, "interrupted by the user; re-run on --resume")
    study.tell(trial, state=TrialState.FAIL)
    attrs = {ATTR.REFERENCE: proposal.reference} if proposal.reference else None
    study.enqueue_trial(trial.params, user_attrs=attrs)


def describe_exception(exc: BaseException) -> str:
    """One line: the exception type and message, and where in our code it came from."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "out of memory" in message.lower() or type(exc).__name__ == "OutOfMemoryError":
        return f"out of memory: {message[:200]}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "site-packages" not in f.filename]
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {message[:300]}{where}"


class ProxyEvaluator:
    """Trains one spec with the proxy recipe on the process's resident data; never raises."""

    def __init__(self, data: Any, config: Any, device: Any, num_classes: int) -> None:
        self.data = data
        self.config = config
        self.device = device
        self.num_classes = num_classes

    def __call__(self, spec: ArchSpec, seed: int, on_epoch: Callable[..., None] | None = None, cost: Any = None) -> Evaluation:
        """``cost``: the spec's Cost if already counted (propose did), to skip counting it again."""
        from search.proxy import evaluate_spec

        try:
            result = evaluate_spec(spec, self.data, self.config, device=self.device, seed=seed, on_epoch=on_epoch,
                                   exported=cost)
        except Exception as exc:  # a crashing trial is recorded, the search goes on
            return Evaluation(status="failed", failure=describe_exception(exc))
        metrics = {
            "val_acc": result.val_acc, "val_loss": result.val_loss, "train_time_s": result.train_time_s,
            "images_per_s": result.images_per_s, "epochs": result.epochs_done,
            "proxy_params": result.proxy_params, "proxy_macs": result.proxy_macs,
        }
        metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        if result.status != "ok":
            return Evaluation(status=result.status, metrics=metrics,
                              failure=f"{result.status}: the loss became NaN or inf in epoch {result.epochs_done}")
        return Evaluation(status="ok", val_acc=result.val_acc, metrics=metrics)
