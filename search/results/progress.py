"""What a running search shows: finished trials, the best accuracy and the front, and inside each
running trial its epoch, share of steps, images/s, validation accuracy once scored, and the ETAs of
the trial and of the run.

- On a terminal (the stream is a TTY): one tqdm bar over finished trials; the running trials and
  the run's ETA ride in its postfix, redrawn at most twice a second.
- In a log file (not a TTY): no bar (tqdm would print every redraw as a new line). Plain lines:
  one per finished trial, one per scored epoch, and one per running trial at most every
  ``LOG_EVERY_S`` seconds.

A trial's progress comes from a ``TrialTicker`` (its ``on_step``/``on_epoch`` are the trainer's
callbacks) as plain dicts, so spawned workers (``--workers N``) send theirs through a queue and the
launching process shows them with its own (``TrialProgress.poll``).
"""

from __future__ import annotations

import math
import queue
import sys
import time
from typing import Any, Callable, TextIO

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from search.config import SearchConfig
from search.engine.attributes import ATTR, STATUS
from search.engine.ladder import job_units_left, open_jobs_study
from search.engine.study import finished_count
from search.engine.trial import describe_trial
from search.engine.objectives import Objectives
from search.results.pareto import feasible_trials, front_trials
from search.train.trainer import EpochStats

__all__ = ["LOG_EVERY_S", "TrialProgress", "TrialTicker", "format_duration"]

LOG_EVERY_S = 30.0  # log mode: a running trial's line at most this often (scored epochs always)
SEND_EVERY_S = 1.0  # a ticker reports a step at most this often
REDRAW_EVERY_S = 0.5  # terminal: bar redraws at most this often
JOBS_EVERY_S = 10.0  # the promotions and repeats left are re-read from the jobs study at most this often

Event = dict[str, Any]  # plain values: it may cross a process boundary


