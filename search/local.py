"""The local executor: ask/tell workers on one study, in this process and (``--workers N``) in
spawned processes that share its storage.

The budget check and ``ask`` happen under a file lock, so N workers on one host finish the
budget exactly: every trial that will count is either finished or running when a worker asks.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing as mp
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna

from search.config import SearchConfig, SearchError
from search.objective import ProxyEvaluator, propose, record, record_interrupted
from search.study import claim, finished_count, running_count

log = logging.getLogger("seesaw_nas.search")

# A space whose samples almost all exceed --max-macs would otherwise loop for ever.
MAX_INFEASIBLE_IN_A_ROW = 2000


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes on this host: flock on ``path`` (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def ask_lock(run_dir: Path) -> Iterator[None]:
    """The run's ask lock: one process at a time asks, claims and recovers trials."""
    with file_lock(run_dir / ".ask.lock"):
        yield


def run_worker(
    study: optuna.Study,
    cfg: SearchConfig,
    space: Any,
    evaluator: ProxyEvaluator,
    *,
    num_classes: int,
    count_cost: Callable[..., Any],
    after_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None,
    prescreen: Any = None,
) -> None:
    """Run trials until the study has ``cfg.budget`` counted trials (finished or running).

    ``prescreen`` (``search.prescreen.Prescreener``) replaces ``study.ask()``: it asks a round of
    candidates and returns the one to train, having told the others.
    """
    infeasible_in_a_row = 0
    while True:
        with ask_lock(cfg.run_dir):
            if finished_count(study) + running_count(study) >= cfg.budget:
                return
            trial = study.ask() if prescreen is None else prescreen.ask(study)
            claim(trial)
        proposal = None
        try:
            proposal = propose(trial, space, num_classes=num_classes, max_macs=cfg.max_macs, count_cost=count_cost)
            evaluation = None
            if proposal.needs_training:
                evaluation = evaluator(proposal.spec, seed=cfg.seed * 100_003 + trial.number, cost=proposal.cost)
            frozen = record(study, proposal, evaluation)
        except KeyboardInterrupt:
            if proposal is not None:
                record_interrupted(study, proposal)
            else:  # interrupted while sampling: nothing to re-run
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        infeasible_in_a_row = infeasible_in_a_row + 1 if proposal.infeasible else 0
        if infeasible_in_a_row >= MAX_INFEASIBLE_IN_A_ROW:
            raise SearchError(
                f"{infeasible_in_a_row} samples in a row exceeded --max-macs {cfg.max_macs}; raise --max-macs "
                "or use a smaller space (e.g. a lower width multiplier)"
            )
        log.info(_trial_line(frozen))
        if after_trial is not None:
            after_trial(frozen)


def _trial_line(t: optuna.trial.FrozenTrial) -> str:
    from search.study import ATTR, trial_status

    a = t.user_attrs
    acc = a.get("metric_val_acc")
    parts = [
        f"trial {t.number}",
        trial_status(t),
        f"macs={a.get(ATTR.MACS, 0) / 1e6:.1f}M",
        f"params={a.get(ATTR.PARAMS, 0) / 1e6:.2f}M",
        f"val_acc={acc:.4f}" if isinstance(acc, float) else "",
        f"time={a['metric_train_time_s']:.1f}s" if "metric_train_time_s" in a else "",
        f"ref={a[ATTR.REFERENCE]}" if ATTR.REFERENCE in a else "",
        f"dup_of={a[ATTR.DUPLICATE_OF]}" if ATTR.DUPLICATE_OF in a else "",
        f"failure={a[ATTR.FAILURE]}" if ATTR.FAILURE in a else "",
    ]
    return " ".join(p for p in parts if p)


def start_extra_workers(cfg: SearchConfig, n: int) -> list[mp.process.BaseProcess]:
    """Start ``n`` worker processes (spawned: safe with torch and threads) on the run's study."""
    ctx = mp.get_context("spawn")
    procs = []
    for i in range(n):
        p = ctx.Process(target=_worker_main, args=(cfg, i + 1), name=f"seesaw-worker-{i + 1}")
        p.start()
        procs.append(p)
    return procs


def _worker_main(cfg: SearchConfig, index: int) -> None:
    from search.run import open_run

    with contextlib.suppress(KeyboardInterrupt):
        run = open_run(cfg, worker_index=index)
        run_worker(run.study, cfg, run.space, run.evaluator, num_classes=run.num_classes, count_cost=run.count_cost,
                   prescreen=run.prescreen)
