"""The CLI's information commands, ``--references`` and ``--describe``: torch-free while the
machine's part counts are cached (``blocks.cost``), so they answer in about a second."""

from __future__ import annotations

import json
from typing import Any

from blocks.cost import count_cost, count_costs
from search.choices import default_num_classes
from search.errors import SearchError
from search.results.table import format_table
from space.references import REFERENCES, agrees_with_printed
from space.spaces import get_space

__all__ = ["describe_space", "print_references", "reference_rows"]


def reference_rows() -> list[dict[str, Any]]:
    rows = []
    names = sorted(REFERENCES)
    costs = count_costs((REFERENCES[n].spec, REFERENCES[n].num_classes, REFERENCES[n].input_size) for n in names)
    for name, cost in zip(names, costs):
        ref = REFERENCES[name]
        pub = ref.published
        rows.append({
            "name": name, "dataset": ref.dataset, "input_size": ref.input_size, "num_classes": ref.num_classes,
            "params": cost.params, "macs": cost.macs, "published_params_m": pub.params_m,
            "published_macs_m": pub.macs_m, "published_top1": pub.top1, "canonical_key": ref.spec.canonical_key(),
            "matches_published": _matches(cost, pub), "gap": pub.gap or None,
        })
    return rows


def _matches(cost: Any, pub: Any) -> bool:
    """Counted params/MACs round to the printed numbers exactly (no tolerance)."""
    return all(agrees_with_printed(v, p) for v, p in ((cost.params, pub.params_m), (cost.macs, pub.macs_m)) if p)


def print_references(as_json: bool = False) -> int:
    rows = reference_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [(r["name"], r["dataset"], r["input_size"], f"{r['params'] / 1e6:.2f}", f"{r['macs'] / 1e6:.1f}",
              r["published_params_m"] or "-", r["published_macs_m"] or "-", r["published_top1"] or "-",
              "yes" if r["matches_published"] else "gap*") for r in rows]
    print(format_table(table, ("name", "dataset", "input", "Mparams", "MMACs", "paper Mparams", "paper MMACs",
                               "paper top-1", "match")))
    print("\nMACs = multiply-adds of conv/linear/matmul at batch 1 (FlopCounterMode / 2), counted from the built module.")
    for r in rows:
        if not r["matches_published"]:
            print(f"* {r['name']}: {r['gap']}")
    return 0


def describe_space(name: str, dataset: str, shared_block: bool, samples: int = 100) -> int:
    try:
        space = get_space(name, dataset=dataset, shared_block=shared_block)
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    print(f"space {space.name}: {space.description}")
    print(f"search input {space.input_size}x{space.input_size}, {'one shared block' if shared_block else 'one block per stage'}")
    choices = space.choices()
    print(format_table([(k, ", ".join(map(str, v))) for k, v in sorted(choices.items())], ("parameter", "options")))
    print(f"\nsize: {space.size():.3e} parameter assignments ({len(choices)} parameters, some conditional)")
    num_classes = default_num_classes(dataset)
    specs = space.random_specs(samples, seed=0)
    refs = space.references()
    smallest = space.spec_from_params(space.smallest_params())
    *costs, small = count_costs((s, num_classes, space.input_size) for s in [*specs, *refs.values(), smallest])
    costs = costs[:samples]
    macs = sorted(c.macs for c in costs)
    params = sorted(c.params for c in costs)
    print(f"MACs over {samples} random samples: min {macs[0] / 1e6:.1f}M, median {macs[len(macs) // 2] / 1e6:.1f}M, "
          f"max {macs[-1] / 1e6:.1f}M (smallest network of the space: {small.macs / 1e6:.1f}M)")
    print(f"params over {samples} random samples: min {params[0] / 1e6:.2f}M, median {params[len(params) // 2] / 1e6:.2f}M, "
          f"max {params[-1] / 1e6:.2f}M")
    if refs:
        rows = []
        for ref_name, spec in refs.items():
            c = count_cost(spec, num_classes, space.input_size)
            rows.append((ref_name, f"{c.macs / 1e6:.1f}", f"{c.params / 1e6:.2f}", spec.canonical_key()))
        print("\nreference networks in this space:")
        print(format_table(rows, ("reference", "MMACs", "Mparams", "canonical key")))
    return 0
