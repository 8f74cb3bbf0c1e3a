"""The crash-and-resume harness: a seeded loop kills the search with SIGKILL at many moments (inside
journal writes too, via ``search.faults``), resumes it, and checks the invariants after every round:

- never more than the budget of counted trials, and exactly the budget at the end;
- every finished result is still there with its values;
- no architecture is trained twice (one trained record per canonical key);
- every reference trial carries its reference's own canonical key, and each reference counts once;
- the journal is readable (at most a torn last write, which the next launch repairs).

Each launch is a forked child running the CLI's ``main`` (no interpreter start-up per round); the
child arms its fault point and kills itself there. ``pytest -s`` prints the number of kill points.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import launch_search
from blocks import count_cost
from search import faults
from search.engine.attributes import ATTR, COUNTED_STATUSES, STATUS, TRAINED_STATUSES
from search.engine.journal import check_journal, inspect_journal
from search.train.data import load_dataset
from space.spaces import get_space

# One training step per trial on synthetic data: the harness exercises the bookkeeping, not the training.
TINY = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "32",
        "--train-subset", "32", "--batch-size", "32", "--epochs", "0.01"]
BUDGET = 7  # the seesaw space's 5 references, then 2 sampled networks
# How far into a launch each point may be armed (its n-th hit, 1..REACH) and how often it is drawn.
# A launch writes a few journal records before its first trial and about 20 per trial, so every
# draw lands before or inside the first trial or two of the launch: most launches are killed
# (a launch that reaches the budget first ends its campaign) and each gets a little further.
REACH = {"ask": 2, "claim": 2, "evaluated": 1, "outcome-recorded": 1, "told": 2, "journal-append": 12,
         "journal-appended": 12}
WEIGHT = {"ask": 1, "claim": 1, "evaluated": 1, "outcome-recorded": 1, "told": 1, "journal-append": 3,
          "journal-appended": 2}
KILLS = 50  # kill points the harness reaches at least (campaigns run until then)


def _child(args: list[str], fault: str | None, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = open(fd, "w", buffering=1)  # pytest's capture objects are not fd 1/2
    faults.configure(fault)
    try:
        code = launch_search.main(args)
    except SystemExit as exc:
        code = exc.code
    os._exit(code if isinstance(code, int) else 1)


def launch(args: list[str], fault: str | None, log: Path) -> int:
    proc = mp.get_context("fork").Process(target=_child, args=(args, fault, str(log)))
    proc.start()
    proc.join(timeout=600)
    return proc.exitcode


def read_trials(journal: Path, scratch: Path) -> list[optuna.trial.FrozenTrial]:
    """The study's trials from a repaired copy of the journal (the run's own file is left as the kill left it)."""
    shutil.copy2(journal, scratch)
    check_journal(scratch)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(scratch)))
    summaries = optuna.get_all_study_summaries(storage)
    if not summaries:
        return []
    return optuna.load_study(study_name=summaries[0].study_name, storage=storage).get_trials(deepcopy=False)


def counted(t: optuna.trial.FrozenTrial) -> bool:
    return t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.user_attrs.get(ATTR.STATUS) in COUNTED_STATUSES


def violations(trials, finished: dict, reference_keys: dict[str, str], final: bool) -> list[str]:
    out = []
    n_counted = sum(counted(t) for t in trials)
    if n_counted > BUDGET or (final and n_counted != BUDGET):
        out.append(f"{n_counted} counted trials for a budget of {BUDGET}")
    by_number = {t.number: t for t in trials}
    for number, (state, values, status) in finished.items():
        t = by_number.get(number)
        if t is None or (t.state, t.values, t.user_attrs.get(ATTR.STATUS)) != (state, values, status):
            out.append(f"finished trial {number} changed or vanished")
    trained: dict[str, int] = {}
    for t in trials:
        if t.state in (TrialState.COMPLETE, TrialState.FAIL) and t.user_attrs.get(ATTR.STATUS) in TRAINED_STATUSES:
            key = t.user_attrs.get(ATTR.KEY)
            if key in trained:
                out.append(f"architecture {key} trained twice: trials {trained[key]} and {t.number}")
            trained[key] = t.number
        ref = t.user_attrs.get(ATTR.REFERENCE)
        if ref and ATTR.KEY in t.user_attrs and t.user_attrs[ATTR.KEY] != reference_keys[ref]:
            out.append(f"trial {t.number} is labelled {ref} but ran {t.user_attrs[ATTR.KEY]}")
    if final:
        for ref in reference_keys:
            n = sum(counted(t) for t in trials if t.user_attrs.get(ATTR.REFERENCE) == ref)
            if n != 1:
                out.append(f"reference {ref} counted {n} times")
        if any(t.state == TrialState.RUNNING for t in trials):
            out.append("a trial is left running")
    return out


def crash_and_resume(tmp_path: Path, seed: int, kills_wanted: int, max_campaigns: int = 10, max_rounds: int = 30) -> dict:
    """Run searches, each killed at random points until it reaches its budget, until
    ``kills_wanted`` kills happened (at most ``max_campaigns`` searches)."""
    rng = random.Random(seed)
    space = get_space("seesaw", dataset="synthetic")
    reference_keys = {name: spec.canonical_key() for name, spec in space.references().items()}
    # Decoded and counted once here: the forked children inherit the data and the cost memo.
    load_dataset("synthetic", None, device="cpu", val_size=32, seed=0)
    for spec in space.references().values():
        count_cost(spec, 10, space.input_size)
    kills, problems, points = 0, [], {}
    c = 0
    while kills < kills_wanted and c < max_campaigns:
        c += 1
        name = f"c{c}"
        journal = tmp_path / name / "study.journal"
        base = ["--space", "seesaw", "--budget", str(BUDGET), "--name", name, "--results-dir", str(tmp_path), *TINY]
        finished: dict[int, tuple] = {}
        for r in range(max_rounds + 1):
            point = rng.choices(list(WEIGHT), weights=list(WEIGHT.values()))[0]
            fault = None if r == max_rounds else f"{point}:{rng.randint(1, REACH[point])}"
            args = base + (["--resume"] if journal.exists() else [])
            code = launch(args, fault, tmp_path / f"{name}.log")
            if code == -signal.SIGKILL:
                kills += 1
                points[point] = points.get(point, 0) + 1
            elif code != 0:
                problems.append(f"{name} round {r} ({fault}): exit {code}; see {name}.log")
                break
            if not journal.exists():
                continue  # killed before the study was created: nothing to check yet
            damage = inspect_journal(journal)
            if damage is not None and (damage.middle is not None or fault is None or not fault.startswith("journal-append:")):
                problems.append(f"{name} round {r} ({fault}): journal damaged: {damage}")
            trials = read_trials(journal, tmp_path / "scratch.journal")
            problems += [f"{name} round {r} ({fault}): {v}" for v in violations(trials, finished, reference_keys, code == 0)]
            for t in trials:
                if counted(t):
                    finished.setdefault(t.number, (t.state, t.values, t.user_attrs.get(ATTR.STATUS)))
            if code == 0:
                break
        else:
            problems.append(f"{name}: did not reach its budget")
    return {"kills": kills, "points": points, "violations": problems, "campaigns": c}


def test_crash_and_resume_loop_keeps_every_invariant(tmp_path):
    result = crash_and_resume(tmp_path, seed=int(os.environ.get("SEESAW_CRASH_SEED", "14")),
                              kills_wanted=int(os.environ.get("SEESAW_CRASH_KILLS", str(KILLS))))
    print(f"\ncrash-and-resume: {result['kills']} kill points in {result['campaigns']} searches ({result['points']}), "
          f"{len(result['violations'])} violations")
    assert not result["violations"], result["violations"]
    assert result["kills"] >= int(os.environ.get("SEESAW_CRASH_KILLS", str(KILLS))), result


def test_a_kill_between_the_outcome_and_tell_keeps_the_trained_result(tmp_path):
    """Issue 14 item 2: the trained result is kept, counted once, and not trained again."""
    base = ["--space", "seesaw", "--budget", "2", "--name", "o", "--no-references", "--results-dir", str(tmp_path), *TINY]
    assert launch(base, "outcome-recorded:1", tmp_path / "o.log") == -signal.SIGKILL
    journal = tmp_path / "o" / "study.journal"
    (before,) = read_trials(journal, tmp_path / "scratch.journal")
    assert before.state == TrialState.RUNNING and ATTR.OUTCOME in before.user_attrs
    assert launch([*base, "--resume"], None, tmp_path / "o.log") == 0
    trials = read_trials(journal, tmp_path / "scratch.journal")
    assert trials[0].state == TrialState.COMPLETE and trials[0].user_attrs[ATTR.STATUS] == STATUS.OK
    assert trials[0].values == before.user_attrs[ATTR.OUTCOME]["values"]
    assert [counted(t) for t in trials] == [True, True] and len(trials) == 2
    assert trials[1].user_attrs[ATTR.STATUS] == STATUS.OK and trials[1].user_attrs[ATTR.KEY] != trials[0].user_attrs[ATTR.KEY]


def test_a_kill_between_ask_and_claim_of_a_reference_reruns_that_reference(tmp_path):
    """Issue 14 item 3: the enqueued reference runs again with its own architecture (its fixed params)."""
    base = ["--space", "seesaw", "--budget", "1", "--name", "a", "--results-dir", str(tmp_path), *TINY]
    assert launch(base, "ask:1", tmp_path / "a.log") == -signal.SIGKILL
    journal = tmp_path / "a" / "study.journal"
    assert launch([*base, "--resume"], None, tmp_path / "a.log") == 0
    trials = read_trials(journal, tmp_path / "scratch.journal")
    space = get_space("seesaw", dataset="synthetic")
    (ok,) = [t for t in trials if counted(t)]
    assert ok.user_attrs[ATTR.KEY] == space.references()[ok.user_attrs[ATTR.REFERENCE]].canonical_key()
    # the cut-off reference waits again, with its own architecture, not a random one
    cut = trials[0].user_attrs[ATTR.REFERENCE]
    (again,) = [t for t in trials if t.state == TrialState.WAITING and t.user_attrs.get(ATTR.REFERENCE) == cut]
    assert again.system_attrs["fixed_params"] == space.reference_params()[cut]


@pytest.mark.parametrize("point", ["journal-append", "journal-appended"])
def test_a_kill_inside_a_journal_write_is_repaired_on_resume(tmp_path, point):
    base = ["--space", "seesaw", "--budget", "1", "--name", "j", "--no-references", "--results-dir", str(tmp_path), *TINY]
    assert launch(base, f"{point}:4", tmp_path / "j.log") == -signal.SIGKILL
    journal = tmp_path / "j" / "study.journal"
    torn = inspect_journal(journal)
    assert (torn is not None) == (point == "journal-append")
    assert launch([*base, "--resume"], None, tmp_path / "j.log") == 0
    assert inspect_journal(journal) is None
    assert [counted(t) for t in read_trials(journal, tmp_path / "scratch.journal")].count(True) == 1
    if torn is not None:
        assert "dropped" in (tmp_path / "j.log").read_text() and list((tmp_path / "j").glob("study.journal.damaged-*"))
