"""Image-classification data, decoded once per process and kept on the training device as uint8.

Sources: CIFAR-10/100 through torchvision, an image-folder layout (``train/<class>/*``,
``test/<class>/*``, as a directory or a ``.zip`` of one), and a small synthetic set for smoke runs
and tests. As airbench does, the whole set lives on the device as uint8 tensors (CIFAR-10 is
150 MB) and batches are index slices of it: nothing is re-read per trial or per epoch.

The validation split is held out of the training set by a seeded permutation; the search sees
train and validation only, and the test set is read only by final training.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from blocks.cache import user_cache_dir
from search.choices import DATASETS, KNOWN_NUM_CLASSES, default_num_classes
from search.errors import DataError
from search.files import atomic_path

__all__ = [
    "DATASETS",
    "DataError",
    "DataSplits",
    "KNOWN_NUM_CLASSES",
    "default_num_classes",
    "RawDataset",
    "clear_cache",
    "load_dataset",
    "load_raw",
    "split_dataset",
    "synthetic_dataset",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CACHE_VERSION = 1  # bump when the layout of the decoded cache file changes


# ----------------------------------------------------------------------------- containers


@dataclass(frozen=True)
class RawDataset:
    """A decoded data set before the validation split: uint8 NCHW images, int64 labels, on CPU."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]


