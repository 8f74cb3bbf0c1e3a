"""Injected crashes for the crash-and-resume tests: ``SEESAW_FAULT=<point>:<n>`` makes this process
kill itself with SIGKILL at the n-th time it reaches the named point (n counts from 1).

    from search import faults
    faults.point("outcome-recorded")      # free when SEESAW_FAULT is unset

Points (where they are passed):
- ``ask``: after ``study.ask``, before the trial is claimed (``search.engine.trial``)
- ``claim``: after the claim, before the trial samples its architecture
- ``evaluated``: after training, before anything of the outcome is written
- ``outcome-recorded``: after the outcome is written, before ``tell``
- ``told``: after ``tell``
- ``job-claimed``: a promotion/repeat job claimed, before it trains (``search.engine.ladder``)
- ``job-evaluated``: a job trained, before anything of its outcome is written
- ``journal-append``: inside a journal write, after half of its bytes reached the file (a torn
  write; ``search.engine.journal``)
- ``journal-appended``: right after a journal write
"""

from __future__ import annotations

import os
import signal

__all__ = ["ACTIVE", "POINTS", "configure", "due", "hits", "point"]

POINTS = ("ask", "claim", "evaluated", "outcome-recorded", "told", "job-claimed", "job-evaluated", "journal-append",
          "journal-appended")

ACTIVE: str | None = None  # the point that kills, or None (the usual case: every hook returns at once)
_AT = 0
_hits: dict[str, int] = {}


def configure(spec: str | None) -> None:
    """Arm ``<point>:<n>`` (or disarm with None); read from ``SEESAW_FAULT`` at import."""
    global ACTIVE, _AT
    _hits.clear()
    if not spec:
        ACTIVE, _AT = None, 0
        return
    name, _, n = spec.partition(":")
    if name not in POINTS or not n.isdigit() or int(n) < 1:
        raise ValueError(f"SEESAW_FAULT must be <point>:<n> with a point of {', '.join(POINTS)} and n >= 1, got {spec!r}")
    ACTIVE, _AT = name, int(n)


def hits(name: str) -> int:
    """How often the armed point was reached in this process."""
    return _hits.get(name, 0)


def point(name: str) -> None:
    """Kill this process (SIGKILL: no cleanup, no flush) at the armed hit of point ``name``."""
    if ACTIVE != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == _AT:
        os.kill(os.getpid(), signal.SIGKILL)


def due(name: str) -> bool:
    """Whether the next ``point(name)`` kills (for a torn write, which must write half first)."""
    return ACTIVE == name and _hits.get(name, 0) + 1 == _AT


configure(os.environ.get("SEESAW_FAULT"))
