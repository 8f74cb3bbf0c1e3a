"""A hand-edited export: the key is recomputed and a warning says the metrics are another network's."""

from __future__ import annotations

import warnings

import pytest
import yaml

from search.results.export import EditedExportWarning, load_export
from space.references import get_reference


def write_export(path, spec_dict, key):
    path.write_text(yaml.safe_dump({"canonical_key": key, "num_classes": 10, "metrics": {"val_acc": 0.5},
                                    "spec": spec_dict}, sort_keys=False))


def test_an_unedited_export_loads_silently(tmp_path):
    spec = get_reference("seesaw_0.5d_cifar10").spec
    write_export(tmp_path / "a.yaml", spec.to_dict(), spec.canonical_key())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded, num_classes = load_export(tmp_path / "a.yaml")
    assert loaded.canonical_key() == spec.canonical_key() and num_classes == 10


def test_an_edited_spec_gets_its_own_key_and_a_warning(tmp_path):
    spec = get_reference("seesaw_0.5d_cifar10").spec
    edited = spec.to_dict()
    edited["head"]["channels"] = edited["head"]["channels"] * 2
    write_export(tmp_path / "b.yaml", edited, spec.canonical_key())
    with pytest.warns(EditedExportWarning, match="metrics"):
        loaded, _ = load_export(tmp_path / "b.yaml")
    assert loaded.canonical_key() != spec.canonical_key()
    assert loaded.head.channels == spec.head.channels * 2
