"""The end of a run: trials.csv, hypervolume, Pareto plot, best_block.yaml and the printed summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search.results.artifacts import write_csv, write_trials_csv
from search.results.table import format_table
from search.config import SearchConfig
from search.results.export import export_trial
from search.results.fidelity import describe_fidelity, find_fidelity
from search.results.plots import write_hypervolume_plot, write_pareto_plot
from search.results.rung_view import ladder_columns, network_claims, rung_view
from search.results.pareto import feasible_trials, front_order, front_trials, hypervolume_by_budget, hypervolume_history, pick_trial
from search.engine.attributes import ATTR, trial_status
from search.engine.objectives import OBJECTIVES, Objectives
from search.engine.study import finished_count


def hypervolume_reference_macs(study: optuna.Study, max_macs: int | None) -> float:
    """MACs bound of the hypervolume: --max-macs, else 1.1x the costliest trained trial."""
    if max_macs is not None:
        return float(max_macs)
    objectives = Objectives.of_study(study)
    macs = [objectives.value(t, "macs") for t in feasible_trials(study)]
    return 1.1 * max(macs) if macs else 1.0


def hypervolume_bounds(study: optuna.Study, cfg: SearchConfig) -> dict[str, float]:
    """The costs' bounds of the hypervolume (each cost objective of the run): its limit
    (--max-macs, --max-latency), else 1.1x the costliest trained trial's."""
    objectives = Objectives.of_study(study)
    limits = {"macs": cfg.max_macs, "latency": cfg.max_latency_ms}
    trained = feasible_trials(study)
    bounds = {}
    for o in objectives.costs():
        if limits.get(o.name) is not None:
            bounds[o.name] = float(limits[o.name])
        else:
            values = [objectives.value(t, o.name) for t in trained]
            bounds[o.name] = 1.1 * max(values) if values else 1.0
    return bounds


def hypervolume_words(objectives: Objectives, bounds: dict[str, float]) -> str:
    """'val_acc x MMACs below 12.3M' (the default's words) or the like for the run's objectives."""
    parts = []
    for o in objectives:
        if o.maximize:
            parts.append(o.metric)
        elif o.name == "macs":
            parts.append(f"MMACs below {bounds[o.name] / 1e6:.1f}M")
        elif o.name == "params":
            parts.append(f"Mparams below {bounds[o.name] / 1e6:.2f}M")
        else:
            parts.append(f"latency ms below {bounds[o.name]:.3g}")
    return " x ".join(parts)


# Files a run writes before its end (the study is absent with --storage postgresql://...).
RUN_FILES = ("study.journal", "run.json", "search.log")

# Budgets at which the summary quotes the hypervolume (and always the last trial).
HYPERVOLUME_KS = (10, 25, 50, 100, 200, 500, 1000)


def hypervolume_milestones(history: list[float]) -> dict[int, float]:
    """k -> hypervolume after k counted trials, at HYPERVOLUME_KS and the last k."""
    ks = [k for k in HYPERVOLUME_KS if k < len(history)] + ([len(history)] if history else [])
    return {k: history[k - 1] for k in ks}


