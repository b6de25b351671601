"""The training loop the chapters share: seeding, accuracy, ``fit`` and ``evaluate``.

``fit`` is deliberately the plain loop you would write yourself (zero_grad, forward, loss,
backward, step), so a learner can read it once and then trust it with their own losses,
optimizers and schedulers. It only calls ``optimizer.zero_grad()`` and ``optimizer.step()``, so
any class with those two methods works, including the optimizers written in the exercises.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

Metric = Callable[[Tensor, Tensor], float]


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and PyTorch (CPU and CUDA).

    Args:
        seed: Any integer.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def accuracy(output: Tensor, target: Tensor) -> float:
    """Fraction of correct predictions.

    * ``output`` of shape ``(N, C)`` with ``C > 1``: logits (or probabilities) of ``C`` classes;
      the prediction is the argmax, compared with ``target`` class indices ``(N,)`` (or with the
      argmax of one-hot/soft targets of shape ``(N, C)``).
    * ``output`` of shape ``(N,)`` or ``(N, 1)``: logits of a binary task; the prediction is
      ``output > 0`` (probability above 1/2), compared with ``target > 0.5``.

    Args:
        output: Model outputs, as above.
        target: Class indices or 0/1 targets.

    Returns:
        The fraction of examples predicted correctly, a Python float in ``[0, 1]``.

    Raises:
        ValueError: If the batch is empty or the numbers of examples differ.
    """
    output, target = output.detach(), target.detach()
    if len(output) == 0 or len(output) != len(target):
        raise ValueError(
            f"accuracy needs the same non-zero number of outputs and targets, got "
            f"output {tuple(output.shape)} and target {tuple(target.shape)}"
        )
    if output.ndim == 2 and output.shape[1] > 1:
        predicted = output.argmax(dim=1)
        if target.ndim == 2:
            target = target.argmax(dim=1)
    else:
        predicted = output.reshape(len(output)) > 0
        target = target.reshape(len(target)) > 0.5
    return (predicted == target).float().mean().item()


class History(dict):
    """What ``fit`` measured, one entry per epoch: a plain ``dict`` of lists.

    Keys:
        ``"train_loss"``: mean training loss over the epoch's batches (weighted by batch size),
            measured while the weights were changing, as in any training loop.
        ``"val_loss"``: loss on the validation loader at the end of the epoch.
        ``"train_metric"``, ``"val_metric"``: the metric, measured the same two ways.
        ``"lr"``: the learning rate of the first parameter group at the start of the epoch.
        ``"step_loss"``: the loss of every training batch, in order (one entry per step).

    A key stays an empty list when there is nothing to measure (no ``val_loader``, no metric).
    Being a dict, it pickles, prints and converts to JSON as is; ``to_dict`` gives a plain copy.
    """

    KEYS = ("train_loss", "val_loss", "train_metric", "val_metric", "lr", "step_loss")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__({key: [] for key in self.KEYS})
        self.update(*args, **kwargs)

    def to_dict(self) -> dict[str, list[float]]:
        """A plain ``dict`` with copies of the lists."""
        return {key: list(values) for key, values in self.items()}


def _current_lr(optimizer: Any) -> float:
    groups = getattr(optimizer, "param_groups", None)
    if groups and "lr" in groups[0]:
        return float(groups[0]["lr"])
    return float(getattr(optimizer, "lr", math.nan))


def _rewind_shuffling(loader: Iterable) -> None:
    """Restart a loader's shuffling generator, so that every ``fit`` call sees the same batches.

    Without this, fitting two optimizers one after the other with the same loader would give
    them different batch orders, and the comparison would depend on which ran first.
    """
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(generator.initial_seed())


def evaluate(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    loader: Iterable,
    metric: Metric | None = accuracy,
    device: str | torch.device = "cpu",
) -> tuple[float, float | None]:
    """Mean loss and metric of ``model`` over ``loader``, without tracking gradients.

    ``model.eval()`` switches dropout off and makes batch norm use its running statistics;
    ``torch.no_grad()`` skips building the graph, which saves memory and time. The model's
    training mode is restored afterwards.

    Args:
        model: The model.
        loss_fn: ``loss_fn(output, target)`` returning the batch mean as a scalar tensor.
        loader: Yields ``(X, y)`` batches.
        metric: ``metric(output, target)`` returning a batch mean, or None (default: accuracy).
        device: Where to move each batch (default: ``"cpu"``).

    Returns:
        ``(loss, metric)`` averaged over examples (weighted by batch size); metric is None
        without a metric.

    Raises:
        ValueError: If the loader yields no examples.
    """
    was_training = model.training
    model.eval()
    total_loss, total_metric, count = 0.0, 0.0, 0
    with torch.no_grad():
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            output = model(X)
            total_loss += loss_fn(output, y).item() * len(X)
            if metric is not None:
                total_metric += metric(output, y) * len(X)
            count += len(X)
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the loader yielded no examples")
    return total_loss / count, (total_metric / count if metric is not None else None)


def fit(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    optimizer: Any,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    num_epochs: int = 10,
    scheduler: Any = None,
    metric: Metric | None = accuracy,
    device: str | torch.device = "cpu",
    seed: int | None = 0,
    progress: bool = True,
    step_scheduler: str = "epoch",
) -> History:
    """Train ``model`` for ``num_epochs`` epochs and return what was measured.

    Every training step runs, in this order::

        optimizer.zero_grad()          # 1. backward() ADDS to p.grad: clear the last batch's
        output = model(X)              # 2. forward pass, recording the graph
        loss = loss_fn(output, y)      # 3. one scalar: the batch mean
        loss.backward()                # 4. p.grad = d loss / d p for every parameter
        optimizer.step()               # 5. update p using p.grad: needs 4 to have run first

    Why this order: ``backward`` accumulates into ``.grad`` (that is what lets gradients of
    several losses add up), so without step 1 each update would use the sum of all past
    gradients. ``step`` reads ``.grad``, so it must come after ``backward`` of the *same* batch.

    A learning-rate scheduler is stepped after the optimizer: once per epoch (default), or
    after every optimizer step with ``step_scheduler="batch"`` (warm-up, one-cycle, ...).
    ``ReduceLROnPlateau`` is given the validation loss (the training loss without a
    ``val_loader``). After each epoch the model is evaluated on ``val_loader`` with
    :func:`evaluate` (``model.eval()``, ``torch.no_grad()``).

    Args:
        model: The model; moved to ``device``.
        loss_fn: ``loss_fn(output, target)`` returning the batch mean as a scalar tensor.
        optimizer: Anything with ``zero_grad()`` and ``step()`` over ``model``'s parameters:
            a ``torch.optim`` optimizer or your own class.
        train_loader: Yields ``(X, y)`` batches. If it shuffles with its own
            ``torch.Generator`` (as ``DataSplit.loaders`` does), that generator is rewound to
            its initial seed, so every ``fit`` call sees the same batch order.
        val_loader: Optional loader evaluated after every epoch (default: None).
        num_epochs: Passes over ``train_loader`` (default: 10).
        scheduler: Optional ``torch.optim.lr_scheduler``-style object with ``step()``.
        metric: ``metric(output, target) -> float``, a batch mean, or None (default: accuracy).
        device: Where to train (default: ``"cpu"``).
        seed: Passed to :func:`set_seed` before training, for dropout and loaders without a
            generator; None leaves the random state alone (default: 0).
        progress: Show a progress bar over epochs with the losses (default: True).
        step_scheduler: ``"epoch"`` or ``"batch"``, when to call ``scheduler.step()``.

    Returns:
        A :class:`History` with one entry per epoch in each list.

    Raises:
        ValueError: If ``step_scheduler`` is neither ``"epoch"`` nor ``"batch"`` (or is
            ``"batch"`` with ``ReduceLROnPlateau``), or ``train_loader`` is empty.
    """
    if step_scheduler not in ("epoch", "batch"):
        raise ValueError(f'step_scheduler must be "epoch" or "batch", got {step_scheduler!r}')
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and step_scheduler == "batch":
        raise ValueError("ReduceLROnPlateau needs an epoch's loss: use step_scheduler='epoch'")
    if seed is not None:
        set_seed(seed)
    _rewind_shuffling(train_loader)
    model.to(device)
    history = History()

    epochs = tqdm(range(num_epochs), desc="epochs", disable=not progress)
    for _ in epochs:
        model.train()  # dropout on, batch norm uses batch statistics
        history["lr"].append(_current_lr(optimizer))
        total_loss, total_metric, count = 0.0, 0.0, 0
        for X, y in train_loader:
            X, y = X.to(device), y.to(device)
            optimizer.zero_grad()      # backward() adds to .grad: clear the last batch's
            output = model(X)
            loss = loss_fn(output, y)  # scalar: the batch mean
            loss.backward()            # p.grad = d loss / d p
            optimizer.step()           # reads p.grad, so it comes after backward()
            if scheduler is not None and step_scheduler == "batch":
                scheduler.step()

            history["step_loss"].append(loss.item())
            total_loss += loss.item() * len(X)
            if metric is not None:
                total_metric += metric(output.detach(), y) * len(X)
            count += len(X)
        if count == 0:
            raise ValueError("fit: train_loader yielded no examples")

        history["train_loss"].append(total_loss / count)
        if metric is not None:
            history["train_metric"].append(total_metric / count)
        if val_loader is not None:
            val_loss, val_metric = evaluate(model, loss_fn, val_loader, metric, device)
            history["val_loss"].append(val_loss)
            if metric is not None:
                history["val_metric"].append(val_metric)
        if scheduler is not None and step_scheduler == "epoch":
            if plateau:
                scheduler.step((history["val_loss"] or history["train_loss"])[-1])
            else:
                scheduler.step()
        epochs.set_postfix(
            {key: f"{history[key][-1]:.4g}" for key in ("train_loss", "val_loss") if history[key]}
        )
    return history
