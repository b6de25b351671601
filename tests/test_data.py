"""Tests for lossopt_helpers.data: shapes, dtypes, seeding, stratification, IDX reading."""

from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lossopt_helpers import data


def class_fractions(y: torch.Tensor, n_classes: int) -> np.ndarray:
    return np.bincount(y.long().numpy(), minlength=n_classes) / len(y)


def assert_same_split(a: data.DataSplit, b: data.DataSplit) -> None:
    for name in ("X_train", "y_train", "X_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name)), f"{name} differs"


# ---------------------------------------------------------------- bundled and generated data
LOADERS = {
    "digits": lambda seed: data.load_digits(seed=seed),
    "diabetes": lambda seed: data.load_diabetes(seed=seed),
    "moons": lambda seed: data.make_moons(seed=seed),
    "blobs": lambda seed: data.make_blobs(seed=seed),
    "imbalanced": lambda seed: data.make_imbalanced(seed=seed),
}


@pytest.mark.parametrize("name", LOADERS)
def test_loaders_are_deterministic_per_seed_and_differ_across_seeds(name):
    first, again, other = LOADERS[name](0), LOADERS[name](0), LOADERS[name](1)
    assert_same_split(first, again)
    assert not torch.equal(first.X_train, other.X_train)


@pytest.mark.parametrize("name", LOADERS)
def test_inputs_are_float32_and_description_names_the_sizes(name):
    split = LOADERS[name](0)
    assert split.X_train.dtype == split.X_test.dtype == torch.float32
    assert split.y_train.dtype == split.y_test.dtype
    assert len(split.X_train) == len(split.y_train) and len(split.X_test) == len(split.y_test)
    assert "\n" not in split.description
    assert f"{len(split.X_train)} train / {len(split.X_test)} test" in split.description
    assert name in repr(split) and "tensor(" not in repr(split)


def test_digits_sizes_dtypes_and_pixel_range():
    split = data.load_digits()
    assert len(split.X_train) + len(split.X_test) == 1797
    assert len(split.X_test) == 360  # ceil(0.2 * 1797), sklearn's rounding
    assert split.X_train.shape[1:] == (64,) and split.n_features == 64
    assert split.y_train.dtype == torch.int64 and split.n_classes == 10
    assert split.X_train.min() == 0.0 and split.X_train.max() == 1.0
    assert set(split.y_train.tolist()) == set(range(10))


def test_digits_unflattened_is_the_same_pixels_as_images():
    flat, images = data.load_digits(), data.load_digits(flatten=False)
    assert images.X_train.shape[1:] == (1, 8, 8) and images.n_features == 64
    assert torch.equal(images.X_train.reshape(len(images.X_train), -1), flat.X_train)


def test_digits_split_is_stratified():
    split = data.load_digits(test_size=0.25, seed=3)
    train, test = class_fractions(split.y_train, 10), class_fractions(split.y_test, 10)
    np.testing.assert_allclose(train, test, atol=0.01)


def test_digits_standardize_uses_training_statistics():
    raw, std = data.load_digits(), data.load_digits(standardize=True)
    mean, scale = raw.X_train.mean(0), raw.X_train.std(0, unbiased=False)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    # float32 statistics: a pixel with a tiny std amplifies rounding, hence 1e-4.
    torch.testing.assert_close(std.X_test, (raw.X_test - mean) / scale, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(std.stats["x_mean"], mean, rtol=1e-5, atol=1e-6)
    # Training features are centred; test features, standardised with training stats, are not.
    assert std.X_train.mean(0).abs().max() < 1e-5
    assert std.X_test.mean(0).abs().max() > 1e-3
    assert torch.isfinite(std.X_train).all()  # constant border pixels do not divide by zero


def test_diabetes_standardizes_features_and_target_with_training_statistics():
    raw, split = data.load_diabetes(standardize=False), data.load_diabetes()
    assert split.X_train.shape[1:] == (10,) and split.y_train.shape == (len(split.X_train),)
    assert split.y_train.dtype == torch.float32 and split.n_classes is None
    assert len(split.X_train) + len(split.X_test) == 442
    y_mean, y_std = raw.y_train.mean(), raw.y_train.std(unbiased=False)
    torch.testing.assert_close(split.y_test, (raw.y_test - y_mean) / y_std)
    x_mean = raw.X_train.mean(0)
    torch.testing.assert_close(split.stats["x_mean"], x_mean)
    assert abs(split.y_train.mean()) < 1e-5 and abs(split.y_train.std(unbiased=False) - 1) < 1e-5
    torch.testing.assert_close(split.unscale_target(split.y_test), raw.y_test)


def test_diabetes_raw_keeps_raw_units():
    raw = data.load_diabetes(standardize=False)
    y = torch.cat([raw.y_train, raw.y_test])
    assert y.min() == 25 and y.max() == 346
    assert raw.X_train[:, 0].max() > 50  # age in years, not sklearn's pre-scaled features
    assert raw.stats == {} and torch.equal(raw.unscale_target(raw.y_test), raw.y_test)


def test_moons_and_blobs_labels():
    moons = data.make_moons(n_samples=300, test_size=0.2)
    assert moons.X_train.shape == (240, 2) and moons.y_train.dtype == torch.int64
    assert set(moons.y_train.tolist()) == {0, 1} and moons.n_classes == 2
    blobs = data.make_blobs(n_samples=400, centers=4, n_features=5)
    assert blobs.X_test.shape == (80, 5) and blobs.n_classes == 4
    assert set(blobs.y_test.tolist()) == {0, 1, 2, 3}


def test_imbalanced_has_the_requested_rare_positive_fraction_in_both_sets():
    split = data.make_imbalanced(n_samples=5000, positive_fraction=0.02, test_size=0.3)
    assert split.y_train.dtype == torch.float32
    assert set(torch.cat([split.y_train, split.y_test]).tolist()) == {0.0, 1.0}
    assert split.y_train.sum() + split.y_test.sum() == 100
    assert split.y_test.sum() == 30 and split.y_train.sum() == 70  # stratified
    assert split.n_classes == 2


def test_imbalanced_rejects_too_few_positives():
    with pytest.raises(ValueError, match="at least 2"):
        data.make_imbalanced(n_samples=50, positive_fraction=0.01)
    with pytest.raises(ValueError, match="positive_fraction"):
        data.make_imbalanced(positive_fraction=0.0)


def order(loader) -> torch.Tensor:
    """The targets in the order a loader yields them."""
    return torch.cat([y for _, y in loader])


def test_loaders_shuffle_with_their_own_seeded_generator():
    split = data.make_moons(n_samples=200)
    train_a, test_a = split.loaders(batch_size=32, seed=5)
    torch.manual_seed(123)
    first = order(train_a)
    train_b, _ = split.loaders(batch_size=32, seed=5)
    torch.manual_seed(456)  # the global state must not matter
    assert torch.equal(order(train_b), first)
    assert not torch.equal(order(split.loaders(batch_size=32, seed=6)[0]), first)
    assert not torch.equal(first, split.y_train)  # shuffled
    assert torch.equal(order(test_a), split.y_test)  # the test loader keeps its order
    assert torch.equal(order(split.loaders(shuffle=False)[0]), split.y_train)
    assert [len(x) for x, _ in train_a] == [32] * 5  # 160 training examples


# ---------------------------------------------------------------- IDX files and MNIST
def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder: Path, n_train: int, n_test: int, gz: bool, side: int = 28) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, array in arrays.items():
        raw = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_read_idx_round_trips_uint8(tmp_path, gz):
    images = np.random.default_rng(1).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    raw = idx_bytes(images)
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    got = data.read_idx(path)
    assert got.dtype == np.uint8 and got.shape == (5, 4, 3)
    np.testing.assert_array_equal(got, images)


@pytest.mark.parametrize(
    "dtype, code", [(">i2", 0x0B), (">i4", 0x0C), (">f4", 0x0D), (">f8", 0x0E)]
)
def test_read_idx_big_endian_types_come_back_native(tmp_path, dtype, code):
    values = np.array([[1, -2, 300], [4, 5, -7000]], dtype=np.dtype(dtype).newbyteorder("="))
    (tmp_path / "x").write_bytes(idx_bytes(values, code))
    got = data.read_idx(tmp_path / "x")
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, values)


