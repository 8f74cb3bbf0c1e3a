"""--help: each default said once and only where it means something; closed sets list their choices."""

from __future__ import annotations

import re

import pytest

from search.engine.zero_cost import ZERO_COST_PROXIES
from search.train.proxy import PRESETS
from seesaw_cli.parser import build_parser
from space.spaces import SPACES


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
