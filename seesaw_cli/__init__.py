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

import sys
from typing import Sequence

from search.runner import export_trial_of_run, run_search
from seesaw_cli.commands import KNOWN_ERRORS, describe_space, final_train, print_references
from seesaw_cli.parser import EXIT_USAGE, build_parser, final_train_config, search_config

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.list_references:
            return print_references(as_json=args.json)
        if args.describe:
            return describe_space(args.space, args.dataset, args.shared_block)
        if args.final_train:
            return final_train(final_train_config(args))
        cfg = search_config(args).validate()
        if args.export is not None:
            if args.name is None:
                parser.error("--export needs the run's --name")
            print(export_trial_of_run(cfg, args.export))
            return 0
        summary = run_search(cfg)
        return 130 if summary.get("interrupted") else 0
    except KNOWN_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
