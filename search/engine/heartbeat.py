"""Heartbeats for ask/tell workers, the recovery of a dead worker's trials, and the budget lock.

Optuna 5 records heartbeats only inside ``study.optimize``; our workers ask and tell. So every
worker process runs one ``Heartbeat`` thread that beats for each trial it holds (trained here, or
on a Ray worker for the Ray driver) every ``grace / 4`` seconds, for any storage:

- an RDB storage (``--storage postgresql://...``): Optuna's own heartbeat table
  (``storage.record_heartbeat``). Why Optuna's and not a user attribute: the times come from the
  database server's clock, so hosts whose clocks disagree cannot fail each other's live trials,
  and the trial's state change to FAIL takes a row lock, so exactly one worker fails a stale
  trial and enqueues its architecture again;
- a journal file: ``ATTR.HEARTBEAT`` (this host's ``time.time()``); a journal lives on one host
  or a shared file system, and a dead process of this host is also found at once by its pid
  (``search.engine.study.recover_stale_trials``).

``recover_stale`` runs under ``budget_lock`` in every worker's ask step, so any live worker
recovers a dead one's trial once its heartbeat is older than ``--heartbeat-grace``.

``budget_lock``: the run's ask lock (a file lock: one process of this host at a time) and, with a
PostgreSQL study, an advisory lock on its server (one process of any host at a time), so that
several hosts check the budget and ask in turn and finish it exactly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Iterator

import optuna
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from search.config import SearchConfig
from search.engine.attributes import ATTR
from search.engine.outcome import finish, recorded_outcome
from search.engine.rdb import advisory_lock, is_postgres
from search.engine.study import ask_lock, enqueue_again, requeue

__all__ = ["Heartbeat", "budget_lock", "recover_stale"]

log = logging.getLogger("seesaw_nas.search")


def _uses_heartbeat_table(study: optuna.Study) -> bool:
    return is_heartbeat_enabled(study._storage)


class Heartbeat:
    """One daemon thread per process that beats for the trials this process holds."""

    def __init__(self, study: optuna.Study, grace_s: float) -> None:
        self.study, self.grace_s = study, grace_s
        self.interval_s = max(0.2, grace_s / 4)
        self._trials: dict[int, int] = {}  # trial id -> number
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial: optuna.Trial) -> None:
        """Beat for ``trial`` from now on (the first beat at once, before training starts)."""
        self._beat(trial._trial_id)
        with self._lock:
            self._wake.clear()
            self._trials[trial._trial_id] = trial.number
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="seesaw-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, trial: optuna.Trial) -> None:
        with self._lock:
            self._trials.pop(trial._trial_id, None)

    def holds(self, trial: optuna.trial.FrozenTrial | optuna.Trial) -> bool:
        """Whether this process holds (beats for) ``trial``."""
        with self._lock:
            return trial._trial_id in self._trials

    def close(self) -> None:
        """Stop beating (for every trial this process holds)."""
        with self._lock:
            self._trials.clear()
        self._wake.set()

    def _beat(self, trial_id: int) -> None:
        storage = self.study._storage
        if _uses_heartbeat_table(self.study):
            storage.record_heartbeat(trial_id)
        else:
            storage.set_trial_user_attr(trial_id, ATTR.HEARTBEAT, time.time())

    def _run(self) -> None:
        while not self._wake.wait(self.interval_s):
            with self._lock:
                trial_ids = list(self._trials)
                if not trial_ids:  # nothing held: the thread ends; the next add starts another
                    self._thread = None
                    return
            for trial_id in trial_ids:
                try:
                    self._beat(trial_id)
                except optuna.exceptions.UpdateFinishedTrialError:
                    with self._lock:  # finished (or failed as stale by another worker)
                        self._trials.pop(trial_id, None)
                except Exception as exc:  # never kill the thread; the storage retries outages itself
                    log.warning(f"heartbeat of trial id {trial_id} not recorded: {exc}")


def recover_stale(study: optuna.Study, grace_s: float) -> list[int]:
    """Fail the running trials whose heartbeat is older than ``grace_s`` and enqueue their
    architectures again; returns their numbers. Call it holding ``budget_lock``."""
    running = {t._trial_id: t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return []
    if _uses_heartbeat_table(study):
        # optuna.storages.fail_stale_trials, but saying which trials this call failed: the state
        # change takes a row lock and succeeds for one caller only, which enqueues the trial again.
        storage, recovered = study._storage, []
        for trial_id in storage._get_stale_trial_ids(study._study_id):
            outcome = recorded_outcome(storage.get_trial(trial_id))
            if outcome is not None:  # trained and recorded, died before tell: finish it, train nothing again
                try:
                    finish(study, storage.get_trial(trial_id), outcome)
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue
                recovered.append(storage.get_trial(trial_id).number)
                continue
            try:
                if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # finished meanwhile, or failed by another worker
            frozen = storage.get_trial(trial_id)
            log.info(f"trial {frozen.number} stale: no heartbeat from {frozen.user_attrs.get(ATTR.HOST)} pid "
                     f"{frozen.user_attrs.get(ATTR.PID)} for {grace_s:g} s; its architecture runs again")
            enqueue_again(study, frozen)  # its status stays "running": shown as "stale"
            recovered.append(frozen.number)
        return recovered
    now = time.time()
    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.user_attrs.get(ATTR.HEARTBEAT)
        if isinstance(beat, (int, float)) and now - beat > grace_s:
            outcome = recorded_outcome(t)
            if outcome is not None:  # trained and recorded, died before tell: finish it, train nothing again
                finish(study, t, outcome)
                recovered.append(t.number)
                continue
            log.info(f"trial {t.number} stale: no heartbeat from {t.user_attrs.get(ATTR.HOST)} pid "
                     f"{t.user_attrs.get(ATTR.PID)} for {now - beat:.0f} s; its architecture runs again")
            requeue(study, t)  # its status stays "running": shown as "stale"
            recovered.append(t.number)
    return recovered


@contextlib.contextmanager
def budget_lock(cfg: SearchConfig) -> Iterator[None]:
    """Hold the run's ask lock, and with a PostgreSQL study its advisory lock on the server too."""
    with ask_lock(cfg.run_dir):
        if is_postgres(cfg.storage_url):
            with advisory_lock(cfg.storage_url, f"ask:{cfg.name}"):
                yield
        else:
            yield
