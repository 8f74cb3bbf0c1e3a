"""search.train.proxy / search.train.trainer: a short seeded run learns, repeats exactly, and reports divergence."""

import argparse
import dataclasses
import math

import pytest
import torch
import torch.nn as nn

from search.train.data import split_dataset, synthetic_dataset
from search.train.proxy import PRESETS, ProxyConfig, ProxyResult, add_override_flags, get_preset, overrides_from, train_proxy
from search.train.trainer import Recipe, Trainer, lr_factor


def small_net(num_classes: int = 4, width: int = 8) -> nn.Module:
    """A real (tiny) CIFAR-style conv net: conv-BN-ReLU x2, global pool, FC."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )


@pytest.fixture(scope="module")
def data():
    raw = synthetic_dataset(num_train=640, num_test=64, num_classes=4, image_size=16, seed=0)
    return split_dataset(raw, val_size=128, seed=0, name="synthetic")


def config(**overrides) -> ProxyConfig:
    base = dict(epochs=3, train_subset=None, batch_size=64, lr=0.1, val_images=None, eval_batch_size=128, width_scale=1.0)
    return get_preset("smoke", **{**base, **overrides})


def run(data, seed=0, **overrides) -> ProxyResult:
    torch.manual_seed(seed)
    return train_proxy(small_net(), data, config(**overrides), device="cpu", seed=seed)


def test_short_run_learns_and_reports_every_metric(data):
    result = run(data)
    assert result.status == "ok" and result.epochs_done == 3
    assert result.val_acc > 0.6  # chance is 0.25
    assert result.images_seen == 3 * 8 * 64 and result.train_images == 512 and result.val_images == 128
    assert result.train_time_s > 0 and result.images_per_s > 0 and result.eval_time_s > 0
    assert result.params == result.proxy_params == sum(p.numel() for p in small_net().parameters())
    assert result.macs == result.proxy_macs > 0
    assert [h.epoch for h in result.history] == [1, 2, 3]
    assert result.history[-1].val_acc == result.val_acc
    d = result.to_dict()
    assert d["status"] == "ok" and len(d["history"]) == 3 and isinstance(d["history"][0], dict)


def test_identical_seeds_give_identical_results(data):
    a, b = run(data, seed=7), run(data, seed=7)
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    assert a.val_loss == b.val_loss and a.val_acc == b.val_acc
    c = run(data, seed=8)
    assert [h.train_loss for h in c.history] != [h.train_loss for h in a.history]


def test_identical_seeds_with_mixing_and_cutout_are_identical_too(data):
    aug = dataclasses.replace(PRESETS["smoke"].augment, cutout=4, mixup_alpha=0.2, cutmix_alpha=1.0)
    a, b = run(data, seed=3, augment=aug, epochs=1), run(data, seed=3, augment=aug, epochs=1)
    assert a.val_loss == b.val_loss


def test_a_diverging_trial_is_reported_and_stopped_at_once(data):
    seen = []
    torch.manual_seed(0)
    result = train_proxy(small_net(), data, config(lr=1e10, epochs=5), device="cpu", seed=0, on_epoch=seen.append)
    assert result.status == "diverged"
    assert math.isnan(result.val_acc) and math.isnan(result.val_loss)
    assert result.epochs_done == 0 and result.images_seen < 512  # stopped within the first epoch
    assert len(seen) == 1 and math.isnan(seen[0].train_loss)


def test_callbacks_see_every_epoch_and_eval_every_skips_validation(data):
    seen = []
    torch.manual_seed(0)
    train_proxy(small_net(), data, config(epochs=3, eval_every=2), device="cpu", seed=0, on_epoch=seen.append)
    assert [s.epoch for s in seen] == [1, 2, 3]
    assert math.isnan(seen[0].val_acc) and not math.isnan(seen[1].val_acc) and not math.isnan(seen[2].val_acc)
    assert seen[0].images < seen[1].images < seen[2].images


def test_step_callback_sees_every_optimizer_step_and_changes_nothing(data):
    steps = []
    torch.manual_seed(0)
    watched = train_proxy(small_net(), data, config(epochs=1.5), device="cpu", seed=0,
                          on_step=lambda step, total: steps.append((step, total)))
    total = round(1.5 * (512 // 64))  # 512 training images after the 128 held out
    assert steps == [(i, total) for i in range(1, total + 1)]
    assert watched.val_acc == run(data, epochs=1.5).val_acc


def test_reporting_only_fields_do_not_change_the_reported_accuracy(data):
    """REPORTING_ONLY_FIELDS may be left out of cache keys and fidelity matches."""
    from search.train.proxy import REPORTING_ONLY_FIELDS

    results = []
    for fields in ({"eval_every": 1, "eval_batch_size": 500}, {"eval_every": 2, "eval_batch_size": 32}):
        assert set(fields) == set(REPORTING_ONLY_FIELDS)
        torch.manual_seed(0)
        r = train_proxy(small_net(), data, config(epochs=3, **fields), device="cpu", seed=0)
        results.append((r.val_acc, r.val_loss))
    assert results[0][0] == results[1][0] and results[0][1] == pytest.approx(results[1][1], rel=1e-5)


def test_eval_flip_scores_the_trained_network_with_test_time_flips(data):
    """The same training either way; only the score differs, and it is Trainer.evaluate(flip=True)'s."""
    plain, flipped = run(data, epochs=2), run(data, epochs=2, eval_flip=True)
    assert plain.history[0].train_loss == flipped.history[0].train_loss
    torch.manual_seed(0)
    model = small_net()
    cfg = config(epochs=2)
    train_proxy(model, data, cfg, device="cpu", seed=0)
    scorer = Trainer(model, cfg, device="cpu", seed=0, num_classes=4, mean=data.mean, std=data.std, train_images=512)
    assert (flipped.val_acc, flipped.val_loss) == pytest.approx(scorer.evaluate(data.val_x, data.val_y, flip=True))
    assert (plain.val_acc, plain.val_loss) == pytest.approx(scorer.evaluate(data.val_x, data.val_y))
    assert plain.val_loss != flipped.val_loss
    with pytest.raises(ValueError, match="eval_flip"):
        config(eval_flip=1)


