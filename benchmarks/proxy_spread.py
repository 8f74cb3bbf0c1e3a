"""Seed-to-seed spread of the proxy: several networks x several seeds, scored several ways.

    OMP_NUM_THREADS=1 python benchmarks/proxy_spread.py --preset cpu --seeds 1 2 3 4 5 --parallel 2 \\
        --dataset imagefolder --data-dir ../shared/data/cifar10-jpg.zip --out spread.jsonl

Each (network, seed) is one proxy run (``build_proxy_model`` + ``train_proxy``, as a search trial
with that run seed), scored on the first ``--val-images`` held-out images:

- ``proxy``: the run's own score (the preset's BN handling);
- ``recal N`` (``--recal N ...``): BN statistics recomputed on N training images first;
- ``ema D`` / ``ema D + recal`` (``--ema D ...``): an exponential moving average of the weights and
  buffers (decay D per step, ``torch.optim.swa_utils``), as averaged and with BN recomputed;
- ``val N`` (``--score-images N ...``): as trained, on the first N held-out images;
- ``flip`` / ``flip val N`` (``--flip``): the same, from the mean of the logits of each image and its
  mirror image (test-time augmentation as in airbench);
- ``refit N`` (``--refit N ...``): the output bias refit on N training images first
  (``Trainer.refit_output_bias``; with a preset that refits already, ``val N`` is the score without);
- ``... + unseen N`` (``--unseen N``): the proxy score and the last refit's, on the held-out images
  and N more that the run did not train on (the training pool after its subset): more scored
  images of the same distribution, without changing which images a run trains on;
- ``head L`` (``--refit-head L ...``): the whole output layer refit on the training images'
  features, the rest frozen (logistic regression with L2 penalty L, L-BFGS; not in the trainer).

Prints, per scoring, each network's mean and standard deviation over seeds, and the standard
deviation over seeds of each pair's difference: under common random numbers (one data order per
run seed for every network) that paired spread is the noise in a comparison of two networks
within one search. From which held-out images each run got right, it also splits each spread into
a per-image part (seeds disagree on single images: shrinks as 1/n with more scored images) and a
shared part (a seed lifts or sinks the whole score: does not), and predicts the spread at other
numbers of scored images. Every finished run is appended to ``--out`` at once; a rerun with the same
options skips the runs already there, so an interrupted benchmark loses nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_MODELS = ("seesaw_0.5d_cifar10", "igcv3_0.5d_cifar10", "mobilenetv2_cifar10")
OVERRIDABLE = ("epochs", "train_subset", "batch_size", "lr", "warmup_epochs", "width_scale", "label_smoothing",
               "bn_recalibration_images", "refit_bias_images")  # ProxyConfig fields with a flag


def run_one(job: dict) -> dict:
    """Train one network under one seed and score it every requested way (runs in a worker)."""
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from search.train.augment import AugmentConfig
    from search.train.data import load_dataset
    from search.train.proxy import PRESETS, build_proxy_model, train_proxy
    from search.train.trainer import Trainer
    from space.references import get_reference

    torch.set_num_threads(1)
    config = dataclasses.replace(PRESETS[job["preset"]], val_images=job["val_images"], **job["overrides"])
    if job.get("no_augment"):
        config = dataclasses.replace(config, augment=AugmentConfig(crop_padding=0, flip=False))
    config.validate()
    data = load_dataset(job["dataset"], job["data_dir"], device="cpu", val_size=job["val_size"])
    left_out = len(data.train_y) - min(config.train_subset or len(data.train_y), len(data.train_y))
    if max(job.get("unseen", [0])) > left_out:
        raise ValueError(f"--unseen {max(job['unseen'])}: only {left_out} training-pool images are left out of training")
    # --init-seed / --data-seed hold one source of randomness fixed while the seed varies the other
    init_seed, data_seed = job.get("init_seed", job["seed"]), job.get("data_seed", job["seed"])
    model = build_proxy_model(get_reference(job["model"]).spec, config, data.num_classes, init_seed)
    if job.get("zero_init_residual"):
        zero_init_residual(model)
    emas = {d: AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True) for d in job["ema"]}

    def on_step(step: int, total: int) -> None:
        for ema in emas.values():
            ema.update_parameters(model)

    t0 = time.perf_counter()
    result = train_proxy(model, data, config, device="cpu", seed=data_seed, on_step=on_step)
    wall = time.perf_counter() - t0
    scores = {"proxy": result.val_acc}
    # A second trainer over the trained model only to score it; training is over.
    scorer = Trainer(model, config, device="cpu", seed=data_seed, num_classes=data.num_classes, mean=data.mean,
                     std=data.std, train_images=result.train_images)
    val = (data.val_x[:config.val_images], data.val_y[:config.val_images])
    scored = max([config.val_images, *job["score_images"]])
    correct = (scorer.predict(data.val_x[:scored]) == data.val_y[:scored]).numpy()
    for n in job["score_images"]:
        scores[f"val {n}"] = float(correct[:n].mean())
    correct_flip = None
    if job.get("flip"):  # absent from the keys of runs without it, so their earlier rows still match
        correct_flip = (scorer.predict(data.val_x[:scored], flip=True) == data.val_y[:scored]).numpy()
        scores["flip"] = float(correct_flip[:config.val_images].mean())
        for n in job["score_images"]:
            scores[f"flip val {n}"] = float(correct_flip[:n].mean())
    correct_refit = None
    preset_bias = None
    if config.refit_bias_images and job.get("unseen"):  # the bias the run scored its proxy with (one more pass)
        scorer.refit_output_bias(data.train_x, data.train_y, config.refit_bias_images)
        preset_bias = scorer.logit_bias
    for n in job.get("refit", []):  # absent from the keys of runs without it, as --flip
        scorer.refit_output_bias(data.train_x, data.train_y, n)
        correct_refit = (scorer.predict(data.val_x[:scored]) == data.val_y[:scored]).numpy()  # the last N's kept
        scores[f"refit {n}"] = float(correct_refit[:config.val_images].mean())
    for n in job.get("unseen", []):  # absent from the keys of runs without it, as --flip
        pool = slice(result.train_images, result.train_images + n)
        for name, bias in (("proxy", preset_bias), *((f"refit {r}", scorer.logit_bias) for r in job.get("refit", [])[-1:])):
            scorer.logit_bias = bias
            right = (scorer.predict(data.train_x[pool]) == data.train_y[pool]).sum().item()
            scores[f"{name} + unseen {n}"] = (scores[name] * len(val[1]) + right) / (len(val[1]) + len(data.train_y[pool]))
    for penalty in job.get("refit_head", []):
        scores[f"head {penalty:g}"] = head_refit_score(scorer, data, result.train_images, len(val[1]), penalty)
    scorer.logit_bias = None
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    for n in job["recal"]:
        model.load_state_dict(trained)
        scorer.recalibrate_bn(data.train_x, n)
        scores[f"recal {n}"] = scorer.evaluate(*val)[0]
    for d, ema in emas.items():
        model.load_state_dict(ema.module.state_dict())
        scores[f"ema {d}"] = scorer.evaluate(*val)[0]
        scorer.recalibrate_bn(data.train_x, max(job["recal"], default=4000))
        scores[f"ema {d} + recal"] = scorer.evaluate(*val)[0]
    return {"key": job_key(job), "model": job["model"], "seed": job["seed"], "scores": scores,
            "correct": numpy.packbits(correct).tobytes().hex(), "scored_images": scored,
            **({"correct_flip": numpy.packbits(correct_flip).tobytes().hex()} if correct_flip is not None else {}),
            **({"correct_refit": numpy.packbits(correct_refit).tobytes().hex()} if correct_refit is not None else {}),
            "train_loss": [h.train_loss for h in result.history], "train_time_s": result.train_time_s, "wall_s": wall}


def head_refit_score(scorer, data, train_images: int, val_images: int, penalty: float) -> float:
    """Top-1 on the first ``val_images`` held-out images after refitting the output layer (the last
    ``nn.Linear``) by maximum likelihood on the features of the ``train_images`` training images, L2
    penalty ``penalty`` on its weights; the network is not changed. A convex problem of a few thousand
    numbers, so L-BFGS to convergence in float64 (torch's; scikit-learn is not a dependency)."""
    import torch

    head = [m for m in scorer.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    captured: list = []
    hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))

    def features(images):
        captured.clear()
        with torch.no_grad():
            for _ in scorer._logits(images):
                pass
        return torch.cat(captured).double()
    try:
        x, xv = features(data.train_x[:train_images]), features(data.val_x[:val_images])
    finally:
        hook.remove()
    y = data.train_y[:train_images]
    weight = head.weight.detach().double().clone().requires_grad_(True)
    bias = (head.bias.detach().double().clone() if head.bias is not None else torch.zeros(len(weight), dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y) + penalty / 2 * (weight ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    with torch.no_grad():
        return float(((xv @ weight.T + bias).argmax(1) == data.val_y[:val_images]).double().mean())


def zero_init_residual(model) -> int:
    """Zero the scale of the last BN of every residual inverted-residual block (its output starts as
    0, the block as the identity: Goyal et al. 2017, timm's ``zero_init_last``); returns how many."""
    import torch.nn as nn

    from blocks.inverted_residual import InvertedResidual

    zeroed = 0
    for block in model.modules():
        if isinstance(block, InvertedResidual) and block.use_residual:
            last_bn = [m for m in block.pw2.modules() if isinstance(m, nn.BatchNorm2d)][-1]
            nn.init.zeros_(last_bn.weight)
            zeroed += 1
    return zeroed


def job_key(job: dict) -> str:
    """What makes two runs the same run (the network, the seed and every option that changes a score)."""
    return json.dumps({k: job[k] for k in sorted(job) if k != "data_dir"}, sort_keys=True)


def summarize(rows: list[dict], models: list[str]) -> str:
    """Markdown: per scoring, mean/std per network over its seeds and the std of paired differences."""
    by_model = {m: {r["seed"]: r["scores"] for r in rows if r["model"] == m} for m in models}
    scorings = list(dict.fromkeys(k for r in rows for k in r["scores"]))
    pairs = list(itertools.combinations(models, 2))
    head = ["scoring", *models, *(f"{a} - {b}" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in scorings:
        cells = [s]
        for m in models:
            accs = [100 * v[s] for v in by_model[m].values()]
            cells.append(f"{statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f} (n={len(accs)})" if len(accs) > 1
                         else "n < 2")
        for a, b in pairs:
            seeds = sorted(set(by_model[a]) & set(by_model[b]))
            diffs = [100 * (by_model[a][k][s] - by_model[b][k][s]) for k in seeds]
            cells.append(f"{statistics.mean(diffs):+.2f} ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else "n < 2")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def noise_split(correct: numpy.ndarray, images: int) -> tuple[float, float, float]:
    """Variance over seeds (rows) of the accuracy on ``correct``'s first ``images`` columns, split into
    (total, per-image part, shared part), in squared points.

    The sample variance of row means is the sum of the sample covariance matrix over n^2: its
    diagonal (each image's own variance over seeds, v per image on average) gives v/n, the
    per-image part; the off-diagonal (images that go right or wrong together, c on average) gives
    c(n-1)/n, the shared part. Works for a paired difference too (rows of +1/0/-1).
    """
    c = 100 * numpy.asarray(correct[:, :images], dtype=numpy.float64)
    n = c.shape[1]
    total = float(c.mean(axis=1).var(ddof=1))
    per_image = float(c.var(axis=0, ddof=1).sum()) / n**2
    return total, per_image, total - per_image


def predicted_std(per_image: float, shared: float, images: int, at: int) -> float:
    """The std over seeds expected with ``at`` scored images, from a split measured on ``images``."""
    v, c = per_image * images, shared * images / (images - 1)  # per-image variance, mean covariance
    return max(v / at + c * (at - 1) / at, 0.0) ** 0.5


def noise_table(rows: list[dict], models: list[str], at: tuple[int, ...] = (2000, 5000, 10000), field: str = "correct") -> str:
    """Markdown: per network and pair, the measured std and its per-image and shared parts, and the
    std predicted for ``at`` scored images and for unlimited ones (the shared part alone). ``field``:
    the rows' field of per-image results ("correct", or "correct_flip" for the flip scoring)."""
    have = [r for r in rows if field in r]
    if not have:
        return ""
    images = min(r["scored_images"] for r in have)
    bits = {(r["model"], r["seed"]): numpy.unpackbits(numpy.frombuffer(bytes.fromhex(r[field]), numpy.uint8))[:images]
            for r in have}
    matrices = {m: {s: v.astype(numpy.int8) for (mm, s), v in sorted(bits.items()) if mm == m} for m in models}
    groups = list(matrices.items())
    for a, b in itertools.combinations(models, 2):
        seeds = sorted(set(matrices[a]) & set(matrices[b]))
        groups.append((f"{a} - {b}", {s: matrices[a][s] - matrices[b][s] for s in seeds}))
    head = ["network or pair", "seeds", f"std on {images} images", "per-image part", "shared part",
            *(f"predicted std, {n} images" for n in at), "predicted std, unlimited images"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, by_seed in groups:
        if len(by_seed) < 2:
            continue
        total, per_image, shared = noise_split(numpy.stack(list(by_seed.values())), images)
        root = lambda v: f"{abs(v) ** 0.5:.2f}" if v >= 0 else f"-{abs(v) ** 0.5:.2f}"
        lines.append("| " + " | ".join([name, str(len(by_seed)), f"{total ** 0.5:.2f}", root(per_image), root(shared),
                                         *(f"{predicted_std(per_image, shared, images, n):.2f}" for n in at),
                                         root(shared * images / (images - 1))]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark; returns the rows of the runs asked for (finished now or before)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="reference network names")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--dataset", default="imagefolder")
    p.add_argument("--data-dir", default="../shared/data/cifar10-jpg.zip")
    p.add_argument("--val-size", type=int, default=5000, help="training images held out for validation")
    p.add_argument("--val-images", type=int, help="held-out images scored (default: the preset's, else all)")
    p.add_argument("--recal", type=int, nargs="*", default=[], help="also score after BN recalibration on N images")
    p.add_argument("--ema", type=float, nargs="*", default=[], help="also score a weight EMA with this decay")
    p.add_argument("--score-images", type=int, nargs="*", default=[],
                   help="also score as trained on the first N held-out images (N <= --val-size)")
    p.add_argument("--flip", action="store_true",
                   help="also score with test-time flips: the mean of the logits of each image and its mirror")
    p.add_argument("--refit", type=int, nargs="*", default=[],
                   help="also score after refitting the output bias on N training images")
    p.add_argument("--unseen", type=int, nargs="*", default=[],
                   help="also score the proxy (and the last --refit) on the held-out images plus N training-pool "
                        "images the run did not train on")
    p.add_argument("--refit-head", type=float, nargs="*", default=[],
                   help="also score after refitting the whole output layer on the training images' features, "
                        "with this L2 penalty")
    p.add_argument("--no-augment", action="store_true", help="train without random crops and flips")
    p.add_argument("--zero-init-residual", action="store_true",
                   help="start every residual block as the identity (its last BN scale at 0)")
    p.add_argument("--init-seed", type=int, help="initial weights from this seed in every run (the seeds vary the data order)")
    p.add_argument("--data-seed", type=int, help="data order and augmentation from this seed in every run (the seeds vary the "
                   "initial weights)")
    from search.train.proxy import PRESETS, add_override_flags, overrides_from
    from space.references import get_reference

    add_override_flags(p, OVERRIDABLE)
    p.add_argument("--parallel", type=int, default=1, help="runs at once, one process and one thread each")
    p.add_argument("--out", required=True, help="JSON lines: every finished run, appended; reruns skip them")
    args = p.parse_args(argv)
    if args.preset not in PRESETS:
        p.error(f"unknown preset {args.preset!r}; valid: {', '.join(PRESETS)}")
    for m in args.models:  # a one-line error for an unknown name, before any training
        try:
            get_reference(m)
        except ValueError:
            p.error(f"unknown reference network {m!r}; `python launch_search.py --references` lists them")
    args.val_images = args.val_images or PRESETS[args.preset].val_images or args.val_size
    too_many = [n for n in [args.val_images, *args.score_images] if not 1 <= n <= args.val_size]
    if too_many:
        p.error(f"cannot score {too_many[0]} images out of --val-size {args.val_size}; raise --val-size or score fewer")
    overrides = overrides_from(args, OVERRIDABLE)
    jobs = [{"model": m, "seed": s, "preset": args.preset, "overrides": overrides, "dataset": args.dataset,
             "data_dir": args.data_dir, "val_size": args.val_size, "val_images": args.val_images,
             "recal": args.recal, "ema": args.ema, "score_images": args.score_images, **({"flip": True} if args.flip else {}),
             **({"refit": args.refit} if args.refit else {}),
             **({"unseen": args.unseen} if args.unseen else {}),
             **({"refit_head": args.refit_head} if args.refit_head else {}),
             **({"no_augment": True} if args.no_augment else {}),
             **({"zero_init_residual": True} if args.zero_init_residual else {}),
             **({"init_seed": args.init_seed} if args.init_seed is not None else {}),
             **({"data_seed": args.data_seed} if args.data_seed is not None else {})} for s in args.seeds for m in args.models]
    out = Path(args.out)
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    keys = {job_key(j) for j in jobs}
    rows = [r for r in done if r["key"] in keys]
    todo = [j for j in jobs if job_key(j) not in {r["key"] for r in rows}]
    print(f"{args.preset} preset + {overrides}; {len(jobs)} runs, {len(rows)} already in {out}; "
          f"{args.parallel} at once; load average {os.getloadavg()[0]:.1f}", flush=True)
    from search.executors.local import exit_with_parent  # a worker of a killed benchmark stops training at once

    with ProcessPoolExecutor(args.parallel, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_one, j): j for j in todo}
        for future in as_completed(futures):
            row = future.result()
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
            scores = ", ".join(f"{k} {100 * v:.2f}" for k, v in row["scores"].items())
            print(f"{row['model']} seed {row['seed']}: {scores} ({row['wall_s']:.0f} s)", flush=True)
    print(summarize(rows, args.models))
    print("\nWhere the spread comes from (points; 'shared' is what more scored images cannot remove):")
    print(noise_table(rows, args.models))
    if args.flip:
        print("\nThe same with test-time flips:")
        print(noise_table(rows, args.models, field="correct_flip"))
    if args.refit:
        print(f"\nThe same with the output bias refit on {args.refit[-1]} training images:")
        print(noise_table(rows, args.models, field="correct_refit"))
    return rows


if __name__ == "__main__":
    main()
