"""Small, seeded datasets for the chapters, as float tensors split into train and test sets.

Everything here is bundled with scikit-learn or generated on the spot: nothing is downloaded.
Every loader returns a :class:`DataSplit` and is deterministic for a given ``seed``; splits of
classification data are stratified, so every class appears in both sets in the same proportion.

Conventions (the ones PyTorch's losses expect):

* ``X`` is ``float32``.
* Class labels for ``cross_entropy`` are ``int64`` indices; targets for
  ``binary_cross_entropy(_with_logits)`` are ``float32`` zeros and ones (:func:`make_imbalanced`);
  regression targets are ``float32`` of shape ``(N,)`` (:func:`load_diabetes`).
* Statistics used to standardise are computed on the *training* set only and kept in
  ``split.stats``, so nothing about the test set leaks into training.

MNIST is read from IDX files if you have them (:func:`load_mnist`); without them the loader falls
back to scikit-learn's 8x8 digits and says so.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import sklearn.datasets
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset


class DatasetFallbackWarning(UserWarning):
    """Warned when a loader substitutes another dataset for one it cannot find."""


# ---------------------------------------------------------------- the split
@dataclasses.dataclass(repr=False)
class DataSplit:
    """A train/test split as tensors, ready for ``DataLoader``.

    Attributes:
        X_train: Training inputs, ``float32``, shape ``(N_train, ...)``.
        y_train: Training targets: ``int64`` class indices, or ``float32`` values.
        X_test: Test inputs, same trailing shape as ``X_train``.
        y_test: Test targets, same dtype as ``y_train``.
        description: One line saying what the data is, its sizes and classes.
        n_classes: Number of classes for classification data, ``None`` for regression.
        stats: Training-set statistics used for standardising (``"x_mean"``, ``"x_std"``,
            ``"y_mean"``, ``"y_std"``), empty when nothing was standardised.
    """

    X_train: Tensor
    y_train: Tensor
    X_test: Tensor
    y_test: Tensor
    description: str
    n_classes: int | None = None
    stats: dict[str, Tensor] = dataclasses.field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """Number of input values per example (64 for 8x8 digits, flattened or not)."""
        return int(np.prod(self.X_train.shape[1:]))

    def loaders(
        self, batch_size: int = 64, seed: int = 0, shuffle: bool = True
    ) -> tuple[DataLoader, DataLoader]:
        """Data loaders over the training and test sets.

        Args:
            batch_size: Examples per batch (default: 64).
            seed: Seeds the training loader's own ``torch.Generator``, so the order of the
                batches does not depend on (or disturb) the global random state (default: 0).
            shuffle: Shuffle the training set every epoch (default: True). The test loader
                never shuffles.

        Returns:
            ``(train_loader, test_loader)``, each yielding ``(X, y)`` batches.
        """
        generator = torch.Generator().manual_seed(seed)
        train = DataLoader(
            TensorDataset(self.X_train, self.y_train),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
        )
        test = DataLoader(TensorDataset(self.X_test, self.y_test), batch_size=batch_size)
        return train, test

    def unscale_target(self, y: Tensor) -> Tensor:
        """Map standardised targets (or predictions) back to the original units.

        Args:
            y: Values on the standardised scale, e.g. a regression model's predictions.

        Returns:
            ``y * y_std + y_mean`` with the training statistics, or ``y`` unchanged when the
            target was not standardised.
        """
        if "y_mean" not in self.stats:
            return y
        return y * self.stats["y_std"] + self.stats["y_mean"]

    def __repr__(self) -> str:
        # The dataclass default would print every tensor in full.
        return (
            f"DataSplit(train={tuple(self.X_train.shape)} -> {tuple(self.y_train.shape)}, "
            f"test={tuple(self.X_test.shape)} -> {tuple(self.y_test.shape)}, "
            f"{self.description!r})"
        )


def _split(
    X: np.ndarray, y: np.ndarray, test_size: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``train_test_split`` with a fixed seed, stratified on ``y`` for classification."""
    return train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y if stratify else None
    )


