"""The written plots: pareto/hypervolume pages sharing one plotly.min.js, PNGs drawn by matplotlib
(no browser), file modes, and the summary of a run with and without results."""

from __future__ import annotations

import os
import stat

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial
from PIL import Image

from search.config import SearchConfig
from search.engine.attributes import ATTR, STATUS
from search.engine.study import DIRECTIONS
from search.results.plots import PLOTLY_JS, write_hypervolume_plot, write_pareto_plot
from search.results.summary import write_artifacts
from space.spaces import get_space

SPACE = get_space("seesaw")
A_SPEC = SPACE.spec_from_params(SPACE.smallest_params()).to_dict()


def study_with_results() -> optuna.Study:
    study = optuna.create_study(directions=list(DIRECTIONS))
    for acc, macs, ref in [(0.5, 10e6, "small_ref"), (0.7, 30e6, None), (0.6, 40e6, "mid_ref"), (0.8, 60e6, None)]:
        attrs = {ATTR.STATUS: STATUS.OK, ATTR.MACS: macs, ATTR.PARAMS: 1000, ATTR.SPEC: A_SPEC, **({ATTR.REFERENCE: ref} if ref else {})}
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[acc, macs], user_attrs=attrs))
    return study


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def pixel_spread(path) -> float:
    return float(np.asarray(Image.open(path).convert("L"), dtype=np.float32).std())


def test_pareto_plot_writes_page_shared_bundle_and_a_png_without_a_browser(tmp_path, umask_022, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no Chrome, no anything: the PNG still comes
    files = write_pareto_plot(study_with_results(), tmp_path, "a title", max_macs=int(50e6))
    files += write_hypervolume_plot([(0, 1.0), (1, 2.0), (2, 2.5)], tmp_path / "hypervolume.html")
    names = sorted({f.name for f in files})
    assert names == ["hypervolume.html", "hypervolume.png", "pareto.html", "pareto.png", PLOTLY_JS]
    for name in names:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no temporary files left
    page = (tmp_path / "pareto.html").read_text()
    # plotly.js is loaded from beside the page, not embedded in it (4.8 MB per page before)
    assert f'src="{PLOTLY_JS}"' in page and len(page) < 200_000
    assert (tmp_path / PLOTLY_JS).stat().st_size > 1_000_000
    assert "small_ref" in page and "mid_ref" in page
    for png in ("pareto.png", "hypervolume.png"):
        with Image.open(tmp_path / png) as im:
            assert im.format == "PNG" and im.size[0] >= 600
        assert pixel_spread(tmp_path / png) > 10  # drawn, not blank


def test_summary_of_a_run_with_results_lists_every_file_it_wrote(tmp_path, capsys, umask_022):
    cfg = SearchConfig(name="done", results_dir=str(tmp_path), budget=4)
    cfg.run_dir.mkdir()
    (cfg.run_dir / "run.json").write_text("{}")
    summary = write_artifacts(study_with_results(), cfg, num_classes=10, input_size=32, proxy="smoke")
    out = capsys.readouterr().out
    listed = out.strip().splitlines()[-1]
    written = sorted(p.name for p in cfg.run_dir.iterdir())
    assert written == sorted(["trials.csv", "hypervolume.csv", "pareto.html", "pareto.png", "hypervolume.html",
                              "hypervolume.png", PLOTLY_JS, "best_block.yaml", "run.json"])
    for name in written:
        assert name in listed, name
        assert stat.S_IMODE((cfg.run_dir / name).stat().st_mode) == 0o644, name
    assert sorted(os.path.basename(f) for f in summary["files"]) == written
    assert "hypervolume (val_acc x MMACs below" in out


def test_summary_after_ctrl_c_shows_queued_trials_as_waiting_and_no_plots(tmp_path, capsys):
    """Interrupted in the first trial: five references queued, nothing finished."""
    study = optuna.create_study(directions=list(DIRECTIONS))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={ATTR.STATUS: STATUS.INTERRUPTED}))
    for i in range(5):
        study.enqueue_trial({}, user_attrs={ATTR.REFERENCE: f"ref{i}"})
    cfg = SearchConfig(name="stopped", results_dir=str(tmp_path), budget=8)
    cfg.run_dir.mkdir()
    write_artifacts(study, cfg, num_classes=10, input_size=32, proxy="smoke")
    out = capsys.readouterr().out
    assert "(interrupted 1, waiting 5)" in out and "running" not in out
    assert "hypervolume" not in out.replace("hypervolume.csv", "")
    assert "pareto" not in out and not (cfg.run_dir / "pareto.html").exists()
    assert out.strip().splitlines()[-1] == f"results: {cfg.run_dir}/ (trials.csv, hypervolume.csv)"
