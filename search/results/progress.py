"""A tqdm bar over finished trials showing the best accuracy and the size of the Pareto front."""

from __future__ import annotations

import optuna
from tqdm.auto import tqdm

from search.config import SearchConfig
from search.results.pareto import feasible_trials, front_trials
from search.engine.study import finished_count


class TrialProgress:
    def __init__(self, study: optuna.Study, cfg: SearchConfig) -> None:
        self.study, self.cfg = study, cfg
        self.bar = tqdm(total=cfg.budget, initial=finished_count(study), unit="trial", desc=f"search {cfg.name}",
                        dynamic_ncols=True)
        self._refresh()

    def update(self, _trial: optuna.trial.FrozenTrial | None = None) -> None:
        self.bar.n = min(finished_count(self.study), self.cfg.budget)
        self._refresh()

    def _refresh(self) -> None:
        trials = feasible_trials(self.study, self.cfg.max_macs)
        best = max((t.values[0] for t in trials), default=None)
        self.bar.set_postfix(best_acc="-" if best is None else f"{100 * best:.2f}%",
                             front=len(front_trials(self.study, self.cfg.max_macs)), refresh=True)

    def __enter__(self) -> "TrialProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.update()
        self.bar.close()