def write_artifacts(study: optuna.Study, cfg: SearchConfig, *, num_classes: int, input_size: int, proxy: str,
                    proxy_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every file of the end of a run, and the printed summary. With rungs or repeats, everything
    reads each network at its highest rung (``search.results.rung_view``)."""
    run_dir: Path = cfg.run_dir
    claims: list[str] | None = None
    if cfg.ladder:
        study = rung_view(study, cfg)
        claims = network_claims(study)
    rows = write_trials_csv(study, run_dir / "trials.csv", ladder_columns(cfg.rungs or 1) if cfg.ladder else ())
    trained = feasible_trials(study)
    objectives = Objectives.of_study(study)
    ref_macs = hypervolume_reference_macs(study, cfg.max_macs) if "macs" in objectives else 1.0
    bounds = None if objectives.is_default else hypervolume_bounds(study, cfg)
    history = hypervolume_history(feasible_trials(study, cfg.max_macs), ref_macs, objectives=objectives, bounds=bounds)
    write_csv(run_dir / "hypervolume.csv", ("trial", "hypervolume"),
              [{"trial": n, "hypervolume": f"{hv:.6g}"} for n, hv in history])
    files: list[Path] = [run_dir / "trials.csv", run_dir / "hypervolume.csv"]
    if trained:  # a run with no result has nothing to plot
        try:
            files += write_pareto_plot(study, run_dir, f"{cfg.name}: space {cfg.space}, {cfg.dataset}, proxy {proxy}",
                                       cfg.max_macs, axes=objectives.axes(cfg.plot_axes), max_latency_ms=cfg.max_latency_ms)
            if objectives.is_default:
                files += write_hypervolume_plot(history, run_dir / "hypervolume.html")
            else:
                names = ", ".join(o.name for o in objectives)
                files += write_hypervolume_plot(history, run_dir / "hypervolume.html",
                                                title=f"Hypervolume of the ({names}) front",
                                                axis=f"hypervolume ({hypervolume_words(objectives, bounds or {})})")
        except ImportError as exc:
            print(f"note: no plots ({exc})")
    front = front_trials(study, cfg.max_macs)
    best_path = None
    if front:
        best = pick_trial(front, cfg.pick, objectives, objectives.axes(cfg.plot_axes))
        best_path = run_dir / "best_block.yaml"
        export_trial(best, best_path, pick=cfg.pick, run={
            "name": cfg.name, "space": cfg.space, "dataset": cfg.dataset, "seed": cfg.seed,
            "proxy": proxy, "num_classes": num_classes, "input_size": input_size,
            **({} if objectives.is_default else {"objectives": list(objectives.names)})})
        files.append(best_path)
    # what the run wrote before the end (the study, run.json, the log), when this run has them
    files += [run_dir / n for n in RUN_FILES if (run_dir / n).is_file()]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    summary = {
        "finished": finished_count(study),
        "budget": cfg.budget,
        "statuses": statuses,
        "front": [t.number for t in front],
        "hypervolume": history[-1][1] if history else 0.0,
        "hypervolume_by_trials": hypervolume_milestones(hypervolume_by_budget(
            study.get_trials(deepcopy=False), ref_macs, objectives=objectives, bounds=bounds)),
        "objectives": list(objectives.names),
        "hypervolume_words": hypervolume_words(objectives, bounds or {"macs": ref_macs}),
        "fidelity": None,
        "best_block": str(best_path) if best_path else None,
        "files": [str(f) for f in dict.fromkeys(files)],
        "claims": claims,
    }
    if proxy_config is not None:
        entry = find_fidelity(proxy_config, cfg.space)
        summary["fidelity"] = entry["correlations"]["proxy"] if entry else None
        summary["fidelity_line"] = describe_fidelity(proxy, proxy_config, cfg.space)
    print_summary(study, cfg, front, trained, summary)
    return summary


def print_summary(study: optuna.Study, cfg: SearchConfig, front: list, trained: list, summary: dict[str, Any]) -> None:
    on_front = {t.number for t in front}
    objectives = Objectives.of_study(study)
    refs = [t for t in trained if t.user_attrs.get(ATTR.REFERENCE)]
    shown = sorted({t.number: t for t in list(front) + refs}.values(), key=front_order(objectives))
    latency = any(ATTR.LATENCY in t.user_attrs for t in shown)

    def cell(t: Any, name: str, fmt: str) -> str:
        if name in objectives:
            return format(OBJECTIVES[name].shown(objectives.value(t, name)), fmt)
        value = t.user_attrs.get(OBJECTIVES[name].attr)
        return "" if value is None else format(OBJECTIVES[name].shown(value), fmt)

    rows = [(
        t.number,
        t.user_attrs.get(ATTR.REFERENCE, ""),
        cell(t, "accuracy", ".2f"),
        cell(t, "macs", ".1f"),
        f"{t.user_attrs.get(ATTR.PARAMS, 0) / 1e6:.2f}",
        *([cell(t, "latency", ".3f")] if latency else []),
        "*" if t.number in on_front else "",
    ) for t in shown]
    header: tuple[str, ...] = ("trial", "reference", "val_acc%", "MMACs", "Mparams", *(["latency_ms"] if latency else []),
                               "front")
    if cfg.ladder:  # the rung each network reached, and the 95% CI of its mean over seeds there
        header += ("rung", "seeds", "ci95%")
        rows = [row + (t.user_attrs.get(ATTR.RUNG_REACHED, 0), t.user_attrs.get(ATTR.SEEDS, 1),
                       f"{100 * t.user_attrs[ATTR.ACC_CI95]:.2f}" if t.user_attrs.get(ATTR.ACC_CI95) is not None else "")
                for row, t in zip(rows, shown)]
    print()
    print(f"search {cfg.name}: {summary['finished']}/{cfg.budget} trials finished "
          f"({', '.join(f'{k} {v}' for k, v in sorted(summary['statuses'].items()))})")
    print(f"objectives: {objectives.describe()}")
    if cfg.uses_latency:
        print(f"latency: {cfg.latency_meter().describe()} (the exported network at its input size)")
    if rows:
        print(format_table(rows, header))
    if trained:
        print(f"hypervolume ({summary['hypervolume_words']}): {summary['hypervolume']:.4g}")
    if trained and summary["hypervolume_by_trials"]:
        print("hypervolume after k trials: " + ", ".join(f"{k} -> {hv:.4g}" for k, hv in summary["hypervolume_by_trials"].items()))
    if summary.get("claims") is not None:
        print(f"references against the discovered networks ({cfg.repeats} seeds at the top rung, rung "
              f"{(cfg.rungs or 1) - 1}; 95% confidence):")
        for line in summary["claims"] or ["  (no reference finished with a result)"]:
            print(f"  {line}")
    if summary.get("fidelity_line"):
        print(summary["fidelity_line"])
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if trial_status(t) in ("failed", "diverged")]
    for t in failed[:5]:
        print(f"  trial {t.number} {trial_status(t)}: {t.user_attrs.get(ATTR.FAILURE, '')}")
    print(f"best block ({cfg.pick}): {summary['best_block'] or 'none (no trial finished with a result)'}")
    print(f"results: {cfg.run_dir}/ ({', '.join(Path(f).name for f in summary['files'])})")
