"""Registries refuse a name registered twice; blocks import without a cycle."""

import subprocess
import sys
from pathlib import Path

import pytest

import blocks.model  # noqa: F401 (imports every block module: the registry is full)
from blocks.attention import ATTENTION_MODULES, register_attention
from blocks.registry import BLOCK_BUILDERS, register_block
from space.references import REFERENCES, Published, register
from space.spaces import SPACES, register_space

ROOT = Path(__file__).resolve().parents[2]


def _noop(*args):  # pragma: no cover - never built
    raise AssertionError


@pytest.mark.parametrize("registry, decorate, name", [
    (BLOCK_BUILDERS, register_block, "shuffle_unit"),
    (ATTENTION_MODULES, register_attention, "se"),
])
def test_block_and_attention_registries_refuse_a_duplicate_name(registry, decorate, name):
    before = dict(registry)
    with pytest.raises(ValueError, match=repr(name)):
        decorate(name)(_noop)
    assert registry == before  # the first registration still stands


def test_space_registry_refuses_a_duplicate_name():
    before = dict(SPACES)

    class Again(SPACES["seesaw"]):
        name = "seesaw"

    with pytest.raises(ValueError, match="'seesaw'"):
        register_space(Again)
    assert SPACES == before


def test_reference_registry_refuses_a_duplicate_name():
    name = "mobilenetv2_imagenet"
    before = REFERENCES[name]
    with pytest.raises(ValueError, match=repr(name)):
        register(name, "imagenet", Published())(lambda: before.spec)
    assert REFERENCES[name] is before


MODULES = ["blocks.inverted_residual", "blocks.resnet", "blocks.shufflenet", "blocks.attention.se",
           "blocks.counting", "blocks.model", "blocks.convert"]
FRESH_IMPORTS = """
import importlib, sys
import torch  # loaded once; only our packages are imported afresh
for module in sys.argv[1:]:
    for name in [n for n in sys.modules if n.split(".")[0] in ("blocks", "space")]:
        del sys.modules[name]
    importlib.import_module(module)
    if module in ("blocks.model", "blocks.counting"):  # what builds networks and parts
        registry = importlib.import_module("blocks.registry")
        missing = {"inverted_residual", "bottleneck", "basic", "shuffle_unit"} - set(registry.BLOCK_BUILDERS)
        assert not missing, (module, missing)
"""


def test_each_block_module_imports_first_without_a_cycle():
    """Importing any module first, into an interpreter without our packages, works; importing what
    builds networks or parts fills the block registry."""
    done = subprocess.run([sys.executable, "-c", FRESH_IMPORTS, *MODULES], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr.splitlines()[-1:]


def test_the_packages_build_block_finds_every_kind_in_a_fresh_interpreter():
    """``blocks`` loads its names lazily (so that counting from the cache needs no torch); asking
    it for ``build_block`` must still fill the registry first."""
    script = ("from blocks import build_block; from blocks.registry import BLOCK_BUILDERS; "
              "print(sorted(BLOCK_BUILDERS))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr.splitlines()[-1:]
    assert {"inverted_residual", "bottleneck", "basic", "shuffle_unit"} <= set(eval(done.stdout))
