"""Proxy-training throughput: our trainer against the pipeline users usually write, side by side.

Both sides train the same network (by default the ``cpu`` preset's proxy of seesaw_0.5d_cifar10:
half width), from the same initial weights, with the same batch size, optimizer and number of
images, in one process on one device:

(a) ours: ``search.train.proxy.train_proxy``; the data set was loaded once per process (its load time
    is printed apart: a search pays it once, not per trial); batches are index slices of uint8
    tensors on the device, augmented there.
(b) usual: per trial, a torchvision data set (``CIFAR10`` over the python pickles, or
    ``ImageFolder`` over the JPEG files) with per-sample ``RandomCrop(32, 4)``, ``RandomHorizontal
    Flip``, ``ToTensor``, ``Normalize``, and a ``DataLoader(shuffle=True, num_workers=W)``, built
    inside the trial as a search that calls a training script per trial does; then a plain loop.

A trial's time runs from its start (building data set and loader for (b)) to its last optimizer
step (plus, for (a), the one-image validation and cost count that ``train_proxy`` always does).
One warm-up trial of each side runs first; then ``--repeats`` (a, b) pairs alternate, so a busy
machine slows both alike. Also printed: the data pipelines alone, without a model.

    python benchmarks/proxy_throughput.py --threads 1 --repeats 3 --data-dir ../shared/data/cifar10-jpg.zip

(about 6 minutes on two shared CPU cores; results in BENCHMARKS.md, "Proxy training").
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torchvision import transforms  # noqa: E402

from blocks import build_model  # noqa: E402
from search.train.augment import augment_batch, make_normalizer  # noqa: E402
from search.train.data import DataSplits, load_dataset, load_raw  # noqa: E402
from search.train.proxy import PRESETS, train_proxy  # noqa: E402
from space.references import get_reference  # noqa: E402
from space.scaling import scale_width  # noqa: E402


# ----------------------------------------------------------------------------- (b) the usual pipeline


class PickledCIFAR10(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10, reading pickles we wrote in its format from the JPEG copy of CIFAR-10.

    Only the md5 checks are off (our re-encoded pixels differ from the official files); loading
    and ``__getitem__`` (``Image.fromarray`` + transform per image) are torchvision's own.
    """

    train_list = [[f"data_batch_{i}", None] for i in range(1, 6)]
    test_list = [["test_batch", None]]
    meta = {"filename": "batches.meta", "key": "label_names", "md5": None}


def write_cifar_pickles(data_dir: str, dataset: str, root: Path) -> None:
    """The images in torchvision's ``cifar-10-batches-py`` layout (5 pickled batches + test)."""
    raw = load_raw(dataset, data_dir)
    folder = root / PickledCIFAR10.base_folder
    folder.mkdir(parents=True)
    x = raw.train_x.reshape(len(raw.train_y), -1).numpy()  # CIFAR rows are channel-major: R plane, G, B
    order = np.random.default_rng(0).permutation(len(x))  # the files hold classes mixed, as the real ones
    for i, part in enumerate(np.array_split(order, 5), start=1):
        batch = {"data": x[part], "labels": raw.train_y[part].tolist()}
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch, f)
    test = {"data": raw.test_x.reshape(len(raw.test_y), -1).numpy(), "labels": raw.test_y.tolist()}
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(test, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(raw.classes)}, f)


def extract_image_folder(zip_path: str, root: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root)
    return root / "train" if (root / "train").is_dir() else next(root.iterdir()) / "train"


def usual_loader(baseline: str, root: Path, batch_size: int, workers: int, mean, std):
    """What a per-trial training script builds: data set with per-sample transforms + DataLoader."""
    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])
    if baseline == "cifar":
        ds = PickledCIFAR10(str(root), train=True, transform=transform)
    else:
        ds = torchvision.datasets.ImageFolder(str(root), transform=transform)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)


def usual_trial(model, baseline, root, config, steps, workers, mean, std, device, *,
                autocast_dtype: torch.dtype | None = None, channels_last: bool = False) -> float:
    """Seconds for one trial of the usual pipeline: build data set and loader, train ``steps`` steps.

    ``autocast_dtype`` / ``channels_last``: train in the precision and layout ours uses on a GPU
    (off by default: float32, as on a CPU), so that a GPU comparison differs in the data pipeline only.
    """
    start = time.perf_counter()
    loader = usual_loader(baseline, root, config.batch_size, workers, mean, std)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                          weight_decay=config.weight_decay)
    model.train()
    done = 0
    while done < steps:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- (a) ours


