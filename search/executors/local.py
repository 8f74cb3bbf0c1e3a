"""The local executor: ask/tell workers on one study, in this process and (``--workers N``) in
spawned processes that share its storage. Each worker runs ``search.engine.trial.run_trial`` in a
loop until the budget is met; the budget check and ``ask`` happen under the run's ask lock.

Progress: every worker's trials report steps and epochs through a ``TrialTicker``; spawned workers
send those events (and one per finished trial) through a queue to the launching process, whose
``TrialProgress`` shows them with its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import optuna

from search.config import SearchConfig
from search.engine.ladder import Ladder
from search.engine.session import Run, open_run
from search.engine.trial import AfterTrial, Evaluator, Proposal, TrialSteps, run_trial
from search.results.artifacts import write_trials_csv
from search.results.progress import TrialProgress, TrialTicker, end_event
from space.spaces import SearchSpace

__all__ = ["exit_with_parent", "interrupt_once", "run_local", "run_worker", "start_extra_workers"]

PARENT_POLL_S = 1.0  # how often a spawned worker checks that the launching process is alive
EXIT_PARENT_DIED = 3  # a worker's exit status when it ended because the launching process died


def run_worker(
    study: optuna.Study,
    cfg: SearchConfig,
    space: SearchSpace,
    evaluator: Evaluator,
    *,
    num_classes: int,
    count_cost: Callable[..., Any],
    after_trial: AfterTrial | None = None,
    prescreen: Any = None,
    watch: Callable[[Proposal], dict[str, Any]] | None = None,
    ladder: Ladder | None = None,
) -> None:
    """Run trials until the study has ``cfg.budget`` counted trials (finished or running), and
    (``ladder``) the promotions and repeats that are due. ``watch``: progress callbacks for each
    trial that trains (``ticker_watch``)."""
    steps = TrialSteps(study, cfg, space, num_classes=num_classes, count_cost=count_cost, prescreen=prescreen,
                       after_trial=after_trial, ladder=ladder)
    while run_trial(steps, evaluator, watch) is not None:
        pass


def ticker_watch(send: Callable[[dict], None], worker: int, evaluator: Any) -> Callable[[Proposal], dict[str, Any]]:
    """For ``run_trial``: a fresh ``TrialTicker`` per trial, whose callbacks go to the evaluator."""
    config = evaluator.config

    def watch(proposal: Proposal) -> dict[str, Any]:
        ticker = TrialTicker(send, worker=worker, trial=proposal.number,
                             epochs=proposal.train_kwargs().get("epochs", config.epochs), batch_size=config.batch_size)
        return {"on_step": ticker.on_step, "on_epoch": ticker.on_epoch}

    return watch


def run_local(run: Run) -> None:
    """This process and ``--workers - 1`` spawned ones run trials; one display follows them all."""
    inbox = mp.get_context("spawn").Queue() if run.cfg.workers > 1 else None
    procs = start_extra_workers(run.cfg, run.cfg.workers - 1, inbox) if inbox is not None else []
    with TrialProgress(run.study, run.cfg, inbox=inbox) as progress:
        try:
            def after_trial(trial: optuna.trial.FrozenTrial, line: str) -> None:
                progress.update(trial, line)
                write_trials_csv(run.study, run.cfg.run_dir / "trials.csv")  # readable while the run goes on

            def show(event: dict) -> None:  # this process's trial, and what the other workers sent meanwhile
                progress.trial_event(event)
                progress.poll()

            run_worker(run.study, run.cfg, run.space, run.evaluator, num_classes=run.num_classes,
                       count_cost=run.count_cost, after_trial=after_trial, prescreen=run.prescreen,
                       watch=ticker_watch(show, 0, run.evaluator), ladder=run.ladder)
        except BaseException:
            # Stopped (Ctrl-C, SIGTERM to this process only, an error): the workers stop too, each
            # re-enqueueing the trial it was running (on a terminal they also got the Ctrl-C).
            for p in procs:
                if p.is_alive():
                    p.terminate()
            raise
        finally:
            for p in procs:  # the queue is drained while waiting: a worker exits once its events are read
                while p.is_alive():
                    progress.poll()
                    p.join(timeout=0.5)
            progress.poll()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        print(f"warning: {len(failed)} worker process(es) exited with codes {failed}; see search.log", file=sys.stderr)


def start_extra_workers(cfg: SearchConfig, n: int, outbox: Any = None) -> list[mp.process.BaseProcess]:
    """Start ``n`` worker processes (spawned: safe with torch and threads) on the run's study;
    ``outbox``: a spawn-context queue for their progress events."""
    ctx = mp.get_context("spawn")
    procs = []
    for i in range(n):
        p = ctx.Process(target=_worker_main, args=(cfg, i + 1, os.getpid(), outbox), name=f"seesaw-worker-{i + 1}")
        p.start()
        procs.append(p)
    return procs


def exit_with_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Watch the launching process from a daemon thread and end this one when it is gone (kill -9
    of the main process): an orphaned worker would go on spending the budget alone. The trial it
    was running stays "running" and is re-run on --resume, like any trial of a dead process."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(EXIT_PARENT_DIED)

    thread = threading.Thread(target=watch, name="seesaw-parent-watch", daemon=True)
    thread.start()
    return thread


def interrupt_once() -> None:
    """SIGINT or SIGTERM raises ``KeyboardInterrupt`` once; later ones are ignored, so the Ctrl-C of
    the terminal and the SIGTERM of the launching process do not cut off the clean-up of the first."""

    def handler(signum: int, frame: Any) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def _worker_main(cfg: SearchConfig, index: int, parent_pid: int, outbox: Any = None) -> None:
    interrupt_once()
    exit_with_parent(parent_pid)
    send = outbox.put if outbox is not None else (lambda event: None)
    with contextlib.suppress(KeyboardInterrupt):
        run = open_run(cfg, worker_index=index)
        run_worker(run.study, cfg, run.space, run.evaluator, num_classes=run.num_classes, count_cost=run.count_cost,
                   prescreen=run.prescreen, watch=ticker_watch(send, index, run.evaluator), ladder=run.ladder,
                   after_trial=lambda trial, line: send(end_event(index, trial, line)))
