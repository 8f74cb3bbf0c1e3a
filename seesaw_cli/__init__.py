"""seesaw-nas command line: search, describe spaces, list references, export, final training.

    seesaw-nas --space seesaw --budget 200        (or: python launch_search.py ...)
    seesaw-nas --references
    seesaw-nas --space seesaw --describe
    seesaw-nas --export 17 --name RUN
    seesaw-nas --final-train results/RUN/best_block.yaml --epochs 30

Parsing turns options into typed configs (``seesaw_cli.parser``); the work is in ``search``.
Errors print one line and exit with status 2.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from typing import Sequence

from search.errors import DataError, SearchError, StudyError
from seesaw_cli.info import describe_space, print_references
from seesaw_cli.parser import EXIT_USAGE, build_parser, contradiction
from space.spec import SpecError

__all__ = ["KNOWN_ERRORS", "main"]

# Errors whose message is the one line the user sees (exit status 2).
KNOWN_ERRORS: tuple[type[BaseException], ...] = (SearchError, StudyError, SpecError, DataError)


def one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' hook
    """Warnings on the command line read like its errors: one line, no source excerpt."""
    return f"warning: {message}\n"


def stop_as_on_ctrl_c(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler's stop, ``timeout``, ``kill``) ends a run like Ctrl-C: running trials
    are re-enqueued for --resume and every artifact is written."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, stop_as_on_ctrl_c)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    warnings.formatwarning = one_line_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = contradiction(args)
    if problem:
        parser.error(problem)
    try:
        if args.list_references:
            return print_references(as_json=args.json)
        if args.describe:
            return describe_space(args.space, args.dataset, args.shared_block)
        # torch and optuna (2-3 s of start-up) load only for the commands that need them
        from seesaw_cli.commands import run_command

        return run_command(args)
    except KNOWN_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file the command needs: unreadable, unwritable, disk full
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{':' if where else ''}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
