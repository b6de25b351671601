"""Figures used across the chapters: training curves, losses as functions, loss landscapes.

Every function returns its matplotlib ``Figure`` and never calls ``plt.show()``. Functions that
draw a single panel accept ``ax=`` to draw into an existing axes (then the returned figure is
that axes' figure). Inputs may be tensors (with or without ``requires_grad``), arrays or lists.

In a notebook, end the call with ``;`` or assign the figure (``fig = plot_...(...)``): with the
inline backend a figure that is also the cell's value is shown twice.

Sections: training curves; losses as functions of a logit or residual; classification results;
regression fits; optimisation landscapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import Tensor

GRID_ALPHA = 0.3
LossFn = Callable[[Tensor], Tensor]


def to_numpy(values: Any) -> np.ndarray:
    """A float NumPy array from a tensor, an array, or a list of numbers or tensors.

    Args:
        values: What to convert; tensors are detached and moved to the CPU.

    Returns:
        The values as a NumPy array (``float64`` unless they were integers or booleans).
    """
    if isinstance(values, Tensor):
        array = values.detach().cpu().numpy()
    elif isinstance(values, (list, tuple)) and any(isinstance(v, Tensor) for v in values):
        array = np.stack([to_numpy(v) for v in values])
    else:
        array = np.asarray(values)
    if array.dtype.kind not in "biu":
        array = array.astype(np.float64)
    return array


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.0)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _evaluate_curve(name: str, fn: LossFn, z: Tensor) -> Tensor:
    """Call ``fn`` on a 1-D tensor and insist on one loss per element."""
    out = fn(z)
    if not isinstance(out, Tensor) or out.shape != z.shape:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"{name!r} must map a tensor of shape {tuple(z.shape)} to per-element losses of the "
            f"same shape (use reduction='none'), got {shape}"
        )
    return out


# ---------------------------------------------------------------- training curves
def plot_loss_curves(
    history: Mapping[str, Sequence[float]],
    title: str | None = None,
    log_scale: bool = False,
    metric_name: str = "accuracy",
) -> Figure:
    """Training and validation loss per epoch, and the metric in a second panel when present.

    Args:
        history: What :func:`lossopt_helpers.training.fit` returns, or any mapping with
            ``"train_loss"`` and optionally ``"val_loss"``, ``"train_metric"``, ``"val_metric"``.
        title: Figure title (default: none).
        log_scale: Loss axis on a log scale (default: False).
        metric_name: Label of the metric panel (default: ``"accuracy"``).

    Returns:
        The figure: one axes for the loss, two when a metric was recorded.
    """
    series = {
        key: to_numpy(history[key] if history.get(key) is not None else []).reshape(-1)
        for key in ("train_loss", "val_loss", "train_metric", "val_metric")
    }
    has_metric = series["train_metric"].size > 0 or series["val_metric"].size > 0
    fig, axes = plt.subplots(
        1, 2 if has_metric else 1, figsize=(11 if has_metric else 6, 4), layout="constrained",
        squeeze=False,
    )
    panels = [("loss", "loss", axes[0, 0])]
    if has_metric:
        panels.append(("metric", metric_name, axes[0, 1]))
    for key, ylabel, ax in panels:
        for split in ("train", "val"):
            values = series[f"{split}_{key}"]
            if values.size:
                epochs = np.arange(1, values.size + 1)
                ax.plot(epochs, values, marker="o" if values.size <= 30 else None,
                        markersize=3, label="train" if split == "train" else "validation")
        ax.set(xlabel="epoch", ylabel=ylabel, title=f"{ylabel} per epoch")
        if key == "loss" and log_scale:
            ax.set_yscale("log")
        ax.grid(alpha=GRID_ALPHA)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def plot_loss_vs_step(
    losses: Mapping[str, Any],
    log_scale: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """One loss curve per optimizer (or setting) against the step number, starting at 0.

    Args:
        losses: Name -> sequence of losses (e.g. ``history["step_loss"]``).
        log_scale: Log-scaled loss axis, which shows linear convergence as a straight line
            (default: True).
        title: Axes title (default: none).
        ax: Draw into this axes instead of a new figure.

    Returns:
        The figure.
    """
    fig, ax = _axes(ax)
    for name, values in losses.items():
        values = to_numpy(values).reshape(-1)
        ax.plot(np.arange(values.size), values, label=name)
    ax.set(xlabel="step", ylabel="loss")
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=GRID_ALPHA)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------- losses as functions
def plot_loss_vs_logit(
    losses: Mapping[str, LossFn],
    logits: tuple[float, float] = (-6, 6),
    num: int = 400,
    title: str | None = None,
    ax: Axes | None = None,
    dtype: torch.dtype = torch.float64,
) -> Figure:
    """Compare classification losses as functions of the logit of a positive example.

    Args:
        losses: Name -> callable mapping a 1-D tensor of logits ``z`` to the per-element
            losses for a positive example, e.g. ``lambda z:
            F.binary_cross_entropy_with_logits(z, torch.ones_like(z), reduction="none")``.
        logits: Range of ``z`` (default: ``(-6, 6)``).
        num: Number of points (default: 400).
        title: Axes title (default: none).
        ax: Draw into this axes instead of a new figure.
        dtype: dtype of ``z`` (default: ``torch.float64``).

    Returns:
        The figure, one line per loss.

    Raises:
        ValueError: If a callable does not return one loss per logit.
    """
    fig, ax = _axes(ax)
    z = torch.linspace(logits[0], logits[1], num, dtype=dtype)
    with torch.no_grad():
        for name, fn in losses.items():
            ax.plot(z.numpy(), to_numpy(_evaluate_curve(name, fn, z)), label=name)
    ax.axvline(0.0, color="gray", linewidth=0.8, alpha=0.6)
    ax.set(xlabel="logit $z$ of a positive example (y = 1)", ylabel="loss")
    ax.grid(alpha=GRID_ALPHA)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def plot_loss_and_gradient(
    losses: Mapping[str, LossFn],
    x: tuple[float, float] = (-3, 3),
    num: int = 400,
    title: str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Figure:
    """Regression losses of the residual ``r`` (left) and their derivatives ``dloss/dr`` (right).

    The derivative is what the optimizer sees: MSE's grows with the residual, so outliers pull
    hard; L1's is constant; Huber and smooth L1 switch from one to the other. It is computed
    with autograd, so a learner's own loss can be plotted the same way.

    Args:
        losses: Name -> callable mapping a 1-D tensor of residuals ``r`` to per-element
            losses, e.g. ``lambda r: F.huber_loss(r, torch.zeros_like(r), reduction="none")``.
        x: Range of ``r`` (default: ``(-3, 3)``).
        num: Number of points (default: 400).
        title: Figure title (default: none).
        dtype: dtype of ``r`` (default: ``torch.float64``).

    Returns:
        The figure: two axes, one line per loss in each, in the same order and colours.

    Raises:
        ValueError: If a callable does not return one loss per residual.
    """
    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for name, fn in losses.items():
        r = torch.linspace(x[0], x[1], num, dtype=dtype, requires_grad=True)
        value = _evaluate_curve(name, fn, r)
        if not value.requires_grad:
            raise ValueError(f"{name!r} is not differentiable by autograd: keep it in torch ops")
        # Per-element losses: the gradient of their sum is each loss's own derivative.
        (grad,) = torch.autograd.grad(value.sum(), r)
        line = ax_loss.plot(to_numpy(r), to_numpy(value), label=name)[0]
        ax_grad.plot(to_numpy(r), to_numpy(grad), label=name, color=line.get_color())
    xlabel = "residual $r$ = prediction - target"
    ax_loss.set(xlabel=xlabel, ylabel="loss", title="loss")
    ax_grad.set(xlabel=xlabel, ylabel=r"$\partial$ loss / $\partial r$", title="gradient")
    for ax in (ax_loss, ax_grad):
        ax.axhline(0.0, color="gray", linewidth=0.8, alpha=0.6)
        ax.grid(alpha=GRID_ALPHA)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- classification results
def plot_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    class_names: Sequence[str] | None = None,
    normalize: bool = False,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Confusion matrix: row = true class, column = predicted class.

    Args:
        y_true: True class indices ``(N,)``.
        y_pred: Predicted class indices ``(N,)``, or logits ``(N, C)`` (their argmax is used).
        class_names: Tick labels (default: ``0..C-1``).
        normalize: Divide each row by its total, showing the fraction of each true class
            predicted as each class, i.e. recall on the diagonal (default: False, counts).
        title: Axes title (default: none).
        ax: Draw into this axes instead of a new figure.

    Returns:
        The figure, with the matrix as an image, a colour bar and one number per cell.
    """
    y_true = to_numpy(y_true).astype(np.int64).reshape(-1)
    y_pred = to_numpy(y_pred)
    y_pred = (y_pred.argmax(axis=1) if y_pred.ndim == 2 else y_pred).astype(np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    n = len(class_names) if class_names is not None else int(max(y_true.max(), y_pred.max())) + 1
    matrix = np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n).astype(np.float64)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)

    fig, ax = _axes(ax, figsize=(1.0 + 0.55 * max(n, 5), 0.5 + 0.55 * max(n, 5)))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    ax.set(xticks=range(n), yticks=range(n), xticklabels=names, yticklabels=names,
           xlabel="predicted class", ylabel="true class")
    threshold = matrix.max() / 2
    for i in range(n):
        for j in range(n):
            text = f"{matrix[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > threshold else "black")
    ax.set_title(title or ("confusion matrix (rows sum to 1)" if normalize else "confusion matrix"))
    return fig


