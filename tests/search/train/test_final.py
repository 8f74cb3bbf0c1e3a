"""search.train.final: full training with checkpoints, exact resume, test accuracy and a run record."""

import dataclasses
import json
import math

import pytest
import torch

from search.train.data import split_dataset, synthetic_dataset
from search.train.final import FINAL_PRESETS, train_final
from space.spec import ArchSpec, BasicBlockSpec, HeadSpec, StageSpec, StemSpec


@pytest.fixture(scope="module")
def data():
    raw = synthetic_dataset(num_train=448, num_test=64, num_classes=4, image_size=16, seed=1)
    return split_dataset(raw, val_size=64, seed=0, name="synthetic")


def tiny_resnet() -> ArchSpec:
    return ArchSpec(
        stem=StemSpec(channels=8, act="relu"),
        stages=(
            StageSpec(out_channels=8, repeats=1, stride=1, block=BasicBlockSpec()),
            StageSpec(out_channels=16, repeats=1, stride=2, block=BasicBlockSpec()),
        ),
        head=HeadSpec(channels=0),
    ).validate()


def short(**overrides):
    base = dict(epochs=3, batch_size=16, eval_batch_size=64, lr=0.05)
    return dataclasses.replace(FINAL_PRESETS["seeds"], **{**base, **overrides})


def test_final_run_tests_once_and_records_everything(data, tmp_path):
    spec = tiny_resnet()
    result = train_final(spec, 4, data, short(), tmp_path)
    assert result.status == "ok" and result.epochs_done == 3 and len(result.history) == 3
    assert result.test_acc > 0.5 and result.val_acc == result.history[-1].val_acc  # chance: 0.25
    assert result.params > 0 and result.macs > 0 and result.images_per_s > 0
    for name in ("spec.yaml", "checkpoint.pt", "model.pt", "result.json"):
        assert (tmp_path / name).exists(), name
    record = json.loads((tmp_path / "result.json").read_text())
    assert ArchSpec.from_dict(record["spec"]) == spec
    assert record["config"]["lr_decay"] == 0.98 and record["seed"] == 0 and record["test_acc"] == result.test_acc
    assert "git_commit" in record and "torch" in record["versions"]
    assert ArchSpec.from_yaml((tmp_path / "spec.yaml").read_text()) == spec


def test_an_interrupted_run_resumes_to_the_same_end(data, tmp_path):
    spec = tiny_resnet()
    straight = train_final(spec, 4, data, short(), tmp_path / "straight")

    def interrupt_after_first(stats):
        if stats.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_final(spec, 4, data, short(), tmp_path / "resumed", on_epoch=interrupt_after_first)
    saved = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert saved["trainer"]["epoch"] == 1
    resumed = train_final(spec, 4, data, short(), tmp_path / "resumed")
    assert [h.train_loss for h in resumed.history] == [h.train_loss for h in straight.history]
    assert resumed.test_loss == straight.test_loss and resumed.test_acc == straight.test_acc
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_config_and_resume_false_starts_over(data, tmp_path):
    spec = tiny_resnet()
    train_final(spec, 4, data, short(epochs=1), tmp_path)
    with pytest.raises(ValueError, match="written for another training config; pass another output folder, or resume=False"):
        train_final(spec, 4, data, short(epochs=1, lr=0.01), tmp_path)
    again = train_final(spec, 4, data, short(epochs=1, lr=0.01), tmp_path, resume=False)
    assert again.epochs_done == 1 and len(again.history) == 1


def test_a_finished_run_resumed_only_tests_again(data, tmp_path):
    first = train_final(tiny_resnet(), 4, data, short(epochs=1), tmp_path)
    second = train_final(tiny_resnet(), 4, data, short(epochs=1), tmp_path)
    assert second.test_acc == first.test_acc and second.history == first.history


def test_divergence_ends_final_training_without_a_test_score(data, tmp_path):
    result = train_final(tiny_resnet(), 4, data, short(lr=1e10), tmp_path)
    assert result.status == "diverged" and math.isnan(result.test_acc)
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "diverged" and record["test_acc"] is None


def test_seeds_preset_is_the_papers_recipe():
    seeds = FINAL_PRESETS["seeds"].validate()
    assert (seeds.epochs, seeds.batch_size, seeds.lr, seeds.momentum) == (400, 64, 0.1, 0.9)
    assert (seeds.weight_decay, seeds.schedule, seeds.lr_decay) == (1e-4, "exp", 0.98)
    assert seeds.augment.crop_padding == 4 and seeds.augment.flip
    FINAL_PRESETS["mobile"].validate()
