"""A promotion continues a proxy training from its checkpoint to a longer epoch target
(search.train.proxy.train_proxy ``resume_from``/``save_to``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from search.train.data import split_dataset, synthetic_dataset
from search.train.proxy import get_preset, train_proxy
from search.train.trainer import lr_factor


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


@pytest.fixture(scope="module")
def data():
    raw = synthetic_dataset(num_train=384, num_test=32, num_classes=4, image_size=16, seed=0)
    return split_dataset(raw, val_size=128, seed=0, name="synthetic")


def config(epochs: float):
    return get_preset("smoke", epochs=epochs, train_subset=None, batch_size=64, lr=0.1, val_images=None,
                      eval_batch_size=128, width_scale=1.0)


def train(data, epochs, **kw):
    torch.manual_seed(0)
    return train_proxy(small_net(), data, config(epochs), device="cpu", seed=0, **kw)


def test_a_promotion_continues_from_the_checkpoint_to_the_new_epoch_target(data, tmp_path):
    ckpt = tmp_path / "ckpt" / "r0.pt"
    first = train(data, 1, save_to=ckpt)
    assert ckpt.exists() and [p.name for p in ckpt.parent.iterdir()] == ["r0.pt"]  # written atomically
    promoted = train(data, 3, resume_from=ckpt)
    assert promoted.status == "ok" and promoted.epochs_done == 3
    assert [h.epoch for h in promoted.history] == [1, 2, 3]
    assert promoted.history[0] == first.history[0]  # the rung-0 epoch is kept, not trained again
    assert promoted.images_seen == 3 * first.images_seen
    assert promoted.train_time_s > first.train_time_s
    # not a fresh 3-epoch run: the first epoch ran on the 1-epoch schedule
    fresh = train(data, 3)
    assert [h.train_loss for h in fresh.history[1:]] != [h.train_loss for h in promoted.history[1:]]


def test_the_schedule_of_a_promotion_is_the_longer_runs_tail():
    # linear decay: after 1 of 3 epochs the lr is back at 2/3 of the peak (eta = 3), as documented
    recipe = config(3)
    assert lr_factor(recipe, 10, 10) == pytest.approx(1 - 10 / 30)


def test_resuming_at_the_same_target_trains_nothing_more(data, tmp_path):
    ckpt = tmp_path / "r0.pt"
    first = train(data, 2, save_to=ckpt)
    again = train(data, 2, resume_from=ckpt)
    assert again.images_seen == first.images_seen and again.epochs_done == 2
