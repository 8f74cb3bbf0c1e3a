"""Measured latency: target keys, the lookup table (reuse, sums, two processes) and the benchmark's smoke run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from blocks.latency import (
    LatencyTable,
    LatencyTarget,
    SpeedProbe,
    latency_record,
    measure_latency,
    network_parts,
    predict_latency,
    time_module,
)
from space.spec import ArchSpec, AttentionSpec, HeadSpec, InvertedResidualSpec, StageSpec, StemSpec

ROOT = Path(__file__).resolve().parents[2]
FAST = 0.002  # seconds of timed calls per entry: enough for a number, not for a benchmark


def tiny_spec(width: int = 8, post_attention: bool = True) -> ArchSpec:
    return ArchSpec(
        stem=StemSpec(channels=8, stride=1),
        stages=(
            StageSpec(out_channels=width, repeats=2, stride=2, block=InvertedResidualSpec(expansion=2),
                      post_attention=AttentionSpec("se", reduction=4) if post_attention else None),
        ),
        head=HeadSpec(channels=16),
    ).validate()


def test_target_key_names_device_torch_threads_and_batch():
    t1 = LatencyTarget("cpu", batch=1, threads=1)
    assert t1.settings() == {"device": t1.device_name(), "torch": torch.__version__, "threads": 1, "batch": 1,
                             "clock": "thread"}
    assert t1.device_name().startswith("cpu: ")
    keys = {t1.key(), LatencyTarget("cpu", 1, 2).key(), LatencyTarget("cpu", 2, 1).key(),
            LatencyTarget("cpu", 1, 1, clock="wall").key()}
    assert len(keys) == 4
    assert LatencyTarget("cpu", 1, 1).key() == t1.key()
    assert "1 thread, batch 1" in t1.describe()
    if torch.cuda.is_available():
        assert LatencyTarget("cuda").key() not in keys


def test_table_is_keyed_by_target(tmp_path):
    path = tmp_path / "lat.json"
    one = LatencyTable(path, LatencyTarget("cpu", 1, 1), min_run_time=FAST, calibration_time=FAST)
    one.predict(tiny_spec(), 10, 16)
    assert one.measurements == len(one) > 0
    assert len(LatencyTable(path, LatencyTarget("cpu", 1, 2))) == 0  # another thread count: nothing
    assert len(LatencyTable(path, LatencyTarget("cpu", 1, 1, clock="wall"))) == 0
    assert len(LatencyTable(path, LatencyTarget("cpu", 1, 1), rotate_bytes=2**21)) == 0  # timed another way
    assert len(LatencyTable(path, LatencyTarget("cpu", 1, 1), probe=False)) == 0  # without the speed probe
    two = LatencyTable(path, LatencyTarget("cpu", 2, 1), min_run_time=FAST, calibration_time=FAST)  # another batch
    assert len(two) == 0
    two.predict(tiny_spec(), 10, 16)
    assert two.measurements == len(two) == len(one)
    assert len(LatencyTable(path, LatencyTarget("cpu", 1, 1))) == len(one)
    data = json.loads(path.read_text())
    assert len(data["targets"]) == 2


def test_second_prediction_measures_nothing_new(tmp_path):
    path = tmp_path / "lat.json"
    table = LatencyTable(path, LatencyTarget(), min_run_time=FAST, calibration_time=FAST)
    first = predict_latency(tiny_spec(), 10, 16, table)
    timed = table.measurements
    # stem, 2 blocks, SE after the stage, tail: the two blocks differ (stride 2, then 1)
    assert timed == len(network_parts(tiny_spec(), 10)) == 5
    assert predict_latency(tiny_spec(), 10, 16, table) == first and table.measurements == timed
    reloaded = LatencyTable(path, LatencyTarget(), min_run_time=FAST, calibration_time=FAST)  # another process, same file
    assert reloaded.predict(tiny_spec(), 10, 16) == first and reloaded.measurements == 0
    # a wider network shares only its stem with the first
    table.predict(tiny_spec(width=16), 10, 16)
    assert table.measurements == timed + 4
    # open: one table per file and target in a process
    assert LatencyTable.open(path, LatencyTarget()) is LatencyTable.open(path, LatencyTarget())


def test_prediction_is_the_sum_of_its_entries(tmp_path):
    table = LatencyTable(tmp_path / "lat.json", LatencyTarget(), min_run_time=FAST, calibration_time=FAST)
    spec = tiny_spec()
    predicted = table.predict(spec, 10, 16)
    shape = (1, 3, 16, 16)
    seconds = []
    for part in network_parts(spec, 10):  # walk the stored entries by hand
        entry = table.entries[part.key(shape)]
        seconds.append(entry["seconds"])
        shape = tuple(entry["output"])
    assert shape == (1, 10)
    assert all(s > 0 for s in seconds)
    assert predicted == pytest.approx(math.fsum(seconds), rel=1e-12)


def test_exact_mode_and_record(tmp_path):
    table = LatencyTable(tmp_path / "lat.json", LatencyTarget(), min_run_time=FAST, calibration_time=FAST)
    exact = predict_latency(tiny_spec(), 10, 16, table, mode="exact")
    assert math.isfinite(exact) and exact > 0 and table.measurements == 0
    assert math.isfinite(measure_latency(tiny_spec(), 10, 16, LatencyTarget(clock="wall"), min_run_time=FAST))
    record = latency_record(tiny_spec(), 10, 16, table)
    assert record["latency_s"] > 0 and record["latency_mode"] == "lookup"
    assert record["latency_device"] == LatencyTarget().describe()
    with pytest.raises(ValueError, match="use 'lookup' or 'exact'"):
        predict_latency(tiny_spec(), 10, 16, table, mode="fast")


def test_threads_are_restored():
    before = torch.get_num_threads()
    target = LatencyTarget("cpu", threads=2, clock="wall")
    seconds, shape = time_module(torch.nn.Conv2d(3, 4, 3), (1, 3, 8, 8), target, min_run_time=FAST)
    assert seconds > 0 and shape == (1, 4, 6, 6)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"device": "cuda"}, "use device='cpu'"),
        ({"device": "tpu"}, "use 'cpu', 'cuda' or 'cuda:N'"),
        ({"threads": 0}, "use threads=1"),
        ({"batch": 0}, "use batch=1"),
        ({"threads": 2, "clock": "thread"}, "use clock='wall'"),
    ],
)
def test_bad_target_says_what_to_do(kwargs, says):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError) as err:
        LatencyTarget(**kwargs)
    assert says in str(err.value) and "\n" not in str(err.value)


WRITER = """
import sys
sys.path.insert(0, {root!r})
from blocks.latency import LatencyTable, LatencyTarget
from space.spec import ArchSpec
spec = ArchSpec.from_dict({spec!r})
LatencyTable({path!r}, LatencyTarget(), min_run_time={fast!r}, calibration_time={fast!r}).predict(spec, 10, 16)
"""


def test_two_processes_share_one_file(tmp_path):
    path = str(tmp_path / "lat.json")
    specs = [tiny_spec(width=8), tiny_spec(width=24, post_attention=False)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), spec=s.to_dict(), path=path, fast=FAST)], env=env)
        for s in specs
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    table = LatencyTable(path, LatencyTarget(), min_run_time=FAST, calibration_time=FAST)
    for spec in specs:  # both processes' entries survived: nothing left to time
        table.predict(spec, 10, 16)
    assert table.measurements == 0
    assert not [p for p in Path(path).parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_table_says_what_to_do(tmp_path):
    path = tmp_path / "lat.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="delete it"):
        LatencyTable(path, LatencyTarget())


def test_benchmark_smoke():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "latency_lookup.py"), "--smoke"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout[out.stdout.index("\n{") + 1:])
    (result,) = summary["results"]
    assert result["n"] == 2 and result["table_entries"] > 0 and result["median_abs_rel_error"] >= 0


def test_probed_time_is_in_units_of_the_probe():
    """Four probes in a row take about four probe times: a ratio inverted or not scaled by the
    nominal time would land near 1/4 or 1."""
    target = LatencyTarget()
    probe = SpeedProbe(target)
    probe.nominal = probe.calibrate(0.05)
    four = torch.nn.Sequential(*[SpeedProbe(target).module for _ in range(4)])
    seconds, shape = time_module(four, SpeedProbe.INPUT_SHAPE, target, min_run_time=0.05, probe=probe)
    assert shape == SpeedProbe.INPUT_SHAPE
    assert 2.5 < seconds / probe.nominal < 6.5
    with pytest.raises(ValueError, match="not calibrated"):
        time_module(four, SpeedProbe.INPUT_SHAPE, target, min_run_time=FAST, probe=SpeedProbe(target))


def test_table_keeps_its_first_calibration(tmp_path):
    path = tmp_path / "lat.json"
    table = LatencyTable(path, LatencyTarget(), min_run_time=FAST, calibration_time=FAST)
    assert table.probe and table.speed_probe() is not None
    table.predict(tiny_spec(), 10, 16)
    nominal = table.speed_probe().nominal
    section = json.loads(path.read_text())["targets"][table.key()]
    assert section["probe_s"] == nominal > 0
    # another process opening the file times in the same unit: it takes the saved nominal, calibrates nothing
    again = LatencyTable(path, LatencyTarget(), min_run_time=FAST, calibration_time=60.0)
    assert again.probe_s == nominal and again.speed_probe().nominal == nominal
    again.measure(tiny_spec(), 10, 16, min_run_time=FAST)  # exact mode: same probe, no entry added
    assert again.measurements == 0
    assert LatencyTable(path, LatencyTarget(), probe=False).speed_probe() is None
