"""The measured-fidelity lookup that a run's summary quotes."""

from __future__ import annotations

import json

from search.results.fidelity import describe_fidelity, find_fidelity, load_fidelity

CONFIG = {"epochs": 1, "train_subset": 2000, "augment": {"flip": True}, "width_scale": 0.25}
ENTRY = {
    "label": "seesaw-cpu-test", "space": "seesaw", "dataset": "imagefolder", "architectures": 15,
    "proxy_preset": "cpu", "proxy_overrides": {"epochs": 1}, "proxy_config": CONFIG, "final_overrides": {"epochs": 3},
    "correlations": {
        "proxy": {"spearman": 0.61, "kendall": 0.45, "spearman_ci90": [0.3, 0.8], "n": 15},
        "params": {"spearman": 0.2, "kendall": 0.1, "spearman_ci90": None, "n": 15},
        "macs": {"spearman": 0.3, "kendall": 0.2, "spearman_ci90": None, "n": 15},
    },
}


def test_exact_configuration_is_quoted_with_its_baselines():
    assert find_fidelity(dict(CONFIG), "seesaw", [ENTRY]) is ENTRY
    line = describe_fidelity("cpu", CONFIG, "seesaw", [ENTRY])
    assert "+0.61 [+0.30, +0.80]" in line and "Kendall +0.45" in line and "MACs alone +0.30" in line
    assert "seeds" not in line
    repeated = {**ENTRY, "correlations": {**ENTRY["correlations"],
                                          "proxy mean of 2": {"spearman": 0.9, "kendall": 0.8, "spearman_ci90": [0.82, 0.98]}}}
    assert "Kendall +0.45, mean of 2 seeds +0.90 [+0.82, +0.98]; params" in describe_fidelity("cpu", CONFIG, "seesaw", [repeated])


def test_other_configuration_or_space_is_not_measured():
    other = {**CONFIG, "epochs": 2}
    assert find_fidelity(other, "seesaw", [ENTRY]) is None
    assert find_fidelity(CONFIG, "shufflenet", [ENTRY]) is None
    line = describe_fidelity("cpu", other, "seesaw", [ENTRY])
    assert "not measured" in line and "seesaw-cpu-test (measured with epochs=1)" in line  # how it differs from the run
    assert "not measured" in describe_fidelity("gpu", CONFIG, "shufflenet", [ENTRY])


def test_a_field_added_later_matches_stored_entries_only_at_its_old_behaviour():
    assert find_fidelity({**CONFIG, "eval_flip": False}, "seesaw", [ENTRY]) is ENTRY  # as before the field existed
    assert find_fidelity({**CONFIG, "eval_flip": True}, "seesaw", [ENTRY]) is None


def test_missing_or_broken_results_file_means_no_entries(tmp_path):
    assert load_fidelity(tmp_path / "none.json") == []
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert load_fidelity(bad) == []
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"entries": [ENTRY]}))
    assert load_fidelity(good)[0]["label"] == "seesaw-cpu-test"


def test_reporting_only_fields_do_not_change_the_match():
    """eval_every / eval_batch_size change when validation runs, not the accuracy reported."""
    retuned = {**CONFIG, "eval_every": 2, "eval_batch_size": 64}
    assert find_fidelity(retuned, "seesaw", [{**ENTRY, "proxy_config": {**CONFIG, "eval_batch_size": 500}}]) is not None
    assert find_fidelity({**retuned, "width_scale": 0.5}, "seesaw", [ENTRY]) is None
