"""The Ray driver times latency like the local executor: on the driver, in ``propose``, before a
trial becomes a Ray trial; a sample over --max-latency never becomes one (no cluster needed)."""

from __future__ import annotations

import os

# Before anything imports Ray (as in test_ray_executor.py): loopback only, no usage stats.
for _key, _value in {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                     "RAY_CHDIR_TO_TRIAL_DIR": "0", "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(_key, _value)

from optuna.trial import TrialState  # noqa: E402

from blocks import count_cost  # noqa: E402
from search.config import SearchConfig  # noqa: E402
from search.engine.attributes import ATTR  # noqa: E402
from search.engine.session import Run  # noqa: E402
from search.engine.study import make_sampler, open_study  # noqa: E402
from search.executors.ray_tune import study_searcher_class  # noqa: E402
from space.spaces import get_space  # noqa: E402


def ok_result(val_acc: float) -> dict:
    return {"seesaw/status": "ok", "seesaw/val_acc": val_acc, "seesaw/failure": None, "seesaw/worker": "node:1",
            "seesaw/metrics/val_acc": val_acc, "seesaw/metrics/train_time_s": 1.5, "training_iteration": 1}


def test_ray_driver_records_latency_as_an_objective(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = SearchConfig(space="seesaw", budget=1, dataset="synthetic", name="u", results_dir=str(tmp_path),
                       executor="ray", device="cpu", references=False, objectives=("accuracy", "latency")).validate()
    study = open_study(cfg.storage_url, cfg.name, make_sampler("random", 0), resume=False, objectives=cfg.objective_set())
    run = Run(cfg, study, get_space("seesaw", dataset="synthetic"), evaluator=None, num_classes=10, device="cpu",
              proxy=None, count_cost=count_cost)
    searcher = study_searcher_class()(run)
    config = searcher.suggest("a")
    timed = study.trials[config["number"]].user_attrs
    assert timed[ATTR.LATENCY] > 0 and timed[ATTR.LATENCY_TARGET].startswith("cpu: ")  # before training
    searcher.on_trial_complete("a", result=ok_result(0.5))
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE and trial.values == [0.5, trial.user_attrs[ATTR.LATENCY]]
    assert study.metric_names == ["val_acc", "latency_ms"]
