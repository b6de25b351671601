"""Chapter 8 (capstone): the source article's two complete examples, as reusable pieces.

The article ends with an MNIST classifier (``Flatten -> Linear(784, 128) -> ReLU -> Linear(128,
10)``, cross-entropy, ``Adam(lr=1e-3)``, batches of 64, 10 epochs, inputs ``(x - 0.5) / 0.5``) and
a Boston housing regression (``StandardScaler``, ``Linear(p, 64) -> ReLU -> Linear(64, 1)``, MSE,
``SGD(lr=0.01, momentum=0.9)``, 100 full-batch epochs). This module holds the data and the two
models; the chapter's exercises write the training loops with the learner's own parts.

Data:

* :func:`classifier_data`: real MNIST from its IDX files when ``$MNIST_DIR`` (or ``path``) holds
  them, limited to a few thousand images so that the chapter stays under a minute; otherwise
  scikit-learn's 1797 8x8 digits *upsampled* to 28x28 (:func:`upsample_digits`). Upsampling only
  gives the article's model the input size it expects: the images carry 64 pixels of
  information, 10 times fewer examples than MNIST's test set, so the numbers are not MNIST's.
* :func:`regression_data`: the diabetes data (442 patients, 10 features) in raw units, which
  replaced Boston in the course: scikit-learn removed ``load_boston`` in 1.2.

The grader of chapter 8 draws its own secret splits from the same data (see
``grader/chapters/ch08_capstone.py``); these loaders are for the notebook.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import sklearn.datasets
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossopt_helpers.data import DataSplit, DatasetFallbackWarning, _split, load_mnist

IMAGE_SIZE = 28  # the article's MNIST images are 28 x 28


# ---------------------------------------------------------------- the article's models
def article_classifier() -> nn.Sequential:
    """``Flatten -> Linear(28*28, 128) -> ReLU -> Linear(128, 10)``, as the article builds it.

    Its parameters are drawn from torch's global generator: seed it first for a
    reproducible model.
    """
    return nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_SIZE * IMAGE_SIZE, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def article_regressor(n_features: int) -> nn.Sequential:
    """``Linear(p, 64) -> ReLU -> Linear(64, 1)``, as the article builds it (p features)."""
    return nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 1))


# ---------------------------------------------------------------- data
def upsample_digits(X: np.ndarray | Tensor) -> Tensor:
    """8x8 digit images (``(N, 64)`` or ``(N, 1, 8, 8)``, pixels in ``[0, 1]``) as 28x28.

    Bilinear interpolation (``align_corners=False``), clamped to ``[0, 1]``: the shape and range
    of MNIST's images after ``ToTensor()``, ``(N, 1, 28, 28)`` ``float32``.
    """
    images = torch.as_tensor(np.asarray(X, dtype=np.float32)).reshape(-1, 1, 8, 8)
    big = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                        align_corners=False)
    return big.clamp(0.0, 1.0)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(1797, 64)`` pixels in ``[0, 1]`` (float64) and labels."""
    digits = sklearn.datasets.load_digits()
    return digits.data / 16.0, digits.target.astype(np.int64)


def diabetes_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The diabetes data in raw units: ``(442, 10)`` features and ``(442,)`` targets (float64)."""
    data = sklearn.datasets.load_diabetes(scaled=False)
    return data.data.astype(np.float64), data.target.astype(np.float64)


def classifier_data(seed: int = 0, test_size: float = 0.2, path: str | None = None,
                    limit: int = 6000) -> DataSplit:
    """The classifier's data as the article feeds it: ``(N, 1, 28, 28)`` images in ``[0, 1]``.

    Args:
        seed: Seeds the stratified split (default: 0).
        test_size: Fraction held out for testing (default: 0.2).
        path: Folder with MNIST's four IDX files (default: ``$MNIST_DIR``). Without them:
            the bundled digits, upsampled, and the description says so.
        limit: With MNIST, keep this many images in all (default: 6000), so that 10 epochs
            stay within the chapter's minute.

    Returns:
        A :class:`~lossopt_helpers.data.DataSplit` with ``n_classes == 10``.
    """
    folder = path if path is not None else os.environ.get("MNIST_DIR")
    if folder is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetFallbackWarning)
            split = load_mnist(folder, test_size=test_size, seed=seed, limit=limit)
        if split.n_features == IMAGE_SIZE * IMAGE_SIZE:
            split.X_train = split.X_train.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
            split.X_test = split.X_test.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
            return split
    X, y = digits_arrays()
    X_train, X_test, y_train, y_test = _split(X, y, test_size, seed, stratify=True)
    return DataSplit(
        upsample_digits(X_train), torch.as_tensor(y_train), upsample_digits(X_test),
        torch.as_tensor(y_test),
        description=f"digits upsampled 8x8 -> 28x28 (MNIST IDX files not found); "
        f"{len(X_train)} train / {len(X_test)} test",
        n_classes=10,
    )


def regression_data(seed: int = 0, test_size: float = 0.2) -> DataSplit:
    """The diabetes data in raw units (not standardised: fitting the scaler is the exercise).

    Returns:
        ``X`` ``float32`` ``(N, 10)``, ``y`` ``float32`` ``(N,)`` (disease progression, 25..346).
    """
    X, y = diabetes_arrays()
    X_train, X_test, y_train, y_test = _split(X, y, test_size, seed, stratify=False)
    as32 = [torch.as_tensor(a, dtype=torch.float32) for a in (X_train, y_train, X_test, y_test)]
    return DataSplit(*as32, description=f"diabetes in raw units; {len(X_train)} train / "
                     f"{len(X_test)} test")


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def accuracy(model: nn.Module, X: Tensor, y: Tensor) -> float:
    """Fraction of images classified correctly, inputs normalised as the article does."""
    model.eval()
    logits = model((X - 0.5) / 0.5)  # (N, 10)
    return float((logits.argmax(dim=1) == y).float().mean())


@torch.no_grad()
def rmse(model: nn.Module, scaler: dict[str, Tensor], X: Tensor, y: Tensor) -> float:
    """Root mean squared error in the target's units of ``model`` with a recipe's scaler.

    The prediction is ``model((X - x_mean) / x_scale) * y_scale + y_mean``.
    """
    model.eval()
    pred = model((X - scaler["x_mean"]) / scaler["x_scale"]).squeeze(-1)
    pred = pred * scaler["y_scale"] + scaler["y_mean"]
    return float(torch.sqrt(torch.mean((pred - y) ** 2)))
