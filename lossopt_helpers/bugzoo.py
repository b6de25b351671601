"""Chapter 6's bug zoo: short training loops on the digits, each with one planted bug.

The taxonomy is fixed (:class:`Bug`): a learner names the bug of a loop with a ``Bug`` member,
never with free text, and writes the repaired loop. Every loop has the same signature,

    loop(X, y, *, lr, epochs, batch_size, hidden, seed) -> list

and returns its loss trajectory, one entry per epoch. Everything random comes from ``seed``:
``torch.manual_seed(seed)`` before the model is built (its initialisation and any dropout masks),
and a ``torch.Generator`` seeded with ``seed`` for the order of the mini-batches. The same loop
with the same arguments therefore gives the same trajectory, to the last bit, on any CPU run:
this is how chapter 6's grader compares a repaired loop with the reference one
(``grader/chapters/ch06_debugging_training.py``), with the hyperparameters it chooses.

The buggy loops are ``buggy_1`` .. ``buggy_4``: read them, find the bug. The reference loops
(``reference_1`` .. ``reference_4``) are what the grader compares with; calling them from an
answer is refused.
"""

from __future__ import annotations

import enum

import numpy as np
import sklearn.datasets
import torch
import torch.nn.functional as F
from torch import nn


class Bug(enum.Enum):
    """The bugs of the zoo: each member's value says what goes wrong."""

    MISSING_ZERO_GRAD = "gradients are never zeroed, so they accumulate from step to step"
    SOFTMAX_BEFORE_CROSS_ENTROPY = "probabilities, not logits, are fed to cross_entropy"
    WRONG_SOFTMAX_DIM = "softmax (or log_softmax) normalises over the batch, not the classes"
    BROADCAST_MSE_SHAPES = "MSE between (N, 1) and (N,) broadcasts to an (N, N) difference"
    LABELS_SHUFFLED_APART = "inputs and labels are shuffled with different permutations"
    NO_SHUFFLE_SORTED_DATA = "data sorted by class is never shuffled"
    EVAL_MODE_WHILE_TRAINING = "the model trains in eval mode (dropout, BatchNorm switched off)"
    TRAIN_MODE_IN_EVAL = "the model is evaluated in train mode (dropout on, BatchNorm updated)"
    LOSS_ACCUMULATED_WITHOUT_ITEM = "loss tensors are summed, keeping every step's graph alive"
    SCHEDULER_STEPPED_PER_BATCH = "a per-epoch scheduler is stepped after every batch"
    LR_TOO_HIGH = "the learning rate is too high for this model and optimizer"


# ---------------------------------------------------------------------------------------------
# Data and model


def digits(n: int = 384, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` of scikit-learn's 8x8 digits, drawn with ``seed``: ``X`` (n, 64) float32, each pixel
    standardised over these ``n`` (constant pixels left at 0), and ``y`` (n,) int64 in 0..9."""
    data = sklearn.datasets.load_digits()
    rows = np.random.default_rng(seed).permutation(len(data.target))[:n]
    X = data.data[rows].astype(np.float64)
    std = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return torch.tensor(X, dtype=torch.float32), torch.tensor(data.target[rows], dtype=torch.int64)


def mlp(hidden: int, dropout: float = 0.0) -> nn.Sequential:
    """64 -> hidden -> 10 with a ReLU (and dropout after it when ``dropout`` > 0)."""
    layers: list[nn.Module] = [nn.Linear(64, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, 10))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# The buggy loops


def buggy_1(X, y, *, lr, epochs, batch_size, hidden, seed):
    """SGD with momentum on the digits; the loss per epoch."""
    torch.manual_seed(seed)
    model = mlp(hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses


def buggy_2(X, y, *, lr, epochs, batch_size, hidden, seed):
    """Adam on the digits, with a model that outputs class probabilities; the loss per epoch."""
    torch.manual_seed(seed)
    model = nn.Sequential(mlp(hidden), nn.Softmax(dim=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses


def buggy_3(X, y, *, lr, epochs, batch_size, hidden, seed):
    """Dropout MLP, validated after every epoch; [train loss, validation loss] per epoch."""
    torch.manual_seed(seed)
    n_val = len(X) // 5
    X_val, y_val, X, y = X[:n_val], y[:n_val], X[n_val:], y[n_val:]
    model = mlp(hidden, dropout=0.3)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    history = []
    model.train()
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(X_val), y_val).item()
        history.append([total / len(X), val_loss])
    return history


def buggy_4(X, y, *, lr, epochs, batch_size, hidden, seed):
    """SGD with a step schedule that halves the lr every 2 epochs; the loss per epoch."""
    torch.manual_seed(seed)
    model = mlp(hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    order = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses


BUGGY = {"zoo_1": buggy_1, "zoo_2": buggy_2, "zoo_3": buggy_3, "zoo_4": buggy_4}
PLANTED = {"zoo_1": Bug.MISSING_ZERO_GRAD, "zoo_2": Bug.SOFTMAX_BEFORE_CROSS_ENTROPY,
           "zoo_3": Bug.EVAL_MODE_WHILE_TRAINING, "zoo_4": Bug.SCHEDULER_STEPPED_PER_BATCH}


# ---------------------------------------------------------------------------------------------
# The reference loops: each buggy loop with its bug, and nothing else, repaired


def reference_1(X, y, *, lr, epochs, batch_size, hidden, seed):
    torch.manual_seed(seed)
    model = mlp(hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses


def reference_2(X, y, *, lr, epochs, batch_size, hidden, seed):
    torch.manual_seed(seed)
    model = mlp(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(X))
    return losses


def reference_3(X, y, *, lr, epochs, batch_size, hidden, seed):
    torch.manual_seed(seed)
    n_val = len(X) // 5
    X_val, y_val, X, y = X[:n_val], y[:n_val], X[n_val:], y[n_val:]
    model = mlp(hidden, dropout=0.3)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(X_val), y_val).item()
        history.append([total / len(X), val_loss])
    return history


def reference_4(X, y, *, lr, epochs, batch_size, hidden, seed):
    torch.manual_seed(seed)
    model = mlp(hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    order = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        scheduler.step()
        losses.append(total / len(X))
    return losses


REFERENCE = {"zoo_1": reference_1, "zoo_2": reference_2, "zoo_3": reference_3,
             "zoo_4": reference_4}
