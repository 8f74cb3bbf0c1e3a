"""The command line's options, and the typed configs they become (nothing below the CLI sees argparse)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from search.choices import (DATASETS, EXECUTORS, LATENCY_MODES, OBJECTIVE_CHOICES, PICKS, PROXY_PRESETS, SAMPLERS,
                            ZERO_COST_PROXY_NAMES, parse_latency_ms)
from space.spaces import SPACES

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "contradiction", "FinalTrainConfig", "OneLineParser", "build_parser", "final_train_config", "macs_value", "positive_int"]

EXIT_USAGE = 2
EXIT_FAILED = 1  # the search ran, but no trial finished with a result


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` where it says something: not to flags, not to a None default, not
    where the help already names its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or any(action.default is v for v in (None, True, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


def macs_value(text: str) -> int:
    """'50M', '1.2G', '300000000' -> multiply-adds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a MAC count like 50M or 1.2G, got {text!r}")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def latency_ms_value(text: str) -> float:
    """'5ms', '800us', '0.01s' -> milliseconds."""
    try:
        return parse_latency_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def name_list(text: str) -> tuple[str, ...]:
    """'accuracy,macs' -> ('accuracy', 'macs') (checked by SearchConfig.validate)."""
    return tuple(part.strip() for part in text.split(","))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="launch_search.py",
        description="Multi-objective NAS (validation accuracy up, MACs down) over efficient-CNN blocks.",
        formatter_class=HelpFormatter,
    )
    what = p.add_argument_group("what to do (default: run a search)")
    what.add_argument("--references", dest="list_references", action="store_true", help="list the reference zoo with counted and published params/MACs")
    what.add_argument("--json", action="store_true", help="with --references: print JSON")
    what.add_argument("--describe", action="store_true", help="print the choices, size and cost range of --space")
    what.add_argument("--export", type=int, metavar="TRIAL", help="export trial TRIAL of run --name to YAML")
    what.add_argument("--final-train", metavar="YAML", help="train an exported architecture with the full recipe, report test accuracy")

    s = p.add_argument_group("search")
    s.add_argument("--space", default="seesaw", choices=sorted(SPACES), help="search space")
    s.add_argument("--shared-block", action="store_true", help="one block shared by all stages instead of one per stage")
    s.add_argument("--budget", type=positive_int, default=200, help="finished trials, resumed ones included")
    s.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="Optuna sampler")
    s.add_argument("--max-macs", type=macs_value, default=None, help="hard MACs limit (e.g. 100M), checked before training")
    s.add_argument("--no-references", dest="references", action="store_false",
                   help="skip the warm start (without it, the space's reference networks are trained first)")
    s.add_argument("--pick", default="accuracy", choices=PICKS,
                   help="which Pareto trial becomes best_block.yaml (knee, smallest: on the cost axis of --plot-axes)")
    s.add_argument("--objectives", type=name_list, default=("accuracy", "macs"), metavar="A,B[,C]",
                   help=f"two or three of {', '.join(OBJECTIVE_CHOICES)} (default: accuracy,macs)")
    s.add_argument("--max-latency", dest="max_latency_ms", type=latency_ms_value, default=None, metavar="TIME",
                   help="hard latency limit (e.g. 5ms, 800us), checked before training")
    s.add_argument("--latency", default="lookup", choices=LATENCY_MODES,
                   help="lookup: sum of per-block times from a cached table; exact: time the whole network")
    s.add_argument("--latency-device", default="cpu", help="where latency is measured: cpu, cuda, cuda:N")
    s.add_argument("--latency-batch", type=positive_int, default=1, help="images per timed forward pass")
    s.add_argument("--latency-threads", type=positive_int, default=1, help="torch CPU threads while timing (CPU only)")
    s.add_argument("--plot-axes", type=name_list, default=None, metavar="X,Y",
                   help="objectives on the axes of pareto.html/png, e.g. latency,accuracy (default: first cost vs accuracy)")
    s.add_argument("--prescreen", default=None, choices=ZERO_COST_PROXY_NAMES,
                   help="zero-cost pre-screen (off by default): trains the best candidate of each round")
    s.add_argument("--prescreen-keep", type=float, default=0.25, metavar="RATIO",
                   help="with --prescreen: train 1 of ceil(1/RATIO) sampled candidates per round")
    s.add_argument("--rungs", type=int, default=None, metavar="R",
                   help="fidelities: the top 1/ETA of each rung train ETA x longer, from their checkpoint "
                        "(default: 3 on the gpu preset, 1 = off elsewhere)")
    s.add_argument("--eta", type=int, default=None, metavar="E", help="promotion ratio between rungs (default: 3)")
    s.add_argument("--repeats", type=int, default=None, metavar="K",
                   help="seeds at the top rung for the final front and the references, for error bars and "
                        "confident claims (default: 3 on gpu, 2 on cpu, 1 = off elsewhere)")
    s.add_argument("--seed", type=int, default=0, help="seed of sampler, split and training")
    s.add_argument("--name", default=None, help="run folder results/NAME (default: SPACE-DATE-TIME)")
    s.add_argument("--results-dir", default="results", help="parent folder of run folders")
    s.add_argument("--resume", action="store_true", help="continue the run --name")
    s.add_argument("--storage", default=None, help="Optuna storage URL (default: study.journal in the run folder; postgresql://... for several hosts)")

    d = p.add_argument_group("data and proxy training")
    d.add_argument("--dataset", default="cifar10", choices=DATASETS, help="training data")
    d.add_argument("--data-dir", default="data", help="CIFAR download/cache folder, or an image folder / .zip for --dataset imagefolder")
    d.add_argument("--val-size", type=int, default=5000, help="training images held out for validation")
    d.add_argument("--proxy", default="auto", choices=["auto", *PROXY_PRESETS], help="proxy preset; auto picks gpu on CUDA, cpu elsewhere")
    d.add_argument("--epochs", type=float, default=None, help="override the preset's epochs")
    d.add_argument("--train-subset", type=int, default=None, help="override the preset's number of training images")
    d.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    d.add_argument("--width-scale", type=float, default=None, help="train a width-scaled proxy of each network")
    d.add_argument("--recipe", default="seeds", help="--final-train recipe: seeds (400 epochs, Seesaw/IGCV3) or mobile")
    d.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ...; auto picks cuda when available")

    x = p.add_argument_group("executors")
    x.add_argument("--executor", default="local", choices=EXECUTORS, help="local processes or Ray Tune")
    x.add_argument("--workers", type=positive_int, default=1, help="local worker processes sharing the study")
    x.add_argument("--heartbeat-grace", dest="heartbeat_grace_s", type=float, default=60.0, metavar="SECONDS",
                   help="a running trial whose worker sent no heartbeat for this long is failed as stale and re-run "
                        "(by any live worker)")
    x.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local Ray)")
    x.add_argument("--gpus-per-trial", type=float, default=None, help="Ray: GPUs per trial, fractional packs trials (default: 0.25 with a GPU, else 0)")
    x.add_argument("--cpus-per-trial", type=float, default=1.0, help="Ray: CPUs per trial")
    x.add_argument("--max-concurrent", type=int, default=0, help="Ray: most trials at once (0: as resources allow)")
    x.add_argument("--max-retries", type=int, default=0, help="Ray: retries of a trial whose worker died")
    x.add_argument("--scheduler", default=None, help="Ray: a trial scheduler (refused: see docs)")
    return p


