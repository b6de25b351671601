"""Axis-aligned bounding boxes in ``(x1, y1, x2, y2)`` format: random boxes, IoU, GIoU, drawing.

Chapter 2 uses these for its box-regression demos. Everything is *elementwise* over matching
boxes, ``boxes1[..., i, :]`` against ``boxes2[..., i, :]``, as a box-regression loss pairs each
prediction with its target (not pairwise ``(N, M)`` like ``torchvision.ops.box_iou``), and
differentiable with autograd, so the demos can show which gradients reach the coordinates.

A box is ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and ``y1 <= y2``: its top-left and bottom-right
corners in image coordinates (y grows downwards), or bottom-left and top-right in a plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle
from torch import Tensor


def random_boxes(
    n: int,
    canvas: float = 1.0,
    min_size: float = 0.05,
    max_size: float = 0.5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``n`` random boxes inside the square ``[0, canvas]^2``.

    Widths and heights are drawn uniformly in ``[min_size, max_size] * canvas``, then the top-left
    corner uniformly where the box still fits, so every box has a positive area.

    Args:
        n: Number of boxes.
        canvas: Side of the square the boxes lie in (default: 1.0).
        min_size: Smallest side, as a fraction of ``canvas`` (default: 0.05).
        max_size: Largest side, as a fraction of ``canvas`` (default: 0.5).
        generator: Random generator, for reproducible boxes (default: the global one).
        dtype: Floating dtype of the result (default: ``torch.float32``).

    Returns:
        Boxes of shape ``(n, 4)`` as ``(x1, y1, x2, y2)``.

    Raises:
        ValueError: If the sizes are not ``0 < min_size <= max_size <= 1``.
    """
    if not 0.0 < min_size <= max_size <= 1.0:
        raise ValueError(f"need 0 < min_size <= max_size <= 1, got {min_size} and {max_size}")
    uniform = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    size = (min_size + (max_size - min_size) * uniform[:, 2:]) * canvas  # (n, 2): w, h
    corner = uniform[:, :2] * (canvas - size)  # (n, 2): x1, y1, leaving room for the box
    return torch.cat([corner, corner + size], dim=1).to(dtype)


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box, ``(x2 - x1) * (y2 - y1)``.

    Args:
        boxes: ``(..., 4)`` boxes.

    Returns:
        Areas of shape ``(...)``.
    """
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection and union areas of matching boxes.

    The intersection is the box between the larger top-left and the smaller bottom-right
    corners; its width and height are clamped at 0, so boxes that do not overlap have an
    intersection of exactly 0, and so a gradient of 0 with respect to every coordinate.

    Args:
        boxes1: ``(..., 4)`` boxes.
        boxes2: ``(..., 4)`` boxes, broadcastable with ``boxes1``.

    Returns:
        ``(intersection, union)``, each of shape ``(...)``.
    """
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    size = (bottom_right - top_left).clamp(min=0)
    intersection = size[..., 0] * size[..., 1]
    union = box_area(boxes1) + box_area(boxes2) - intersection
    return intersection, union


def enclosing_box(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """The smallest box containing both boxes of each pair.

    Args:
        boxes1: ``(..., 4)`` boxes.
        boxes2: ``(..., 4)`` boxes, broadcastable with ``boxes1``.

    Returns:
        ``(..., 4)`` boxes.
    """
    top_left = torch.minimum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.maximum(boxes1[..., 2:], boxes2[..., 2:])
    return torch.cat([top_left, bottom_right], dim=-1)


def box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Intersection over union of matching boxes, in ``[0, 1]``.

    Args:
        boxes1: ``(..., 4)`` boxes.
        boxes2: ``(..., 4)`` boxes, broadcastable with ``boxes1``.
        eps: Added to the union so that two zero-area boxes give 0, not NaN (default: 1e-7).

    Returns:
        IoU of shape ``(...)``.
    """
    intersection, union = box_inter_union(boxes1, boxes2)
    return intersection / (union + eps)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Generalized IoU (Rezatofighi et al., 2019) of matching boxes, in ``(-1, 1]``.

    ``GIoU = IoU - (area(C) - union) / area(C)`` where ``C`` is the smallest box enclosing both:
    the penalty grows as the boxes move apart, even when they no longer overlap.

    Args:
        boxes1: ``(..., 4)`` boxes.
        boxes2: ``(..., 4)`` boxes, broadcastable with ``boxes1``.
        eps: Added to both denominators, as torchvision does (default: 1e-7).

    Returns:
        GIoU of shape ``(...)``.
    """
    intersection, union = box_inter_union(boxes1, boxes2)
    area_c = box_area(enclosing_box(boxes1, boxes2))
    return intersection / (union + eps) - (area_c - union) / (area_c + eps)


def draw_boxes(
    ax: Axes,
    boxes: Any,
    labels: Sequence[str] | None = None,
    color: str = "tab:blue",
    linestyle: str = "-",
    linewidth: float = 2.0,
    fill_alpha: float = 0.0,
) -> list[Rectangle]:
    """Draw boxes as rectangles on ``ax`` (y grows upwards, as in any plot).

    The axes limits are widened to show every box; the aspect ratio is left to the caller
    (``ax.set_aspect("equal")`` shows boxes undistorted).

    Args:
        ax: The matplotlib axes.
        boxes: A ``(4,)`` box or ``(N, 4)`` boxes: tensor (detached here), array or nested list.
        labels: One text per box, written at its top-left corner (default: none).
        color: Edge (and fill) colour (default: ``"tab:blue"``).
        linestyle: Edge line style (default: solid).
        linewidth: Edge width (default: 2.0).
        fill_alpha: Opacity of the fill; 0 draws only the outline (default: 0.0).

    Returns:
        The rectangles added, one per box.

    Raises:
        ValueError: If ``boxes`` is not ``(4,)`` or ``(N, 4)``, or ``labels`` has another length.
    """
    values = torch.as_tensor(boxes.detach() if isinstance(boxes, Tensor) else boxes,
                             dtype=torch.float64).cpu()
    if values.ndim == 1:
        values = values.unsqueeze(0)
    if values.ndim != 2 or values.shape[1] != 4:
        raise ValueError(f"boxes must have shape (4,) or (N, 4), got {tuple(values.shape)}")
    if labels is not None and len(labels) != len(values):
        raise ValueError(f"got {len(labels)} labels for {len(values)} boxes")
    patches = []
    for i, (x1, y1, x2, y2) in enumerate(values.tolist()):
        face = (*to_rgb(color), fill_alpha) if fill_alpha > 0 else "none"
        rect = Rectangle((x1, y1), x2 - x1, y2 - y1, edgecolor=color, facecolor=face,
                         linestyle=linestyle, linewidth=linewidth)
        ax.add_patch(rect)
        patches.append(rect)
        if labels is not None:
            ax.annotate(labels[i], (x1, y2), xytext=(2, -2), textcoords="offset points",
                        va="top", ha="left", color=color, fontsize=9)
    ax.update_datalim(values[:, :2].numpy())
    ax.update_datalim(values[:, 2:].numpy())
    ax.autoscale_view()
    return patches