def test_read_idx_rejects_bad_magic(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(path)
    path.write_bytes(bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]))
    with pytest.raises(ValueError, match="unknown IDX type code 0x42"):
        data.read_idx(path)


def test_read_idx_rejects_truncated_and_overlong_files(tmp_path):
    raw = idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8))
    path = tmp_path / "x"
    path.write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(path)
    path.write_bytes(raw[:9])  # header cut in the middle of the dimensions
    with pytest.raises(ValueError, match="truncated IDX header"):
        data.read_idx(path)
    path.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="longer than its header"):
        data.read_idx(path)
    path.write_bytes(gzip.compress(raw)[:-6])
    with pytest.raises(ValueError, match="gzip"):
        data.read_idx(path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_load_mnist_reads_idx_files(tmp_path, gz):
    arrays = write_mnist(tmp_path, n_train=30, n_test=20, gz=gz)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning when the files are there
        split = data.load_mnist(tmp_path)
    assert split.X_train.shape == (30, 784) and split.X_test.shape == (20, 784)
    assert split.X_train.dtype == torch.float32 and split.y_train.dtype == torch.int64
    expected = arrays["train-images-idx3-ubyte"].reshape(30, 784) / 255.0
    np.testing.assert_allclose(split.X_train.numpy(), expected, rtol=1e-6)
    assert split.X_train.min() >= 0 and split.X_train.max() <= 1
    np.testing.assert_array_equal(split.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert split.description.startswith("MNIST") and split.n_classes == 10


def test_load_mnist_reads_mnist_dir_limit_and_resplit(tmp_path, monkeypatch):
    write_mnist(tmp_path, n_train=60, n_test=40, gz=True)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    limited = data.load_mnist(limit=50, seed=2)
    assert (len(limited.X_train), len(limited.X_test)) == (30, 20)  # 60:40 kept
    assert_same_split(limited, data.load_mnist(limit=50, seed=2))
    assert not torch.equal(limited.y_train, data.load_mnist(limit=50, seed=3).y_train)
    pooled = data.load_mnist(test_size=0.5, seed=0)
    assert len(pooled.X_train) == len(pooled.X_test) == 50
    np.testing.assert_array_equal(class_fractions(pooled.y_train, 10), np.full(10, 0.1))


def test_load_mnist_falls_back_to_digits_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    with pytest.warns(UserWarning, match="MNIST IDX files not found.*falling back"):
        split = data.load_mnist(tmp_path / "missing")
    assert "FALLBACK" in split.description and "digits" in split.description
    assert split.n_features == 64 and len(split.X_train) + len(split.X_test) == 1797
    assert_same_split(split, data.load_digits())
    with pytest.warns(data.DatasetFallbackWarning, match="no path and no \\$MNIST_DIR"):
        limited = data.load_mnist(limit=100)
    assert len(limited.X_train) + len(limited.X_test) == 100


def test_load_mnist_falls_back_when_one_file_is_missing(tmp_path):
    write_mnist(tmp_path, n_train=10, n_test=10, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.warns(data.DatasetFallbackWarning):
        split = data.load_mnist(tmp_path)
    assert split.n_features == 64
