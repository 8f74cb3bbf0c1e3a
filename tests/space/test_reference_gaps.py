"""A reference row that cannot be checked against printed numbers says why."""

from space.references import REFERENCES


def test_rows_without_published_counts_say_why():
    silent = [n for n, r in REFERENCES.items()
              if r.published.params_m is None and r.published.macs_m is None and not r.published.gap
              and "no counts printed" not in r.published.source]
    assert not silent, silent


def test_gc_resnet_rows_name_their_missing_seed():
    for depth in (50, 101):
        assert "no seed network" in REFERENCES[f"gc_resnet{depth}_imagenet"].published.gap