# Options of latency measurement, with their defaults (they apply with latency as an objective or --max-latency).
LATENCY_ONLY = {"latency": "lookup", "latency_device": "cpu", "latency_batch": 1, "latency_threads": 1}

# Options of the Ray executor only, with their defaults.
RAY_ONLY = {"ray_address": None, "gpus_per_trial": None, "cpus_per_trial": 1.0, "max_concurrent": 0, "max_retries": 0}


def contradiction(args: argparse.Namespace) -> str | None:
    """Options that cannot go together (argparse would silently ignore some): the message, or None."""
    modes = [flag for flag, given in (("--references", args.list_references), ("--describe", args.describe),
                                      ("--export", args.export is not None), ("--final-train", args.final_train is not None))
             if given]
    if len(modes) > 1:
        return f"{' and '.join(modes)} are different commands; give one"
    if args.json and not args.list_references:
        return "--json applies to --references only"
    if args.export is not None and args.name is None:
        return "--export needs the run's --name"
    if args.executor != "ray":
        given = [k for k, default in RAY_ONLY.items() if getattr(args, k) != default]
        if given:
            return f"--{given[0].replace('_', '-')} applies to --executor ray only"
    if "latency" not in (args.objectives or ()) and args.max_latency_ms is None:
        given = [k for k, default in LATENCY_ONLY.items() if getattr(args, k) != default]
        if given:
            return (f"--{given[0].replace('_', '-')} applies when latency is measured: add latency to --objectives "
                    "or give --max-latency")
    if args.resume and (args.list_references or args.describe or args.final_train or args.export is not None):
        return "--resume continues a search; leave it out with " + modes[0]
    return None


@dataclass(frozen=True)
class FinalTrainConfig:
    """``--final-train YAML``: which export, which recipe (with overrides), which data, where."""

    path: str
    recipe: str = "seeds"
    epochs: float | None = None  # overrides the recipe's
    batch_size: int | None = None  # overrides the recipe's
    dataset: str = "cifar10"
    data_dir: str = "data"
    val_size: int = 5000
    seed: int = 0
    device: str = "auto"
    out_dir: str | None = None  # default: final_<yaml stem> beside the YAML


def final_train_config(args: argparse.Namespace) -> FinalTrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(FinalTrainConfig) if hasattr(args, f.name)}
    out_dir = str(Path(args.results_dir) / args.name) if args.name else None
    return FinalTrainConfig(**{**values, "path": args.final_train, "out_dir": out_dir})
