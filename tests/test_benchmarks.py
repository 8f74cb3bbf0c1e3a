"""The statistics and selection of the benchmark scripts (their full runs are in BENCHMARKS.md)."""

from __future__ import annotations

import json
import math

import numpy

import pytest

from benchmarks.proxy_fidelity import parse_sets, rank_correlation, select_architectures
from benchmarks.result_cache import ResultCache
from space.spaces import get_space


def test_rank_correlation_perfect_reversed_and_too_few():
    up = rank_correlation([1, 2, 3, 4, 5], [10, 20, 30, 40, 50])
    assert up["spearman"] == 1.0 and up["kendall"] == 1.0 and up["n"] == 5
    assert up["spearman_ci90"][1] == pytest.approx(1.0)
    down = rank_correlation([1, 2, 3, 4], [4, 3, 2, 1])
    assert down["spearman"] == -1.0 and down["kendall"] == -1.0
    # pairs with a missing or non-finite side are dropped
    few = rank_correlation([1, None, 3, math.nan], [1, 2, 3, 4])
    assert few["n"] == 2 and few["spearman"] is None


def test_architectures_cover_the_macs_range_one_per_stratum():
    space = get_space("seesaw")
    macs = {}

    def cost_of(spec):  # a cheap stand-in for count_cost: the ranking only needs an order
        key = spec.canonical_key()
        macs.setdefault(key, {"macs": sum(s.out_channels * s.repeats for s in spec.stages), "params": 0})
        return macs[key]

    archs = select_architectures(space, 4, pool=40, seed=0, references=True, cost_of=cost_of)
    sampled = [cost_of(s)["macs"] for n, s in archs if n.startswith("sample")]
    assert len(sampled) == 4 and sampled == sorted(sampled)
    pool = sorted(cost_of(s)["macs"] for s in space.random_specs(40, seed=0))
    assert sampled[0] <= pool[len(pool) // 4] and sampled[-1] >= pool[3 * len(pool) // 4]
    assert {n for n, _ in archs} >= set(space.references())
    assert archs == select_architectures(space, 4, pool=40, seed=0, references=True, cost_of=cost_of)


def test_parse_sets_and_cache_round_trip(tmp_path):
    assert parse_sets(["epochs=2", "train_subset=None", "schedule=linear", "lr=0.1"]) == {
        "epochs": 2, "train_subset": None, "schedule": "linear", "lr": 0.1}
    cache = ResultCache.for_settings("t", {"a": 1}, tmp_path)
    cache.put("k", {"val_acc": 0.5})
    assert ResultCache.for_settings("t", {"a": 1}, tmp_path).get("k") == {"val_acc": 0.5}
    assert ResultCache.for_settings("t", {"a": 2}, tmp_path).get("k") is None  # other settings, other file


def test_search_efficiency_runs_the_real_worker_with_a_cached_objective(tmp_path):
    """run_one drives search.executors.local.run_worker on an in-memory study; repeated networks are free."""
    from benchmarks.search_efficiency import CachedCost, CachedObjective, run_one

    space = get_space("seesaw")
    cost = CachedCost(ResultCache.for_settings("cost", {"t": 1}, tmp_path))
    objective = CachedObjective(lambda spec: float(len(spec.canonical_key()) + sum(map(ord, spec.canonical_key())) % 97),
                                ResultCache.for_settings("objective", {"t": 1}, tmp_path))
    trials = run_one("random", 0, 6, space=space, evaluator=objective, cost=cost, num_classes=10,
                     prescreen=None, prescore=None)
    done = [t for t in trials if t.values is not None]
    assert len(done) == 6 and objective.computed + objective.reused == 6
    assert all(t.values[1] == cost.cache.get(t.user_attrs["canonical_key"])["macs"] for t in done)
    again = run_one("random", 0, 6, space=space, evaluator=objective, cost=cost, num_classes=10,
                    prescreen=None, prescore=None)
    assert objective.reused >= 6 and [t.values for t in again] == [t.values for t in trials]


def test_caches_saved_by_two_processes_keep_both_results(tmp_path):
    first = ResultCache.for_settings("t", {"a": 1}, tmp_path)
    second = ResultCache.for_settings("t", {"a": 1}, tmp_path)  # loaded before first saves
    first.put("k1", 1)
    second.put("k2", 2)
    assert ResultCache.for_settings("t", {"a": 1}, tmp_path).data == {"k1": 1, "k2": 2}


def test_a_cache_reload_takes_in_what_another_process_saved(tmp_path):
    first = ResultCache.for_settings("t", {"a": 1}, tmp_path)
    second = ResultCache.for_settings("t", {"a": 1}, tmp_path)
    second.put("k2", 2)
    assert "k2" not in first
    first.reload()
    assert first.get("k2") == 2


def test_proxy_fidelity_reverse_trains_last_to_first_and_reuses_the_other_processs_results(tmp_path, capsys):
    """--reverse lets a second process start from the end; a network the first one saved is not trained
    again, and the table lists the networks in the same order either way."""
    from benchmarks.proxy_fidelity import main

    args = ["--quick", "--n", "3", "--dataset", "synthetic", "--threads", "1", "--cache-dir", str(tmp_path),
            "--zero-cost", "synflow"]
    assert main([*args, "--only", "final", "--reverse"]) == {}
    printed = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert printed == ["sample2", "sample1", "sample0"]
    (final_cache,) = tmp_path.glob("train-*.json")
    finals = ResultCache(final_cache).data
    entry = main(args)
    assert [r["name"] for r in entry["rows"]] == ["sample0", "sample1", "sample2"]
    assert ResultCache(final_cache).data == finals  # not trained again: same results, same wall times
    assert [r["final_acc"] for r in entry["rows"]] == [finals[r["key"]]["val_acc"] for r in entry["rows"]]


def test_proxy_fidelity_skips_a_network_another_process_is_training(tmp_path, capsys):
    """A network whose claim another process holds is not trained by a second --only process; once
    the claim is free, a run trains it."""
    import json

    from benchmarks.proxy_fidelity import main

    args = ["--quick", "--n", "2", "--dataset", "synthetic", "--threads", "1", "--cache-dir", str(tmp_path),
            "--only", "final"]
    main(args)
    (path,) = tmp_path.glob("train-*.json")
    doc = json.loads(path.read_text())
    first = next(iter(doc["results"]))
    del doc["results"][first]  # as if it was never trained
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    with ResultCache(path).claim(first, wait=True):  # as another process training it holds it
        main(args)
    assert "final (another process trains it)" in capsys.readouterr().out
    assert first not in json.loads(path.read_text())["results"]
    main(args)
    assert first in json.loads(path.read_text())["results"]


def test_proxy_fidelity_ranks_by_repeated_proxy_seeds_and_ranks_another_proxy_against_stored_finals(tmp_path, monkeypatch):
    """--proxy-repeats 2 trains the proxy with two training seeds and adds their mean as a signal;
    --only proxy trains those alone (for a second process), and the full run reuses them.
    --finals-from takes the final accuracies from a stored entry (nothing long is trained again);
    a proxy that refits its output bias also reports its ranking as trained, which is the first one's."""
    import benchmarks.proxy_fidelity as fidelity

    monkeypatch.setattr(fidelity, "RESULTS_FILE", tmp_path / "fidelity.json")
    cache = tmp_path / "cache"
    args = ["--quick", "--n", "2", "--dataset", "synthetic", "--threads", "1", "--cache-dir", str(cache)]
    assert fidelity.main([*args, "--proxy-repeats", "2", "--only", "proxy"]) == {}  # trained, printed no table
    entry = fidelity.main([*args, "--proxy-repeats", "2", "--zero-cost", "synflow", "--write", "--label", "long"])
    rows = entry["rows"]
    assert all(r["proxy_acc_seed1"] is not None for r in rows)
    mean = [(r["proxy_acc"] + r["proxy_acc_seed1"]) / 2 for r in rows]
    expected = rank_correlation(mean, [r["final_acc"] for r in rows])
    assert entry["correlations"]["proxy mean of 2"]["spearman"] == expected["spearman"]

    trained = sorted(p.name for p in cache.glob("train-*.json"))
    refit = fidelity.main([*args, "--zero-cost", "synflow", "--finals-from", "long", "--proxy-set", "refit_bias_images=64"])
    assert [r["final_acc"] for r in refit["rows"]] == [r["final_acc"] for r in rows]
    new = sorted(p.name for p in cache.glob("train-*.json"))
    assert len(new) == len(trained) + 1 and set(trained) < set(new)  # the refit proxy's results only
    assert refit["correlations"]["proxy as trained"] == entry["correlations"]["proxy"]
    assert refit["finals_from"] == "long" and refit["final_config"] == entry["final_config"]
    for bad, message in ((["--finals-from", "nope"], "no stored entry 'nope'"),
                         (["--finals-from", "long", "--write"], "needs a --label other than 'long'")):
        with pytest.raises(SystemExit, match=message):
            fidelity.main([*args, *bad])


def test_promotion_hypervolume_compares_runs_of_equal_training_cost(tmp_path, capsys):
    """Two real searches per seed (synthetic data): the flat run gets the promotion run's measured
    cost in top-rung trainings, and only top-rung networks count in the 'top rung only' column."""
    from benchmarks.promotion_hypervolume import main

    out = tmp_path / "phv.json"
    assert main(["--seeds", "0", "--budget", "3", "--rungs", "2", "--eta", "3", "--epochs", "1", "--dataset", "synthetic",
                 "--train-subset", "64", "--val-size", "128", "--parallel", "2", "--results-dir", str(tmp_path / "runs"),
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    promotion, flat = result["runs"]
    assert promotion["name"] == "promotion-s0" and flat["name"] == "flat-s0"
    assert len(promotion["networks"]) == 3 and [n["rung"] for n in promotion["networks"]].count(1) == 1
    assert promotion["units"] == 1 + 1 + 3  # each network costs eta**(rung reached)
    assert len(flat["networks"]) == 2 and flat["units"] == 6  # 5 units buy round(5 / 3) = 2 trainings of 3 epochs
    assert "--epochs" in flat["command"] and flat["command"][flat["command"].index("--epochs") + 1] == "3"
    assert 0 < promotion["hv_top"] <= promotion["hv_reported"]
    assert flat["hv_top"] == flat["hv_reported"] > 0
    [comparison] = result["comparison"]
    assert comparison["units"] == [5, 6]
    assert comparison["ratio_reported"] == pytest.approx(promotion["hv_reported"] / flat["hv_reported"])
    assert comparison["ratio_top"] == pytest.approx(promotion["hv_top"] / flat["hv_top"])
    printed = capsys.readouterr().out
    assert "(at least 5 rung-0 units)" in printed and "seed 0: " in printed and "(rung-0 units 5 against 6)" in printed


def test_promotion_hypervolume_capped_flat_run_stops_at_the_networks_the_cost_buys_and_resumes(tmp_path, capsys):
    """--flat-cap runs the flat search beside the promotion run, stops it once it has finished the
    first round(cost / top) networks (the ones a flat run of that size trains) and keeps those; a
    rerun resumes both folders and gives the same numbers."""
    from benchmarks.promotion_hypervolume import main
    from search.engine.study import finished_count, load_study_readonly

    runs = tmp_path / "runs"
    argv = ["--seeds", "0", "--budget", "3", "--rungs", "2", "--eta", "3", "--epochs", "1", "--dataset", "synthetic",
            "--train-subset", "64", "--val-size", "128", "--flat-cap", "40", "--results-dir", str(runs)]
    assert main([*argv, "--json", str(tmp_path / "a.json")]) == 0
    first = json.loads((tmp_path / "a.json").read_text())
    promotion, flat = first["runs"]
    assert promotion["units"] == 5 and flat["units"] == 6
    assert [n["number"] for n in flat["networks"]] == [0, 1]  # 5 units buy 2 networks: the flat run's first two
    study = load_study_readonly(f"journal://{runs / 'flat-s0' / 'study.journal'}", "flat-s0")
    assert 2 <= finished_count(study) < 40  # stopped long before its cap
    with open(runs / "flat-s0" / "trials.csv") as f:
        assert sum(1 for _ in f) - 1 == len(study.trials)  # the resume after the stop wrote its results
    capsys.readouterr()
    assert main([*argv, "--json", str(tmp_path / "b.json")]) == 0  # a rerun resumes: same networks, same numbers
    again = json.loads((tmp_path / "b.json").read_text())
    assert [r["networks"] for r in again["runs"]] == [r["networks"] for r in first["runs"]]
    assert all("--resume" in r["command"] for r in again["runs"])
    assert again["comparison"] == first["comparison"]


def test_proxy_spread_scores_as_a_search_trial_does_and_resumes(tmp_path, capsys):
    """Each run's 'proxy' score is what a search trial of that network and run seed scores; extra
    scorings are added; a rerun trains nothing and reports the same rows."""
    from benchmarks.proxy_spread import main
    from search.train.data import load_dataset
    from search.train.proxy import get_preset, evaluate_spec
    from space.references import get_reference

    out = tmp_path / "spread.jsonl"
    args = ["--preset", "smoke", "--dataset", "synthetic", "--models", "seesaw_0.5d_cifar10", "igcv3_0.5d_cifar10",
            "--seeds", "1", "2", "--val-size", "128", "--val-images", "128", "--recal", "64", "--ema", "0.9",
            "--score-images", "128", "64", "--flip", "--refit", "64", "--train-subset", "128", "--unseen", "64",
            "--refit-head", "0.01", "--out", str(out)]
    rows = main(args)
    assert len(rows) == 4 and len(out.read_text().splitlines()) == 4
    assert set(rows[0]["scores"]) == {"proxy", "recal 64", "ema 0.9", "ema 0.9 + recal", "val 128", "val 64",
                                      "flip", "flip val 128", "flip val 64", "refit 64", "proxy + unseen 64",
                                      "refit 64 + unseen 64", "head 0.01"}
    for row in rows:  # Trainer.predict, which the per-image split reads, scores as Trainer.evaluate does
        assert row["scores"]["val 128"] == row["scores"]["proxy"] and row["scored_images"] == 128
        for name in ("proxy", "refit 64"):  # 128 held-out images and 64 unseen ones, one count of right answers
            right = row["scores"][f"{name} + unseen 64"] * 192 - row["scores"][name] * 128
            assert right == pytest.approx(round(right), abs=1e-9) and 0 <= round(right) <= 64
        flipped = numpy.unpackbits(numpy.frombuffer(bytes.fromhex(row["correct_flip"]), numpy.uint8))[:128]
        assert row["scores"]["flip"] == row["scores"]["flip val 128"] == flipped.mean()
    data = load_dataset("synthetic", val_size=128)
    trial = evaluate_spec(get_reference("igcv3_0.5d_cifar10").spec, data, get_preset("smoke", val_images=128, train_subset=128),
                          device="cpu", seed=2)
    row = next(r for r in rows if r["model"] == "igcv3_0.5d_cifar10" and r["seed"] == 2)
    assert row["scores"]["proxy"] == trial.val_acc
    # 'refit 64' is what a trial whose preset refits the output bias on 64 images scores
    refit = evaluate_spec(get_reference("igcv3_0.5d_cifar10").spec, data,
                          get_preset("smoke", val_images=128, train_subset=128, refit_bias_images=64), device="cpu", seed=2)
    refit_bits = numpy.unpackbits(numpy.frombuffer(bytes.fromhex(row["correct_refit"]), numpy.uint8))[:128]
    assert row["scores"]["refit 64"] == refit.val_acc == refit_bits.mean()
    printed = capsys.readouterr().out
    assert "±" in printed and printed.count("| igcv3_0.5d_cifar10 | 2 |") == 3  # the per-image / shared split: plain, flipped, refit
    assert main(args) == rows and len(out.read_text().splitlines()) == 4


def test_proxy_spread_summary_gives_the_spread_of_paired_differences():
    from benchmarks.proxy_spread import summarize

    rows = [{"model": m, "seed": s, "scores": {"proxy": acc}}
            for m, accs in {"a": [0.30, 0.34, 0.38], "b": [0.29, 0.33, 0.37]}.items() for s, acc in zip((1, 2, 3), accs)]
    table = summarize(rows, ["a", "b"])
    assert "34.00 ± 4.00 (n=3)" in table and "33.00 ± 4.00 (n=3)" in table
    assert "+1.00 ± 0.00" in table  # b trails a by exactly one point under every seed


def test_proxy_spread_rejects_an_unknown_network_before_training(tmp_path, capsys):
    from benchmarks.proxy_spread import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--models", "nope", "--dataset", "synthetic", "--out", str(tmp_path / "s.jsonl")])
    assert exit_info.value.code == 2 and "unknown reference network 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "s.jsonl").exists()


def test_noise_split_tells_a_whole_score_shift_from_single_image_disagreement():
    from benchmarks.proxy_spread import noise_split, predicted_std

    # One seed gets all 100 images right, the other none: every image moves together.
    rows = numpy.array([[1] * 100, [0] * 100])
    total, per_image, shared = noise_split(rows, 100)
    assert total == pytest.approx(5000) and per_image == pytest.approx(50) and shared == pytest.approx(4950)
    assert predicted_std(per_image, shared, 100, 100) == pytest.approx(total ** 0.5)
    assert predicted_std(per_image, shared, 100, 10**9) == pytest.approx(5000 ** 0.5, rel=1e-6)  # no help
    # Two seeds that disagree on every image yet score the same: no spread at any number of images.
    rows = numpy.array([[1, 0] * 50, [0, 1] * 50])
    total, per_image, shared = noise_split(rows, 100)
    assert total == 0 and per_image > 0 and shared == pytest.approx(-per_image)
    assert predicted_std(per_image, shared, 100, 10000) < 0.01
    # A paired difference (rows of +1/0/-1) is split the same way; only the first `images` columns count.
    diff = numpy.array([[1, 0, -1, 1], [0, 0, -1, 1]])
    assert noise_split(diff, 2) == noise_split(diff[:, :2], 2)


def test_proxy_spread_refuses_to_score_more_images_than_held_out(tmp_path, capsys):
    from benchmarks.proxy_spread import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "synthetic", "--val-size", "100", "--val-images", "100", "--score-images", "500", "--out", str(tmp_path / "s.jsonl")])
    assert exit_info.value.code == 2 and "cannot score 500 images out of --val-size 100" in capsys.readouterr().err
    assert not (tmp_path / "s.jsonl").exists()


def test_proxy_spread_holds_the_initial_weights_or_the_data_order_fixed_when_asked(tmp_path):
    """--init-seed and --data-seed fix one source of randomness: with both fixed every seed trains the
    same run; with the data order alone fixed the seeds still differ (their initial weights)."""
    from benchmarks.proxy_spread import main

    base = ["--preset", "smoke", "--dataset", "synthetic", "--models", "seesaw_0.5d_cifar10", "--seeds", "1", "2",
            "--val-size", "128", "--val-images", "128", "--train-subset", "128"]
    both = main([*base, "--init-seed", "7", "--data-seed", "7", "--out", str(tmp_path / "both.jsonl")])
    assert both[0]["train_loss"] == both[1]["train_loss"] and both[0]["correct"] == both[1]["correct"]
    data_only = main([*base, "--data-seed", "7", "--out", str(tmp_path / "data.jsonl")])
    assert data_only[0]["train_loss"] != data_only[1]["train_loss"]
    assert {r["seed"]: r["train_loss"] for r in data_only}[2] != {r["seed"]: r["train_loss"] for r in both}[2]
    plain = main([*base, "--seeds", "1", "--out", str(tmp_path / "plain.jsonl")])
    changed = main([*base, "--seeds", "1", "--no-augment", "--zero-init-residual", "--out", str(tmp_path / "other.jsonl")])
    assert changed[0]["train_loss"] != plain[0]["train_loss"]


def test_zero_init_residual_starts_every_residual_block_as_the_identity():
    import torch

    from benchmarks.proxy_spread import zero_init_residual
    from blocks.inverted_residual import InvertedResidual
    from search.train.proxy import build_proxy_model, get_preset
    from space.references import get_reference

    model = build_proxy_model(get_reference("mobilenetv2_cifar10").spec, get_preset("smoke"), 10, 0).eval()
    residual = [m for m in model.modules() if isinstance(m, InvertedResidual) and m.use_residual]
    assert zero_init_residual(model) == len(residual) > 0
    with torch.no_grad():
        for block in residual:  # a residual block keeps its width: its input has the last BN's channels
            x = torch.randn(2, block.pw2[1].num_features, 8, 8)
            assert torch.equal(block(x), x)