def _standardize(
    train: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardise both arrays with the mean and std of ``train`` (per column).

    Columns that are constant in the training set (the blank border pixels of the digits) keep a
    std of 1, so they become 0 instead of NaN.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std, mean, std


def _as_tensors(*arrays: np.ndarray, dtypes: tuple[torch.dtype, ...]) -> list[Tensor]:
    """One tensor per array, each converted to its own dtype."""
    return [torch.as_tensor(np.ascontiguousarray(a), dtype=d) for a, d in zip(arrays, dtypes)]


def _classification_split(
    X: np.ndarray,
    y: np.ndarray,
    *,
    test_size: float,
    seed: int,
    description: str,
    n_classes: int,
    y_dtype: torch.dtype = torch.int64,
) -> DataSplit:
    """Stratified split of a classification dataset, as a DataSplit with sizes described."""
    X_train, X_test, y_train, y_test = _split(X, y, test_size, seed, stratify=True)
    X_train, X_test = _as_tensors(X_train, X_test, dtypes=(torch.float32,) * 2)
    y_train, y_test = _as_tensors(y_train, y_test, dtypes=(y_dtype,) * 2)
    description = f"{description}; {len(X_train)} train / {len(X_test)} test"
    return DataSplit(X_train, y_train, X_test, y_test, description, n_classes=n_classes)


# ---------------------------------------------------------------- bundled datasets
def load_digits(
    test_size: float = 0.2, seed: int = 0, standardize: bool = False, flatten: bool = True
) -> DataSplit:
    """scikit-learn's handwritten digits: 1797 grayscale 8x8 images of the digits 0-9.

    Args:
        test_size: Fraction of the examples held out for testing (default: 0.2).
        seed: Seeds the stratified split (default: 0).
        standardize: Standardise each pixel with the training mean and std (default: False,
            pixels are scaled to ``[0, 1]``).
        flatten: ``X`` of shape ``(N, 64)`` when True (default), ``(N, 1, 8, 8)`` otherwise.

    Returns:
        ``X`` ``float32``, ``y`` ``int64`` in ``0..9``, ``n_classes == 10``.
    """
    digits = sklearn.datasets.load_digits()
    X = digits.data / 16.0  # pixels are integers 0..16
    split = _classification_split(
        X,
        digits.target,
        test_size=test_size,
        seed=seed,
        description="digits: 1797 8x8 grayscale images of handwritten 0-9, pixels in [0, 1], "
        "10 classes",
        n_classes=10,
    )
    if standardize:
        X_train, X_test, mean, std = _standardize(split.X_train.numpy(), split.X_test.numpy())
        split.X_train, split.X_test = _as_tensors(X_train, X_test, dtypes=(torch.float32,) * 2)
        split.stats = {
            "x_mean": torch.as_tensor(mean, dtype=torch.float32),
            "x_std": torch.as_tensor(std, dtype=torch.float32),
        }
        split.description = split.description.replace("pixels in [0, 1]", "pixels standardised")
    if not flatten:
        split.X_train = split.X_train.reshape(-1, 1, 8, 8)
        split.X_test = split.X_test.reshape(-1, 1, 8, 8)
    return split


def load_diabetes(test_size: float = 0.2, seed: int = 0, standardize: bool = True) -> DataSplit:
    """scikit-learn's diabetes regression data: 442 patients, 10 features, disease progression.

    Args:
        test_size: Fraction of the examples held out for testing (default: 0.2).
        seed: Seeds the split (default: 0).
        standardize: Standardise the features *and* the target with training statistics
            (default: True); undo the target scaling with :meth:`DataSplit.unscale_target`.
            With False, both are in raw units (age in years, BMI, blood pressure, ...; the
            target ranges over 25..346), which is what makes plain gradient descent crawl.

    Returns:
        ``X`` ``float32`` ``(N, 10)``, ``y`` ``float32`` ``(N,)``, ``n_classes`` None.
    """
    data = sklearn.datasets.load_diabetes(scaled=False)
    X_train, X_test, y_train, y_test = _split(
        data.data, data.target, test_size, seed, stratify=False
    )
    stats = {}
    if standardize:
        X_train, X_test, x_mean, x_std = _standardize(X_train, X_test)
        y_train, y_test, y_mean, y_std = _standardize(y_train, y_test)
        stats = {
            name: torch.as_tensor(value, dtype=torch.float32)
            for name, value in [("x_mean", x_mean), ("x_std", x_std), ("y_mean", y_mean),
                                ("y_std", y_std)]
        }
    units = "features and target standardised" if standardize else "raw units, target 25..346"
    return DataSplit(
        *_as_tensors(X_train, y_train, X_test, y_test, dtypes=(torch.float32,) * 4),
        description=f"diabetes: 10 clinical features -> disease progression after one year "
        f"({units}); {len(X_train)} train / {len(X_test)} test",
        stats=stats,
    )


# ---------------------------------------------------------------- generated datasets
def make_moons(
    n_samples: int = 1000, noise: float = 0.2, test_size: float = 0.2, seed: int = 0
) -> DataSplit:
    """Two interleaving half circles in 2-D: not linearly separable.

    Returns:
        ``X`` ``float32`` ``(N, 2)``, ``y`` ``int64`` in ``{0, 1}``, ``n_classes == 2``.
    """
    X, y = sklearn.datasets.make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _classification_split(
        X, y, test_size=test_size, seed=seed, n_classes=2,
        description=f"moons: {n_samples} 2-D points on two half circles (noise {noise}), 2 classes",
    )


def make_blobs(
    n_samples: int = 1000,
    centers: int = 3,
    n_features: int = 2,
    cluster_std: float = 1.0,
    test_size: float = 0.2,
    seed: int = 0,
) -> DataSplit:
    """Isotropic Gaussian clusters, one per class.

    Returns:
        ``X`` ``float32`` ``(N, n_features)``, ``y`` ``int64`` in ``0..centers-1``.
    """
    X, y = sklearn.datasets.make_blobs(
        n_samples=n_samples, centers=centers, n_features=n_features, cluster_std=cluster_std,
        random_state=seed,
    )
    n_classes = int(y.max()) + 1
    return _classification_split(
        X, y, test_size=test_size, seed=seed, n_classes=n_classes,
        description=f"blobs: {n_samples} points in {n_features}-D around {n_classes} centres "
        f"(std {cluster_std}), {n_classes} classes",
    )


def make_imbalanced(
    n_samples: int = 5000,
    positive_fraction: float = 0.02,
    n_features: int = 2,
    test_size: float = 0.3,
    seed: int = 0,
    class_sep: float = 1.0,
) -> DataSplit:
    """A binary problem with a rare positive class, for BCE against focal loss.

    Each class is one Gaussian cluster (``sklearn.datasets.make_classification`` without label
    noise), so exactly ``round(n_samples * positive_fraction)`` examples are positive, and the
    split is stratified so that the test set keeps the same fraction of positives.

    Args:
        n_samples: Total number of examples (default: 5000).
        positive_fraction: Fraction of positive examples, in ``(0, 0.5]`` (default: 0.02).
        n_features: Input dimension; all features are informative (default: 2).
        test_size: Fraction held out for testing (default: 0.3, so the test set has positives).
        seed: Seeds the generation and the split (default: 0).
        class_sep: Distance between the clusters; smaller is harder (default: 1.0).

    Returns:
        ``X`` ``float32`` ``(N, n_features)``, ``y`` ``float32`` zeros and ones (targets for
        ``binary_cross_entropy_with_logits``), ``n_classes == 2``.

    Raises:
        ValueError: If ``positive_fraction`` is outside ``(0, 0.5]`` or leaves fewer than
            two positives, too few to put one in each set.
    """
    if not 0.0 < positive_fraction <= 0.5:
        raise ValueError(f"positive_fraction must be in (0, 0.5], got {positive_fraction}")
    n_positive = round(n_samples * positive_fraction)
    if n_positive < 2:
        raise ValueError(
            f"n_samples={n_samples} with positive_fraction={positive_fraction} gives "
            f"{n_positive} positive examples; at least 2 are needed (one for each set)"
        )
    X, y = sklearn.datasets.make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_features,
        n_redundant=0,
        n_repeated=0,
        n_clusters_per_class=1,
        weights=[1.0 - n_positive / n_samples],
        flip_y=0.0,
        class_sep=class_sep,
        random_state=seed,
    )
    return _classification_split(
        X, y, test_size=test_size, seed=seed, n_classes=2, y_dtype=torch.float32,
        description=f"imbalanced: {n_samples} points in {n_features}-D, {int(y.sum())} positive "
        f"({100 * y.mean():.1f}%), float targets for BCE",
    )