def our_trial(model, data: DataSplits, config, device) -> float:
    start = time.perf_counter()
    result = train_proxy(model, data, config, device=device, seed=0)
    assert result.status == "ok", result.status
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- pipelines alone


def pipeline_only(data: DataSplits, baseline, root, config, steps, workers, device) -> tuple[float, float]:
    """Images/s of the two data pipelines with no model: our batched augmentation vs the loader."""
    import random

    norm = make_normalizer(data.mean, data.std, device)
    gen, rng = torch.Generator(device).manual_seed(0), random.Random(0)
    order = torch.randperm(len(data.train_y), device=device, generator=gen)
    start = time.perf_counter()
    for i in range(steps):
        idx = order[i * config.batch_size : (i + 1) * config.batch_size]
        augment_batch(data.train_x[idx], data.train_y[idx], config.augment, data.num_classes, norm, gen, rng)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the kernels were only queued
    ours = steps * config.batch_size / (time.perf_counter() - start)
    start = time.perf_counter()
    loader = usual_loader(baseline, root, config.batch_size, workers, data.mean, data.std)
    for i, _ in enumerate(loader):
        if i + 1 == steps:
            break
    usual = steps * config.batch_size / (time.perf_counter() - start)
    return ours, usual


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="imagefolder", help="imagefolder (a folder or .zip) or synthetic")
    p.add_argument("--data-dir", default="../shared/data/cifar10-jpg.zip")
    p.add_argument("--baseline", default="cifar", choices=("cifar", "imagefolder"),
                   help="(b)'s data set: torchvision CIFAR10 over pickles, or ImageFolder over JPEGs")
    p.add_argument("--model", default="seesaw_0.5d_cifar10", help="a reference network name")
    p.add_argument("--width-scale", type=float, default=PRESETS["cpu"].width_scale)
    p.add_argument("--batch-size", type=int, default=PRESETS["cpu"].batch_size)
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per trial")
    p.add_argument("--repeats", type=int, default=2, help="timed (a, b) pairs after the warm-up")
    p.add_argument("--workers", type=int, default=2, help="(b)'s DataLoader num_workers")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    if args.baseline == "imagefolder" and args.dataset != "imagefolder":
        p.error("--baseline imagefolder needs --dataset imagefolder")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    t0 = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir if args.dataset != "synthetic" else None, device=device)
    load_s = time.perf_counter() - t0
    images = args.steps * args.batch_size
    config = PRESETS["cpu" if device.type == "cpu" else "gpu"]
    config = dataclasses.replace(config, epochs=1, train_subset=images, batch_size=args.batch_size, val_images=1,
                                 width_scale=args.width_scale)
    spec = scale_width(get_reference(args.model).spec, args.width_scale)

    def fresh_model():
        torch.manual_seed(0)
        return build_model(spec, data.num_classes)

    tmp = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    try:
        if args.baseline == "cifar":
            write_cifar_pickles(args.data_dir if args.dataset != "synthetic" else None, args.dataset, tmp)
            root = tmp
        else:
            root = extract_image_folder(args.data_dir, tmp)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, device {device}")
        print(f"data: {data.describe()}; loaded once in {load_s:.1f} s (not per trial)")
        print(f"model: {args.model} at width {args.width_scale}; batch {args.batch_size}, {args.steps} steps = "
              f"{images} images per trial; (b) = {args.baseline} + DataLoader(num_workers={args.workers})")

        ours_p, usual_p = pipeline_only(data, args.baseline, root, config, args.steps, args.workers, device)
        print(f"pipelines alone (no model): ours {ours_p:,.0f} img/s, usual {usual_p:,.0f} img/s, ratio {ours_p / usual_p:.1f}x")

        ours_t, usual_t = [], []
        for i in range(args.repeats + 1):  # i == 0 is the warm-up
            a = our_trial(fresh_model(), data, config, device)
            b = usual_trial(fresh_model().to(device), args.baseline, root, config, args.steps, args.workers,
                            data.mean, data.std, device)
            tag = "warm-up" if i == 0 else f"pair {i}"
            print(f"{tag}: ours {images / a:6.1f} img/s ({a:.1f} s), usual {images / b:6.1f} img/s ({b:.1f} s)", flush=True)
            if i:
                ours_t.append(a)
                usual_t.append(b)
        ours, usual = images / statistics.median(ours_t), images / statistics.median(usual_t)
        print(f"training (median of {args.repeats}): ours {ours:.1f} img/s, usual {usual:.1f} img/s, ratio {ours / usual:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