def plot_probability_histograms(
    probs: Any,
    y_true: Any,
    bins: int = 30,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    log: bool = True,
) -> Figure:
    """Histograms of the predicted ``P(positive)``, split by the true class.

    A good classifier puts the negatives near 0 and the positives near 1. Pass a dict to
    compare models side by side (e.g. BCE against focal loss) on the same bins.

    Args:
        probs: Predicted probabilities ``(N,)`` (or ``(N, 1)``), or name -> probabilities.
        y_true: True labels, 0 or 1, ``(N,)``.
        bins: Number of bins on ``[0, 1]`` (default: 30).
        labels: Names of the two classes (default: ``("negative (y=0)", "positive (y=1)")``).
        title: Figure title (default: none).
        log: Log-scaled counts, so that a rare class stays visible (default: True).

    Returns:
        The figure, one axes per model.
    """
    models = dict(probs) if isinstance(probs, Mapping) else {"model": probs}
    y_true = to_numpy(y_true).reshape(-1) > 0.5
    labels = labels or ("negative (y=0)", "positive (y=1)")
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), sharey=True,
                             layout="constrained", squeeze=False)
    for ax, (name, p) in zip(axes[0], models.items()):
        p = to_numpy(p).reshape(-1)
        if p.shape != y_true.shape:
            raise ValueError(f"{name!r}: {p.size} probabilities for {y_true.size} labels")
        classes = ((~y_true, labels[0], "tab:blue"), (y_true, labels[1], "tab:red"))
        for mask, label, color in classes:
            ax.hist(p[mask], bins=edges, alpha=0.6, color=color, label=f"{label}, n={mask.sum()}",
                    log=log)
        ax.set(xlabel="predicted P(positive)", xlim=(0, 1))
        if isinstance(probs, Mapping):
            ax.set_title(name)
        ax.grid(alpha=GRID_ALPHA)
        ax.legend()
    axes[0, 0].set_ylabel("examples" + (" (log scale)" if log else ""))
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- regression fits
def plot_regression_fit(
    x: Any,
    y: Any,
    fits: Mapping[str, LossFn],
    outliers: Any = None,
    title: str | None = None,
    ax: Axes | None = None,
    num: int = 200,
) -> Figure:
    """Scatter of 1-D data with the line (or curve) each fitted model predicts.

    Args:
        x: Inputs ``(N,)`` or ``(N, 1)``.
        y: Targets ``(N,)`` or ``(N, 1)``.
        fits: Name -> callable taking a column tensor ``(M, 1)`` of ``float32`` inputs (what an
            ``nn.Linear(1, 1)`` expects) and returning ``(M,)`` or ``(M, 1)`` predictions.
        outliers: Indices or a boolean mask of the points to highlight (default: none).
        title: Axes title (default: none).
        ax: Draw into this axes instead of a new figure.
        num: Points on each fitted curve (default: 200).

    Returns:
        The figure: the data as one or two scatter collections and one line per fit.
    """
    x, y = to_numpy(x).reshape(-1), to_numpy(y).reshape(-1)
    is_outlier = np.zeros(x.size, dtype=bool)
    if outliers is not None:
        outliers = to_numpy(outliers).reshape(-1)
        if outliers.dtype == bool:
            is_outlier = outliers
        else:
            is_outlier[outliers.astype(np.int64)] = True
    fig, ax = _axes(ax)
    ax.scatter(x[~is_outlier], y[~is_outlier], s=14, alpha=0.6, color="tab:gray", label="data")
    if is_outlier.any():
        ax.scatter(x[is_outlier], y[is_outlier], s=40, marker="x", color="tab:red",
                   label="outliers")
    grid = torch.linspace(float(x.min()), float(x.max()), num).reshape(-1, 1)  # (M, 1)
    with torch.no_grad():
        for name, fn in fits.items():
            ax.plot(grid.numpy().reshape(-1), to_numpy(fn(grid)).reshape(-1), linewidth=2,
                    label=name)
    ax.set(xlabel="x", ylabel="y")
    ax.grid(alpha=GRID_ALPHA)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------- optimisation landscapes
