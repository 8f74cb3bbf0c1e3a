"""The study in a real PostgreSQL server (tests/pg_server.py): heartbeats of ask/tell workers, the
recovery of a dead worker's trial, the advisory lock that several hosts ask under, and outages."""

from __future__ import annotations

import queue
import threading
import time

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from search.config import SearchConfig
from search.engine.heartbeat import Heartbeat, budget_lock, recover_stale
from search.engine.rdb import advisory_lock, lock_key, retry
from search.engine.study import (STUDY_LADDER, STUDY_PROXY, STUDY_RECIPE, STUDY_SEARCH, StudyError, claim, make_sampler,
                                 open_study, record_lock, recorded_settings)


def study_on(url: str, grace: float, name: str = "s") -> optuna.Study:
    return open_study(url, name, make_sampler("random", 0), resume=False, heartbeat_grace_s=grace)


def ask_with_params(study: optuna.Study) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_int("a", 0, 1000)
    claim(trial)
    return trial


@pytest.mark.parametrize("storage", ["postgresql", "journal"])
def test_a_trial_without_heartbeat_is_failed_as_stale_and_rerun_a_beating_one_is_not(storage, pg_url, tmp_path):
    url = pg_url if storage == "postgresql" else f"journal://{tmp_path / 'study.journal'}"
    study = study_on(url, grace=1.0)
    dead, alive = ask_with_params(study), ask_with_params(study)
    stopped = Heartbeat(study, 1.0)
    stopped.add(dead)
    stopped.close()  # one beat, then its worker "dies": nothing beats for it any more
    beating = Heartbeat(study, 1.0)
    beating.add(alive)
    done = ask_with_params(study)
    study.tell(done, [0.5, 1.0])
    time.sleep(3.0)  # > grace: the dead trial's last beat is now stale
    assert recover_stale(study, 1.0) == [dead.number]
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[alive.number].state == TrialState.RUNNING
    assert trials[done.number].state == TrialState.COMPLETE and trials[done.number].values == [0.5, 1.0]
    waiting = [t for t in trials.values() if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == dead.params  # its architecture runs again
    # a second recovery finds nothing more: the stale trial was failed and re-enqueued exactly once
    assert recover_stale(study, 1.0) == []
    assert len([t for t in study.get_trials(deepcopy=False) if t.state == TrialState.WAITING]) == 1
    beating.close()


def test_two_workers_recovering_at_once_rerun_a_stale_trial_once(pg_url):
    studies = [study_on(pg_url, 1.0, "twice"),
               open_study(pg_url, "twice", make_sampler("random", 1), resume=True, heartbeat_grace_s=1.0)]
    dead = ask_with_params(studies[0])
    stopped = Heartbeat(studies[0], 1.0)
    stopped.add(dead)
    stopped.close()
    time.sleep(3.0)
    found: list[list[int]] = []
    threads = [threading.Thread(target=lambda s=s: found.append(recover_stale(s, 1.0))) for s in studies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(found) == [[], [dead.number]]
    assert len(studies[0].get_trials(deepcopy=False, states=(TrialState.WAITING,))) == 1


def test_advisory_lock_excludes_another_connection(pg_server):
    url = pg_server.url(pg_server.create_database())
    order: list[str] = []
    held, release = threading.Event(), threading.Event()

    def first() -> None:
        with advisory_lock(url, "x"):
            order.append("first in")
            held.set()
            release.wait(30)
            order.append("first out")

    def second() -> None:
        held.wait(30)
        with advisory_lock(url, "x"):
            order.append("second in")

    a, b = threading.Thread(target=first), threading.Thread(target=second)
    a.start(), b.start()
    held.wait(30)
    time.sleep(1.0)  # give the second a chance to (wrongly) enter
    release.set()
    a.join(30), b.join(30)
    assert order == ["first in", "first out", "second in"]
    # another name is another lock
    with advisory_lock(url, "x"), advisory_lock(url, "y"):
        pass


def test_budget_lock_takes_the_server_lock_for_postgresql(pg_url, tmp_path):
    cfg = SearchConfig(storage=pg_url, name="b", results_dir=str(tmp_path))
    with budget_lock(cfg):
        # another connection cannot take the run's advisory lock meanwhile
        engine = sqlalchemy.create_engine(pg_url)
        with engine.connect() as conn:
            got = conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key("ask:b")}).scalar()
        engine.dispose()
    assert got is False


def test_calls_wait_for_a_restarted_server_with_one_line(own_pg_server, capsys):
    url = own_pg_server.url(own_pg_server.create_database())
    study = study_on(url, 60.0)
    study.tell(ask_with_params(study), [0.1, 2.0])
    own_pg_server.stop()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(retry(lambda: len(study.get_trials(deepcopy=False)))))
    t.start()
    time.sleep(3.0)
    assert not result  # still waiting for the server
    own_pg_server.start()
    t.join(60)
    assert result == [1]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreachable" in err[0] and "retrying" in err[0], err


