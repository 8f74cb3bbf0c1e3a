"""Noise control of the proxy: common random numbers across the networks of a run, and BN
statistics recomputed on training images before scoring."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from search.train.data import split_dataset, synthetic_dataset
from search.train.proxy import architecture_seed, evaluate_spec, get_preset
from search.train.trainer import Trainer
from space.references import get_reference


@pytest.fixture(scope="module")
def data():
    raw = synthetic_dataset(num_train=512, num_test=64, num_classes=4, image_size=16, seed=1)
    return split_dataset(raw, val_size=128, seed=0, name="synthetic")


def tiny(**overrides):
    base = dict(epochs=1, train_subset=128, batch_size=32, val_images=None, eval_batch_size=64, width_scale=0.25)
    return get_preset("smoke", **{**base, **overrides})


def test_the_same_architecture_gives_the_same_accuracy_in_one_run(data):
    spec = get_reference("igcv3_0.5d_cifar10").spec
    torch.manual_seed(123)  # whatever the global stream did before, the trial is seeded from (run seed, key)
    a = evaluate_spec(spec, data, tiny(), device="cpu", seed=7)
    torch.manual_seed(456)
    b = evaluate_spec(spec, data, tiny(), device="cpu", seed=7)
    assert a.status == b.status == "ok"
    assert a.val_acc == b.val_acc and a.val_loss == b.val_loss


def test_another_run_seed_draws_other_initial_weights_and_data_order(data):
    spec = get_reference("igcv3_0.5d_cifar10").spec
    a = evaluate_spec(spec, data, tiny(), device="cpu", seed=7)
    c = evaluate_spec(spec, data, tiny(), device="cpu", seed=8)
    assert a.val_loss != c.val_loss


def test_initial_weights_depend_on_architecture_and_run_seed_only():
    key = get_reference("seesaw_0.5d_cifar10").spec.canonical_key()
    other = get_reference("igcv3_0.5d_cifar10").spec.canonical_key()
    assert architecture_seed(key, 0) == architecture_seed(key, 0)
    assert len({architecture_seed(key, 0), architecture_seed(key, 1), architecture_seed(other, 0)}) == 3
    assert 0 <= architecture_seed(key, 0) < 2**63


def net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_bn_recalibration_replaces_running_stats_by_the_average_over_the_images(data):
    trainer = Trainer(net(), tiny(), device="cpu", seed=0, num_classes=4, mean=data.mean, std=data.std,
                      train_images=128)
    bn = trainer.model[1]
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(9.0)
    trainer.recalibrate_bn(data.train_x, 128)
    with torch.no_grad():
        pre = trainer.model[0](trainer.normalize(data.train_x[:128]))
    assert torch.allclose(bn.running_mean, pre.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, pre.var(dim=(0, 2, 3), unbiased=True), rtol=1e-3)
    assert bn.momentum == 0.1  # restored
    assert trainer.model.training


def test_fit_recalibrates_before_scoring_and_it_changes_the_score(data):
    def score(images: int) -> float:
        torch.manual_seed(0)
        trainer = Trainer(net(), tiny(epochs=1, lr=0.5), device="cpu", seed=0, num_classes=4, mean=data.mean,
                          std=data.std, train_images=128)
        fit = trainer.fit((data.train_x, data.train_y), (data.val_x, data.val_y), bn_recalibration_images=images)
        return fit.last.val_loss

    plain, recalibrated = score(0), score(128)
    assert math.isfinite(plain) and math.isfinite(recalibrated) and plain != recalibrated


def test_bn_recalibration_images_must_be_a_count():
    with pytest.raises(ValueError, match="bn_recalibration_images"):
        tiny(bn_recalibration_images=-1)


def test_flip_predictions_average_each_image_with_its_mirror(data):
    torch.manual_seed(0)
    trainer = Trainer(net(), tiny(eval_batch_size=16), device="cpu", seed=0, num_classes=4, mean=data.mean,
                      std=data.std, train_images=128)
    images = data.val_x[:40]
    with torch.no_grad():
        trainer.model.eval()
        x = trainer.normalize(images)
        mean_logits = (trainer.model(x) + trainer.model(x.flip(-1))) / 2
        expected = mean_logits.argmax(1)
        plain = trainer.model(x).argmax(1)
        trainer.model.train()
    labels = data.val_y[:40]
    assert trainer.evaluate(images, labels, flip=True) == pytest.approx(
        ((expected == labels).float().mean().item(), nn.functional.cross_entropy(mean_logits, labels).item()))
    assert torch.equal(trainer.predict(images, flip=True), expected)
    assert torch.equal(trainer.predict(images), plain)
    # Every image mirrored: the flipped prediction is unchanged, the plain one sees other images.
    assert torch.equal(trainer.predict(images.flip(-1), flip=True), expected)
    assert trainer.model.training


def test_the_refit_output_bias_matches_each_class_frequency_and_leaves_the_weights_alone(data):
    torch.manual_seed(0)
    trainer = Trainer(net(), tiny(), device="cpu", seed=0, num_classes=4, mean=data.mean, std=data.std,
                      train_images=128)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.refit_output_bias(data.train_x, data.train_y, 200)
    with torch.no_grad():
        trainer.model.eval()
        logits = trainer.model(trainer.normalize(data.train_x[:200]))
        trainer.model.train()
    mean_probability = torch.softmax(logits + trainer.logit_bias, 1).mean(0)
    frequency = (torch.bincount(data.train_y[:200], minlength=4) + 1) / (200 + 4)  # add-one smoothed
    assert torch.allclose(mean_probability, frequency.float(), atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    # the scores use it: every prediction is the argmax of the shifted logits
    assert torch.equal(trainer.predict(data.train_x[:200]), (logits + trainer.logit_bias).argmax(1))
    trainer.refit_output_bias(data.train_x, data.train_y, 0)
    assert trainer.logit_bias is None
    assert torch.equal(trainer.predict(data.train_x[:200]), logits.argmax(1))


def test_a_score_after_the_refit_does_not_depend_on_how_the_output_bias_was_skewed(data):
    def scores(skew: float) -> tuple[tuple[float, float], tuple[float, float]]:
        torch.manual_seed(0)
        trainer = Trainer(net(), tiny(), device="cpu", seed=0, num_classes=4, mean=data.mean, std=data.std,
                          train_images=128)
        with torch.no_grad():
            trainer.model[-1].bias[0] += skew  # a classifier that favours class 0
        plain = trainer.evaluate(data.val_x, data.val_y)
        trainer.refit_output_bias(data.train_x, data.train_y, 256)
        return plain, trainer.evaluate(data.val_x, data.val_y)

    (plain, refit), (skewed_plain, skewed_refit) = scores(0.0), scores(4.0)
    assert skewed_plain != plain  # the skew moved the plain score ...
    assert skewed_refit[0] == refit[0] and skewed_refit[1] == pytest.approx(refit[1], abs=1e-5)  # ... not the refit one


def test_fit_refits_the_output_bias_before_scoring_and_the_config_carries_it(data):
    spec = get_reference("igcv3_0.5d_cifar10").spec
    plain = evaluate_spec(spec, data, tiny(), device="cpu", seed=7)
    refit = evaluate_spec(spec, data, tiny(refit_bias_images=256), device="cpu", seed=7)
    assert plain.history[-1].train_loss == refit.history[-1].train_loss  # the same training ...
    assert plain.val_loss != refit.val_loss  # ... scored another way
    assert refit.history[-1].val_acc_as_trained == plain.val_acc  # and what it scored before the refit, kept
    assert plain.history[-1].val_acc_as_trained is None
    with pytest.raises(ValueError, match="refit_bias_images"):
        tiny(refit_bias_images=-1)
