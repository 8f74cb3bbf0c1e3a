"""Progress inside running trials: the ticker's events, and the display in a log file (plain
lines, no bar) and on a terminal (one bar), with a real study and a fake clock."""

from __future__ import annotations

import io
import math

import optuna
from optuna.trial import TrialState, create_trial

from search.config import SearchConfig
from search.engine.attributes import ATTR, STATUS
from search.engine.study import DIRECTIONS
from search.results.progress import LOG_EVERY_S, TrialProgress, TrialTicker, format_duration
from search.train.trainer import EpochStats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def epoch(n: int, val_acc: float) -> EpochStats:
    return EpochStats(epoch=n, train_loss=1.0, val_acc=val_acc, val_loss=1.0, lr=0.1, images=0, train_time_s=0,
                      elapsed_s=0)


def test_format_duration():
    assert [format_duration(s) for s in (0, 75, 3725, math.nan, -1)] == ["0:00", "1:15", "1:02:05", "?", "?"]


def test_ticker_sends_steps_at_most_every_second_and_every_epoch():
    clock, sent = Clock(), []
    ticker = TrialTicker(sent.append, worker=1, trial=7, epochs=2, batch_size=50, every_s=1.0, clock=clock)
    clock.now += 10  # model build: not in images/s
    for step in range(1, 21):  # 10 steps per epoch, 0.25 s each
        clock.now += 0.25
        ticker.on_step(step, 20)
        if step % 10 == 0:
            ticker.on_epoch(epoch(step // 10, math.nan if step == 10 else 0.42))
    steps = [e for e in sent if e["kind"] == "step"]
    assert [e["epoch"] for e in sent if e["kind"] == "epoch"] == [1, 2]
    assert 5 <= len(steps) <= 6 and steps[-1]["done"] == 1.0  # throttled, the last step always sent
    assert steps[0]["epoch"] == 1 and steps[-1]["epoch"] == 2
    mid = next(e for e in sent if e["kind"] == "epoch" and e["epoch"] == 1)
    assert mid["done"] == 0.5
    assert mid["images_per_s"] == 200.0  # 50 images per 0.25 s
    assert mid["eta_s"] == mid["elapsed_s"]  # half the steps done
    assert math.isnan(sent[0]["val_acc"]) and sent[-1]["val_acc"] == 0.42 and sent[-1]["scored"]
    assert {e["worker"] for e in sent} == {1} and {e["trial"] for e in sent} == {7}


def study_with_one_finished_trial() -> optuna.Study:
    study = optuna.create_study(directions=list(DIRECTIONS))
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.5, 1e6],
                                 user_attrs={ATTR.STATUS: STATUS.OK, ATTR.MACS: 1e6}))
    return study


def feed(progress: TrialProgress, clock: Clock, worker: int, trial: int) -> None:
    ticker = TrialTicker(progress.trial_event, worker=worker, trial=trial, epochs=1, batch_size=10, clock=clock)
    for step in range(1, 101):
        clock.now += 1.0  # 100 s per trial
        ticker.on_step(step, 100)
    ticker.on_epoch(epoch(1, 0.6))


def test_log_mode_writes_plain_lines_no_bar_and_no_repeats():
    clock, out = Clock(), io.StringIO()
    study = study_with_one_finished_trial()
    cfg = SearchConfig(name="log", budget=4, workers=2)
    with TrialProgress(study, cfg, stream=out, tty=False, clock=clock) as progress:
        feed(progress, clock, worker=1, trial=1)
        progress.trial_event({"kind": "end", "worker": 1, "trial": 1, "line": "trial 1 ok val_acc=0.6000"})
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "it/s" not in out.getvalue()  # no tqdm
    assert len(lines) == len(set(lines))
    running = [ln for ln in lines if ln.startswith("trial 1 (w1): epoch 1/1")]
    # one line at the start, one every LOG_EVERY_S, one when the epoch is scored
    assert len(running) == 1 + 100 // int(LOG_EVERY_S) + 1, lines
    assert "10 img/s" in running[1] and "trial ETA" in running[1] and "run ETA" in running[1]
    assert "val_acc 60.00%" in running[-1]
    assert lines[-1].startswith("trial 1 ok val_acc=0.6000 | 1/4 trials finished, run ETA")


