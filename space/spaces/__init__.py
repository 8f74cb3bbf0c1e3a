"""Named search spaces: each turns an Optuna trial (define-by-run) into an ``ArchSpec``.

All ``trial.suggest_*`` calls of a space live in its ``sample`` method and nowhere else. A space
also knows which reference networks are exact points of it, as trial parameters, so they can be
enqueued as warm-start trials and recognised in results. Optuna itself is not imported here: any
object with ``suggest_categorical`` and ``suggest_int`` works as a trial (Optuna's trials,
``FixedParams`` below, ``RandomTrial`` for fast sampling).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Protocol, Sequence

from space.spec import ArchSpec


class TrialLike(Protocol):
    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int) -> int: ...


class FixedParams:
    """A trial that answers from a fixed dict; a missing name is a KeyError naming it."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        self.used: set[str] = set()

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise KeyError(f"no value for parameter {name!r}")
        self.used.add(name)
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._get(name)
        if value not in choices:
            raise ValueError(f"parameter {name!r}: {value!r} is not one of {list(choices)}")
        return value

    def suggest_int(self, name: str, low: int, high: int) -> int:
        value = self._get(name)
        if not low <= value <= high:
            raise ValueError(f"parameter {name!r}: {value} is outside [{low}, {high}]")
        return value


class RandomTrial:
    """Uniform random choices from a seeded RNG; records every distribution it was asked for.

    Hand-rolled on purpose: sampling 10,000 specs through Optuna's study machinery costs minutes,
    this costs seconds, and ``describe`` needs the distributions without a study.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, tuple[Any, ...]] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.distributions[name] = tuple(choices)
        self.params[name] = self.rng.choice(list(choices))
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        self.distributions[name] = tuple(range(low, high + 1))
        self.params[name] = self.rng.randint(low, high)
        return self.params[name]


class SearchSpace(ABC):
    """A named family of networks. Subclasses implement ``sample`` and ``reference_params``."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, dataset: str = "cifar10", shared_block: bool = False) -> None:
        self.dataset = dataset
        self.shared_block = shared_block

    input_size: ClassVar[int] = 32  # the search runs on CIFAR-sized images

    @property
    def reference_suffix(self) -> str:
        """Which twin of a CIFAR reference applies: ``cifar100`` or (any other data) ``cifar10``."""
        return "cifar100" if self.dataset == "cifar100" else "cifar10"

    @abstractmethod
    def sample(self, trial: TrialLike) -> ArchSpec:
        """Ask ``trial`` for every choice (define-by-run) and return the validated spec."""

    @abstractmethod
    def reference_params(self) -> dict[str, dict[str, Any]]:
        """Trial parameters of each reference network that is an exact point of this space."""

    @abstractmethod
    def smallest_params(self) -> dict[str, Any]:
        """Trial parameters of the space's network with the fewest MACs (for --max-macs checks)."""

    @abstractmethod
    def size(self) -> int:
        """The number of distinct parameter assignments (an upper bound on distinct networks)."""

    def spec_from_params(self, params: Mapping[str, Any]) -> ArchSpec:
        """The spec that ``params`` (e.g. a finished trial's) select."""
        return self.sample(FixedParams(params))

    def references(self) -> dict[str, ArchSpec]:
        """Reference name -> spec, for the references that are points of this space."""
        return {name: self.spec_from_params(p) for name, p in self.reference_params().items()}

    def choices(self, samples: int = 300, seed: int = 0) -> dict[str, tuple[Any, ...]]:
        """Every parameter the space can ask for with its options (found by random sampling)."""
        seen: dict[str, tuple[Any, ...]] = {}
        for i in range(samples):
            trial = RandomTrial(seed + i)
            self.sample(trial)
            seen.update(trial.distributions)
        return seen

    def random_specs(self, n: int, seed: int = 0) -> list[ArchSpec]:
        rng = random.Random(seed)
        return [self.sample(RandomTrial(rng.randrange(2**63))) for _ in range(n)]


SPACES: dict[str, type[SearchSpace]] = {}


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator: adds the space under ``cls.name``; a name registered twice is a ValueError."""
    if cls.name in SPACES:
        raise ValueError(f"search space {cls.name!r} is already registered (by {SPACES[cls.name].__qualname__})")
    SPACES[cls.name] = cls
    return cls


def get_space(name: str, dataset: str = "cifar10", shared_block: bool = False) -> SearchSpace:
    """An instance of the space ``name``; a ValueError lists the valid names otherwise."""
    if name not in SPACES:
        raise ValueError(f"unknown space {name!r}; valid spaces: {', '.join(sorted(SPACES))}")
    return SPACES[name](dataset=dataset, shared_block=shared_block)


from space.spaces import seesaw, shufflenet  # noqa: E402,F401  (registers the spaces)

__all__ = ["FixedParams", "RandomTrial", "SPACES", "SearchSpace", "TrialLike", "get_space", "register_space"]
