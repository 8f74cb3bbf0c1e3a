"""--workers N on a host with several GPUs: each worker gets one of them, in turn."""

import pytest

from search.engine.session import worker_device


@pytest.mark.parametrize("index, expected", [(0, "cuda:0"), (1, "cuda:1"), (3, "cuda:3"), (4, "cuda:0"), (9, "cuda:1")])
def test_workers_take_turns_over_the_gpus(index, expected):
    assert worker_device("cuda", index, cuda_devices=4) == expected


@pytest.mark.parametrize("device, gpus", [("cuda", 1), ("cuda:2", 4), ("cpu", 0), ("cpu", 4), ("mps", 0)])
def test_one_gpu_an_explicit_index_or_no_gpu_is_used_as_given(device, gpus):
    assert [worker_device(device, i, cuda_devices=gpus) for i in range(3)] == [device] * 3
