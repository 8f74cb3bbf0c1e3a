"""The journal file that holds a run's study on one host: checked (and its damaged tail repaired)
before Optuna reads it, and locked with a lock that a killed process cannot leave behind.

Optuna's journal is one JSON record per line, appended under a lock. A process killed while it
appends can leave a partial last line; Optuna would then append onto it and every later read
fails. ``check_journal`` finds such a damaged tail (a last line without its newline, or trailing
lines that are not UTF-8 JSON records), copies the file to ``study.journal.damaged-<time>``,
keeps the intact prefix and says what it dropped. Damage followed by intact records (the middle
of the file) is refused: nothing is written, the user decides.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from optuna.storages.journal import JournalFileBackend
# private: the lock interface JournalFileBackend takes, how it holds it, and the record op codes
from optuna.storages.journal._file import BaseJournalFileLock, get_lock_file
from optuna.storages.journal._storage import JournalOperation

from search import faults

__all__ = ["FlockJournalLock", "JournalDamage", "JournalError", "check_journal", "inspect_journal",
           "journal_backend"]


class JournalError(ValueError):
    """The journal is damaged in a way that cannot be repaired safely (one line for the user)."""


@dataclass(frozen=True)
class JournalDamage:
    """Where a journal's intact records end: ``keep`` bytes are intact, the rest is damaged."""

    keep: int  # bytes of intact, newline-terminated records from the start
    size: int  # bytes in the file
    records: int  # intact records kept
    bad_lines: int  # damaged lines after them (a partial last line counts as one)
    middle: int | None = None  # 1-based line number of a damaged line that intact records follow

    @property
    def dropped(self) -> int:
        return self.size - self.keep


def _intact(line: bytes) -> bool:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and "op_code" in record


def inspect_journal(path: Path) -> JournalDamage | None:
    """None if every line of ``path`` is an intact record ending in a newline; else where the damage is."""
    data = Path(path).read_bytes()
    if not data:
        return None
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: bytes after the last newline (b"" if none)
    offset = keep = records = 0
    first_bad: int | None = None
    bad = 0
    for number, line in enumerate(complete, start=1):
        offset += len(line) + 1
        if _intact(line):
            if first_bad is not None:
                return JournalDamage(keep, len(data), records, bad, middle=first_bad)
            keep, records = offset, records + 1
        else:
            first_bad = number if first_bad is None else first_bad
            bad += 1
    if tail:
        bad += 1
    return None if bad == 0 else JournalDamage(keep, len(data), records, bad)


class FlockJournalLock(BaseJournalFileLock):
    """The journal's write lock as an OS file lock (``flock``) on ``PATH.flock``: the kernel
    releases it when its holder dies, so a process killed while appending leaves no stale lock
    (Optuna's own symlink lock then makes everyone wait its 30 s grace period).

    ``fcntl.flock`` directly rather than ``filelock`` (which ``check_journal`` uses on the same
    file, and which is compatible with it): the lock is taken for every journal record, ~80 per
    seesaw trial, and filelock's acquire and release cost 150 us against 5 us here. Each acquire
    opens its own descriptor, so the threads of one process (the heartbeat's and the trial's)
    exclude each other too; only the holder touches ``_fd``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._path = f"{os.fspath(path)}.flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _flock(path: str | os.PathLike) -> FileLock:
    return FileLock(f"{os.fspath(path)}.flock", thread_local=False)


def check_journal(path: Path, *, repair: bool = True) -> str | None:
    """Check ``path`` under its write lock before a study reads it; repair a damaged tail.

    Returns the line to print when a tail was dropped (None if the journal is intact or missing).
    Raises ``JournalError`` (nothing written) for damage in the middle, or for a damaged tail when
    ``repair`` is False.
    """
    path = Path(path)
    if not path.exists():
        return None
    with _flock(path):
        damage = inspect_journal(path)
        if damage is None:
            return None
        if damage.middle is not None:
            raise JournalError(
                f"{path} is damaged at line {damage.middle}, before intact records: refusing to touch it; "
                f"restore it from a backup or move it aside")
        what = (f"{damage.dropped} bytes ({damage.bad_lines} damaged line{'s' if damage.bad_lines > 1 else ''}) "
                f"after its {damage.records} intact records")
        if not repair:
            raise JournalError(f"{path} has a damaged tail: {what}; --resume the run to repair it")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        backup = path.with_name(f"{path.name}.damaged-{stamp}")
        shutil.copy2(path, backup)
        with open(path, "r+b") as f:
            f.truncate(damage.keep)
            f.flush()
            os.fsync(f.fileno())
        return f"repaired {path}: dropped {what} (a write cut off by a crash); the whole file is in {backup.name}"


def journal_backend(path: Path) -> JournalFileBackend:
    """Optuna's journal file backend on ``path`` with the ``FlockJournalLock``, less one fsync per
    sampled parameter (``_RunJournalBackend``)."""
    if faults.ACTIVE in ("journal-append", "journal-appended"):
        return _FaultyJournalBackend(str(path), lock_obj=FlockJournalLock(path))
    return _RunJournalBackend(str(path), lock_obj=FlockJournalLock(path))


class _RunJournalBackend(JournalFileBackend):
    """Appends a trial's parameter records without Optuna's fsync.

    Optuna fsyncs every append, and a seesaw trial samples ~70 parameters: those fsyncs were the
    largest part of a trial's non-training work (2.6 of 8.6 s over 30 trials on a busy disk,
    ``benchmarks/info_speed.py``). The records the same trial step writes next (its spec and cost)
    are fsynced, which flushes the whole file, parameters included. A killed process loses nothing
    either way (written bytes are in the page cache); only a machine crash in between could drop
    some parameters of a trial that is still running, which recovery re-runs as after a crash
    during sampling.
    """

    def append_logs(self, logs: list[dict]) -> None:
        if not all(log.get("op_code") == JournalOperation.SET_TRIAL_PARAM for log in logs):
            super().append_logs(logs)
            return
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        with get_lock_file(self._lock), open(self._file_path, "ab") as f:
            f.write(data)


class _FaultyJournalBackend(_RunJournalBackend):
    """With ``SEESAW_FAULT=journal-append:N``: the N-th append writes half of its bytes and the
    process dies (a torn write); ``journal-appended:N`` dies right after the N-th append."""

    def append_logs(self, logs: list[dict]) -> None:
        if faults.due("journal-append"):
            data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
            self._lock.acquire()
            with open(self._file_path, "ab") as f:
                f.write(data[: max(1, len(data) // 2)])
                f.flush()
                os.fsync(f.fileno())
        faults.point("journal-append")
        super().append_logs(logs)
        faults.point("journal-appended")
