"""Every flag with an empty, zero, negative, non-finite, wrong-type and too-long value: one line on
stderr, exit status 2, and nothing created on disk (no run folder, no journal, no data folder)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

import launch_search
from search.engine.study import STUDY_PROXY, STUDY_RECIPE, StudyError, load_study_readonly, make_sampler, open_study
from search.train.proxy import PRESETS, accuracy_settings

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--dataset", "synthetic", "--proxy", "smoke", "--width-scale", "0.25", "--device", "cpu", "--val-size", "64",
        "--train-subset", "64", "--batch-size", "32"]
LONG = "x" * 300
RAY = ["--executor", "ray"]
LAT = ["--objectives", "accuracy,latency"]

# (flag, bad values, extra options the flag needs to be read at all)
TABLE: list[tuple[str, list[str], list[str]]] = [
    ("--space", ["", "nope", "0", LONG], []),
    ("--budget", ["", "0", "-1", "nan", "inf", "1.5", "abc", LONG], []),
    ("--sampler", ["", "nope", LONG], []),
    ("--max-macs", ["", "0", "-1", "nan", "inf", "abc", "1k", LONG], []),
    ("--pick", ["", "nope", LONG], []),
    ("--objectives", ["", "nope", "accuracy", "macs,macs", "accuracy,macs,params,latency", LONG], []),
    ("--max-latency", ["", "0", "-1", "0ms", "-1ms", "nan", "inf", "abc", "5", "5min", LONG], []),
    ("--latency", ["", "nope", LONG], LAT),
    ("--latency-device", ["", "bogus", "cuda:99", "cpu:1", LONG], LAT),
    ("--latency-batch", ["", "0", "-1", "nan", "1.5", "abc", LONG], LAT),
    ("--latency-threads", ["", "0", "-1", "nan", "1.5", "abc", LONG], LAT),
    ("--plot-axes", ["", "nope", "macs", "latency,accuracy", "macs,macs", LONG], []),
    ("--prescreen", ["", "nope", LONG], []),
    ("--prescreen-keep", ["", "0", "-1", "nan", "inf", "2", "abc", LONG], ["--prescreen", "synflow"]),
    ("--seed", ["", "-1", "nan", "inf", "1.5", "abc", "9" * 30, LONG], []),
    ("--name", ["", " ", "a/b", "..", LONG, "bad\nname"], []),
    ("--results-dir", ["", "/proc/seesaw-results", "/dev/null/x", LONG], []),
    ("--storage", ["", "journal://", "nonsense://x", "postgresql://u:s3cret-pw@127.0.0.1:1/db", LONG], []),
    ("--dataset", ["", "nope", LONG], []),
    ("--data-dir", ["", "/nonexistent/cifar", LONG], ["--dataset", "imagefolder"]),
    ("--val-size", ["", "0", "-1", "nan", "1.5", "abc", "999999999", LONG], []),
    ("--proxy", ["", "nope", LONG], []),
    ("--epochs", ["", "0", "-1", "nan", "inf", "abc", LONG], []),
    ("--train-subset", ["", "0", "-1", "nan", "1.5", "abc", LONG], []),
    ("--batch-size", ["", "0", "-1", "nan", "1.5", "abc", LONG], []),
    ("--width-scale", ["", "0", "-1", "nan", "inf", "abc", LONG], []),
    ("--device", ["", "bogus", "cuda:99", "cpu:x", LONG], []),
    ("--executor", ["", "nope", LONG], []),
    ("--workers", ["", "0", "-1", "nan", "1.5", "abc", LONG], []),
    ("--ray-address", ["", "nohost", "127.0.0.1:1", LONG], RAY),
    ("--gpus-per-trial", ["", "-2", "nan", "inf", "1.5", "abc", LONG], RAY),
    ("--cpus-per-trial", ["", "0", "-1", "nan", "inf", "abc", LONG], RAY),
    ("--max-concurrent", ["", "-1", "nan", "1.5", "abc", LONG], RAY),
    ("--max-retries", ["", "-1", "nan", "1.5", "abc", LONG], RAY),
    ("--scheduler", ["asha", LONG], []),
    ("--export", ["", "-1", "0", "nan", "abc", LONG], []),
    ("--final-train", ["", "/nonexistent.yaml", LONG], []),
]
CASES = [pytest.param(flag, value, extra, id=f"{flag}={value[:12]!r}") for flag, values, extra in TABLE for value in values]

# Options that contradict each other (argparse alone would ignore one of them)
CONTRADICTIONS = [
    ["--references", "--describe"],
    ["--export", "1", "--final-train", "x.yaml"],
    ["--json"],
    ["--latency-device", "cpu:0"],  # latency options without latency measured
    ["--latency", "exact"],
    ["--gpus-per-trial", "0.5"],
    ["--cpus-per-trial", "2"],
    ["--max-concurrent", "2"],
    ["--resume"],  # no such run: must not create an empty journal that locks the name
    ["--resume", "--describe"],
    ["--scheduler", "asha", *RAY],
]


def run_main(args: list[str], capsys) -> tuple[int, str]:
    try:
        code = launch_search.main(args)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.err


def assert_refused(code: int, err: str, tmp_path: Path) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "s3cret-pw" not in err, err  # a storage error does not repeat the password
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "left behind: " + ", ".join(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("flag, value, extra", CASES)
def test_every_flag_with_a_bad_value_is_one_line_exit_2_and_leaves_nothing(tmp_path, monkeypatch, capsys, flag, value, extra):
    monkeypatch.chdir(tmp_path)  # --data-dir defaults to ./data: a refused run must not create it
    args = ["--budget", "2", *FAST, "--results-dir", str(tmp_path), "--name", "bad", *extra, flag, value]
    if flag in ("--results-dir", "--name"):
        args = ["--budget", "2", *FAST, *extra, "--results-dir", str(tmp_path), "--name", "bad", flag, value]
    code, err = run_main(args, capsys)
    assert_refused(code, err, tmp_path)


@pytest.mark.parametrize("args", CONTRADICTIONS, ids=" ".join)
def test_contradictory_flags_are_refused(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["--budget", "2", *FAST, "--results-dir", str(tmp_path), "--name", "bad", *args], capsys)
    assert_refused(code, err, tmp_path)


@pytest.fixture
def tiny_yaml(tmp_path_factory) -> Path:
    from fractions import Fraction as F

    from space import ArchSpec, HeadSpec, InvertedResidualSpec, StageSpec, StemSpec

    spec = ArchSpec(StemSpec(channels=8), (StageSpec(16, 1, 2, InvertedResidualSpec(expansion=2, pw1_split=(F(1, 4), F(3, 4)))),),
                    HeadSpec(channels=32))
    path = tmp_path_factory.mktemp("yaml") / "tiny.yaml"
    path.write_text(yaml.safe_dump({"num_classes": 10, "spec": spec.to_dict()}))
    return path


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--epochs", "nan"], ["--epochs", "-1"], ["--batch-size", "0"],
                                  ["--device", "bogus"], ["--recipe", "nope"], ["--val-size", "0"], ["--seed", "-1"]],
                         ids=" ".join)
def test_final_training_with_a_bad_setting_is_one_line(tmp_path, monkeypatch, capsys, tiny_yaml, args):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["--final-train", str(tiny_yaml), "--dataset", "synthetic", "--results-dir", str(tmp_path),
                          "--name", "fin", *args], capsys)
    assert_refused(code, err, tmp_path)


def test_a_bad_value_from_a_real_process_is_one_line_and_leaves_nothing(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "launch_search.py"), *FAST, "--epochs", "nan", "--results-dir",
                           str(tmp_path / "results"), "--name", "n"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "epochs" in proc.stderr, proc.stderr
    assert not any(tmp_path.iterdir())


def test_a_run_in_which_every_trial_failed_exits_1(tmp_path, capsys):
    """Batches of one image cannot train the first sampled network (seed 0): its SRM module needs a
    BatchNorm over more than one value, so the trial fails (recorded with its reason)."""
    code, err = run_main(["--budget", "1", "--no-references", *FAST, "--batch-size", "1", "--epochs", "0.01",
                          "--results-dir", str(tmp_path), "--name", "f"], capsys)
    assert code == 1, err
    last = err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("error: ") and "every trial failed" in last and "Traceback" not in err
    assert (tmp_path / "f" / "trials.csv").exists()  # the run itself is kept, with its failure reasons


def test_resume_with_another_space_or_block_sharing_is_refused_and_changes_nothing(tmp_path, capsys):
    """The study records what the run searches: a resume, or a host joining it with no run.json of
    its own, that would search another space or data set is refused before it loads any data."""
    base = ["--budget", "1", "--no-references", *FAST, "--epochs", "0.01", "--results-dir", str(tmp_path), "--name", "r"]
    code, err = run_main(base, capsys)
    assert code == 0, err
    run_dir = tmp_path / "r"
    (run_dir / "run.json").unlink()  # as on another host: the study alone says what the run searches
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    for extra in (["--space", "shufflenet"], ["--shared-block"], ["--dataset", "cifar100"]):
        code, err = run_main([*base, "--resume", "--budget", "2", *extra], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "was made with" in err, err
        assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before, extra
    # --export reads the run without writing to it, and prints only the YAML's path
    code, _ = run_main([*base, "--export", "0"], capsys)
    assert code == 0 and (run_dir / "study.journal").read_bytes() == before["study.journal"]


def test_a_resume_without_ladder_options_continues_with_the_studys_even_without_run_json(tmp_path, capsys):
    """--rungs, --eta and --repeats are the study's: a resume (or a host joining a --storage study,
    with no run.json of its own) that leaves them out takes the recorded ones, not the preset's;
    other values are refused (the next test)."""
    base = ["--budget", "1", "--no-references", *FAST, "--epochs", "0.01", "--results-dir", str(tmp_path), "--name", "e"]
    code, err = run_main([*base, "--repeats", "2"], capsys)
    assert code == 0, err
    (tmp_path / "e" / "run.json").unlink()
    code, err = run_main([*base, "--resume", "--budget", "2"], capsys)
    assert code == 0, err
    [launch] = json.loads((tmp_path / "e" / "run.json").read_text())["launches"]
    assert (launch["config"]["rungs"], launch["config"]["repeats"]) == (1, 2)  # the smoke preset's default is 1
    study = load_study_readonly(f"journal://{tmp_path / 'e' / 'study.journal'}", "e")
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 2


def test_a_resume_trains_with_the_studys_proxy_recipe_and_refuses_settings_that_change_it(tmp_path, capsys):
    """The recipe the study recorded is the run's: a resume keeps it even after the preset changed (the
    recorded lr is edited here, in the study only, to stand for an older preset) and with run.json
    gone, with or without the run's own flags; flags that change it are refused in one line and
    change nothing."""
    base = ["--budget", "1", "--no-references", *FAST, "--epochs", "0.01", "--results-dir", str(tmp_path), "--name", "p"]
    code, err = run_main(base, capsys)
    assert code == 0, err
    run_dir = tmp_path / "p"
    (run_dir / "run.json").unlink()
    study = open_study(f"journal://{run_dir.resolve() / 'study.journal'}", "p", make_sampler("random", 0), resume=True)
    assert study.user_attrs[STUDY_PROXY] == "smoke"
    study.set_user_attr(STUDY_RECIPE, {**study.user_attrs[STUDY_RECIPE], "lr": 0.0123})
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    for extra, shown in ((["--epochs", "0.02"], "epochs 0.01 -> 0.02"), (["--width-scale", "0.5"], "width_scale 0.25 -> 0.5"),
                         (["--proxy", "cpu", "--epochs", "1"], "lr 0.0123 -> 0.05")):
        code, err = run_main([*base, "--resume", "--budget", "2", *extra], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "trained its networks with the smoke proxy" in err and shown in err and "leave them out" in err, err
        assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before, extra
    code, err = run_main([*base, "--resume", "--budget", "2"], capsys)  # the run's own flags
    assert code == 0, err
    code, err = run_main(["--results-dir", str(tmp_path), "--name", "p", "--dataset", "synthetic", "--device", "cpu",
                          "--val-size", "64", "--no-references", "--resume", "--budget", "3"], capsys)  # none at all
    assert code == 0, err
    launches = json.loads((run_dir / "run.json").read_text())["launches"]
    assert [launch["proxy_name"] for launch in launches] == ["smoke"] * 2
    assert [launch["proxy"]["lr"] for launch in launches] == [0.0123] * 2
    assert [launch["proxy"]["epochs"] for launch in launches] == [0.01] * 2
    assert len({json.dumps(launch["proxy"], sort_keys=True) for launch in launches}) == 1


def test_a_study_without_the_presets_name_still_refuses_another_recipe(tmp_path):
    """A study that recorded a recipe but not its preset's name (made before the name was recorded)
    gives a resume nothing to take; opening it with another recipe is still refused."""
    url = f"journal://{tmp_path / 'study.journal'}"
    recipe = accuracy_settings(dataclasses.asdict(PRESETS["smoke"]))
    open_study(url, "old", make_sampler("random", 0), resume=False, recipe=recipe)
    open_study(url, "old", make_sampler("random", 0), resume=True, recipe=recipe)  # the same recipe joins
    with pytest.raises(StudyError, match=r"another proxy recipe \(epochs 1 -> 2\)"):
        open_study(url, "old", make_sampler("random", 0), resume=True, recipe={**recipe, "epochs": 2})


def test_the_study_refuses_a_process_with_other_rungs_eta_or_repeats_even_without_run_json(tmp_path, capsys):
    """The study records its --rungs/--eta/--repeats: a process that would promote or repeat otherwise
    (another host, no run.json to inherit them from) is refused in one line; the same settings join."""
    base = ["--budget", "2", "--no-references", *FAST, "--results-dir", str(tmp_path), "--name", "l"]
    code, err = run_main([*base, "--rungs", "2", "--eta", "2"], capsys)
    assert code == 0, err
    run_dir = tmp_path / "l"
    (run_dir / "run.json").unlink()
    journal = (run_dir / "study.journal").read_bytes()
    for extra, shown in ((["--rungs", "1"], "not --rungs 1 --repeats 1"), (["--eta", "3"], "not --rungs 2 --eta 3 --repeats 1"),
                         (["--rungs", "2", "--eta", "2", "--repeats", "2"], "not --rungs 2 --eta 2 --repeats 2")):
        code, err = run_main([*base, "--resume", "--budget", "3", *extra], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "promotes and repeats with --rungs 2 --eta 2 --repeats 1, " + shown in err, err
        assert (run_dir / "study.journal").read_bytes() == journal and not (run_dir / "run.json").exists()
    code, err = run_main([*base, "--resume", "--budget", "3"], capsys)  # leaving them out takes the study's
    assert code == 0, err
