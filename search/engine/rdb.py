"""A study in a database server (``--storage postgresql://...``): riding out an outage, and the
lock that lets several hosts finish a budget exactly.

- ``RetryingRDBStorage``: Optuna's ``RDBStorage`` whose every call is retried with back-off while
  the server cannot be reached (restart, network blip), with one line on stderr per outage; after
  ``STORAGE_PATIENCE_S`` it gives up with a one-line ``SearchError``. Opening the storage is not
  retried: a wrong URL, password or database name fails at once.
- ``advisory_lock``: a PostgreSQL advisory lock (``pg_advisory_lock``) on the study's server, held
  by one process of any host at a time; the server drops it when the holder's connection dies.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import sys
import threading
import time
import types
from typing import Any, Callable, Iterator, TypeVar

import optuna
import sqlalchemy
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from search.errors import SearchError

__all__ = ["STORAGE_PATIENCE_S", "RetryingRDBStorage", "advisory_lock", "is_connection_error", "is_postgres", "retry"]

STORAGE_PATIENCE_S = 300.0  # how long an unreachable server is waited for before the run stops
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # then 8 s between tries

T = TypeVar("T")
_outage_lock = threading.Lock()
_outage_since: float | None = None  # start of the outage this process is riding out


def is_connection_error(exc: BaseException) -> bool:
    """The server or the connection to it is gone (SQLAlchemy, or Optuna's wrapper around it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        if isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(exc: BaseException) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(getattr(cause, "orig", None) or cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def retry(call: Callable[[], T], what: str = "the study's database") -> T:
    """``call()``, tried again with back-off while ``what`` cannot be reached."""
    global _outage_since
    tries = 0
    while True:
        try:
            result = call()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            now = time.monotonic()
            with _outage_lock:
                if _outage_since is None:
                    _outage_since = now
                    print(f"{what} is unreachable ({_first_line(exc)}); retrying with back-off for up to "
                          f"{STORAGE_PATIENCE_S:.0f} s", file=sys.stderr, flush=True)
                waited = now - _outage_since
            if waited > STORAGE_PATIENCE_S:
                raise SearchError(f"{what} has been unreachable for {waited:.0f} s ({_first_line(exc)}); the "
                                  "finished trials are in the study: continue with --resume once it is back") from None
            time.sleep(BACKOFF_S[min(tries, len(BACKOFF_S) - 1)])
            tries += 1
            continue
        if tries:  # this call rode out the outage (a call that needs no server proves nothing)
            with _outage_lock:
                _outage_since = None
        return result


def _retrying(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return retry(lambda: method(self, *args, **kwargs))
    return wrapper


class RetryingRDBStorage(optuna.storages.RDBStorage):
    """``RDBStorage`` whose calls are retried while the server is unreachable (see the module
    docstring). A write whose commit reached the server just before the connection broke may be
    applied twice; Optuna's writes are small and this window is narrow."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        engine_kwargs = {"pool_pre_ping": True, **kwargs.pop("engine_kwargs", {})}
        super().__init__(url, engine_kwargs=engine_kwargs, **kwargs)


# Every method, the private ones too (Optuna's cache calls _get_trials, _set_trial_param ...); a
# nested call retries inside its caller's retry, and only connection errors are retried.
for _name, _value in list(vars(optuna.storages.RDBStorage).items()):
    # not the helpers that run inside a caller's session: only a whole transaction can be retried
    if (isinstance(_value, types.FunctionType) and not _name.startswith("__")
            and "session" not in inspect.signature(_value).parameters
            and _name not in ("_build_frozen_trial_from_trial_model", "remove_session")):
        setattr(RetryingRDBStorage, _name, _retrying(_value))


def is_postgres(url: str) -> bool:
    """Whether a storage URL names a PostgreSQL database (the one RDB that ``advisory_lock`` serves)."""
    return url.startswith(("postgresql", "postgres:"))


@functools.cache
def _lock_engine(url: str) -> sqlalchemy.engine.Engine:
    return sqlalchemy.create_engine(url, poolclass=NullPool)


def lock_key(name: str) -> int:
    """A stable 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(f"seesaw-nas:{name}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def advisory_lock(url: str, name: str) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock ``name`` on the server of ``url`` (waits for it)."""
    key = lock_key(name)
    engine = _lock_engine(url)

    def acquire() -> sqlalchemy.engine.Connection:
        conn = engine.connect()
        try:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        except Exception:
            conn.invalidate()
            conn.close()
            raise
        return conn

    conn = retry(acquire)
    try:
        yield
    finally:
        try:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.close()
        except Exception as exc:  # the server went away: it dropped the lock with the connection
            if not is_connection_error(exc):
                raise
            conn.invalidate()
            conn.close()
