"""Hypervolume at equal training compute: promotion over rungs against every network at the top rung.

    OMP_NUM_THREADS=1 python benchmarks/promotion_hypervolume.py --seeds 1 --budget 27 --flat-cap 13 \\
        --dataset imagefolder --data-dir ../shared/data/cifar10-jpg.zip \\
        --train-subset 4000 --width-scale 0.25 --epochs 1 --results-dir runs --json hv.json

For each seed, two searches of the tool itself (``launch_search.py``, the ``cpu`` preset with the
proxy options given, ``--no-references --repeats 1``), each in a fresh run folder:

- **promotion**: ``--rungs R --eta E --budget B``; rung 0 trains ``--epochs``, rung r ``E**r`` x that,
  each promotion from its checkpoint. Its cost in rung-0 units is counted from its trials.csv
  (``E**rung reached`` per network): ASHA promotes more than ``search.engine.ladder.training_cost``,
  the synchronous count the run prints as a lower bound.
- **flat**, after it: ``--rungs 1`` with the top rung's epochs (``--epochs x E**(R-1)``) for every
  network, and as many networks as the promotion run's cost buys, rounded: ``round(cost / E**(R-1))``.
  With ``--flat-cap K`` it runs beside the promotion run instead, with a budget of K networks: once
  the promotion run's cost is known, the flat run is stopped as soon as it has finished the first
  ``round(cost / E**(R-1))`` (kill -9, then resumed with that budget, which trains nothing and writes
  its results). One worker and a seeded sampler that does not depend on the budget make them the
  networks a flat run of that size trains.

A run folder left in ``--results-dir`` by a killed benchmark is resumed, so rerunning the same
command keeps every finished network.

Both use the seed for the sampler, the split and the training, so the flat run's networks are the
first ones the promotion run samples too (TPE's random start-up trials).

Prints, per run: networks, wall time, and the hypervolume of (validation accuracy, MACs) of

- *as reported*: every network at the highest rung it reached (what the run's front shows);
- *top rung only*: the networks that reached the top rung (every network of a flat run).

Every run shares one reference point: accuracy 0 and 1.05 x the largest MACs of any network of any
run; areas are in accuracy x MMACs. Then, per seed, promotion's hypervolume over the flat run's (and
their mean and range over seeds). ``--json`` keeps every run's networks and these ratios.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search.engine.ladder import training_cost  # noqa: E402
from search.engine.study import finished_count, load_study_readonly  # noqa: E402
from search.errors import StudyError  # noqa: E402
from search.results.pareto import hypervolume  # noqa: E402


class Search:
    """One search of the tool in a fresh process (its own session, so a stop kills its workers too).

    A run folder left by a killed benchmark is resumed (``--resume``): its finished networks are kept.
    """

    def __init__(self, name: str, argv: list[str], results_dir: Path):
        self.name, self.results_dir = name, results_dir
        resume = ["--resume"] if (results_dir / name / "run.json").is_file() else []
        self.command = [sys.executable, str(ROOT / "launch_search.py"), "--name", name, "--results-dir", str(results_dir),
                        *argv, *resume]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        results_dir.mkdir(parents=True, exist_ok=True)
        self.log = results_dir / f"{name}.log"  # its output (a pipe nobody reads while it runs could fill and block it)
        self.started = time.perf_counter()
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def finished_networks(self) -> int:
        """Networks the run has finished so far, as its budget counts them (0 while its journal is unreadable)."""
        try:
            study = load_study_readonly(f"journal://{(self.results_dir / self.name / 'study.journal').resolve()}", self.name)
        except StudyError:  # not created yet, or a line half written right now
            return 0
        return finished_count(study)

    def stop_at(self, networks: int, poll_s: float = 2.0) -> bool:
        """Kill the run (and its workers) once it has finished ``networks``; False if it ended first."""
        while self.process.poll() is None:
            if self.finished_networks() >= networks:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                return True
            time.sleep(poll_s)
        return False

    def result(self) -> dict:
        """Wait for the run; its networks from trials.csv and its wall time."""
        self.process.wait()
        wall = time.perf_counter() - self.started
        if self.process.returncode != 0:
            raise SystemExit(f"{self.name} failed ({self.process.returncode}): "
                             f"{self.log.read_text().strip()[-800:]} (all of it in {self.log})")
        return {"name": self.name, "wall_s": wall, "networks": read_networks(self.results_dir / self.name),
                "command": self.command}


def run_search(name: str, argv: list[str], results_dir: Path) -> dict:
    """One search, to its end (see ``Search``)."""
    return Search(name, argv, results_dir).result()


def read_networks(run_dir: Path) -> list[dict]:
    """The networks of a run that finished, at their top rung, from its trials.csv."""
    networks = []
    with open(run_dir / "trials.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["state"] != "COMPLETE" or row["status"] != "ok":
                continue
            acc = row.get("acc_mean") or row["val_acc"]
            networks.append({"number": int(row["number"]), "macs": int(row["macs"]), "acc": float(acc),
                             "rung": int(row.get("rung_reached") or 0)})
    return networks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--budget", type=int, default=27, help="networks sampled by the promotion run")
    p.add_argument("--rungs", type=int, default=3)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--epochs", type=float, default=1.0, help="rung-0 epochs")
    p.add_argument("--train-subset", type=int, default=4000,
                   help="training images (2,000 for one epoch left 3 seesaw samples at chance, 9.7-10.4%%)")
    p.add_argument("--width-scale", type=float, default=0.25)
    p.add_argument("--val-size", type=int, default=None,
                   help="held-out images every network is scored on (default: the tool's --val-size)")
    p.add_argument("--space", default="seesaw")
    p.add_argument("--dataset", default="imagefolder")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpg.zip"))
    p.add_argument("--parallel", type=int, default=1, help="seeds run at once (one core each; two with --flat-cap)")
    p.add_argument("--flat-cap", type=int, default=None,
                   help="start each flat run beside its promotion run with this many networks and count its first "
                        "round(cost / top-rung epochs) (the sampler does not depend on the budget): one seed on two cores")
    p.add_argument("--results-dir", default=None, help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write every run's networks here")
    args = p.parse_args(argv)
    if args.rungs < 2:
        p.error("--rungs must be >= 2: the comparison is promotion against no promotion")

    top = args.eta ** (args.rungs - 1)
    planned = training_cost(args.budget, args.rungs, args.eta)
    if planned < top:
        p.error(f"--budget {args.budget} costs {planned:g} rung-0 units, less than one top-rung training ({top}); raise it")
    common = ["--space", args.space, "--dataset", args.dataset, "--proxy", "cpu",
              "--train-subset", str(args.train_subset), "--width-scale", str(args.width_scale),
              "--no-references", "--repeats", "1", "--workers", "1"]
    if args.dataset != "synthetic":
        common += ["--data-dir", args.data_dir]
    if args.val_size is not None:
        common += ["--val-size", str(args.val_size)]
    print(f"promotion: {args.budget} networks, {args.rungs} rungs, eta {args.eta} (at least {planned:g} rung-0 units); "
          f"flat: the networks its measured cost buys at {args.epochs * top:g} epochs", flush=True)

    def pair(seed: int, results_dir: Path) -> list[dict]:
        """The promotion run of ``seed``, and the flat run its measured cost pays for: after it, or beside it
        with ``--flat-cap`` networks of which the first ones it pays for count."""
        seeded = [*common, "--seed", str(seed)]

        def flat_search(budget: int) -> Search:
            return Search(f"flat-s{seed}", [*seeded, "--budget", str(budget), "--rungs", "1",
                                            "--epochs", f"{args.epochs * top:g}"], results_dir)

        capped = flat_search(args.flat_cap) if args.flat_cap else None
        promotion = run_search(f"promotion-s{seed}", [*seeded, "--budget", str(args.budget), "--rungs", str(args.rungs),
                                                     "--eta", str(args.eta), "--epochs", f"{args.epochs:g}"], results_dir)
        promotion["units"] = sum(args.eta ** n["rung"] for n in promotion["networks"])
        flat_budget = max(1, round(promotion["units"] / top))
        if capped is None:
            flat = flat_search(flat_budget).result()
        elif flat_budget > args.flat_cap:
            capped.result()
            raise SystemExit(f"seed {seed}: the promotion run cost {promotion['units']} rung-0 units, which buy "
                             f"{flat_budget} flat networks, more than --flat-cap {args.flat_cap}; rerun with "
                             f"--flat-cap {flat_budget} and the same --results-dir (finished networks are kept)")
        else:
            if capped.stop_at(flat_budget):  # the rest of the cap is not needed: resume to write its results
                wall = time.perf_counter() - capped.started
                flat = flat_search(flat_budget).result()
                flat["wall_s"] += wall
            else:
                flat = capped.result()
            flat["networks"] = sorted(flat["networks"], key=lambda n: n["number"])[:flat_budget]
        flat["units"] = top * len(flat["networks"])
        return [promotion, flat]

    with tempfile.TemporaryDirectory() as tmp:
        results_dir = Path(args.results_dir or tmp)
        with ThreadPoolExecutor(args.parallel) as seeds:
            runs = [run for both in seeds.map(lambda seed: pair(seed, results_dir), args.seeds) for run in both]

    ref_macs = 1.05 * max(n["macs"] for r in runs for n in r["networks"]) / 1e6
    print(f"\nhypervolume of (val_acc, MMACs), reference point (0, {ref_macs:.1f}M):")
    print(f"{'run':<16} {'networks':>8} {'top rung':>8} {'units':>6} {'wall s':>8} {'as reported':>12} {'top rung only':>14}")
    for r in runs:
        points = [(n["acc"], -n["macs"] / 1e6) for n in r["networks"]]
        top_points = [(n["acc"], -n["macs"] / 1e6) for n in r["networks"] if n["rung"] == args.rungs - 1
                      or r["name"].startswith("flat")]
        r["hv_reported"] = hypervolume(points, (0.0, -ref_macs))
        r["hv_top"] = hypervolume(top_points, (0.0, -ref_macs))
        print(f"{r['name']:<16} {len(points):>8} {len(top_points):>8} {r['units']:>6} {r['wall_s']:>8.0f} "
              f"{r['hv_reported']:>12.2f} {r['hv_top']:>14.2f}")
    comparison = [{"seed": seed, "units": [promotion["units"], flat["units"]],
                   "ratio_reported": promotion["hv_reported"] / flat["hv_reported"],
                   "ratio_top": promotion["hv_top"] / flat["hv_top"]}
                  for seed, promotion, flat in zip(args.seeds, runs[::2], runs[1::2])]
    print("\npromotion / flat hypervolume, per seed:")
    for c in comparison:
        print(f"seed {c['seed']}: {c['ratio_reported']:.2f}x as reported, {c['ratio_top']:.2f}x top rung only "
              f"(rung-0 units {c['units'][0]} against {c['units'][1]})")
    if len(comparison) > 1:
        for key, label in (("ratio_reported", "as reported"), ("ratio_top", "top rung only")):
            ratios = [c[key] for c in comparison]
            print(f"{label}: mean {sum(ratios) / len(ratios):.2f}x over {len(ratios)} seeds, "
                  f"range {min(ratios):.2f}-{max(ratios):.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "ref_macs_m": ref_macs, "runs": runs,
                                               "comparison": comparison}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
