"""The Pareto plot: every trained trial, the discovered front, and the references as labelled points.

On two of the run's objectives (``--plot-axes X,Y``; by default the first cost against accuracy,
MACs against accuracy in the default run): ``pareto.html``/``.png``; a three-objective run also
draws every pair as ``pareto_X_Y.html``/``.png``, each with the 2-D front of that pair.

Data extraction (``pareto_plot_data``, a NamedTuple, tested) is kept apart from rendering, as in
``optuna.visualization``: plotly draws the interactive pages (``pareto.html``,
``hypervolume.html``, sharing one ``plotly.min.js`` beside them, offline-safe), and matplotlib
draws the static images (``pareto.png``, ``hypervolume.png``) with no
browser. Both renderers are imported only when drawing.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import optuna

from search.engine.attributes import ATTR
from search.engine.objectives import OBJECTIVES, Objectives
from search.files import atomic_path, write_atomic
from search.results.pareto import feasible_trials, front_trials, pair_front


class ParetoPlotData(NamedTuple):
    trials: list[tuple[int, float, float]]  # (number, x, y) as shown: by default (MACs in M, val acc in %)
    front: list[tuple[int, float, float]]
    references: list[tuple[str, float, float]]  # (name, x, y)
    max_macs_m: float | None  # the limit on the x axis (--max-macs in M by default), drawn as a line
    x_title: str = OBJECTIVES["macs"].title
    y_title: str = OBJECTIVES["accuracy"].title
    x_hover: str = OBJECTIVES["macs"].hover.replace("V", "x")
    y_hover: str = OBJECTIVES["accuracy"].hover.replace("V", "y")
    x_limit_label: str = "--max-macs"
    y_limit: float | None = None  # a limit on the y axis (a cost on y), drawn as a line
    y_limit_label: str = ""
    # with --rungs/--repeats (search/results/rung_view.py), by label ("trial N" or a reference's name):
    errors: dict[str, float] = {}  # half-width of the 95% CI of the mean accuracy, in points of % (y axis)
    rungs: dict[str, int] = {}  # the rung each point was measured at


def point_label(number: int) -> str:
    return f"trial {number}"


def pareto_plot_data(study: optuna.Study, max_macs: int | None = None, *, axes: tuple[str, str] | None = None,
                     max_latency_ms: float | None = None) -> ParetoPlotData:
    """What the plot of objectives ``axes`` (x, y; default: the run's first cost against accuracy)
    draws: the trained trials, the front of that pair, the references, the limits on its axes."""
    objectives = Objectives.of_study(study)
    x, y = axes or objectives.axes()
    ox, oy = OBJECTIVES[x], OBJECTIVES[y]

    def point(t: optuna.trial.FrozenTrial) -> tuple[int, float, float]:
        return (t.number, ox.shown(objectives.value(t, x)), oy.shown(objectives.value(t, y)))

    trials = feasible_trials(study)
    refs = [(t.user_attrs[ATTR.REFERENCE], *point(t)[1:]) for t in trials if t.user_attrs.get(ATTR.REFERENCE)]
    errors, rungs = {}, {}
    for t in trials:
        a = t.user_attrs
        for label in (point_label(t.number), *([a[ATTR.REFERENCE]] if a.get(ATTR.REFERENCE) else [])):
            if y == "accuracy" and a.get(ATTR.ACC_CI95) is not None:  # bars are drawn on the y axis
                errors[label] = 100.0 * a[ATTR.ACC_CI95]
            if ATTR.RUNG_REACHED in a:
                rungs[label] = a[ATTR.RUNG_REACHED]
    if len(objectives) == 2 and {x, y} == set(objectives.names):
        front = front_trials(study, max_macs)  # Optuna's front of the run: the same pair
    else:
        front = pair_front([t for t in front_trials(study, max_macs)], objectives, x, y)
    limits = {"macs": (max_macs, "--max-macs"), "latency": (max_latency_ms, "--max-latency")}
    x_limit, x_label = limits.get(x, (None, ""))
    y_limit, y_label = limits.get(y, (None, ""))
    return ParetoPlotData(
        trials=[point(t) for t in trials],
        front=[point(t) for t in front],
        references=refs,
        max_macs_m=None if x_limit is None else ox.shown(x_limit),
        x_title=ox.title, y_title=oy.title,
        x_hover=ox.hover.replace("V", "x"), y_hover=oy.hover.replace("V", "y"),
        x_limit_label=x_label or "--max-macs",
        y_limit=None if y_limit is None else oy.shown(y_limit), y_limit_label=y_label,
        errors=errors,
        rungs=rungs,
    )


def hover_text(data: ParetoPlotData, label: str) -> str:
    """A point's label, with its rung and CI when the run has them."""
    extra = []
    if label in data.rungs:
        extra.append(f"rung {data.rungs[label]}")
    if label in data.errors:
        extra.append(f"95% CI ±{data.errors[label]:.2f}")
    return f"{label} ({', '.join(extra)})" if extra else label


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


class PlotLayout(NamedTuple):
    """Where things go, the same for both renderers."""

    x_range: tuple[float, float] | None  # padded so the outermost labels stay inside
    y_range: tuple[float, float] | None
    references: list[tuple[str, float, float]]  # sorted by MACs
    label_positions: list[str]  # "top center" | "bottom center", one per reference


def plot_layout(data: ParetoPlotData) -> PlotLayout:
    xs = [p[1] for p in data.trials] + ([data.max_macs_m] if data.max_macs_m is not None else [])
    ys = [p[2] for p in data.trials] + ([data.y_limit] if data.y_limit is not None else [])
    x_span = (max(xs) - min(xs)) if xs else 1.0
    y_span = (max(ys) - min(ys)) if ys else 1.0
    # the y range holds the error bars too, so that no bar runs out of the picture
    bar_ends = [y + sign * data.errors.get(point_label(n), 0.0) for n, _, y in data.trials for sign in (-1, 1)]
    x_range = y_range = None
    if xs:
        pad = 0.12 * (x_span or max(abs(xs[0]), 1.0))
        x_range = (min(xs) - pad, max(xs) + pad)
    if ys:
        pad = 0.1 * (y_span or max(abs(ys[0]), 1.0))
        y_range = (min(ys + bar_ends) - pad, max(ys + bar_ends) + pad)
    refs = sorted(data.references, key=lambda r: r[1])
    positions = label_positions([(r[1], r[2]) for r in refs], x_span or 1.0, y_span or 1.0)
    return PlotLayout(x_range, y_range, refs, positions)


def render_pareto(data: ParetoPlotData, title: str):  # -> plotly.graph_objects.Figure
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ImportError("drawing plots needs plotly: pip install plotly") from None

    def bars(labels: list[str]) -> dict | None:  # 95% CI of the mean, where the run repeated seeds
        return dict(type="data", array=[data.errors.get(k, 0.0) for k in labels], visible=True) if data.errors else None

    def sizes(labels: list[str], base: int) -> list[int]:  # a higher rung draws a larger marker
        return [base + 3 * data.rungs.get(k, 0) for k in labels]

    fig = go.Figure()
    labels = [point_label(p[0]) for p in data.trials]
    fig.add_scatter(x=[p[1] for p in data.trials], y=[p[2] for p in data.trials], mode="markers",
                    name="trials", marker=dict(color="lightgray", size=sizes(labels, 7)), error_y=bars(labels),
                    text=[hover_text(data, k) for k in labels], hovertemplate=f"%{{text}}<br>{data.x_hover}<br>{data.y_hover}")
    labels = [point_label(p[0]) for p in data.front]
    fig.add_scatter(x=[p[1] for p in data.front], y=[p[2] for p in data.front], mode="lines+markers",
                    name="Pareto front", line=dict(shape="hv", color="royalblue"), marker=dict(size=sizes(labels, 9)),
                    error_y=bars(labels),
                    text=[hover_text(data, k) for k in labels], hovertemplate=f"%{{text}}<br>{data.x_hover}<br>{data.y_hover}")
    layout = plot_layout(data)
    if layout.references:
        refs = layout.references
        fig.add_scatter(x=[r[1] for r in refs], y=[r[2] for r in refs],
                        mode="markers+text", name="references", text=[r[0] for r in refs],
                        textposition=layout.label_positions, marker=dict(symbol="star", size=14, color="crimson"),
                        error_y=bars([r[0] for r in refs]), hovertext=[hover_text(data, r[0]) for r in refs])
    if layout.x_range:  # room for the labels of the outermost points, which plotly would cut off
        fig.update_xaxes(range=list(layout.x_range))
    if data.max_macs_m is not None:
        fig.add_vline(x=data.max_macs_m, line_dash="dash", line_color="gray", annotation_text=data.x_limit_label)
    if data.y_limit is not None:
        fig.add_hline(y=data.y_limit, line_dash="dash", line_color="gray", annotation_text=data.y_limit_label)
    fig.update_layout(title=title, xaxis_title=data.x_title,
                      yaxis_title=data.y_title, template="plotly_white", width=900, height=600)
    return fig


def _pyplot_free_figure(width_in: float, height_in: float):  # -> matplotlib.figure.Figure
    """A matplotlib Figure on the Agg canvas: no display, no pyplot global state, no browser."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # optional heavy dependency: only when drawing
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("drawing PNG plots needs matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def render_pareto_png(data: ParetoPlotData, title: str):  # -> matplotlib.figure.Figure
    """The same plot as ``render_pareto``, drawn by matplotlib for the static image."""
    fig = _pyplot_free_figure(9, 6)
    ax = fig.add_subplot()
    ax.scatter([p[1] for p in data.trials], [p[2] for p in data.trials], s=30, color="lightgray",
               edgecolors="gray", linewidths=0.5, label="trials", zorder=2)
    if data.front:
        ax.step([p[1] for p in data.front], [p[2] for p in data.front], where="post", color="royalblue",
                marker="o", markersize=6, label="Pareto front", zorder=3)
    if data.errors:  # 95% CI of the mean over seeds
        shown = [(p[1], p[2], data.errors[point_label(p[0])]) for p in data.trials if point_label(p[0]) in data.errors]
        ax.errorbar([x for x, _, _ in shown], [y for _, y, _ in shown], yerr=[e for _, _, e in shown], fmt="none",
                    ecolor="gray", elinewidth=1, capsize=3, label="95% CI of the mean", zorder=2)
    for number, x, y in data.trials:  # mark the rung of points measured beyond rung 0
        rung = data.rungs.get(point_label(number), 0)
        if rung:
            ax.annotate(f"r{rung}", (x, y), xytext=(5, -3), textcoords="offset points", fontsize=6, color="dimgray")
    layout = plot_layout(data)
    if layout.references:
        refs = layout.references
        ax.scatter([r[1] for r in refs], [r[2] for r in refs], marker="*", s=180, color="crimson",
                   label="references", zorder=4)
        for (name, x, y), pos in zip(refs, layout.label_positions):
            above = pos.startswith("top")
            ax.annotate(name, (x, y), xytext=(0, 9 if above else -9), textcoords="offset points", ha="center",
                        va="bottom" if above else "top", fontsize=8, color="crimson", zorder=5)
    if layout.x_range:  # room for the labels of the outermost points
        ax.set_xlim(*layout.x_range)
    if layout.y_range:
        ax.set_ylim(*layout.y_range)
    if data.max_macs_m is not None:
        ax.axvline(data.max_macs_m, linestyle="--", color="gray", label=data.x_limit_label)
    if data.y_limit is not None:
        ax.axhline(data.y_limit, linestyle="--", color="gray", label=data.y_limit_label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(data.x_title)
    ax.set_ylabel(data.y_title)
    ax.grid(True, color="#eeeeee")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def write_png(fig, path: Path) -> Path:  # fig: matplotlib.figure.Figure
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    return Path(path)


HYPERVOLUME_TITLE = "Hypervolume of the (accuracy, MACs) front"
HYPERVOLUME_AXIS = "hypervolume (accuracy x MMACs)"
PLOTLY_JS = "plotly.min.js"  # written once beside the pages, which load it by relative path


def write_page(fig, path: Path) -> list[Path]:  # fig: plotly.graph_objects.Figure
    """Write ``fig`` as a page that loads ``plotly.min.js`` from its own folder, and that bundle
    (the installed plotly's, so a page never meets an older copy). Returns both files."""
    from plotly.offline import get_plotlyjs  # optional heavy dependency: only when drawing

    path = Path(path)
    bundle = path.parent / PLOTLY_JS
    js = get_plotlyjs()
    if not bundle.exists() or bundle.stat().st_size != len(js.encode()):
        write_atomic(bundle, js)
    write_atomic(path, fig.to_html(include_plotlyjs="directory", full_html=True))
    return [path, bundle]


def write_pareto_plot(study: optuna.Study, run_dir: Path, title: str, max_macs: int | None = None, *,
                      axes: tuple[str, str] | None = None, max_latency_ms: float | None = None) -> list[Path]:
    """pareto.html (plotly, with plotly.min.js beside it) and pareto.png (matplotlib) on ``axes``;
    with three objectives also pareto_X_Y.html/.png for every pair. Returns the files."""
    objectives = Objectives.of_study(study)
    plots = [("pareto", tuple(axes or objectives.axes()))]
    if len(objectives) > 2:
        plots += [(f"pareto_{x}_{y}", (x, y)) for x, y in objectives.pairs()]
    written: list[Path] = []
    for stem, pair in plots:
        data = pareto_plot_data(study, max_macs, axes=pair, max_latency_ms=max_latency_ms)
        written += write_page(render_pareto(data, title), run_dir / f"{stem}.html")
        written.append(write_png(render_pareto_png(data, title), run_dir / f"{stem}.png"))
    return list(dict.fromkeys(written))


def write_hypervolume_plot(history: Sequence[tuple[int, float]], path: Path, *, title: str = HYPERVOLUME_TITLE,
                           axis: str = HYPERVOLUME_AXIS) -> list[Path]:
    """``path`` (an .html page) and the same plot as a .png beside it. Returns the files."""
    import plotly.graph_objects as go  # optional heavy dependency: only when drawing

    fig = go.Figure(go.Scatter(x=[h[0] for h in history], y=[h[1] for h in history], mode="lines+markers"))
    fig.update_layout(title=title, xaxis_title="trial",
                      yaxis_title=axis, template="plotly_white")
    written = write_page(fig, path)
    png = _pyplot_free_figure(7, 4.5)
    ax = png.add_subplot()
    ax.plot([h[0] for h in history], [h[1] for h in history], marker="o", color="royalblue")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("trial")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(axis)
    ax.grid(True, color="#eeeeee")
    png.tight_layout()
    written.append(write_png(png, Path(path).with_suffix(".png")))
    return written