def test_terminal_mode_shows_running_trials_of_every_worker_in_one_bar():
    clock, out = Clock(), io.StringIO()
    study = study_with_one_finished_trial()
    cfg = SearchConfig(name="tty", budget=4, workers=2)
    with TrialProgress(study, cfg, stream=out, tty=True, clock=clock) as progress:
        ticker0 = TrialTicker(progress.trial_event, worker=0, trial=2, epochs=2, batch_size=10, clock=clock)
        ticker1 = TrialTicker(progress.trial_event, worker=1, trial=3, epochs=2, batch_size=10, clock=clock)
        clock.now += 1
        ticker0.on_step(1, 10)
        ticker1.on_step(1, 10)
        clock.now += 30
        ticker0.on_step(5, 10)
        clock.now += 1
        ticker1.on_step(2, 10)
        shown = progress.bar.postfix
    assert "trial 2 (w0): epoch 1/2, 50%" in shown and "trial 3 (w1): epoch 1/2, 20%" in shown
    assert "best 50.00%" in shown and "run ETA" in shown and "run ETA ?" not in shown
    assert "search tty" in out.getvalue()


def test_run_eta_counts_running_and_unstarted_trials_over_the_workers():
    clock = Clock()
    progress = TrialProgress(study_with_one_finished_trial(), SearchConfig(name="eta", budget=5, workers=2),
                             stream=io.StringIO(), tty=False, clock=clock)
    progress.per_trial_s = 100.0
    progress.running = {0: {"eta_s": 40.0, "elapsed_s": 60.0}, 1: {"eta_s": 20.0, "elapsed_s": 80.0}}
    # 5 budget - 1 finished - 2 running = 2 to start: (40 + 20 + 2 * 100) / 2 workers
    assert progress.run_eta_s() == 130.0


def test_run_eta_counts_the_promotions_and_repeats_not_started():
    from search.engine.ladder import open_jobs_study

    clock = Clock()
    study = study_with_one_finished_trial()
    cfg = SearchConfig(name="eta", budget=7, workers=1, rungs=2, eta=3, repeats=1)
    progress = TrialProgress(study, cfg, stream=io.StringIO(), tty=False, clock=clock)
    progress.per_trial_s = 100.0
    # 6 networks to start, and 7 // 3 = 2 promotions to rung 1 of 2 more units each
    assert progress.run_eta_s() == (6 + 2 * 2) * 100.0
    jobs = open_jobs_study(study)
    jobs.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.6],
                                user_attrs={ATTR.STATUS: STATUS.OK, ATTR.RUNG: 1, ATTR.PARENT: 0, ATTR.REPEAT: 0}))
    assert progress.run_eta_s() == 1000.0  # the jobs study is re-read at most every JOBS_EVERY_S
    clock.now += 10
    assert progress.run_eta_s() == (6 + 2) * 100.0


def test_run_eta_counts_the_repeats_of_the_front_as_it_stands():
    """With --repeats 2, every network on the current front (references apart: they count anyway)
    adds its second seed; a network pushed off the front no longer does."""
    clock = Clock()
    study = study_with_one_finished_trial()  # 0.5 at 1M MACs: on the front
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.4, 2e6],  # dominated
                                 user_attrs={ATTR.STATUS: STATUS.OK, ATTR.MACS: 2e6}))
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.7, 3e6],  # a reference on the front
                                 user_attrs={ATTR.STATUS: STATUS.OK, ATTR.MACS: 3e6, ATTR.REFERENCE: "ref"}))
    cfg = SearchConfig(name="eta", budget=5, workers=1, rungs=1, eta=3, repeats=2)
    progress = TrialProgress(study, cfg, stream=io.StringIO(), tty=False, clock=clock)
    progress.per_trial_s = 100.0
    # 2 networks to start, the reference's second seed, and that of the one other network on the front
    assert progress.run_eta_s() == (2 + 1 + 1) * 100.0
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.6, 0.5e6],  # dominates trial 0
                                 user_attrs={ATTR.STATUS: STATUS.OK, ATTR.MACS: 0.5e6}))
    clock.now += 10
    assert progress.run_eta_s() == (1 + 1 + 1) * 100.0
