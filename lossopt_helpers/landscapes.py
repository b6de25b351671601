"""Two-dimensional loss landscapes, and running any torch optimizer on one.

A :class:`Landscape` is a function of two parameters written with torch operations (so autograd
gives its gradient), together with what is needed to draw it well: its minima, a plotting
window, a starting point that makes optimizers behave interestingly, and whether its contour
levels should be log-spaced. Chapters 3 and 4 draw optimizer trajectories on these with
``lossopt_helpers.plots.plot_trajectories`` and explore them with ``lossopt_helpers.widgets``.

>>> from functools import partial
>>> land = rosenbrock()
>>> path = run_optimizer(partial(torch.optim.SGD, lr=1e-3), land, land.start, 100)
>>> path.shape
(101, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "LANDSCAPES",
    "Landscape",
    "beale",
    "himmelblau",
    "quadratic",
    "rosenbrock",
    "run_optimizer",
    "saddle",
]


@dataclass(frozen=True)
class Landscape:
    """A function of two parameters and how to draw it.

    Attributes:
        name: A short human-readable name, e.g. ``"quadratic (condition number 10)"``.
        fn: Maps points of shape ``(..., 2)`` to values of shape ``(...)`` with torch operations,
            so that ``fn(p).backward()`` gives the gradient for a single point ``p`` of shape (2,).
        minima: The global minima ``((x, y), ...)``, for marking on plots (empty if unbounded).
        xlim: The plotting window along x.
        ylim: The plotting window along y.
        start: A good default starting point for optimizers.
        log_levels: Whether contour levels should be log-spaced above the minimum (good for
            valleys whose floor is much flatter than their walls); False for landscapes whose
            values go far below their minimum on the window's scale, such as a saddle.
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    minima: tuple[tuple[float, float], ...]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    start: tuple[float, float]
    log_levels: bool = True

    def __call__(self, points: Tensor) -> Tensor:
        """Evaluate the landscape at ``points`` of shape ``(..., 2)``; returns shape ``(...)``."""
        if points.shape[-1:] != (2,):
            raise ValueError(f"points must have shape (..., 2), got {tuple(points.shape)}")
        return self.fn(points)


# ---------------------------------------------------------------------------------------------
# The landscapes


def quadratic(condition_number: float = 10.0, angle: float = 0.0) -> Landscape:
    r"""A convex quadratic bowl whose Hessian has eigenvalues 1 and ``condition_number``.

    .. math::
        f(x, y) = \tfrac12 \left(u^2 + \kappa\, v^2\right), \qquad
        \begin{pmatrix} u \\ v \end{pmatrix} = R(\theta)^\top \begin{pmatrix} x \\ y \end{pmatrix}

    The largest curvature is :math:`L = \max(1, \kappa)`, so gradient descent converges exactly
    when ``lr < 2 / L``. The minimum is 0 at the origin.

    Args:
        condition_number: :math:`\kappa > 0`, the ratio of the curvatures along the two axes of
            the bowl (default: 10). Large values make a long narrow ravine.
        angle: :math:`\theta`, the rotation of the bowl's axes in radians (default: 0, axes along
            x and y; the steep direction is then y).

    Returns:
        The landscape, drawn on ``[-4, 4] x [-3, 3]`` and started at ``(-3.5, 2)``.
    """
    if condition_number <= 0:
        raise ValueError(f"condition_number must be positive, got {condition_number}")
    kappa, c, s = float(condition_number), math.cos(angle), math.sin(angle)

    def fn(p: Tensor) -> Tensor:
        x, y = p[..., 0], p[..., 1]
        u, v = c * x + s * y, -s * x + c * y
        return 0.5 * (u**2 + kappa * v**2)

    rotated = f", angle {angle:.2g} rad" if angle else ""
    name = f"quadratic (condition number {kappa:g}{rotated})"
    return Landscape(name, fn, ((0.0, 0.0),), (-4.0, 4.0), (-3.0, 3.0), (-3.5, 2.0))


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Landscape:
    r"""Rosenbrock's banana valley: :math:`f(x, y) = (a - x)^2 + b\,(y - x^2)^2`.

    The minimum 0 is at :math:`(a, a^2)`, at the end of a long curved valley whose floor is
    nearly flat: finding the valley is easy, following it is hard.
    """

    def fn(p: Tensor) -> Tensor:
        x, y = p[..., 0], p[..., 1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    xlim = (min(-2.0, a - 3.0), max(2.0, a + 1.0))
    ylim = (-1.0, max(3.0, a * a + 2.0))
    return Landscape(f"Rosenbrock (a={a:g}, b={b:g})", fn, ((a, a * a),), xlim, ylim, (-1.2, 1.0))


def beale() -> Landscape:
    r"""Beale's function, with sharp walls and flat plateaus.

    .. math::
        f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2

    The minimum 0 is at (3, 0.5). Gradients range over many orders of magnitude, which makes a
    single learning rate hard to choose: a good showcase for adaptive methods.
    """

    def fn(p: Tensor) -> Tensor:
        x, y = p[..., 0], p[..., 1]
        return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2
                + (2.625 - x + x * y**3) ** 2)

    return Landscape("Beale", fn, ((3.0, 0.5),), (-4.5, 4.5), (-4.5, 4.5), (1.0, 1.5))


