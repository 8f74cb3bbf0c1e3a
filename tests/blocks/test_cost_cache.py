"""Part counts: the function-level MAC counter, and the file that keeps them across processes."""

import functools
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import blocks.cost as cost_mod
import blocks.counting as counting_mod
from blocks import count_cost, count_module_cost
from blocks.cache import update_json
from space.references import REFERENCES
from space.spaces import get_space

ROOT = Path(__file__).resolve().parents[2]


def test_mac_counter_equals_flop_counter_mode_on_conv_linear_and_matmul():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4)
            self.conv1d = nn.Conv1d(12, 12, 2, groups=12)
            self.fc = nn.Linear(12, 5)

        def forward(self, x):
            x = self.conv(x)  # (1, 12, 4, 4)
            n, c, h, w = x.shape
            ctx = torch.matmul(x.view(n, c, h * w), x.view(n, c, h * w).transpose(1, 2))  # (1, 12, 12)
            y = self.conv1d(ctx) @ torch.ones(11, 3)  # (1, 12, 3)
            return self.fc(y.mean(-1))

    module = Mixed()
    with counting_mod._MacCount() as counter, torch.no_grad():
        module(torch.zeros(1, 8, 8, 8))
    assert counter.macs == count_module_cost(module, 8, in_channels=8).macs
    assert counter.macs > 12 * 16 * 2 * 9  # every part counted, not only the first conv


def test_an_op_without_a_formula_fails_instead_of_counting_zero():
    with pytest.raises(NotImplementedError, match="conv_transpose2d"):
        with counting_mod._MacCount(), torch.no_grad():
            nn.ConvTranspose2d(4, 4, 2)(torch.zeros(1, 4, 4, 4))


def test_counting_leaves_the_callers_random_stream_alone():
    spec = get_space("seesaw").random_specs(1, seed=123)[0]
    cost_mod._block_cost.cache_clear()
    count_cost.cache_clear()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    count_cost(spec, 10, 32)  # builds (and initialises) every part
    assert torch.equal(torch.rand(3), expected)


def test_part_cost_file_round_trip_and_damage(tmp_path):
    path = tmp_path / "costs.json"
    store = cost_mod._PartCostFile(path)
    part = cost_mod.PartCost(10, 200, (4, 4))
    assert store.get("k") is None
    store.put("k", part)
    store.save()
    assert cost_mod._PartCostFile(path).get("k") == part
    path.write_text("{ not json")  # damaged: counted again, replaced on the next save
    damaged = cost_mod._PartCostFile(path)
    assert damaged.get("k") is None
    damaged.put("k2", part)
    damaged.save()
    assert set(json.loads(path.read_text())) == {"k2"}


def test_an_unwritable_cache_warns_once_and_counting_goes_on(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = cost_mod._PartCostFile(blocker / "costs.json")  # its folder cannot be created
    store.put("k", cost_mod.PartCost(1, 2, (1, 1)))
    store.save()
    store.put("k2", cost_mod.PartCost(1, 2, (1, 1)))
    store.save()
    assert store.get("k2") == cost_mod.PartCost(1, 2, (1, 1))
    assert len([r for r in caplog.records if "could not save part counts" in r.message]) == 1


def test_the_fingerprint_follows_the_torch_version(monkeypatch):
    before = cost_mod._fingerprint()
    installed = cost_mod.importlib.metadata.version
    monkeypatch.setattr(cost_mod.importlib.metadata, "version",
                        lambda name: "0.0.0-other" if name == "torch" else installed(name))
    assert cost_mod._fingerprint() != before


def _add(path: str, key: str) -> None:
    for i in range(20):
        update_json(Path(path), lambda data, i=i: {**(data or {}), f"{key}{i}": i})


def test_processes_updating_one_file_at_once_keep_every_entry(tmp_path):
    path = tmp_path / "shared.json"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add, args=(str(path), k)) for k in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert set(json.loads(path.read_text())) == {f"{k}{i}" for k in "ab" for i in range(20)}


