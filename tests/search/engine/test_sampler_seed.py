"""Sampler seeds (issue 14 item 4): a fresh run is reproducible from --seed; every other process
(a resumed or concurrent launch, an extra worker) draws its own, so two of them do not propose the
same architectures."""

from __future__ import annotations

from search.config import SearchConfig
from search.engine.session import sampler_seed


def test_a_fresh_run_uses_its_seed_and_every_other_process_draws_its_own():
    cfg = SearchConfig(seed=7)
    assert sampler_seed(cfg, 0, 0) == (7, "--seed")
    # two launches resuming the same run at the same moment (same trial count): different seeds
    seeds = {sampler_seed(cfg, 0, 12)[0] for _ in range(20)}
    assert len(seeds) == 20 and all(0 <= s < 2**31 for s in seeds)
    assert sampler_seed(cfg, 1, 0)[0] != sampler_seed(cfg, 1, 0)[0]
    assert "pid" in sampler_seed(cfg, 1, 0)[1]  # the origin written to search.log