def saddle() -> Landscape:
    r"""A saddle point between two valleys: :math:`f(x, y) = x^2 + \tfrac14 y^4 - \tfrac12 y^2`.

    The origin is a saddle point (gradient zero, curvature +2 along x and -1 along y); the minima
    are at :math:`(0, \pm 1)` with value -1/4. Started almost on the ridge ``y = 0``, gradient
    descent first rushes towards the saddle and then lingers there, because the gradient that
    pushes it off the ridge grows only as fast as its distance from the ridge. Values are negative
    near the minima, so the contour levels are linear.
    """

    def fn(p: Tensor) -> Tensor:
        x, y = p[..., 0], p[..., 1]
        return x**2 + 0.25 * y**4 - 0.5 * y**2

    return Landscape("saddle", fn, ((0.0, 1.0), (0.0, -1.0)), (-2.0, 2.0), (-1.6, 1.6),
                     (-1.8, 0.01), log_levels=False)


def himmelblau() -> Landscape:
    r"""Himmelblau's function, with four minima: :math:`(x^2 + y - 11)^2 + (x + y^2 - 7)^2`.

    Which of the four minima (all of value 0) an optimizer reaches depends on where it starts and
    on its momentum: a simple picture of why initialisation matters in non-convex problems.
    """

    def fn(p: Tensor) -> Tensor:
        x, y = p[..., 0], p[..., 1]
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2

    minima = ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126))
    return Landscape("Himmelblau", fn, minima, (-5.0, 5.0), (-5.0, 5.0), (-0.5, -4.5))


def ravine() -> Landscape:
    """A rotated, badly conditioned quadratic (condition number 50, axes at 30 degrees)."""
    return quadratic(condition_number=50.0, angle=math.pi / 6)


LANDSCAPES: dict[str, Callable[[], Landscape]] = {
    "quadratic": quadratic,
    "ravine": ravine,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "saddle": saddle,
    "himmelblau": himmelblau,
}


# ---------------------------------------------------------------------------------------------
# Running an optimizer


