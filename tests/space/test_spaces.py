"""Search spaces: every sample builds and round-trips; references are exact points; seeds repeat."""

import optuna
import pytest
import torch

from blocks import build_model, count_cost
from space import ArchSpec
from space.references import get_reference
from space.spaces import SPACES, FixedParams, RandomTrial, get_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE_NAMES = sorted(SPACES)


@pytest.mark.parametrize("name", SPACE_NAMES)
@pytest.mark.parametrize("shared", [False, True])
def test_random_samples_validate_roundtrip_and_keep_their_key(name, shared):
    space = get_space(name, shared_block=shared)
    for spec in space.random_specs(300, seed=1):
        again = ArchSpec.from_yaml(spec.to_yaml())  # from_yaml validates
        assert again == spec and again.canonical_key() == spec.canonical_key()


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_random_samples_build_and_run_at_32x32(name):
    space = get_space(name)
    for spec in space.random_specs(12, seed=2):
        model = build_model(spec, 10).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 32, 32))
        assert out.shape == (1, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", SPACE_NAMES)
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_references_are_exact_points(name, dataset):
    space = get_space(name, dataset=dataset)
    refs = space.references()
    assert refs, f"space {name} has no reference points"
    for ref_name, spec in refs.items():
        ref = get_reference(ref_name)
        assert spec == ref.spec, ref_name
        assert spec.canonical_key() == ref.spec.canonical_key()
        assert count_cost(spec, ref.num_classes, ref.input_size) == count_cost(ref.spec, ref.num_classes, ref.input_size)


def test_seesaw_references_cover_the_listed_seeds():
    names = set(get_space("seesaw").references())
    assert {"seesaw_1.0d_cifar10", "seesaw_0.5d_cifar10", "igcv3_1.0d_cifar10", "igcv3_0.5d_cifar10",
            "mobilenetv2_cifar10"} <= names
    assert "seesaw_1.0d_cifar100" in get_space("seesaw", dataset="cifar100").references()


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_reference_params_use_only_real_parameters(name):
    """Every enqueued reference parameter is one the space asks for (none silently ignored)."""
    space = get_space(name)
    for ref_name, params in space.reference_params().items():
        trial = FixedParams(params)
        space.sample(trial)
        assert trial.used == set(params), f"{ref_name}: unused {set(params) - trial.used}"


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_reference_params_enqueue_into_optuna(name):
    space = get_space(name)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for params in space.reference_params().values():
        study.enqueue_trial(params)
    specs = []
    for _ in space.reference_params():
        trial = study.ask()
        specs.append(space.sample(trial))
        study.tell(trial, [0.0, 1.0])
    assert specs == list(space.references().values())


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_same_seed_same_sequence(name):
    def sequence(seed):
        space = get_space(name)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=3))
        keys = []
        for i in range(6):
            trial = study.ask()
            spec = space.sample(trial)
            keys.append(spec.canonical_key())
            study.tell(trial, [float(i % 3), float(spec.num_blocks())])
        return keys

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)
    assert get_space(name).random_specs(5, seed=3) == get_space(name).random_specs(5, seed=3)


def test_unknown_space_lists_valid_names():
    with pytest.raises(ValueError, match="valid spaces: .*seesaw"):
        get_space("nope")


def test_seesaw_splits_follow_input_width():
    """A stage's first block takes the previous width's splits, the others its own."""
    space = get_space("seesaw")
    params = dict(space.reference_params()["seesaw_1.0d_cifar10"])
    params["in5_pw1_split"] = "1/8:7/8"  # input from stage 5 (96 channels): stage 6's first block
    spec = space.spec_from_params(params)
    stage6 = spec.stages[5]
    assert stage6.first_block.pw1_split[0].denominator == 8
    assert stage6.block.pw1_split[0].denominator == 2
    assert spec.stages[4].block.pw1_split[0].denominator == 8  # stage 5's later blocks too


def test_describe_choices_and_size():
    space = get_space("seesaw")
    choices = space.choices(samples=200)
    assert choices["s3_expansion"] == (1, 2, 3, 4, 6)
    assert "1/4:3/4" in choices["in0_pw1_split"] and "s2_attention_reduction" in choices
    assert choices["s4_repeats"] == (4, 5, 6, 7, 8)
    assert space.size() > get_space("seesaw", shared_block=True).size() > 1
    assert isinstance(RandomTrial(0).suggest_int("x", 1, 3), int)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_smallest_params_give_the_fewest_macs(name):
    space = get_space(name)
    smallest = count_cost(space.spec_from_params(space.smallest_params()), 10, 32).macs
    for spec in space.random_specs(40, seed=4) + list(space.references().values()):
        assert smallest <= count_cost(spec, 10, 32).macs