def landscape_grid(
    fn: Callable[[Tensor], Tensor],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    resolution: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate a 2-D function on a grid in one vectorised call.

    Compute it once and pass it to :func:`plot_trajectories` as ``grid=`` to redraw quickly
    (e.g. in a widget).

    Args:
        fn: Maps points of shape ``(..., 2)`` to values of shape ``(...)``.
        xlim: Range of the first coordinate.
        ylim: Range of the second coordinate.
        resolution: Points per axis (default: 200).

    Returns:
        ``(X, Y, Z)``, each ``(resolution, resolution)``, as for ``plt.contour``.

    Raises:
        ValueError: If ``fn`` does not return one value per point.
    """
    xs = torch.linspace(xlim[0], xlim[1], resolution, dtype=torch.float64)
    ys = torch.linspace(ylim[0], ylim[1], resolution, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        Z = fn(torch.stack([X, Y], dim=-1))  # (res, res, 2) -> (res, res)
    if not isinstance(Z, Tensor) or Z.shape != X.shape:
        raise ValueError(
            f"fn must map points of shape (..., 2) to values of shape (...): got "
            f"{tuple(Z.shape) if isinstance(Z, Tensor) else type(Z).__name__} "
            f"for points {tuple(X.shape) + (2,)}"
        )
    return X.numpy(), Y.numpy(), to_numpy(Z)


def _contour_levels(Z: np.ndarray, levels: int, log_levels: bool) -> np.ndarray | int:
    finite = Z[np.isfinite(Z)]
    if finite.size == 0:
        return levels
    low, high = float(finite.min()), float(finite.max())
    if not log_levels or high <= low:
        return levels
    # Geometric spacing above the minimum: many contours near the bottom of a valley, where the
    # optimizers spend their time, and few on the steep walls.
    return low + np.geomspace((high - low) * 1e-3, high - low, levels)


def clip_path(path: Any, xlim: tuple[float, float], ylim: tuple[float, float],
              margin: float = 0.0) -> np.ndarray:
    """A path up to and including its first point outside a window (widened by ``margin``).

    Args:
        path: The points visited, array-like ``(T, 2)``.
        xlim: Range of the first coordinate of the window.
        ylim: Range of the second coordinate of the window.
        margin: How far outside the window a point may be before it counts as outside, as a
            fraction of the window's width and height (default: 0).

    Returns:
        The first points of ``path``, ``(T', 2)`` with ``T' <= T``: all of them when the path
        stays inside, else up to the first point outside (so a drawn line leaves the window).
    """
    points = to_numpy(path).reshape(-1, 2)
    (x0, x1), (y0, y1) = xlim, ylim
    w, h = (x1 - x0) * margin, (y1 - y0) * margin
    outside = ~((points[:, 0] >= x0 - w) & (points[:, 0] <= x1 + w)
                & (points[:, 1] >= y0 - h) & (points[:, 1] <= y1 + h))
    if not outside.any():
        return points
    return points[: int(np.argmax(outside)) + 1]


def plot_trajectories(
    fn: Callable[[Tensor], Tensor] | None,
    trajectories: Mapping[str, Any],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    minima: Sequence[Sequence[float]] = (),
    levels: int | Sequence[float] = 30,
    log_levels: bool = True,
    resolution: int = 200,
    title: str | None = None,
    ax: Axes | None = None,
    grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    legend_loc: str = "upper right",
) -> Figure:
    """Optimizer paths over the contours of a 2-D loss landscape.

    Args:
        fn: The landscape, mapping points ``(..., 2)`` to values ``(...)``; may be None
            when ``grid`` is given.
        trajectories: Name -> the points visited, array-like ``(T, 2)`` (or a list of
            ``(2,)`` tensors).
        xlim: Range of the first coordinate shown.
        ylim: Range of the second coordinate shown.
        minima: Points to mark with a star (default: none).
        levels: Number of contour levels, or the levels themselves (default: 30).
        log_levels: Space the levels geometrically above the minimum, to show narrow valleys
            (default: True).
        resolution: Grid points per axis; lower it for speed (default: 200).
        title: Axes title (default: none).
        ax: Draw into this axes instead of a new figure (e.g. after ``ax.clear()`` in a widget).
        grid: A precomputed ``(X, Y, Z)`` from :func:`landscape_grid`, to skip evaluating
            ``fn`` (default: None).
        legend_loc: Where the legend goes (default: ``"upper right"``; ``"best"`` looks for a
            free spot but is slow with long trajectories).

    Returns:
        The figure: contour lines, one line per trajectory with its start (circle) and end
        (square) marked, stars at the minima, and a legend. A trajectory that leaves the window
        is drawn up to its first point outside (see :func:`clip_path`), without an end marker,
        and its legend entry gives the step where it left.
    """
    if grid is None and fn is None:
        raise ValueError("plot_trajectories needs fn or a precomputed grid=(X, Y, Z)")
    trajectories = {name: to_numpy(points).reshape(-1, 2) for name, points in trajectories.items()}
    X, Y, Z = grid if grid is not None else landscape_grid(fn, xlim, ylim, resolution)
    fig, ax = _axes(ax, figsize=(6.0, 5.0))
    if isinstance(levels, int):
        levels = _contour_levels(Z, levels, log_levels)
    ax.contour(X, Y, Z, levels=levels, cmap="viridis", linewidths=0.8, alpha=0.8)

    for name, points in trajectories.items():
        # A diverging path would sweep the whole window with long segments and hide the others:
        # draw it only up to the step where it leaves the window, and say so in the legend.
        shown = clip_path(points, xlim, ylim)
        if len(shown) < len(points):
            name = f"{name} (leaves the plot at step {len(shown) - 1})"
        (line,) = ax.plot(shown[:, 0], shown[:, 1], marker="o", markersize=2.5,
                          linewidth=1.5, label=name)
        color = line.get_color()
        # Explicit colours keep the colour cycle for the paths only, so a trajectory has the
        # same colour here as in plot_loss_vs_step beside it.
        ax.plot(*points[0], marker="o", markersize=8, markerfacecolor="none", color=color,
                markeredgecolor=color, markeredgewidth=1.5, linestyle="none")
        if len(shown) == len(points):
            ax.plot(*points[-1], marker="s", markersize=7, color=color, linestyle="none")
    handles, _ = ax.get_legend_handles_labels()
    for point in minima:
        ax.plot(point[0], point[1], marker="*", markersize=15, color="gold",
                markeredgecolor="black", linestyle="none")
    if len(minima):
        handles.append(ax.lines[-1])
        handles[-1].set_label("minimum")
    # Proxies (not drawn): explain the start/end markers once, whatever the number of paths.
    handles += [
        Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor="gray",
               linestyle="none", label="start"),
        Line2D([], [], marker="s", color="gray", linestyle="none", label="end"),
    ]
    ax.legend(handles=handles, loc=legend_loc, fontsize=8)
    ax.set(xlim=xlim, ylim=ylim, xlabel="$w_1$", ylabel="$w_2$")
    if title:
        ax.set_title(title)
    return fig