# ---------------------------------------------------------------- MNIST from IDX files
# IDX header: two zero bytes, a type code, the number of dimensions; then one big-endian int32
# per dimension; then the data, big-endian. See http://yann.lecun.com/exdb/mnist/.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an array stored in the IDX format of MNIST, plain or gzip-compressed.

    Args:
        path: The file. Gzip is recognised by its content, whatever the file name says.

    Returns:
        The array, in native byte order (``uint8`` for MNIST images and labels).

    Raises:
        ValueError: If the file is not IDX (bad magic number or type code), or is truncated,
            or has bytes left over after the data its header announces.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; an IDX file "
            "starts with two zero bytes, a type code and the number of dimensions)"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}")
    dtype = _IDX_DTYPES[code]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(
            f"{path}: IDX file {state}: header says shape {shape} of {dtype.name} "
            f"({expected} bytes in all), file has {len(raw)} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists first."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _subsample(X: Any, y: Any, n: int, rng: np.random.Generator) -> tuple[Any, Any]:
    """``n`` examples drawn without replacement, kept in their original order."""
    keep = np.sort(rng.permutation(len(X))[:n])
    return X[keep], y[keep]


def load_mnist(
    path: str | os.PathLike | None = None,
    test_size: float | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> DataSplit:
    """MNIST from the four IDX files, or scikit-learn's digits when they are not there.

    The files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``) are looked for in ``path``, else in
    the folder named by the environment variable ``MNIST_DIR``. Nothing is downloaded: if a file
    is missing, this warns (:class:`DatasetFallbackWarning`) and returns :func:`load_digits`,
    whose images are 8x8 (64 features, not 784), so size models with ``split.n_features``.

    Args:
        path: Folder holding the IDX files (default: ``$MNIST_DIR``).
        test_size: None (default) keeps MNIST's own 60000/10000 split; a fraction pools both
            files and makes a stratified split of that size instead.
        seed: Seeds the subsampling and the split (default: 0).
        limit: Keep at most this many examples in all, drawn at random with ``seed``, split in
            the same proportion as the full data (default: None, keep everything).

    Returns:
        ``X`` ``float32`` in ``[0, 1]`` of shape ``(N, 784)``, ``y`` ``int64``,
        ``n_classes == 10``.
    """
    folder = path if path is not None else os.environ.get("MNIST_DIR")
    found = {}
    if folder is not None:
        found = {key: _find_idx(Path(folder), stem) for key, stem in _MNIST_FILES.items()}
    if not found or None in found.values():
        where = f"in {os.fspath(folder)!r}" if folder is not None else "(no path and no $MNIST_DIR)"
        message = (
            f"MNIST IDX files not found {where}; falling back to scikit-learn's 8x8 digits "
            "(64 features instead of 784). Put the four MNIST files in a folder and pass "
            "path=... or set MNIST_DIR to use MNIST."
        )
        warnings.warn(message, DatasetFallbackWarning, stacklevel=2)
        split = load_digits(test_size=0.2 if test_size is None else test_size, seed=seed)
        if limit is not None and limit < len(split.X_train) + len(split.X_test):
            rng = np.random.default_rng(seed)
            n_train = round(limit * len(split.X_train) / (len(split.X_train) + len(split.X_test)))
            split.X_train, split.y_train = _subsample(split.X_train, split.y_train, n_train, rng)
            n_test = limit - n_train
            split.X_test, split.y_test = _subsample(split.X_test, split.y_test, n_test, rng)
        split.description = (
            f"FALLBACK (MNIST not found) -> {split.description.split(';')[0]}; "
            f"{len(split.X_train)} train / {len(split.X_test)} test"
        )
        return split

    arrays = {key: read_idx(file) for key, file in found.items()}
    X_train = arrays["train_images"].reshape(len(arrays["train_images"]), -1)
    X_test = arrays["test_images"].reshape(len(arrays["test_images"]), -1)
    y_train, y_test = arrays["train_labels"], arrays["test_labels"]
    if len(X_train) != len(y_train) or len(X_test) != len(y_test):
        raise ValueError(
            f"MNIST files in {os.fspath(folder)!r} disagree: {len(X_train)} train images for "
            f"{len(y_train)} labels, {len(X_test)} test images for {len(y_test)} labels"
        )
    if test_size is not None:
        X = np.concatenate([X_train, X_test])
        y = np.concatenate([y_train, y_test])
        if limit is not None and limit < len(X):
            X, y = _subsample(X, y, limit, np.random.default_rng(seed))
        X_train, X_test, y_train, y_test = _split(X, y, test_size, seed, stratify=True)
    elif limit is not None and limit < len(X_train) + len(X_test):
        rng = np.random.default_rng(seed)
        n_train = round(limit * len(X_train) / (len(X_train) + len(X_test)))
        X_train, y_train = _subsample(X_train, y_train, n_train, rng)
        X_test, y_test = _subsample(X_test, y_test, limit - n_train, rng)
    X_train, X_test = (torch.as_tensor(a, dtype=torch.float32) / 255.0 for a in (X_train, X_test))
    y_train, y_test = (torch.as_tensor(a.astype(np.int64)) for a in (y_train, y_test))
    side = int(round(X_train.shape[1] ** 0.5))
    return DataSplit(
        X_train, y_train, X_test, y_test,
        description=f"MNIST: {side}x{side} grayscale handwritten digits 0-9, pixels in [0, 1], "
        f"10 classes; {len(X_train)} train / {len(X_test)} test",
        n_classes=10,
    )
