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

from search.runner import export_trial_of_run, run_search
from seesaw_cli.commands import KNOWN_ERRORS, describe_space, final_train, print_references
from seesaw_cli.parser import EXIT_FAILED, EXIT_USAGE, build_parser, contradiction, final_train_config, search_config

__all__ = ["main"]


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
        if args.final_train is not None:
            return final_train(final_train_config(args))
        cfg = search_config(args).validate()
        if args.export is not None:
            print(export_trial_of_run(cfg, args.export))
            return 0
        summary = run_search(cfg)
        if summary.get("interrupted"):
            return 130
        if summary.get("finished") and not summary.get("front"):
            print(f"error: no trial of run {cfg.name!r} finished with a result (every trial failed; see the failure "
                  f"column of {cfg.run_dir / 'trials.csv'})", file=sys.stderr)
            return EXIT_FAILED
        return 0
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
