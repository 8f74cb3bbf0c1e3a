"""How far to trust a run's ranking: the measured fidelity of its proxy configuration.

``benchmarks/proxy_fidelity.py --write`` stores, per proxy configuration, the rank correlation of
proxy accuracy with a longer schedule (and of params and MACs alone) in
``search/results/fidelity_results.json``. A run's summary quotes the entry whose proxy configuration
equals the run's in every field that affects accuracy; any other configuration is "not measured" (the closest measured ones
are named so the user knows where to look).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from search.train.proxy import accuracy_settings, settings_in_full

RESULTS_FILE = Path(__file__).with_name("fidelity_results.json")  # package data, written by benchmarks/proxy_fidelity.py

__all__ = ["RESULTS_FILE", "describe_fidelity", "find_fidelity", "load_fidelity"]


def load_fidelity(path: Path = RESULTS_FILE) -> list[dict[str, Any]]:
    """The stored entries; none when the file is missing (e.g. an installed package) or unreadable."""
    try:
        return list(json.loads(Path(path).read_text()).get("entries", []))
    except (OSError, ValueError):
        return []


def find_fidelity(proxy_config: dict[str, Any], space: str, entries: Sequence[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The latest entry measured on ``space`` with this proxy configuration (up to reporting-only fields)."""
    entries = load_fidelity() if entries is None else entries
    wanted = accuracy_settings(proxy_config)
    found = [e for e in entries if e.get("space") == space and accuracy_settings(e.get("proxy_config") or {}) == wanted]
    return found[-1] if found else None


def _corr(c: dict[str, Any] | None) -> str:
    if not c or c.get("spearman") is None:
        return "-"
    ci = c.get("spearman_ci90")
    return f"{c['spearman']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def _differences(measured: dict[str, Any], run: dict[str, Any]) -> str:
    """The accuracy settings in which a measured configuration differs from the run's, as measured."""
    then, now = settings_in_full(accuracy_settings(measured)), settings_in_full(accuracy_settings(run))
    return ", ".join(f"{k}={then.get(k)!r}" for k in sorted({*then, *now}) if then.get(k) != now.get(k)) or "the same settings"


def describe_fidelity(proxy_name: str, proxy_config: dict[str, Any], space: str,
                      entries: Sequence[dict[str, Any]] | None = None) -> str:
    """One or two lines for the run summary."""
    entries = load_fidelity() if entries is None else entries
    entry = find_fidelity(proxy_config, space, entries)
    if entry is None:
        measured = [e for e in entries if e.get("space") == space]
        others = "; ".join(f"{e['label']} (measured with {_differences(e.get('proxy_config') or {}, proxy_config)}): "
                           f"Spearman {_corr(e['correlations'].get('proxy'))}" for e in measured[-3:])
        return (f"proxy fidelity of preset {proxy_name!r} with these settings: not measured "
                f"(benchmarks/proxy_fidelity.py; BENCHMARKS.md)" + (f"\n  measured on {space}: {others}" if others else ""))
    c = entry["correlations"]
    # the mean of K proxy seeds (proxy_fidelity.py --proxy-repeats K), as --repeats ranks the front
    means = "".join(f", {name.removeprefix('proxy ')} seeds {_corr(corr)}" for name, corr in c.items()
                    if name.startswith("proxy mean of "))
    return (f"proxy fidelity (measured, {entry['label']}: {entry['architectures']} networks of {space} on "
            f"{entry['dataset']}, vs {entry.get('final_overrides') or 'a longer schedule'}): Spearman "
            f"{_corr(c.get('proxy'))}, Kendall {c['proxy']['kendall']:+.2f}{means}; params alone "
            f"{_corr(c.get('params'))}, MACs alone {_corr(c.get('macs'))}")
