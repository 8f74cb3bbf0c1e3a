"""The reference zoo: every network of REFERENCE_MODELS.md as a named spec with its published numbers.

Families live in their own modules and register with ``register``; ``get_reference(name)``
and ``REFERENCES`` are the public way in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from space.spec import ArchSpec

DATASETS = {"cifar10": (10, 32), "cifar100": (100, 32), "imagenet": (1000, 224)}


@dataclass(frozen=True)
class Published:
    """Numbers exactly as the paper prints them, in millions ("2.4", "181", "25.56"); None if not
    given; top1 in %, as printed.

    A faithful structure (the official code's) sometimes cannot reproduce a printed number: the
    paper's counter differed or its rounding is inconsistent. Such a row says why in ``gap`` and
    allows a relative ``tolerance``; rows read off a plot get one too. Every other row must
    round to the printed value exactly. A row that cannot be matched against its seed code
    (none exists, or it differs on purpose) also says why in ``gap``, with no tolerance.
    """

    params_m: str | None = None
    macs_m: str | None = None
    top1: float | None = None
    tolerance: float = 0.0
    gap: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.tolerance and not self.gap:
            raise ValueError("a Published row with a tolerance must say why in `gap`")


def agrees_with_printed(value: int, printed: str, tolerance: float = 0.0) -> bool:
    """Whether ``value`` (a raw count) rounds to ``printed`` millions at the printed precision, or
    lies within the relative ``tolerance`` of it."""
    millions = value / 1e6
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    if round(millions, decimals) == float(printed):
        return True
    return abs(millions - float(printed)) <= tolerance * float(printed)


@dataclass(frozen=True)
class Reference:
    name: str
    spec: ArchSpec
    dataset: str  # key of DATASETS
    published: Published

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset][0]

    @property
    def input_size(self) -> int:
        return DATASETS[self.dataset][1]


REFERENCES: dict[str, Reference] = {}


def register(name: str, dataset: str, published: Published) -> Callable[[Callable[[], ArchSpec]], Callable[[], ArchSpec]]:
    """Decorator over a zero-argument spec factory: registers ``Reference(name, factory(), ...)``."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")

    def deco(factory: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
        if name in REFERENCES:
            raise ValueError(f"reference {name!r} registered twice")
        REFERENCES[name] = Reference(name, factory().validate(), dataset, published)
        return factory

    return deco


def get_reference(name: str) -> Reference:
    """The reference named ``name``; a ValueError lists the valid names otherwise."""
    try:
        return REFERENCES[name]
    except KeyError:
        raise ValueError(f"unknown reference {name!r}; valid: {', '.join(sorted(REFERENCES))}") from None


# Importing the family modules fills REFERENCES.
from space.references import mobile, resnet, shufflenet  # noqa: E402,F401

__all__ = ["DATASETS", "Published", "agrees_with_printed", "REFERENCES", "Reference", "get_reference", "register"]