def run_optimizer(
    optimizer_factory: Callable[[list[Tensor]], Any],
    fn: Callable[[Tensor], Tensor],
    start: Sequence[float],
    steps: int,
) -> np.ndarray:
    """Run an optimizer on a two-parameter function and return the path it takes.

    The point is a single float64 parameter of shape (2,). Every step calls
    ``optimizer.step(closure)`` with a closure that zeroes the gradient, evaluates ``fn`` and
    back-propagates, so optimizers that re-evaluate the loss (LBFGS) work too.

    Args:
        optimizer_factory: Called as ``optimizer_factory([param])``; anything that builds a
            ``torch.optim``-style optimizer: a class whose options all have defaults, a
            ``functools.partial(torch.optim.SGD, lr=0.1)``, or a lambda.
        fn: The function to minimise, e.g. a :class:`Landscape`; maps (2,) to a scalar.
        start: The starting point ``(x, y)``.
        steps: The number of optimizer steps.

    Returns:
        A float64 array of shape ``(T, 2)``: the starting point followed by the point after each
        step. ``T = steps + 1`` unless the run diverged: the path then stops at the last point
        where the parameters and the loss were both finite, so ``T < steps + 1`` and a divergence
        is visible on a plot (a path that ends early) instead of being an error. The start is
        always included.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    point = torch.tensor([float(start[0]), float(start[1])], dtype=torch.float64,
                         requires_grad=True)
    optimizer = optimizer_factory([point])
    value_and_grad = _scalar_value_and_grad(fn, (float(start[0]), float(start[1])))

    def closure() -> Tensor:
        if value_and_grad is None:
            optimizer.zero_grad()
            loss = fn(point)
            loss.backward()
            return loss
        # The same gradient without building an autograd graph: about 6x faster for two
        # parameters, which is what keeps the explorer widget's redraw within its budget.
        x, y = point.detach().tolist()
        value, gx, gy = value_and_grad(x, y)
        point.grad = torch.tensor([gx, gy], dtype=torch.float64)
        return torch.tensor(value, dtype=torch.float64)

    path = [point.detach().clone()]
    for _ in range(steps):
        loss = optimizer.step(closure)
        if loss is None:  # an optimizer that does not hand back the closure's loss
            if not _finite(point):
                break
        elif not _finite(loss):
            # The closure saw the last recorded point: its parameters may be finite while its
            # loss overflowed, and such a point is not worth drawing either.
            if len(path) > 1:
                path.pop()
            break
        path.append(point.detach().clone())
    else:
        with torch.no_grad():
            if len(path) > 1 and not _finite(fn(path[-1])):
                path.pop()
    return torch.stack(path).numpy()


class _Dual:
    """A float with its gradient in (x, y): forward-mode differentiation of plain arithmetic.

    The landscapes are polynomials in x and y, so ``+ - * **`` is all they need; anything else
    (a torch function, ``abs``) raises ``TypeError`` and :func:`run_optimizer` uses autograd.
    """

    __slots__ = ("v", "dx", "dy")

    def __init__(self, v: float, dx: float = 0.0, dy: float = 0.0) -> None:
        self.v, self.dx, self.dy = v, dx, dy

    @staticmethod
    def lift(other: Any) -> _Dual:
        if isinstance(other, _Dual):
            return other
        if isinstance(other, int | float) and not isinstance(other, bool):
            return _Dual(float(other))
        raise TypeError(f"not plain arithmetic: {type(other).__name__}")

    def __add__(self, other: Any) -> _Dual:
        o = _Dual.lift(other)
        return _Dual(self.v + o.v, self.dx + o.dx, self.dy + o.dy)

    __radd__ = __add__

    def __neg__(self) -> _Dual:
        return _Dual(-self.v, -self.dx, -self.dy)

    def __sub__(self, other: Any) -> _Dual:
        return self + (-_Dual.lift(other))

    def __rsub__(self, other: Any) -> _Dual:
        return _Dual.lift(other) + (-self)

    def __mul__(self, other: Any) -> _Dual:
        o = _Dual.lift(other)
        return _Dual(self.v * o.v, self.dx * o.v + self.v * o.dx, self.dy * o.v + self.v * o.dy)

    __rmul__ = __mul__

    def __pow__(self, n: Any) -> _Dual:
        if not isinstance(n, int) or n < 1:
            raise TypeError("only positive integer powers are plain polynomial arithmetic")
        below = 1.0  # v ** (n - 1) by multiplication: it overflows to inf, as tensors do,
        for _ in range(n - 1):  # where float ** raises OverflowError
            below *= self.v
        d = n * below
        return _Dual(below * self.v, d * self.dx, d * self.dy)


class _DualPoint:
    """Stands in for a point tensor of shape (2,): ``p[..., 0]`` and ``p[..., 1]`` only."""

    def __init__(self, x: float, y: float) -> None:
        self.coords = (_Dual(x, 1.0, 0.0), _Dual(y, 0.0, 1.0))

    def __getitem__(self, key: Any) -> _Dual:
        if isinstance(key, tuple) and len(key) == 2 and key[0] is Ellipsis and key[1] in (0, 1):
            return self.coords[key[1]]
        raise TypeError(f"unsupported index {key!r}")


def _scalar_value_and_grad(
    fn: Callable[[Tensor], Tensor], start: tuple[float, float]
) -> Callable[[float, float], tuple[float, float, float]] | None:
    """A fast (value, df/dx, df/dy) for ``fn`` if it is plain arithmetic of ``p[..., 0/1]``.

    Checked once against autograd at ``start``; returns None (use autograd) if ``fn`` needs
    anything else or disagrees.
    """
    inner = fn.fn if isinstance(fn, Landscape) else fn

    def value_and_grad(x: float, y: float) -> tuple[float, float, float]:
        out = _Dual.lift(inner(_DualPoint(x, y)))  # type: ignore[arg-type]
        return out.v, out.dx, out.dy

    try:
        value, gx, gy = value_and_grad(*start)
    except Exception:  # not plain arithmetic: autograd handles it
        return None
    point = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    loss = fn(point)
    loss.backward()
    reference = [loss.item(), *point.grad.tolist()]
    if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
               for a, b in zip((value, gx, gy), reference, strict=True)):
        return None
    return value_and_grad


def _finite(value: Any) -> bool:
    if isinstance(value, Tensor) and value.numel() == 1:
        return math.isfinite(value.item())  # much cheaper than torch.isfinite on one value
    return bool(torch.isfinite(torch.as_tensor(value)).all())
