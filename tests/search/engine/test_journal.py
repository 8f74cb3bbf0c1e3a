"""The journal corruption suite: a tail cut off at every byte of the last record, garbage appended
and garbage inside; plus the lock a killed writer leaves behind."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from pathlib import Path

import filelock
import optuna
import pytest

from search.engine.journal import FlockJournalLock, check_journal, inspect_journal
from search.engine.study import StudyError, load_study_readonly, make_sampler, open_study


def make_journal(tmp_path: Path, trials: int = 3) -> Path:
    path = tmp_path / "study.journal"
    study = open_study(f"journal://{path}", "s", make_sampler("random", 0), resume=False)
    for i in range(trials):
        t = study.ask()
        t.suggest_int("x", 0, 9)
        t.set_user_attr("note", f"trial {i} é")  # non-ASCII: cuts inside a UTF-8 character too
        study.tell(t, [0.1 * i, float(i)])
    return path


def values(path: Path) -> list:
    study = open_study(f"journal://{path}", "s", make_sampler("random", 0), resume=True)
    return [t.values for t in study.get_trials(deepcopy=False)]


@pytest.fixture(scope="module")
def journal_bytes(tmp_path_factory) -> bytes:
    return make_journal(tmp_path_factory.mktemp("j")).read_bytes()


def test_a_tail_cut_at_every_byte_of_the_last_record_is_repaired_and_resumable(tmp_path, journal_bytes, capsys):
    lines = journal_bytes.split(b"\n")[:-1]
    prefix = b"".join(line + b"\n" for line in lines[:-1])
    intact = tmp_path / "intact.journal"
    intact.write_bytes(prefix)
    expected = values(intact)
    last = lines[-1] + b"\n"
    for cut in range(1, len(last)):  # 1 .. every byte but the newline: a partial last record
        path = tmp_path / f"cut{cut}" / "study.journal"
        path.parent.mkdir()
        path.write_bytes(prefix + last[:cut])
        damage = inspect_journal(path)
        assert damage is not None and damage.keep == len(prefix) and damage.middle is None, cut
        # resume: repaired, resumable, and appending works again
        study = open_study(f"journal://{path}", "s", make_sampler("random", 0), resume=True)
        out = capsys.readouterr().out
        assert out.count("\n") == 1 and "dropped" in out and f"{cut} bytes" in out, out
        assert [t.values for t in study.get_trials(deepcopy=False)] == expected, cut
        assert path.read_bytes() == prefix
        backups = list(path.parent.glob("study.journal.damaged-*"))
        assert len(backups) == 1 and backups[0].read_bytes() == prefix + last[:cut]
        t = study.ask()
        study.tell(t, [0.5, 1.0])
        assert inspect_journal(path) is None and len(values(path)) == len(expected) + 1


@pytest.mark.parametrize("garbage", [b"\xff\xfe garbage\n", b"not json at all", b"{\"op_code\": 4, \"broken\n\n",
                                     b"[1, 2]\n", b"\x00\x00\x00\x00"])
def test_garbage_appended_is_dropped_with_one_line(tmp_path, journal_bytes, garbage, capsys):
    path = tmp_path / "study.journal"
    path.write_bytes(journal_bytes + garbage)
    assert values(path) == values_of(tmp_path, journal_bytes)
    out = capsys.readouterr().out
    assert "dropped" in out and f"{len(garbage)} bytes" in out
    assert path.read_bytes() == journal_bytes


def values_of(tmp_path: Path, data: bytes) -> list:
    ref = tmp_path / "ref" / "study.journal"
    ref.parent.mkdir(exist_ok=True)
    ref.write_bytes(data)
    return values(ref)


@pytest.mark.parametrize("garbage", [b"\xff\xfe\n", b"garbage\n", b"{\"op_code\":\n"])
def test_garbage_inside_is_refused_with_one_line_and_nothing_written(tmp_path, journal_bytes, garbage):
    lines = journal_bytes.split(b"\n")
    data = b"\n".join(lines[:3]) + b"\n" + garbage + b"\n".join(lines[3:])
    path = tmp_path / "study.journal"
    path.write_bytes(data)
    with pytest.raises(StudyError) as err:
        open_study(f"journal://{path}", "s", make_sampler("random", 0), resume=True)
    assert "line 4" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == data and sorted(p.name for p in tmp_path.iterdir() if "damaged" in p.name) == []


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_export_reads_a_damaged_journal_without_writing(tmp_path, journal_bytes):
    path = tmp_path / "study.journal"
    path.write_bytes(journal_bytes + b"{\"op_co")
    with pytest.raises(StudyError, match="damaged tail"):
        load_study_readonly(f"journal://{path}", "s")
    assert path.read_bytes() == journal_bytes + b"{\"op_co"
    path.write_bytes(journal_bytes)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    handler = Records()
    logging.getLogger("optuna").addHandler(handler)
    try:
        study = load_study_readonly(f"journal://{path}", "s")
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert len(study.trials) == 3 and path.read_bytes() == journal_bytes  # reading appends nothing
    assert [r.getMessage() for r in handler.records] == []  # and logs nothing (create_study(load_if_exists) would)


def _hold_lock_and_die(path: str) -> None:
    FlockJournalLock(path).acquire()
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_writer_killed_while_holding_the_journal_lock_leaves_no_stale_lock(tmp_path):
    """Optuna's default symlink lock would make the next writer wait its 30 s grace period."""
    path = make_journal(tmp_path, trials=1)
    proc = mp.get_context("spawn").Process(target=_hold_lock_and_die, args=(str(path),))
    proc.start()
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    with filelock.FileLock(f"{path}.flock", timeout=5):  # would raise filelock.Timeout if the dead holder still held it
        pass
    lock = FlockJournalLock(path)
    assert lock.acquire()
    lock.release()
    assert check_journal(path) is None


def test_the_journal_lock_excludes_check_journal_and_is_free_again_after_release(tmp_path):
    """The appends' flock and check_journal's filelock are one lock on PATH.flock."""
    path = make_journal(tmp_path, trials=1)
    lock = FlockJournalLock(path)
    lock.acquire()
    with pytest.raises(filelock.Timeout):
        filelock.FileLock(f"{path}.flock", timeout=0.2).acquire()
    lock.release()
    with filelock.FileLock(f"{path}.flock", timeout=0.2):
        pass


def test_optuna_alone_breaks_on_a_cut_journal(tmp_path, journal_bytes):
    """Why the check exists: Optuna itself appends onto the partial line and then cannot read it."""
    path = tmp_path / "study.journal"
    path.write_bytes(journal_bytes[:-5])
    with pytest.raises(Exception):
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        study = optuna.load_study(study_name="s", storage=storage)
        study.tell(study.ask(), [0.0, 0.0])
        optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def test_sampled_parameters_are_appended_without_fsync_and_the_next_attribute_flushes_them(tmp_path, monkeypatch):
    from search.engine.journal import journal_backend

    path = tmp_path / "study.journal"
    study = optuna.create_study(storage=optuna.storages.JournalStorage(journal_backend(path)),
                                directions=["maximize", "minimize"])
    trial = study.ask()
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    params = {f"p{i}": trial.suggest_categorical(f"p{i}", ["a", "b", "c"]) for i in range(20)}
    assert synced == []  # 20 records, no fsync
    trial.set_user_attr("key", "x")
    assert len(synced) == 1  # flushes the file, parameters included
    again = optuna.load_study(study_name=study.study_name,
                              storage=optuna.storages.JournalStorage(journal_backend(path)))
    assert again.trials[0].params == params