def format_duration(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class TrialTicker:
    """The progress of one running trial, sent as plain dicts to ``send``.

    ``on_step(step, total_steps)`` and ``on_epoch(EpochStats)`` are the trainer's callbacks. A step
    is sent at most every ``every_s`` seconds (and the last one always); an epoch always.
    """

    def __init__(self, send: Callable[[Event], None], *, worker: int, trial: int, epochs: float,
                 batch_size: int, every_s: float = SEND_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.send, self.worker, self.trial = send, worker, trial
        self.epochs, self.batch_size, self.every_s, self.clock = epochs, batch_size, every_s, clock
        self.started = clock()
        self.first_step: tuple[int, float] | None = None  # (step, time): images/s leaves out the model build
        self.last_sent = -math.inf
        self.step = self.total = 0
        self.val_acc = math.nan

    def on_step(self, step: int, total: int) -> None:
        now = self.clock()
        self.step, self.total = step, total
        if self.first_step is None:
            self.first_step = (step, now)
        if step >= total or now - self.last_sent >= self.every_s:
            self._send("step", now)

    def on_epoch(self, stats: EpochStats) -> None:
        if math.isfinite(stats.val_acc):
            self.val_acc = stats.val_acc
        self._send("epoch", self.clock(), scored=math.isfinite(stats.val_acc))

    def _send(self, kind: str, now: float, scored: bool = False) -> None:
        self.last_sent = now
        elapsed = now - self.started
        done = self.step / self.total if self.total else 0.0
        steps_per_epoch = self.total / self.epochs if self.epochs > 0 else self.total
        ips = math.nan
        if self.first_step is not None and now > self.first_step[1] and self.step > self.first_step[0]:
            ips = (self.step - self.first_step[0]) * self.batch_size / (now - self.first_step[1])
        self.send({
            "kind": kind, "worker": self.worker, "trial": self.trial, "scored": scored,
            "epoch": min(math.ceil(self.step / steps_per_epoch) if steps_per_epoch else 0, math.ceil(self.epochs)),
            "epochs": math.ceil(self.epochs), "done": done, "images_per_s": ips, "val_acc": self.val_acc,
            "elapsed_s": elapsed, "eta_s": elapsed * (1 - done) / done if done > 0 else math.nan,
        })


def end_event(worker: int, trial: optuna.trial.FrozenTrial, line: str) -> Event:
    """What a worker sends when one of its trials ended (``line``: its search.log line)."""
    return {"kind": "end", "worker": worker, "trial": trial.number, "line": line}


def describe_running(e: Event) -> str:
    val = f", val_acc {100 * e['val_acc']:.2f}%" if math.isfinite(e["val_acc"]) else ""
    ips = f", {e['images_per_s']:.0f} img/s" if math.isfinite(e["images_per_s"]) else ""
    return (f"trial {e['trial']} (w{e['worker']}): epoch {e['epoch']}/{e['epochs']}, {100 * e['done']:.0f}%"
            f"{ips}{val}, trial ETA {format_duration(e['eta_s'])}")


class TrialProgress:
    """The display of a running search (see the module docstring). Use it as a context manager.

    ``update(trial)``: a trial of this process ended; ``trial_event(event)``: a ticker's event (this
    process's or, through ``poll``, a spawned worker's from ``inbox``).
    """

    def __init__(self, study: optuna.Study, cfg: SearchConfig, *, stream: TextIO | None = None,
                 tty: bool | None = None, inbox: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.study, self.cfg, self.inbox, self.clock = study, cfg, inbox, clock
        self.stream = stream if stream is not None else sys.stderr
        self.tty = tty if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.running: dict[int, Event] = {}  # worker -> its trial's latest event
        self.logged: dict[tuple[int, int], float] = {}  # (worker, trial) -> when its last line was written
        self.last_redraw = -math.inf
        self.per_trial_s = self._mean_trial_seconds()
        self.jobs_left: tuple[float, float] = (-math.inf, 0.0)  # (when read, rung-0 units of jobs not started)
        self.bar = None
        if self.tty:
            self.bar = tqdm(total=cfg.budget, initial=self._finished(), unit="trial", desc=f"search {cfg.name}",
                            dynamic_ncols=True, file=self.stream)
            self._redraw(force=True)

    # ------------------------------------------------------------------ inputs
    def trial_event(self, event: Event) -> None:
        now = self.clock()
        if event["kind"] == "end":
            self.running.pop(event["worker"], None)
            self.per_trial_s = self._mean_trial_seconds()
            if not self.tty:
                self._line(f"{event['line']} | {self._counts()}")
        else:
            self.running[event["worker"]] = event
            key = (event["worker"], event["trial"])
            if not self.tty and (event.get("scored") or now - self.logged.get(key, -math.inf) >= LOG_EVERY_S):
                self.logged[key] = now
                self._line(f"{describe_running(event)}, run ETA {format_duration(self.run_eta_s())}")
        self._redraw(force=event["kind"] == "end")

    def poll(self) -> None:
        """Show what spawned workers sent since the last call."""
        while self.inbox is not None:
            try:
                event = self.inbox.get_nowait()
            except (queue.Empty, EOFError, OSError):
                break
            self.trial_event(event)

    def update(self, trial: optuna.trial.FrozenTrial | None = None, line: str | None = None) -> None:
        """A trial of this process ended (``line``: what to print for it in log mode)."""
        if trial is not None:
            self.trial_event(end_event(0, trial, line or describe_trial(trial)))
        else:
            self._redraw(force=True)

    # ------------------------------------------------------------------ estimates
    def _finished(self) -> int:
        return min(finished_count(self.study), self.cfg.budget)

    def _mean_trial_seconds(self) -> float:
        """Mean wall time of the trials that trained (ok, diverged, failed); NaN before the first."""
        spans = [(t.datetime_complete - t.datetime_start).total_seconds()
                 for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
                 if t.user_attrs.get(ATTR.STATUS) in (STATUS.OK, STATUS.DIVERGED, STATUS.FAILED)
                 and t.datetime_start and t.datetime_complete]
        return sum(spans) / len(spans) if spans else math.nan

    def _job_units_left(self) -> float:
        """Rung-0 units of promotions and repeats not started yet (``ladder.job_units_left``, with the
        front's networks as they stand now); 0 without a ladder."""
        rungs, repeats, eta = self.cfg.rungs or 1, self.cfg.repeats or 1, self.cfg.eta or 1
        if rungs == 1 and repeats == 1:
            return 0.0
        now = self.clock()
        if now - self.jobs_left[0] >= JOBS_EVERY_S:
            jobs = open_jobs_study(self.study, create=False)
            references = sum(bool(t.user_attrs.get(ATTR.REFERENCE)) for t in self.study.get_trials(deepcopy=False))
            front = sum(not t.user_attrs.get(ATTR.REFERENCE) for t in front_trials(self.study, self.cfg.max_macs)) \
                if repeats > 1 else 0
            self.jobs_left = (now, job_units_left(jobs.get_trials(deepcopy=False) if jobs else [], budget=self.cfg.budget,
                                                  rungs=rungs, eta=eta, repeats=repeats, references=references,
                                                  front=front))
        return self.jobs_left[1]

    def run_eta_s(self) -> float:
        """Time left: the running trials' ETAs plus the trials not started yet at the mean trial time
        (the running trials' projected time before any finished), and the promotions and repeats not
        started yet at that time per rung-0 unit, shared by the workers."""
        per_trial = self.per_trial_s
        if not math.isfinite(per_trial):
            projected = [e["elapsed_s"] + e["eta_s"] for e in self.running.values() if math.isfinite(e["eta_s"])]
            per_trial = sum(projected) / len(projected) if projected else math.nan
        todo = max(0, self.cfg.budget - self._finished() - len(self.running)) + self._job_units_left()
        left = sum(e["eta_s"] for e in self.running.values() if math.isfinite(e["eta_s"]))
        if todo and not math.isfinite(per_trial):
            return math.nan
        return (left + (todo * per_trial if todo else 0.0)) / max(1, self.cfg.workers)

    # ------------------------------------------------------------------ output
    def _counts(self) -> str:
        return f"{self._finished()}/{self.cfg.budget} trials finished, run ETA {format_duration(self.run_eta_s())}"

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _redraw(self, force: bool = False) -> None:
        if self.bar is None:
            return
        now = self.clock()
        if not force and now - self.last_redraw < REDRAW_EVERY_S:
            return
        self.last_redraw = now
        self.bar.n = self._finished()
        trials = feasible_trials(self.study, self.cfg.max_macs)
        objectives = Objectives.of_study(self.study)
        best = max((objectives.value(t, "accuracy") for t in trials), default=None) if "accuracy" in objectives else None
        parts = [f"best {'-' if best is None else f'{100 * best:.2f}%'}, front {len(front_trials(self.study, self.cfg.max_macs))}"]
        parts += [describe_running(e) for _, e in sorted(self.running.items())]
        parts.append(f"run ETA {format_duration(self.run_eta_s())}")
        self.bar.set_postfix_str(" | ".join(parts), refresh=True)

    def __enter__(self) -> "TrialProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.poll()
        if self.bar is not None:
            self.running.clear()
            self._redraw(force=True)
            self.bar.close()
