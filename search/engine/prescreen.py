"""Zero-cost pre-screen: sample several candidates, train only the most promising one.

With ``--prescreen NAME --prescreen-keep KEEP`` every round of the local executor asks the sampler
for ``n = ceil(1 / KEEP)`` trials, scores each feasible one with the zero-cost proxy NAME
(``search/zero_cost.py``: no training, one batch), and returns one for training: the first, in the
sampler's order, that no other candidate beats on both score and MACs (``select_winner``). The others
are told to the study at once as PRUNED with status ``prescreened``: they cost no training and do
not count towards ``--budget`` (``search.engine.study.COUNTED_STATUSES``). So a run with budget B trains B
networks chosen from about n * B samples, and exactly 1 of every n screened candidates is trained.

- Deterministic: a candidate's score depends only on its architecture and the run's seed (its
  initial weights are drawn from a seed derived from both, the batch is fixed by the seed), and
  ties go to the earlier trial. One worker and one seed give the same run twice.
- The sampler sees the losers: multi-objective TPE puts PRUNED trials with the worse group, so it
  learns to avoid what the proxy dislikes; NSGA-II and random search ignore them.
- Candidates over ``--max-macs`` are recorded as ``infeasible`` (free, as without a pre-screen)
  and never win while a feasible one exists.
- Enqueued trials (the reference warm start, and re-runs after an interruption) are trained
  without screening: they were chosen on purpose. A process killed while a round is being scored
  leaves its candidates to be re-run unscreened on ``--resume``; this costs training, never
  correctness.
- ``vote`` ranks the round's candidates by each of its members and averages the ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import optuna
from optuna.trial import TrialState

from search.engine.attributes import ATTR, STATUS
from search.engine.trial import propose, record
from search.engine.zero_cost import get_proxy, population_scores, score_batch, score_spec
from search.train.proxy import architecture_seed
from space.scaling import scale_width
from space.spec import ArchSpec

__all__ = ["PRESCREENED", "Prescreener", "candidates_per_round", "make_prescreener", "select_winner"]

PRESCREENED = STATUS.PRESCREENED  # the status of a candidate that lost its round
SCORE_ATTR = ATTR.PRESCREEN_SCORE  # the proxy's score (for vote: the mean rank within the round)
ROUND_ATTR = "prescreen_round"  # the trial number of the round's first candidate
SCORE_IMAGES = 64  # images in the scoring batch (the zero-cost papers use one batch of 64 on CIFAR)

Scorer = Callable[[ArchSpec], Mapping[str, float]]


def candidates_per_round(keep: float) -> int:
    """How many candidates a round screens to train one: ceil(1 / keep) (0.25 -> 4, 1 -> 1)."""
    if not (isinstance(keep, (int, float)) and 0 < keep <= 1):
        raise ValueError(f"the pre-screen keep ratio must be in (0, 1], got {keep!r}")
    return math.ceil(1 / keep - 1e-9)


def select_winner(scores: Sequence[float], feasible: Sequence[bool], macs: Sequence[float] | None = None) -> int:
    """Index of the candidate to train; 0 if none is feasible (it will be recorded as infeasible,
    as it would be without a pre-screen).

    Without ``macs``: the best feasible score (NaN lowest; ties: the first). With ``macs`` (the
    multi-objective search): the first candidate, in the sampler's order, that no other feasible
    candidate beats on both score and MACs. Taking the best score alone would ignore the MACs
    objective: most zero-cost scores grow with size, and BENCHMARKS.md measured such a pre-screen
    lowering the hypervolume even when the score was the objective itself.
    """
    ok = [i for i, f in enumerate(feasible) if f]
    if not ok:
        return 0
    finite = [i for i in ok if math.isfinite(scores[i])]
    if macs is None or not finite:
        return max(ok, key=lambda i: (scores[i] if math.isfinite(scores[i]) else -math.inf, -i))

    def dominated(i: int) -> bool:
        return any(scores[j] >= scores[i] and macs[j] <= macs[i] and (scores[j] > scores[i] or macs[j] < macs[i])
                   for j in finite)

    return next(i for i in finite if not dominated(i))


@dataclass
class Prescreener:
    """Chooses one trial to train out of each round of ``candidates_per_round(keep)``.

    ``scorer(spec) -> {member: score}`` computes the single proxies ``name`` needs (see
    ``zero_cost.members``); ``space``, ``num_classes``, ``max_macs`` and ``count_cost`` are the
    run's, as ``search.engine.trial.propose`` takes them.
    """

    name: str
    keep: float
    scorer: Scorer
    space: Any
    num_classes: int
    max_macs: int | None
    count_cost: Callable[..., Any]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # canonical key -> member scores
    propose_options: dict[str, Any] = field(default_factory=dict)  # objectives, latency, max_latency_ms for propose

    def __post_init__(self) -> None:
        get_proxy(self.name)
        self.round_size = candidates_per_round(self.keep)

    def member_scores(self, spec: ArchSpec) -> dict[str, float]:
        key = spec.canonical_key()
        if key not in self.scores:
            self.scores[key] = dict(self.scorer(spec))
        return self.scores[key]

    def ask(self, study: optuna.Study) -> optuna.Trial:
        """Ask a round of trials, tell the losers, return the winner (still running, for the
        executor's usual ``propose``/train/``record``). Call it where ``study.ask()`` would be
        called (under the executor's ask lock)."""
        first = study.ask()
        if self.round_size == 1 or _enqueued(study, first):
            return first
        trials = [first] + [study.ask() for _ in range(self.round_size - 1)]
        specs = [self.space.sample(t) for t in trials]
        macs = [self.count_cost(s, self.num_classes, self.space.input_size).macs for s in specs]
        feasible = [self.max_macs is None or m <= self.max_macs for m in macs]
        rows = [self.member_scores(s) if ok else {} for s, ok in zip(specs, feasible)]
        scored = [i for i, ok in enumerate(feasible) if ok]
        scores = [math.nan] * len(trials)
        for i, s in zip(scored, population_scores(self.name, [rows[i] for i in scored])):
            scores[i] = s
        win = select_winner(scores, feasible, macs)
        for i, trial in enumerate(trials):
            trial.set_user_attr(ROUND_ATTR, first.number)
            for member, value in rows[i].items():
                trial.set_user_attr(f"zero_cost_{member}", value if math.isfinite(value) else None)
            if feasible[i]:
                trial.set_user_attr(SCORE_ATTR, scores[i] if math.isfinite(scores[i]) else None)
            if i == win:
                continue
            proposal = propose(trial, self.space, num_classes=self.num_classes, max_macs=self.max_macs,
                               count_cost=self.count_cost, **self.propose_options)
            if proposal.infeasible:
                record(study, proposal, None)  # free, as without a pre-screen; the sampler learns the limit
            else:
                trial.set_user_attr(ATTR.STATUS, PRESCREENED)
                study.tell(trial, state=TrialState.PRUNED)
        return trials[win]


def _enqueued(study: optuna.Study, trial: optuna.Trial) -> bool:
    """Whether ``trial`` came from ``enqueue_trial`` (references, re-runs): it has fixed params."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number == trial.number:
            return bool(t.system_attrs.get("fixed_params"))
    return False


def make_prescreener(
    name: str,
    keep: float,
    *,
    space: Any,
    data: Any,
    num_classes: int,
    max_macs: int | None,
    count_cost: Callable[..., Any],
    width_scale: float,
    seed: int,
    propose_options: dict[str, Any] | None = None,
) -> Prescreener:
    """The pre-screen of a run: scores the network the proxy trains (``width_scale`` applied) on a
    fixed batch of ``SCORE_IMAGES`` training images chosen by ``seed``."""
    images, labels = score_batch(data.train_x, data.train_y, SCORE_IMAGES, seed)

    def scorer(spec: ArchSpec) -> Mapping[str, float]:
        scored = spec
        if width_scale != 1.0:
            scored = scale_width(spec, width_scale)
        return score_spec([name], scored, num_classes, images, labels, seed=architecture_seed(spec.canonical_key(), seed))

    return Prescreener(name, keep, scorer, space, num_classes, max_macs, count_cost,
                       propose_options=dict(propose_options or {}))
