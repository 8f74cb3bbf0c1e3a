"""search.train.data: shapes, the held-out split, the image-folder source and its cache, clear errors."""

import zipfile
from urllib.error import URLError

import pytest
import torch
from PIL import Image

from search.train import data as data_mod
from search.train.data import DataError, RawDataset, load_dataset, load_raw, split_dataset, synthetic_dataset


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    data_mod.clear_cache()
    monkeypatch.setenv("SEESAW_CACHE_DIR", str(tmp_path / "user-cache"))
    yield
    data_mod.clear_cache()


def numbered(n: int) -> RawDataset:
    """Images whose first two pixels spell their index, so a split can be traced back."""
    x = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.arange(n) // 256
    x[:, 0, 0, 1] = torch.arange(n) % 256
    y = torch.arange(n) % 3
    return RawDataset(x, y, x[:5], y[:5], ("a", "b", "c"))


def index_of(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0, 0, 0].long() * 256 + x[:, 0, 0, 1].long()


def ids(x: torch.Tensor) -> set[int]:
    return set(index_of(x).tolist())


def test_synthetic_shapes_dtypes_and_stats():
    d = load_dataset("synthetic", val_size=300)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert d.train_x.shape == (9700, 3, 32, 32) and d.val_x.shape == (300, 3, 32, 32)
    assert d.test_x.shape == (1000, 3, 32, 32) and len(d.test_y) == 1000
    assert d.num_classes == 10 and d.image_size == 32 and d.device == torch.device("cpu")
    assert int(d.train_y.max()) < 10
    assert len(d.mean) == 3 and all(0 < m < 1 for m in d.mean) and all(0 < s < 1 for s in d.std)


def test_split_is_disjoint_complete_and_fixed_by_seed():
    raw = numbered(1000)
    a = split_dataset(raw, 200, seed=0)
    assert len(a.val_y) == 200 and len(a.train_y) == 800
    assert not ids(a.train_x) & ids(a.val_x)
    assert ids(a.train_x) | ids(a.val_x) == set(range(1000))
    assert torch.equal(index_of(a.val_x) % 3, a.val_y)  # labels travel with their images
    assert torch.equal(index_of(a.train_x) % 3, a.train_y)
    b = split_dataset(raw, 200, seed=0)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_x, b.train_x)
    c = split_dataset(raw, 200, seed=1)
    assert ids(c.val_x) != ids(a.val_x)


def test_test_set_is_kept_apart():
    d = split_dataset(numbered(50), 10, seed=0)
    assert torch.equal(d.test_x, numbered(50).test_x)


@pytest.mark.parametrize("val_size", [-1, 1000, 2.5])
def test_bad_val_size_is_one_clear_error(val_size):
    with pytest.raises(DataError, match=r"val_size must be an integer in \[0, 1000\)"):
        split_dataset(numbered(1000), val_size, seed=0)


def test_synthetic_leaves_room_for_the_default_validation_split():
    d = load_dataset("synthetic")
    assert len(d.val_y) == 5000 and len(d.train_y) == 5000


def test_load_dataset_caches_per_process():
    a = load_dataset("synthetic", val_size=100)
    assert load_dataset("synthetic", val_size=100) is a
    b = load_dataset("synthetic", val_size=100, seed=3)
    assert b is not a and load_raw("synthetic") is load_raw("synthetic")


def test_unknown_name_and_missing_dir_name_the_fix(tmp_path):
    with pytest.raises(DataError, match="valid: cifar10, cifar100, imagefolder, synthetic"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("imagefolder")
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("imagefolder", tmp_path / "nowhere")


def test_cifar_offline_and_absent_is_one_error_naming_data_dir(tmp_path, monkeypatch):
    import torchvision

    def offline(self):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(DataError, match=r"cifar10 is not in .* could not be downloaded .*--data-dir") as info:
        load_dataset("cifar10", tmp_path)
    assert "\n" not in str(info.value)


def test_cifar_pointed_at_an_image_folder_suggests_imagefolder(tmp_path, monkeypatch):
    import torchvision

    def offline(self):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    archive = tmp_path / "cifar10-jpg.zip"
    zipfile.ZipFile(archive, "w").close()
    with pytest.raises(DataError, match="looks like an image folder .* use --dataset imagefolder"):
        load_dataset("cifar10", archive)


# ----------------------------------------------------------------------------- image folder


def make_folder(root, per_class=(3, 2)):
    """train/<cat|dog>/*.png and test/<cat|dog>/*.png; cats dark, dogs bright."""
    for split, count in zip(("train", "test"), per_class):
        for label, cls in enumerate(("cat", "dog")):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (8, 8), (40 + 150 * label + i,) * 3).save(root / split / cls / f"{i:03d}.png")
    return root


def test_image_folder_loads_sorted_classes_and_writes_a_cache(tmp_path):
    root = make_folder(tmp_path / "pets")
    raw = load_raw("imagefolder", root)
    assert raw.classes == ("cat", "dog")
    assert raw.train_x.shape == (6, 3, 8, 8) and raw.test_x.shape == (4, 3, 8, 8)
    assert raw.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    assert raw.train_x[4, 0, 0, 0] == 40 + 150 + 1
    assert (tmp_path / "pets.seesaw-cache.pt").exists()


def test_second_load_reads_the_cache_not_the_images(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "pets")
    first = load_raw("imagefolder", root)
    data_mod.clear_cache()

    def no_decode(*args):
        raise AssertionError("decoded again despite a fresh cache")

    monkeypatch.setattr(data_mod, "_decode", no_decode)
    again = load_raw("imagefolder", root)
    assert torch.equal(first.train_x, again.train_x) and again.classes == first.classes


def test_zip_of_the_layout_with_a_leading_folder(tmp_path):
    root = make_folder(tmp_path / "pets")
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*.png")):
            zf.write(path, f"pets/{path.relative_to(root)}")
    d = load_dataset("imagefolder", archive, val_size=2)
    direct = load_raw("imagefolder", root)
    assert torch.equal(load_raw("imagefolder", archive).train_x, direct.train_x)
    assert len(d.train_y) == 4 and len(d.val_y) == 2 and d.num_classes == 2


def test_read_only_data_folder_caches_in_the_user_dir(tmp_path, caplog):
    root = make_folder(tmp_path / "ro" / "pets")
    (tmp_path / "ro").chmod(0o555)
    try:
        load_raw("imagefolder", root)
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert not (tmp_path / "ro" / "pets.seesaw-cache.pt").exists()
    assert len(list((tmp_path / "user-cache").glob("pets-*.pt"))) == 1
    assert "read-only" in caplog.text


def test_folder_without_test_split_names_the_layout(tmp_path):
    root = make_folder(tmp_path / "pets")
    for p in (root / "test").rglob("*.png"):
        p.unlink()
    for d in sorted((root / "test").iterdir()):
        d.rmdir()
    (root / "test").rmdir()
    with pytest.raises(DataError, match=r"no test/ folder; an image folder needs train/<class>/\* and test/<class>/\*"):
        load_raw("imagefolder", root)


def test_synthetic_dataset_is_seeded():
    a, b = synthetic_dataset(num_train=20, num_test=5, seed=4), synthetic_dataset(num_train=20, num_test=5, seed=4)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
