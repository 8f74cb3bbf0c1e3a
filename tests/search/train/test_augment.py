"""search.train.augment: invariants of the batched, on-device augmentations."""

import random

import pytest
import torch
import torch.nn.functional as F

from search.train.augment import (
    AugmentConfig,
    augment_batch,
    crop,
    cutmix,
    cutout,
    hflip,
    make_normalizer,
    mixup,
    random_crop,
    random_hflip,
)


def images(n=8, h=8, w=10, seed=0):
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_flip_twice_is_the_identity():
    x = images()
    mask = torch.tensor([True, False] * 4)
    assert torch.equal(hflip(hflip(x, mask), mask), x)
    once = hflip(x, mask)
    assert torch.equal(once[0], x[0].flip(-1)) and torch.equal(once[1], x[1])


def test_random_flip_mirrors_or_keeps_each_image():
    x = images(n=64)
    out = random_hflip(x, gen())
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54 and out.dtype == torch.uint8


def test_centre_crop_is_the_identity():
    x = images()
    p = torch.full((8,), 4)
    assert torch.equal(crop(x, 4, p, p), x)


def test_crop_matches_a_padded_slice_per_image():
    x = images()
    dy = torch.tensor([0, 8, 3, 4, 1, 7, 2, 6])
    dx = torch.tensor([8, 0, 5, 4, 2, 1, 6, 3])
    out = crop(x, 4, dy, dx)
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(8):
        assert torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 10])


def test_random_crops_stay_in_bounds():
    """Every crop is a window of the padded image: offsets within [0, 2 * padding]."""
    x = images(n=32)
    out = random_crop(x, 4, gen(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(32):
        windows = [(a, b) for a in range(9) for b in range(9) if torch.equal(out[i], padded[i, :, a : a + 8, b : b + 10])]
        assert windows, f"crop {i} is no window of its padded image"


def test_cutout_zeroes_one_clipped_square_and_nothing_else():
    x = torch.ones(16, 3, 8, 8)
    out = cutout(x, 4, gen(2))
    for img in out:
        zero = img[0] == 0
        assert torch.equal(zero, (img == 0).all(0))  # all channels alike
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        assert zero.sum() == len(rows) * len(cols)  # a rectangle
    assert (out == 1).sum() + (out == 0).sum() == out.numel()


def test_mixup_gives_convex_images_and_targets():
    x = torch.rand(16, 3, 8, 8)
    y = torch.arange(16) % 5
    out, target = mixup(x, y, 5, 0.2, gen(), random.Random(0))
    assert target.shape == (16, 5)
    assert torch.allclose(target.sum(1), torch.ones(16))
    assert out.min() >= x.min() - 1e-6 and out.max() <= x.max() + 1e-6


def test_cutmix_weights_targets_by_pasted_area():
    x = torch.zeros(16, 1, 8, 8)
    x[:, 0] = torch.arange(16, dtype=torch.float).view(16, 1, 1)  # image i is filled with i
    y = torch.arange(16)
    out, target = cutmix(x, y, 16, 1.0, gen(), random.Random(3))
    assert torch.allclose(target.sum(1), torch.ones(16))
    for i in range(16):
        own = (out[i] == i).float().mean()
        assert torch.isclose(target[i, i], own) or torch.isclose(target[i].max(), torch.tensor(1.0))


def test_normalizer_maps_mean_to_zero():
    norm = make_normalizer((0.5, 0.25, 0.0), (0.5, 0.25, 1.0), "cpu")
    x = torch.tensor([127.5, 63.75, 0.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2).round().to(torch.uint8)
    assert norm(x).dtype == torch.float32
    assert norm(x).abs().max() < 0.02


@pytest.mark.parametrize(
    "config",
    [AugmentConfig(), AugmentConfig(cutout=4), AugmentConfig(mixup_alpha=0.2), AugmentConfig(cutmix_alpha=1.0, mixup_alpha=0.2)],
)
def test_augment_batch_is_fixed_by_its_seeds(config):
    x, y = images(n=16), torch.arange(16) % 4
    norm = make_normalizer((0.5,) * 3, (0.25,) * 3, "cpu")
    a = augment_batch(x, y, config, 4, norm, gen(5), random.Random(5))
    b = augment_batch(x, y, config, 4, norm, gen(5), random.Random(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (16, 3, 8, 10) and a[0].dtype == torch.float32
    if config.mixes:
        assert a[1].shape == (16, 4)
    else:
        assert torch.equal(a[1], y)
    c = augment_batch(x, y, config, 4, norm, gen(6), random.Random(6))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    "bad, message",
    [({"crop_padding": -1}, "crop_padding must be an integer >= 0"), ({"mixup_alpha": -0.1}, "mixup_alpha must be a number >= 0")],
)
def test_bad_config_names_the_field(bad, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**bad).validate()