@dataclass(frozen=True)
class DataSplits:
    """Train / validation / test tensors on one device.

    Images are uint8 NCHW; labels int64. ``train`` is stored in a seeded random order, so
    ``train_x[:n]`` is a fixed random subset of n images (the proxy's training subset).
    mean / std: per-channel statistics of the training split, in [0, 1] pixel units.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    seed: int  # of the train/validation permutation

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return self.train_x.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def to(self, device: torch.device | str) -> "DataSplits":
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return DataSplits(**{**self.__dict__, **moved})

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.train_y)} train / {len(self.val_y)} val / {len(self.test_y)} test, "
            f"{self.num_classes} classes, {self.image_size}px, on {self.device}"
        )


# ----------------------------------------------------------------------------- public entry


_RAW_CACHE: dict[tuple[str, str], RawDataset] = {}
_SPLIT_CACHE: dict[tuple, DataSplits] = {}


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    val_size: int = 5000,
    seed: int = 0,
) -> DataSplits:
    """Load ``name`` (one of DATASETS), hold out ``val_size`` training images, put all on ``device``.

    Cached per process: the same arguments return the same tensors, and a different split or
    device re-uses the decoded images. cifar10/cifar100: torchvision's files in ``data_dir``
    (downloaded there when missing and online). imagefolder: ``data_dir`` is a directory or a
    ``.zip`` holding ``train/<class>/*`` and ``test/<class>/*``. synthetic: no files.
    """
    device = torch.device(device)
    key = (name, "" if name == "synthetic" else _dir_key(data_dir), str(device), val_size, seed)
    if key not in _SPLIT_CACHE:
        _SPLIT_CACHE[key] = split_dataset(load_raw(name, data_dir), val_size, seed, device, name=name)
    return _SPLIT_CACHE[key]


def clear_cache() -> None:
    """Forget the per-process cache (frees device memory held by loaded splits)."""
    _RAW_CACHE.clear()
    _SPLIT_CACHE.clear()


def load_raw(name: str, data_dir: str | os.PathLike | None = None) -> RawDataset:
    """The decoded data set on CPU, from the per-process cache, the on-disk cache, or the source."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    key = (name, "" if name == "synthetic" else _dir_key(data_dir))
    if key not in _RAW_CACHE:
        if name == "synthetic":
            raw = synthetic_dataset()
        elif data_dir is None:
            raise DataError(f"data set {name!r} needs a folder; pass --data-dir")
        elif name in ("cifar10", "cifar100"):
            raw = _load_torchvision_cifar(name, Path(data_dir))
        else:
            raw = _load_image_folder(Path(data_dir))
        _RAW_CACHE[key] = raw
    return _RAW_CACHE[key]


def _dir_key(data_dir: str | os.PathLike | None) -> str:
    return "" if data_dir is None else str(Path(data_dir).expanduser().resolve())


# ----------------------------------------------------------------------------- the split


def split_dataset(
    raw: RawDataset, val_size: int, seed: int, device: torch.device | str = "cpu", *, name: str = "data"
) -> DataSplits:
    """Hold out ``val_size`` training images by a permutation seeded with ``seed``; move to ``device``.

    The permutation is drawn on CPU, so a seed gives the same split on every device.
    """
    n = len(raw.train_y)
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < n:
        raise DataError(f"val_size must be an integer in [0, {n}) for {name}'s {n} training images, got {val_size!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_size], order[val_size:]
    train_x = raw.train_x[train_idx]
    mean, std = _channel_stats(train_x)
    return DataSplits(
        name=name,
        train_x=train_x.to(device),
        train_y=raw.train_y[train_idx].to(device),
        val_x=raw.train_x[val_idx].to(device),
        val_y=raw.train_y[val_idx].to(device),
        test_x=raw.test_x.to(device),
        test_y=raw.test_y.to(device),
        classes=raw.classes,
        mean=mean,
        std=std,
        seed=seed,
    )


def _channel_stats(x: torch.Tensor, chunk: int = 10000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units (float64 sums, chunked)."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk].to(torch.float64).div_(255)
        total += part.sum(dim=(0, 2, 3))
        total_sq += part.square().sum(dim=(0, 2, 3))
    count = x.numel() / x.shape[1]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


# ----------------------------------------------------------------------------- synthetic


def synthetic_dataset(
    num_train: int = 10000,  # room for the default 5,000 validation images
    num_test: int = 1000,
    num_classes: int = 10,
    image_size: int = 32,
    seed: int = 0,
) -> RawDataset:
    """A learnable toy set: each class is a fixed random low-frequency pattern plus pixel noise.

    Small nets reach high accuracy on it within an epoch or two, so smoke runs can check that
    training learns; the image size and channel count match CIFAR by default.
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=g)
    patterns = torch.nn.functional.interpolate(coarse, size=image_size, mode="bilinear", align_corners=False)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(num_classes, (n,), generator=g)
        noise = torch.randn(n, 3, image_size, image_size, generator=g) * 0.15
        x = ((patterns[y] * 0.7 + 0.15 + noise).clamp(0, 1) * 255).round().to(torch.uint8)
        return x, y

    train_x, train_y = draw(num_train)
    test_x, test_y = draw(num_test)
    classes = tuple(f"class{i}" for i in range(num_classes))
    return RawDataset(train_x, train_y, test_x, test_y, classes)


# ----------------------------------------------------------------------------- CIFAR via torchvision


def _load_torchvision_cifar(name: str, data_dir: Path) -> RawDataset:
    # torchvision only here: its import pulls in torch._dynamo (6 s of every command's start-up on a
    # loaded 2-core machine, benchmarks/info_speed.py), and only CIFAR loading needs it.
    import torchvision.datasets

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    created = not data_dir.exists()  # a failed download must not leave an empty folder behind
    parts = []
    for train in (True, False):
        try:
            ds = cls(root=str(data_dir), train=train, download=False)
        except RuntimeError:  # torchvision: "Dataset not found or corrupted"
            before = set(data_dir.iterdir()) if data_dir.is_dir() else None
            try:
                ds = cls(root=str(data_dir), train=train, download=True)
            except Exception as exc:  # offline: URLError, socket errors, ...
                _remove_new_entries(data_dir, before)  # a failed download leaves no empty folder or partial archive
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if created:
                    shutil.rmtree(data_dir, ignore_errors=True)
                if data_dir.is_file() or (data_dir / "train").is_dir():
                    raise DataError(
                        f"{data_dir} looks like an image folder (train/<class>/*), not torchvision's {name} "
                        "files; use --dataset imagefolder with it"
                    ) from None
                raise DataError(
                    f"{name} is not in {data_dir} and could not be downloaded ({reason}); offline, search an image "
                    f"folder instead with --dataset imagefolder --data-dir <folder or .zip with train/<class>/ and "
                    f"test/<class>/>, or put torchvision's {cls.base_folder} folder in {data_dir}"
                ) from None
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        parts += [x, torch.tensor(ds.targets, dtype=torch.int64)]
    return RawDataset(*parts, classes=tuple(ds.classes))


def _remove_new_entries(folder: Path, before: set[Path] | None) -> None:
    """Remove what appeared in ``folder`` since ``before`` (its entries then; None: it did not exist)."""
    if not folder.is_dir():
        return
    for entry in set(folder.iterdir()) - (before or set()):
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    if before is None and not any(folder.iterdir()):
        folder.rmdir()


# ----------------------------------------------------------------------------- image folder


def _load_image_folder(source: Path) -> RawDataset:
    """Decode ``train/<class>/*`` and ``test/<class>/*`` (a folder or a zip), via the disk cache."""
    source = source.expanduser()
    if not source.exists():
        raise DataError(f"image folder {source} does not exist; pass --data-dir pointing to a folder or .zip with train/ and test/")
    is_zip = source.is_file()
    if is_zip and not zipfile.is_zipfile(source):
        raise DataError(f"{source} is a file but not a zip; pass --data-dir pointing to a folder or .zip with train/ and test/")

    cache = _cache_path(source)
    stamp = _source_stamp(source)
    if cache.exists():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            if saved.get("version") == CACHE_VERSION and saved.get("stamp") == stamp:
                return RawDataset(
                    saved["train_x"], saved["train_y"], saved["test_x"], saved["test_y"], tuple(saved["classes"])
                )
            log.info("decoded cache %s is stale; decoding %s again", cache, source)
        except Exception as exc:  # a truncated or foreign file: decode again and overwrite it
            log.warning("ignoring unreadable cache %s (%s)", cache, exc)

    files = _list_zip(source) if is_zip else _list_dir(source)
    raw = _decode(source, files, is_zip)
    _write_cache(cache, stamp, raw)
    return raw


def _list_dir(root: Path) -> dict[str, dict[str, list[str]]]:
    """{split: {class: [relative paths]}} for a directory with train/ and test/."""
    layout: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(f"{root} has no {split}/ folder; an image folder needs train/<class>/* and test/<class>/*")
        layout[split] = {
            c.name: sorted(str(p.relative_to(root)) for p in c.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            for c in sorted(split_dir.iterdir())
            if c.is_dir()
        }
    return layout


def _list_zip(path: Path) -> dict[str, dict[str, list[str]]]:
    """As ``_list_dir`` for a zip; one leading folder around train/ and test/ is allowed."""
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.lower().endswith(IMAGE_SUFFIXES)]
    layout: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for n in names:
        parts = n.split("/")
        if len(parts) >= 3 and parts[-3] in layout and len(parts) <= 4:
            layout[parts[-3]].setdefault(parts[-2], []).append(n)
    for split, classes in layout.items():
        if not classes:
            raise DataError(f"{path} has no {split}/<class>/ images; an image folder needs train/<class>/* and test/<class>/*")
    return {s: {c: sorted(f) for c, f in sorted(cl.items())} for s, cl in layout.items()}


def _decode(source: Path, layout: dict[str, dict[str, list[str]]], is_zip: bool) -> RawDataset:
    classes = tuple(layout["train"])
    if tuple(layout["test"]) != classes:
        raise DataError(f"{source}: test/ classes {sorted(layout['test'])} differ from train/ classes {sorted(classes)}")
    log.info("decoding %s (once; later runs read the cache)", source)
    zf = zipfile.ZipFile(source) if is_zip else None
    read = zf.read if zf is not None else (lambda rel: (source / rel).read_bytes())
    out: list[torch.Tensor] = []
    try:
        for split in ("train", "test"):
            images, labels = [], []
            for label, cls in enumerate(classes):
                for rel in layout[split][cls]:
                    try:
                        with Image.open(io.BytesIO(read(rel))) as img:
                            images.append(np.asarray(img.convert("RGB")))
                    except (UnidentifiedImageError, OSError) as exc:
                        raise DataError(f"{source}: cannot decode {rel} ({exc}); remove or replace the file") from None
                    labels.append(label)
            sizes = {img.shape for img in images}
            if len(sizes) != 1:
                raise DataError(f"{source}: {split}/ images differ in size {sorted(sizes)[:3]}; resize them to one size first")
            stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
            out += [stacked, torch.tensor(labels, dtype=torch.int64)]
    finally:
        if zf is not None:
            zf.close()
    return RawDataset(*out, classes=classes)


# ----------------------------------------------------------------------------- the decoded cache


def _source_stamp(source: Path) -> str:
    """Identifies the source's content cheaply: path, size and mtime of the zip or of every file."""
    if source.is_file():
        st = source.stat()
        items: Iterable[str] = [f"{source.resolve()}:{st.st_size}:{st.st_mtime_ns}"]
    else:
        items = sorted(
            f"{p.relative_to(source)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
            for p in source.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES
        )
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.encode())
    return digest.hexdigest()


def _cache_path(source: Path) -> Path:
    """``<source>.seesaw-cache.pt`` next to the data, or in the user cache if that is read-only."""
    beside = source.resolve().parent / f"{source.name}.seesaw-cache.pt"
    # Mode bits as well as access(): root may write anywhere, but a folder without write bits
    # (like ../shared/data) is meant to be left alone.
    if os.access(beside.parent, os.W_OK) and beside.parent.stat().st_mode & 0o222:
        return beside
    tag = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    return user_cache_dir() / f"{source.name}-{tag}.pt"


def _write_cache(cache: Path, stamp: str, raw: RawDataset) -> None:
    if cache.parent == user_cache_dir():
        log.warning("data folder is read-only; caching decoded images in %s", cache)
    blob = {
        "version": CACHE_VERSION,
        "stamp": stamp,
        "train_x": raw.train_x,
        "train_y": raw.train_y,
        "test_x": raw.test_x,
        "test_y": raw.test_y,
        "classes": list(raw.classes),
    }
    try:
        with atomic_path(cache) as tmp:  # a concurrent reader never sees half a file
            torch.save(blob, tmp)
    except OSError as exc:
        log.warning("could not write the decoded cache %s (%s); the next run decodes again", cache, exc)
