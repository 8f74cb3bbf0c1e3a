"""A resume trains with the proxy recipe its study recorded, fields added to the recipe since included."""

from __future__ import annotations

import dataclasses

import pytest

from search.config import SearchConfig
from search.engine.session import proxy_config, recorded_proxy
from search.engine.study import STUDY_PROXY, STUDY_RECIPE
from search.errors import SearchError
from search.train.proxy import PRESETS, accuracy_settings


@pytest.fixture
def preset_that_refits(monkeypatch):
    """The cpu preset as it would be once it refits the output bias (whatever it does today)."""
    monkeypatch.setitem(PRESETS, "cpu", dataclasses.replace(PRESETS["cpu"], refit_bias_images=3000))
    return PRESETS["cpu"]


def attrs_of(config) -> dict:
    return {STUDY_PROXY: "cpu", STUDY_RECIPE: accuracy_settings(dataclasses.asdict(config))}


def test_a_study_older_than_a_field_resumes_at_the_value_that_behaves_as_its_absence(preset_that_refits):
    older = attrs_of(dataclasses.replace(preset_that_refits, refit_bias_images=0))
    assert "refit_bias_images" not in older[STUDY_RECIPE]  # what a study written before the field holds
    for proxy in ("auto", "cpu"):
        kept = recorded_proxy(SearchConfig(proxy=proxy, resume=True), older, "cpu")
        assert proxy_config(kept, "cpu").refit_bias_images == 0


def test_a_study_of_the_preset_now_resumes_with_it_and_refuses_a_change(preset_that_refits):
    now = attrs_of(preset_that_refits)
    kept = recorded_proxy(SearchConfig(resume=True), now, "cpu")
    assert proxy_config(kept, "cpu") == preset_that_refits
    with pytest.raises(SearchError, match=r"refit_bias_images 3000 -> 0"):
        recorded_proxy(SearchConfig(resume=True, proxy_overrides={"refit_bias_images": 0}), now, "cpu")