def test_a_second_process_reads_the_counts_the_first_saved(tmp_path):
    """Counts come from the file when present: a (deliberately wrong) saved entry is what a new
    process returns, so the file is really read, and nothing is counted twice per machine; that
    process never imports torch."""
    env = {**os.environ, "SEESAW_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    name = "mobilenetv2_cifar10"
    script = (f"from blocks import count_cost; from space.references import REFERENCES; r = REFERENCES[{name!r}]; "
              "c = count_cost(r.spec, r.num_classes, r.input_size); import sys; print(c.params, c.macs, 'torch' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    ref = REFERENCES[name]
    assert first.stdout.split() == [*map(str, count_cost(ref.spec, ref.num_classes, ref.input_size)), "True"]
    [saved] = (tmp_path / "part-costs").glob("*.json")
    entries = json.loads(saved.read_text())
    [head_key] = [k for k in entries if json.loads(k)[0] == "head"]
    entries[head_key][1] += 1000  # a head with 1000 more MACs than it has
    saved.write_text(json.dumps(entries))
    second = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert int(second.stdout.split()[1]) == int(first.stdout.split()[1]) + 1000
    assert second.stdout.split()[2] == "False"  # every part was in the file: torch was not needed


def test_networks_counted_in_forked_processes_get_the_counts_of_one_process(tmp_path):
    """``count_costs`` on a fresh machine: two children count the new parts, the parent takes their
    counts (it never imports torch) and saves them, so a second process counts nothing."""
    env = {**os.environ, "SEESAW_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    script = ("import sys; from blocks.cost import count_costs; from space.spaces import get_space; "
              "from space.references import REFERENCES; r = REFERENCES['mobilenetv2_cifar100']; "
              "nets = [(s, 10, 32) for s in get_space('seesaw').random_specs(6, seed=3)] + [(r.spec, 100, 32)]; "
              "nets.append(nets[0]); "  # a network asked twice
              "print([tuple(c) for c in count_costs(nets, processes=2)], 'torch' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    ref = REFERENCES["mobilenetv2_cifar100"]
    specs = get_space("seesaw").random_specs(6, seed=3)
    expected = [tuple(count_cost(s, 10, 32)) for s in specs] + [tuple(count_cost(ref.spec, 100, 32))]
    expected.append(expected[0])
    for run in runs:
        costs, torch_imported = run.stdout.rsplit(" ", 1)
        assert costs == str(expected)
        assert torch_imported.strip() == "False"  # the children counted; the second run read the file


def test_networks_already_counted_start_no_process(monkeypatch):
    specs = get_space("seesaw").random_specs(3, seed=4)
    expected = [count_cost(s, 10, 32) for s in specs]

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started for networks that are counted already")

    monkeypatch.setattr(cost_mod, "ProcessPoolExecutor", no_pool)
    assert cost_mod.count_costs([(s, 10, 32) for s in specs], processes=2) == expected


def _die(networks):  # a counting child killed (as by the OOM killer): the pool breaks
    os._exit(1)


def test_a_counting_process_that_dies_leaves_the_counting_to_the_parent(tmp_path, monkeypatch, caplog):
    specs = get_space("seesaw").random_specs(3, seed=5)
    expected = [count_cost(s, 10, 32) for s in specs]  # the test process's own counts
    monkeypatch.setenv("SEESAW_CACHE_DIR", str(tmp_path))  # a machine that has counted nothing
    monkeypatch.setattr(cost_mod, "part_cost_file", functools.cache(cost_mod.part_cost_file.__wrapped__))
    for memo in (cost_mod.count_cost, cost_mod._stem_cost, cost_mod._block_cost, cost_mod._attention_cost,
                 cost_mod._head_cost):
        memo.cache_clear()
    monkeypatch.setattr(cost_mod, "_count_new_parts", _die)
    with caplog.at_level("WARNING", logger="blocks.cost"):
        assert cost_mod.count_costs([(s, 10, 32) for s in specs], processes=2) == expected
    assert any("counting processes failed" in r.message for r in caplog.records)
