"""The Pareto plot: every trained trial, the discovered front, and the references as labelled points.

Data extraction (``pareto_plot_data``, a NamedTuple, tested) is kept apart from rendering
(plotly, imported only here and only when drawing). PNG export needs kaleido and a Chrome.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple, Sequence

import optuna

from search.results.pareto import feasible_trials, front_trials
from search.engine.attributes import ATTR


class ParetoPlotData(NamedTuple):
    trials: list[tuple[int, float, float]]  # (number, macs in M, val acc in %)
    front: list[tuple[int, float, float]]
    references: list[tuple[str, float, float]]  # (name, macs in M, val acc in %)
    max_macs_m: float | None


def pareto_plot_data(study: optuna.Study, max_macs: int | None = None) -> ParetoPlotData:
    def point(t: optuna.trial.FrozenTrial) -> tuple[int, float, float]:
        return (t.number, t.values[1] / 1e6, 100.0 * t.values[0])

    trials = feasible_trials(study)
    refs = [(t.user_attrs[ATTR.REFERENCE], t.values[1] / 1e6, 100.0 * t.values[0])
            for t in trials if t.user_attrs.get(ATTR.REFERENCE)]
    return ParetoPlotData(
        trials=[point(t) for t in trials],
        front=[point(t) for t in front_trials(study, max_macs)],
        references=refs,
        max_macs_m=None if max_macs is None else max_macs / 1e6,
    )


def label_positions(points: Sequence[tuple[float, float]], x_span: float, y_span: float) -> list[str]:
    """Where to write each point's label: above it, or below it when a label already written
    above a nearby point (within 20% of the x span and 5% of the y span) would overlap.

    Hand-rolled because plotly places text labels without avoiding collisions.
    """
    positions: list[str] = []
    for i, (x, y) in enumerate(points):
        clash = any(positions[j] == "top center" and abs(x - points[j][0]) < 0.2 * x_span
                    and abs(y - points[j][1]) < 0.05 * y_span for j in range(i))
        positions.append("bottom center" if clash else "top center")
    return positions


def render_pareto(data: ParetoPlotData, title: str):  # -> plotly.graph_objects.Figure
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ImportError("drawing plots needs plotly: pip install plotly kaleido") from None

    fig = go.Figure()
    fig.add_scatter(x=[p[1] for p in data.trials], y=[p[2] for p in data.trials], mode="markers",
                    name="trials", marker=dict(color="lightgray", size=7),
                    text=[f"trial {p[0]}" for p in data.trials], hovertemplate="%{text}<br>%{x:.1f}M MACs<br>%{y:.2f}%")
    fig.add_scatter(x=[p[1] for p in data.front], y=[p[2] for p in data.front], mode="lines+markers",
                    name="Pareto front", line=dict(shape="hv", color="royalblue"), marker=dict(size=9),
                    text=[f"trial {p[0]}" for p in data.front], hovertemplate="%{text}<br>%{x:.1f}M MACs<br>%{y:.2f}%")
    xs = [p[1] for p in data.trials] + ([data.max_macs_m] if data.max_macs_m is not None else [])
    ys = [p[2] for p in data.trials]
    x_span = (max(xs) - min(xs)) if xs else 1.0
    y_span = (max(ys) - min(ys)) if ys else 1.0
    if data.references:
        refs = sorted(data.references, key=lambda r: r[1])
        fig.add_scatter(x=[r[1] for r in refs], y=[r[2] for r in refs],
                        mode="markers+text", name="references", text=[r[0] for r in refs],
                        textposition=label_positions([(r[1], r[2]) for r in refs], x_span or 1.0, y_span or 1.0),
                        marker=dict(symbol="star", size=14, color="crimson"))
    if xs:  # room for the labels of the outermost points, which plotly would cut off
        pad = 0.12 * (x_span or max(abs(xs[0]), 1.0))
        fig.update_xaxes(range=[min(xs) - pad, max(xs) + pad])
    if data.max_macs_m is not None:
        fig.add_vline(x=data.max_macs_m, line_dash="dash", line_color="gray", annotation_text="--max-macs")
    fig.update_layout(title=title, xaxis_title="MACs (millions, 32x32 input)",
                      yaxis_title="proxy validation accuracy (%)", template="plotly_white", width=900, height=600)
    return fig


def chrome_available() -> bool:
    return any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome"))


def write_pareto_plot(study: optuna.Study, run_dir: Path, title: str, max_macs: int | None = None) -> list[Path]:
    """pareto.html always (plotly); pareto.png too when kaleido finds a Chrome. Returns the files."""
    fig = render_pareto(pareto_plot_data(study, max_macs), title)
    written = [run_dir / "pareto.html"]
    fig.write_html(written[0], include_plotlyjs=True)
    if chrome_available():
        try:
            fig.write_image(run_dir / "pareto.png", scale=2)
            written.append(run_dir / "pareto.png")
        except Exception as exc:  # kaleido/Chrome trouble must not lose the run
            print(f"note: pareto.png not written ({str(exc).splitlines()[0][:120]}); pareto.html has the plot")
    return written


def write_hypervolume_plot(history: Sequence[tuple[int, float]], path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[h[0] for h in history], y=[h[1] for h in history], mode="lines+markers"))
    fig.update_layout(title="Hypervolume of the (accuracy, MACs) front", xaxis_title="trial",
                      yaxis_title="hypervolume (accuracy x MMACs)", template="plotly_white")
    fig.write_html(path, include_plotlyjs=True)
