"""--help: each default said once and only where it means something; closed sets list their choices."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from search.choices import OBJECTIVE_CHOICES
from search.engine.objectives import OBJECTIVES
from search.engine.zero_cost import ZERO_COST_PROXIES
from search.train.proxy import PRESETS
from seesaw_cli.parser import build_parser
from space.spaces import SPACES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def help_text() -> str:
    return " ".join(build_parser().format_help().split())  # argparse wraps lines: compare as one line


def test_no_option_says_its_default_twice_or_says_a_meaningless_one(help_text):
    assert not re.search(r"\(default: [^)]*\) \(default:", help_text)
    for meaningless in ("(default: None)", "(default: True)", "(default: False)"):
        assert meaningless not in help_text
    assert "--name NAME run folder results/NAME (default: SPACE-DATE-TIME)" in help_text
    assert "--budget BUDGET finished trials, resumed ones included (default: 200)" in help_text
    assert "(default: 0)" in help_text and "(default: 1)" in help_text  # zero and one are real defaults


def test_no_references_says_what_it_skips(help_text):
    text = help_text.split("--no-references ", 1)[1]
    assert text.startswith("skip the warm start")


@pytest.mark.parametrize("option, choices", [
    ("--space", sorted(SPACES)),
    ("--proxy", ["auto", *PRESETS]),
    ("--prescreen", list(ZERO_COST_PROXIES)),
])
def test_closed_sets_list_their_choices(help_text, option, choices):
    assert f"{option} {{{','.join(choices)}}}" in help_text
    action = next(a for a in build_parser()._actions if option in a.option_strings)
    assert list(action.choices) == choices and len(choices) >= 2


def test_the_objectives_offered_are_those_implemented(help_text):
    assert OBJECTIVE_CHOICES == tuple(OBJECTIVES)
    assert f"two or three of {', '.join(OBJECTIVES)}" in help_text


def test_help_and_a_warm_references_start_without_torch_or_optuna(tmp_path):
    """The info commands answer in about a second: they never import torch or optuna, except to
    count parts that this machine has not counted before (the first --references)."""
    env = {**os.environ, "SEESAW_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    script = ("import contextlib, io, sys, launch_search\n"
              "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
              "    try:\n"
              "        rc = launch_search.main(sys.argv[1:])\n"
              "    except SystemExit as exc:\n"
              "        rc = exc.code\n"
              "print(rc, 'torch' in sys.modules, 'optuna' in sys.modules, len(out.getvalue()) > 500)")

    def run(*argv: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", script, *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert run("--help") == ["0", "False", "False", "True"]
    first = run("--references")  # counts the parts: in this process, or in forked ones on 2+ cores
    assert first[0] == "0" and first[2:] == ["False", "True"]
    assert run("--references") == ["0", "False", "False", "True"]
    assert run("--space", "shufflenet", "--describe")[2:] == ["False", "True"]
