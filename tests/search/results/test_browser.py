"""pareto.html in a real browser: headless Chromium (Debian's ``chromium``, installed by .ci/run)
runs the page's JavaScript offline, from the plotly.min.js written beside it; the rendered SVG holds
every trial and the labelled references, and a screenshot is not blank."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial
from PIL import Image

from search.engine.attributes import ATTR, STATUS
from search.engine.study import DIRECTIONS
from search.results.plots import write_pareto_plot

# Offline and quiet: no network, no first-run work, a profile of its own.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=15000"]
TRIALS = [  # (accuracy, MACs, reference)
    (0.50, 10e6, "tiny_ref"), (0.62, 25e6, None), (0.70, 30e6, None), (0.58, 40e6, "mid_ref"),
    (0.66, 45e6, None), (0.80, 60e6, "big_ref"), (0.74, 70e6, None),
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium (.ci/run installs it)")
        pytest.skip("no chromium here (apt-get install -y chromium); CI installs it and runs this test")
    return found


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    study = optuna.create_study(directions=list(DIRECTIONS))
    for acc, macs, ref in TRIALS:
        attrs = {ATTR.STATUS: STATUS.OK, ATTR.MACS: macs, **({ATTR.REFERENCE: ref} if ref else {})}
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[acc, macs], user_attrs=attrs))
    run_dir = tmp_path_factory.mktemp("run")
    write_pareto_plot(study, run_dir, "browser check")
    return run_dir / "pareto.html"


def browse(page, tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=180)


def test_chromium_renders_every_trial_and_the_labelled_references(page, tmp_path):
    dom = browse(page, tmp_path, "--dump-dom").stdout
    assert "main-svg" in dom, dom[-2000:]  # plotly.js ran (from the bundle beside the page)
    traces = dom.split('<g class="trace scatter')[1:]
    assert len(traces) == 3  # trials, front, references
    points = [t.count('class="point"') for t in traces]
    assert points[0] == len(TRIALS) and points[2] == 3
    labels = re.findall(r'<g class="textpoint"[^>]*><text[^>]*>([^<]*)</text>', dom)
    assert sorted(labels) == ["big_ref", "mid_ref", "tiny_ref"]
    assert "browser check" in dom and "proxy validation accuracy" in dom


def test_chromium_screenshot_is_not_blank(page, tmp_path):
    shot = tmp_path / "shot.png"
    browse(page, tmp_path, "--window-size=1000,700", f"--screenshot={shot}")
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.float32)
    assert pixels.shape == (700, 1000)
    assert pixels.std() > 10 and (pixels < 100).mean() > 0.002  # axes, labels, markers on white