def test_wrong_password_or_database_is_one_study_error(pg_server):
    with pytest.raises(StudyError) as bad_pw:
        open_study(pg_server.url("postgres", password="wrong"), "s", make_sampler("random", 0), resume=False)
    assert "password" in str(bad_pw.value) and "wrong" not in str(bad_pw.value) and "***" in str(bad_pw.value)
    with pytest.raises(StudyError) as bad_db:
        open_study(pg_server.url("no_such_db"), "s", make_sampler("random", 0), resume=False)
    assert "no_such_db" in str(bad_db.value)


@pytest.mark.parametrize("storage", ["postgresql", "journal"])
def test_a_joining_process_reads_the_studys_settings_without_writing(storage, pg_url, tmp_path):
    """What a resume or a joining host checks itself against, and takes --rungs/--eta/--repeats from
    when it leaves them out; nothing where the study does not exist (yet): a fresh run takes the
    preset's, and asking creates no journal."""
    url = pg_url if storage == "postgresql" else f"journal://{tmp_path / 'study.journal'}"
    ladder, search = {"rungs": 2, "eta": 2, "repeats": 3}, {"space": "seesaw", "shared_block": False, "dataset": "cifar10"}
    assert recorded_settings(url, "ladder") == {}
    assert storage == "postgresql" or not (tmp_path / "study.journal").exists()
    open_study(url, "ladder", make_sampler("random", 0), resume=False, ladder=ladder, search=search)
    recorded = recorded_settings(url, "ladder")
    assert (recorded[STUDY_LADDER], recorded[STUDY_SEARCH]) == (ladder, search) and recorded_settings(url, "other") == {}
    joined = SearchConfig(space="seesaw", budget=1).with_ladder_defaults("gpu", recorded[STUDY_LADDER])
    assert joined.ladder_settings() == ladder  # not the gpu preset's 3 rungs, eta 3, 3 repeats
    given = SearchConfig(space="seesaw", budget=1, repeats=1).with_ladder_defaults("gpu", ladder)
    assert given.ladder_settings() == {**ladder, "repeats": 1}  # a value given wins (check_ladder then refuses it)
    with pytest.raises(StudyError, match=r"was made with --space seesaw, no --shared-block, not --space shufflenet, --shared-block"):
        open_study(url, "ladder", make_sampler("random", 0), resume=True,
                   search={**search, "space": "shufflenet", "shared_block": True})



def _join(url: str, lr: float, results: queue.Queue) -> None:
    """A host joining study "bare" with a recipe of its own (run in a thread: the record lock is a
    file lock or a PostgreSQL session lock, which threads contend for as processes do)."""
    results.put("ready")
    try:
        open_study(url, "bare", make_sampler("random", 0), resume=True, recipe={"lr": lr}, proxy=f"preset-{lr}")
        results.put("joined")
    except StudyError as exc:
        results.put(str(exc))


@pytest.mark.parametrize("storage", ["postgresql", "journal"])
def test_a_study_created_bare_is_recorded_by_its_first_joiner_and_later_ones_are_checked(storage, pg_url, tmp_path):
    """docs/scaling_out.md creates the study bare, then the hosts join it at once: each checks and
    records under the record lock, so the first to join records its settings and a later one with
    another recipe is refused, even one that opened the study before the first had recorded."""
    url = pg_url if storage == "postgresql" else f"journal://{tmp_path / 'study.journal'}"
    study = open_study(url, "bare", make_sampler("random", 0), resume=False)
    assert recorded_settings(url, "bare") == {}
    results: queue.Queue = queue.Queue()
    joiner = threading.Thread(target=_join, args=(url, 0.2, results), daemon=True)
    with record_lock(url, "bare"):  # a first joiner, between its check and its record
        joiner.start()
        assert results.get(timeout=60) == "ready"
        with pytest.raises(queue.Empty):  # the second joiner waits for the lock
            print(results.get(timeout=3.0))
        study.set_user_attr(STUDY_RECIPE, {"lr": 0.1})
        study.set_user_attr(STUDY_PROXY, "preset-0.1")
    said = results.get(timeout=60)
    joiner.join(timeout=30)
    assert "another proxy recipe (lr 0.1 -> 0.2)" in said
    assert recorded_settings(url, "bare")[STUDY_PROXY] == "preset-0.1"
    # a joiner of a study with a recipe and no ladder yet: the recipe is checked, the ladder recorded
    ladder = {"rungs": 1, "eta": 3, "repeats": 1}
    open_study(url, "bare", make_sampler("random", 0), resume=True, recipe={"lr": 0.1}, ladder=ladder, proxy="other")
    recorded = recorded_settings(url, "bare")
    assert (recorded[STUDY_LADDER], recorded[STUDY_PROXY]) == (ladder, "preset-0.1")
    with pytest.raises(StudyError, match="promotes and repeats with --rungs 1"):
        open_study(url, "bare", make_sampler("random", 0), resume=True, ladder={**ladder, "rungs": 2})
