"""Looking inside a network while it trains: gradients and updates per layer, histograms, NaNs.

Chapter 6 (debugging training) uses these to turn "print the gradients" into pictures:

* :func:`grad_norms` and :func:`plot_gradient_flow`: the gradient norm of every layer, for
  several networks on one log-scale axis (vanishing and exploding gradients at a glance);
* :func:`snapshot`, :func:`update_ratios` and :func:`plot_update_ratios`: how far each step
  moves each layer, relative to the layer's size (healthy training sits around 1e-3);
* :func:`record_activations` and :func:`plot_histograms`: what each layer outputs (saturated
  sigmoids, dead ReLUs) or what its gradients look like;
* :func:`anomaly_report`: runs a step under ``torch.autograd.detect_anomaly`` and returns what
  it reports, instead of letting the warnings reach stderr.

Every plotting function returns its matplotlib ``Figure``, accepts ``ax=`` to draw into an
existing axes, and never calls ``plt.show()``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn

GRID_ALPHA = 0.3
HEALTHY_UPDATE_RATIO = 1e-3  # Karpathy's rule of thumb for ||lr * update|| / ||w|| per step


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.0)) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def _weights(model: nn.Module, weights_only: bool) -> list[tuple[str, Tensor]]:
    """Named parameters, without biases and other 1-d parameters when ``weights_only``."""
    return [(name, p) for name, p in model.named_parameters()
            if not weights_only or p.dim() > 1]


# ---------------------------------------------------------------- gradients per layer
def grad_norms(model: nn.Module, weights_only: bool = True) -> dict[str, float]:
    """The 2-norm of each parameter's gradient, in the order of ``named_parameters``.

    Args:
        model: A model after ``backward()``.
        weights_only: Skip biases and other 1-d parameters (default: True): the weight
            matrices tell the story of gradient flow.

    Returns:
        ``{name: ||p.grad||}``; a parameter without a gradient maps to ``nan``.
    """
    return {name: (float(p.grad.detach().norm()) if p.grad is not None else math.nan)
            for name, p in _weights(model, weights_only)}


def plot_gradient_flow(
    flows: Mapping[str, Mapping[str, float]],
    ax: Axes | None = None,
    title: str = "gradient norm per layer",
) -> Figure:
    """One line per network: the gradient norm of each layer, input side on the left.

    Args:
        flows: ``{network label: {layer name: gradient norm}}``, e.g. from :func:`grad_norms`.
            The networks may have different layer names; the x axis is the layer's position.
        ax: Axes to draw into (default: a new figure).
        title: The panel's title.

    Returns:
        The figure. The y axis is logarithmic: a straight falling line is a gradient that
        shrinks by the same factor at every layer.
    """
    fig, ax = _axes(ax, (6.5, 4.0))
    longest = 0
    for label, norms in flows.items():
        values = np.array(list(norms.values()), dtype=float)
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=label)
        longest = max(longest, len(values))
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, longest + 1))
    ax.set_xlabel("layer (1 = next to the input)")
    ax.set_ylabel("gradient norm  ||dL/dW||")
    ax.set_title(title)
    ax.grid(alpha=GRID_ALPHA, which="both")
    ax.legend()
    return fig


# ---------------------------------------------------------------- updates per layer
def snapshot(model: nn.Module, weights_only: bool = True) -> dict[str, Tensor]:
    """Detached copies of the parameters, to measure the next update against."""
    return {name: p.detach().clone() for name, p in _weights(model, weights_only)}


def update_ratios(before: Mapping[str, Tensor], model: nn.Module) -> dict[str, float]:
    """How far the last step moved each parameter, relative to its size.

    .. math:: r = \\frac{\\|W_{t} - W_{t-1}\\|}{\\|W_{t-1}\\|}

    Args:
        before: :func:`snapshot` taken before ``optimizer.step()``.
        model: The model after the step.

    Returns:
        ``{name: r}`` for every name in ``before`` (``inf`` for a parameter that was all zeros
        and moved, ``0`` for one that was zero and stayed).
    """
    params = dict(model.named_parameters())
    ratios = {}
    for name, old in before.items():
        step = float((params[name].detach() - old).norm())
        size = float(old.norm())
        ratios[name] = step / size if size > 0 else (math.inf if step > 0 else 0.0)
    return ratios


def plot_update_ratios(
    history: Mapping[str, Sequence[float]],
    ax: Axes | None = None,
    target: float = HEALTHY_UPDATE_RATIO,
    title: str = "update / weight ratio per step",
) -> Figure:
    """The update-to-weight ratio of each layer over the steps, with the rule-of-thumb level.

    Args:
        history: ``{layer name: [ratio at step 1, step 2, ...]}``.
        ax: Axes to draw into (default: a new figure).
        target: Where to draw the dashed reference line (default: 1e-3).
        title: The panel's title.

    Returns:
        The figure, with a logarithmic y axis.
    """
    fig, ax = _axes(ax)
    for name, ratios in history.items():
        ax.plot(np.arange(1, len(ratios) + 1), np.asarray(ratios, dtype=float), label=name)
    ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"{target:g} (rule of thumb)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("||W_t - W_{t-1}|| / ||W_{t-1}||")
    ax.set_title(title)
    ax.grid(alpha=GRID_ALPHA, which="both")
    ax.legend(fontsize="small")
    return fig


# ---------------------------------------------------------------- activations and histograms
def record_activations(
    model: nn.Module, x: Tensor, kinds: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.ReLU, nn.Tanh)
) -> dict[str, Tensor]:
    """Run ``model(x)`` without gradients and keep the output of every layer of the given kinds.

    Args:
        model: The model; its train/eval mode is left as it is.
        x: A batch of inputs.
        kinds: Module types whose outputs are recorded (default: the usual activations).

    Returns:
        ``{module name: output}``, in the order the modules ran.
    """
    outputs: dict[str, Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            def hook(_module: nn.Module, _inputs: Any, output: Tensor, name: str = name) -> None:
                outputs[name] = output.detach().clone()
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def plot_histograms(
    values: Mapping[str, Tensor],
    ax: Axes | None = None,
    bins: int = 50,
    value_range: tuple[float, float] | None = None,
    xlabel: str = "value",
    title: str = "histogram per layer",
) -> Figure:
    """Overlaid outline histograms, one per layer (activations, gradients or weights).

    Args:
        values: ``{layer name: tensor}``; every element counts once.
        ax: Axes to draw into (default: a new figure).
        bins: Number of bins (default: 50), shared by all layers.
        value_range: The binned range (default: the smallest and largest value overall).
        xlabel: What the values are.
        title: The panel's title.

    Returns:
        The figure; the y axis is the fraction of each layer's values per bin.
    """
    fig, ax = _axes(ax)
    arrays = {name: v.detach().double().flatten().numpy() for name, v in values.items()}
    if value_range is None:
        finite = [a[np.isfinite(a)] for a in arrays.values()]
        finite = [a for a in finite if a.size]
        low = min(float(a.min()) for a in finite) if finite else 0.0
        high = max(float(a.max()) for a in finite) if finite else 1.0
        value_range = (low, high if high > low else low + 1.0)
    for name, array in arrays.items():
        weights = np.full(array.size, 1.0 / max(array.size, 1))
        ax.hist(array, bins=bins, range=value_range, weights=weights, histtype="step",
                linewidth=1.5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of values")
    ax.set_title(title)
    ax.grid(alpha=GRID_ALPHA)
    ax.legend(fontsize="small")
    return fig


# ---------------------------------------------------------------- NaN hunting
@dataclasses.dataclass
class AnomalyReport:
    """What ``torch.autograd.detect_anomaly`` said about one run.

    Attributes:
        error: The message of the exception the run raised (e.g. ``"Function 'SqrtBackward0'
            returned nan values in its 0th output."``), or ``None`` if it finished.
        forward_trace: The warning anomaly mode attaches: which backward function failed and
            the traceback of the forward call that created it ("" if none).
        warnings: Every other warning message raised during the run.
    """

    error: str | None
    forward_trace: str
    warnings: list[str]


def anomaly_report(fn: Callable[[], Any], check_nan: bool = True) -> AnomalyReport:
    """Run ``fn()`` (a forward and backward pass) under anomaly detection, quietly.

    Anomaly mode makes ``backward`` raise as soon as a backward function returns NaN, and warns
    with the traceback of the *forward* operation that produced it. In a notebook both would
    reach stderr; here they are captured and returned.

    Args:
        fn: A function of no arguments that runs the computation and calls ``backward()``.
        check_nan: Passed to ``torch.autograd.detect_anomaly`` (default: True).

    Returns:
        An :class:`AnomalyReport`.
    """
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autograd.detect_anomaly(check_nan=check_nan):
            try:
                fn()
            except RuntimeError as exc:
                error = str(exc)
    messages = [str(w.message) for w in caught]
    trace = [m for m in messages if "Traceback of forward call" in m]
    others = [m for m in messages if m not in trace and "Anomaly Detection has been enabled" not in m]
    return AnomalyReport(error=error, forward_trace="\n".join(trace), warnings=others)
