import pytest

from search.executors.sizing import gpu_fraction, trials_per_device


def test_trials_per_device_fits_memory_with_a_reserve_and_a_cap():
    # an H200-sized device (143,771 MiB) with 2,000 MiB per trial process: memory allows 64, the cap says 8
    assert trials_per_device(143_771, 2_000) == 8
    assert trials_per_device(143_771, 2_000, cap=100) == 64  # floor(143771 * 0.9 / 2000)
    assert trials_per_device(10_000, 3_000) == 3  # 9,000 usable
    assert trials_per_device(10_000, 3_000, reserve_fraction=0.5) == 1
    assert trials_per_device(1_000, 5_000) == 1  # never 0: a trial that does not fit fails with its reason


@pytest.mark.parametrize("args", [(0, 100), (100, 0), (float("nan"), 100), (100, float("inf"))])
def test_trials_per_device_refuses_bad_sizes(args):
    with pytest.raises(ValueError):
        trials_per_device(*args)


def test_gpu_fraction_never_oversubscribes_a_gpu():
    assert gpu_fraction(1) == 1.0 and gpu_fraction(4) == 0.25 and gpu_fraction(3) == 0.3333
    for n in range(1, 17):
        f = gpu_fraction(n)
        assert n * f <= 1.0 and round(f, 4) == f
    with pytest.raises(ValueError):
        gpu_fraction(0)
