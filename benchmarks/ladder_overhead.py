"""What the promotion bookkeeping adds to a worker's ask step (search/engine/ladder.py).

Builds a journal study with N finished rung-0 trials and their ASHA promotions (eta 3, 3 rungs),
then times one ``Ladder.due`` call (read of the jobs study, non-dominated sorting of every rung,
the due rule), which every ask step of a run with promotion makes, and the (cached) read of the
main study that every ask step already does. Prints both.

    OMP_NUM_THREADS=1 python benchmarks/ladder_overhead.py --trials 200 1000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.config import SearchConfig  # noqa: E402
from search.engine.attributes import ATTR, JOB_KINDS, STATUS  # noqa: E402
from search.engine.ladder import Ladder, collect, due_promotions  # noqa: E402
from search.engine.study import make_sampler, open_study  # noqa: E402


def build(run_dir: Path, n: int, seed: int = 0) -> tuple[SearchConfig, optuna.Study, Ladder]:
    cfg = SearchConfig(name="bench", results_dir=str(run_dir.parent), budget=n, rungs=3, eta=3, repeats=1)
    study = open_study(cfg.storage_url, cfg.name, make_sampler("random", 0), resume=False)
    rng = random.Random(seed)
    for _ in range(n):
        t = study.ask()
        for k, v in {ATTR.STATUS: STATUS.OK, ATTR.KEY: f"k{t.number}", ATTR.MACS: rng.randint(20, 300) * 10**6,
                     ATTR.PARAMS: 10**6, ATTR.SPEC: {}}.items():
            t.set_user_attr(k, v)
        study.tell(t, [rng.uniform(0.3, 0.6), float(t.user_attrs[ATTR.MACS])])
    ladder = Ladder(study, cfg, epochs0=1)
    trials = study.get_trials(deepcopy=False)
    while True:  # finish every due promotion, with a made-up accuracy
        results, taken, _ = collect(trials, ladder.jobs.get_trials(deepcopy=False))
        due = due_promotions(results, taken, rungs=3, eta=3)
        if not due:
            break
        parent, rung, repeat = due[0]
        j = ladder.jobs.ask()
        for k, v in {ATTR.JOB: JOB_KINDS.PROMOTION, ATTR.PARENT: parent, ATTR.RUNG: rung, ATTR.REPEAT: repeat,
                     ATTR.MACS: trials[parent].values[1], ATTR.STATUS: STATUS.OK}.items():
            j.set_user_attr(k, v)
        ladder.jobs.tell(j, [rng.uniform(0.4, 0.7)])
    return cfg, study, ladder


def timed(fn, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, nargs="+", default=[200, 1000])
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("trials  jobs  main read (ms)  ladder.due (ms)")
    for n in args.trials:
        with tempfile.TemporaryDirectory() as tmp:
            cfg, study, ladder = build(Path(tmp) / "bench", n)
            jobs = len(ladder.jobs.get_trials(deepcopy=False))
            read = timed(lambda: study.get_trials(deepcopy=False))
            trials = study.get_trials(deepcopy=False)
            due = timed(lambda: ladder.due(trials, budget_done=True), repeat=5)
            print(f"{n:6d}  {jobs:4d}  {1e3 * read:14.2f}  {1e3 * due:15.2f}")


if __name__ == "__main__":
    main()