def test_callback_exceptions_end_the_run(data):
    class Pruned(Exception):
        pass

    def prune(stats):
        raise Pruned

    with pytest.raises(Pruned):
        train_proxy(small_net(), data, config(), device="cpu", seed=0, on_epoch=prune)


def test_fractional_epochs_end_the_last_pass_early(data):
    result = run(data, epochs=1.5)
    assert result.epochs_done == 2 and result.images_seen == 12 * 64  # 8 + 4 steps
    assert result.history[-1].lr < 0.01  # the schedule ends with the last step


def test_training_subset_and_validation_subset(data):
    result = run(data, train_subset=128, val_images=32, epochs=1)
    assert result.train_images == 128 and result.images_seen == 128 and result.val_images == 32


def test_data_on_another_device_is_a_clear_error(data):
    with pytest.raises(ValueError, match=r"data are on cpu but training runs on cuda; load them with load_dataset"):
        train_proxy(small_net(), data, config(), device="cuda", seed=0)


def test_no_weight_decay_on_batchnorm_and_biases():
    model = small_net()
    trainer = Trainer(model, Recipe(weight_decay=5e-4), device="cpu", seed=0, num_classes=4,
                      mean=(0.5,) * 3, std=(0.2,) * 3, train_images=64)
    decayed = {id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim > 1), name
    assert trainer.optimizer.param_groups[0]["nesterov"]
    seeds = Trainer(small_net(), Recipe(decay_norm_and_bias=True), device="cpu", seed=0, num_classes=4,
                    mean=(0.5,) * 3, std=(0.2,) * 3, train_images=64)
    assert len(seeds.optimizer.param_groups) == 1


def test_lr_schedules():
    cosine = Recipe(epochs=10, warmup_epochs=2, schedule="cosine")
    assert lr_factor(cosine, 0, 10) == pytest.approx(0.05)
    assert lr_factor(cosine, 19, 10) == 1.0
    assert lr_factor(cosine, 20, 10) == 1.0 and lr_factor(cosine, 60, 10) == pytest.approx(0.5)
    assert lr_factor(cosine, 99, 10) < 0.001
    linear = Recipe(epochs=4, schedule="linear")
    assert [lr_factor(linear, s, 1) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    exp = Recipe(epochs=400, schedule="exp", lr_decay=0.98)
    assert lr_factor(exp, 0, 5) == 1.0 and lr_factor(exp, 14, 5) == pytest.approx(0.98**2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "epochs must be a finite number > 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"schedule": "step"}, "unknown schedule 'step'; valid: cosine, linear, exp"),
        ({"width_scale": 0}, "width_scale must be a finite number > 0"),
        ({"train_subset": 0}, "train_subset must be None"),
        ({"amp": "fp8"}, "unknown amp 'fp8'; valid: bf16, fp16, off"),
    ],
)
def test_bad_config_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(PRESETS["cpu"], **overrides).validate()


def test_presets_are_valid_and_unknown_names_list_them():
    for preset in PRESETS.values():
        preset.validate()
    with pytest.raises(ValueError, match="valid: gpu, cpu, smoke"):
        get_preset("tpu")
    assert get_preset("cpu", epochs=1).epochs == 1


def test_evaluate_spec_trains_a_scaled_seesaw_and_reports_both_costs(data):
    from blocks import count_cost
    from search.train.proxy import evaluate_spec
    from space.references import get_reference

    spec = get_reference("seesaw_0.5d_cifar10").spec
    result = evaluate_spec(spec, data, config(epochs=1, train_subset=128, width_scale=0.25), device="cpu", seed=0)
    exported = count_cost(spec, 4, 16)
    assert result.status == "ok" and math.isfinite(result.val_loss)
    assert (result.params, result.macs) == (exported.params, exported.macs)
    assert result.proxy_macs < result.macs / 8 and result.proxy_params < result.params / 8


def test_override_flags_take_their_type_from_the_config_and_keep_the_preset_when_unset():
    parser = argparse.ArgumentParser()
    add_override_flags(parser, ("train_subset", "lr", "epochs"))
    args = parser.parse_args(["--train-subset", "300", "--lr", "0.05"])
    overrides = overrides_from(args, ("train_subset", "lr", "epochs"))
    assert overrides == {"train_subset": 300, "lr": 0.05} and type(overrides["train_subset"]) is int
    assert dataclasses.replace(PRESETS["cpu"], **overrides).epochs == PRESETS["cpu"].epochs
    with pytest.raises(SystemExit):  # an int field refuses a fraction, as argparse does for type=int
        parser.parse_args(["--train-subset", "2.5"])
    with pytest.raises(TypeError, match="eval_flip"):
        add_override_flags(argparse.ArgumentParser(), ("eval_flip",))
