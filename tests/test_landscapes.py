"""Tests for lossopt_helpers.landscapes: the functions, their minima and windows, run_optimizer."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from lossopt_helpers.landscapes import (LANDSCAPES, Landscape, beale, himmelblau, quadratic,
                                        rosenbrock, run_optimizer, saddle)
from lossopt_helpers.landscapes import _scalar_value_and_grad

ALL = {name: factory() for name, factory in LANDSCAPES.items()}


def gradient(land: Landscape, point) -> torch.Tensor:
    p = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(land(p), p)
    return g


def hessian(land: Landscape, point) -> torch.Tensor:
    return torch.autograd.functional.hessian(land, torch.tensor(point, dtype=torch.float64))


@pytest.mark.parametrize("name", list(ALL))
def test_every_landscape_is_well_formed(name):
    land = ALL[name]
    assert isinstance(land, Landscape) and land.name
    (x0, x1), (y0, y1) = land.xlim, land.ylim
    assert x0 < x1 and y0 < y1
    assert x0 <= land.start[0] <= x1 and y0 <= land.start[1] <= y1
    for point in land.minima:
        assert x0 <= point[0] <= x1 and y0 <= point[1] <= y1, f"minimum {point} outside window"
    # Vectorised: a grid of points (..., 2) gives values (...) equal to pointwise evaluation.
    grid = torch.stack(torch.meshgrid(torch.linspace(x0, x1, 7, dtype=torch.float64),
                                      torch.linspace(y0, y1, 5, dtype=torch.float64),
                                      indexing="xy"), dim=-1)  # (5, 7, 2)
    values = land(grid)
    assert values.shape == (5, 7)
    assert torch.allclose(values[2, 3], land(grid[2, 3]))


@pytest.mark.parametrize("name", list(ALL))
def test_minima_are_stationary_and_lowest(name):
    land = ALL[name]
    assert land.minima, name
    best = min(land(torch.tensor(m, dtype=torch.float64)).item() for m in land.minima)
    for point in land.minima:
        assert gradient(land, point).abs().max() < 1e-4, f"{point} is not stationary"
        eigenvalues = torch.linalg.eigvalsh(hessian(land, point))
        assert eigenvalues.min() > 0, f"{point} is not a minimum"
        value = land(torch.tensor(point, dtype=torch.float64)).item()
        assert value == pytest.approx(best, abs=1e-8)
    (x0, x1), (y0, y1) = land.xlim, land.ylim
    grid = torch.stack(torch.meshgrid(torch.linspace(x0, x1, 201, dtype=torch.float64),
                                      torch.linspace(y0, y1, 201, dtype=torch.float64),
                                      indexing="xy"), dim=-1)
    assert land(grid).min().item() >= best - 1e-9, "a point of the window is below the minima"


def test_quadratic_has_the_requested_curvatures_and_rotation():
    land = quadratic(condition_number=25.0, angle=math.pi / 6)
    h = hessian(land, (0.3, -0.7))
    eigenvalues, vectors = torch.linalg.eigh(h)
    assert torch.allclose(eigenvalues, torch.tensor([1.0, 25.0], dtype=torch.float64))
    steep = vectors[:, 1].abs()  # the steep axis is y rotated by 30 degrees
    expected = torch.tensor([math.sin(math.pi / 6), math.cos(math.pi / 6)], dtype=torch.float64)
    assert torch.allclose(steep, expected)
    with pytest.raises(ValueError, match="positive"):
        quadratic(condition_number=0)


def test_gradient_descent_on_the_quadratic_obeys_the_stability_bound():
    land = quadratic(condition_number=10.0)  # L = 10
    for lr, converges in ((0.19, True), (0.21, False)):
        path = run_optimizer(functools.partial(torch.optim.SGD, lr=lr), land, land.start, 200)
        assert (np.linalg.norm(path[-1]) < np.linalg.norm(path[0])) == converges, lr
        # Along the steep axis the error is multiplied by exactly 1 - lr * L per step.
        assert path[-1, 1] == pytest.approx(land.start[1] * (1 - lr * 10) ** 200, rel=1e-9)


def test_named_functions_take_their_textbook_values():
    assert rosenbrock()(torch.tensor([0.0, 0.0])).item() == pytest.approx(1.0)
    assert rosenbrock(a=2.0, b=10.0).minima == ((2.0, 4.0),)
    assert beale()(torch.tensor([0.0, 0.0])).item() == pytest.approx(14.203125)
    assert himmelblau()(torch.tensor([0.0, 0.0])).item() == pytest.approx(170.0)
    land = saddle()
    assert gradient(land, (0.0, 0.0)).abs().max() == 0
    eigenvalues = torch.linalg.eigvalsh(hessian(land, (0.0, 0.0)))
    assert eigenvalues.min() < 0 < eigenvalues.max(), "the origin must be a saddle point"
    assert not land.log_levels


def test_points_must_have_two_coordinates():
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        quadratic()(torch.zeros(3))


@pytest.mark.parametrize("factory", [
    functools.partial(torch.optim.SGD, lr=1e-3, momentum=0.9),
    lambda params: torch.optim.Adam(params, lr=0.01),
    torch.optim.Adagrad,  # a class whose options all have defaults
    functools.partial(torch.optim.LBFGS, lr=0.5, max_iter=5),  # needs the closure
])
def test_run_optimizer_accepts_any_optimizer_factory(factory):
    land = rosenbrock()
    path = run_optimizer(factory, land, land.start, 25)
    assert path.shape == (26, 2) and path.dtype == np.float64
    assert tuple(path[0]) == land.start
    assert np.all(np.isfinite(path))
    assert land(torch.from_numpy(path[-1])).item() < land(torch.tensor(land.start)).item()


def test_run_optimizer_matches_a_hand_written_loop():
    land = beale()
    path = run_optimizer(functools.partial(torch.optim.SGD, lr=1e-3, momentum=0.9, nesterov=True),
                         land, land.start, 30)
    w = torch.tensor(land.start, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=1e-3, momentum=0.9, nesterov=True)
    for t in range(30):
        optimizer.zero_grad()
        land(w).backward()
        optimizer.step()
        # run_optimizer differentiates the polynomial in forward mode (no autograd graph), so
        # the path agrees with autograd's to rounding, not bit for bit.
        np.testing.assert_allclose(path[t + 1], w.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_the_fast_gradient_equals_autograds(name):
    land = LANDSCAPES[name]()
    value_and_grad = _scalar_value_and_grad(land, land.start)
    assert value_and_grad is not None, f"{name} should be plain arithmetic of x and y"
    rng = np.random.default_rng(0)
    for x, y in rng.uniform(-3, 3, size=(20, 2)):
        p = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
        loss = land(p)
        loss.backward()
        np.testing.assert_allclose(value_and_grad(x, y), [loss.item(), *p.grad.tolist()],
                                   rtol=1e-12, atol=1e-12)


def test_a_function_that_is_not_plain_arithmetic_falls_back_to_autograd():
    def wavy(p):  # torch.sin cannot take the fast path
        return torch.sin(p[..., 0]) + p[..., 1] ** 2

    assert _scalar_value_and_grad(wavy, (0.5, 0.5)) is None
    path = run_optimizer(functools.partial(torch.optim.SGD, lr=0.1), wavy, (0.5, 0.5), 3)
    w = torch.tensor([0.5, 0.5], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=0.1)
    for t in range(3):
        optimizer.zero_grad()
        wavy(w).backward()
        optimizer.step()
        assert np.array_equal(path[t + 1], w.detach().numpy())


def test_run_optimizer_stops_at_divergence_instead_of_failing():
    land = rosenbrock()
    path = run_optimizer(functools.partial(torch.optim.SGD, lr=0.1), land, land.start, 100)
    assert 2 <= len(path) < 101, "a diverging run ends early"
    assert np.all(np.isfinite(path))
    assert math.isfinite(land(torch.from_numpy(path[-1])).item()), "the last point's loss is finite"


def test_run_optimizer_with_zero_steps_and_a_custom_optimizer():
    class Frozen(torch.optim.Optimizer):
        """An optimizer that never moves, and (unlike torch's) does not return the loss."""

        def __init__(self, params):
            super().__init__(params, {})

        def step(self, closure=None):
            closure()

    land = himmelblau()
    assert run_optimizer(Frozen, land, (1.0, 2.0), 0).tolist() == [[1.0, 2.0]]
    assert np.all(run_optimizer(Frozen, land, (1.0, 2.0), 5) == [1.0, 2.0])
    with pytest.raises(ValueError, match="steps"):
        run_optimizer(Frozen, land, (1.0, 2.0), -1)


def test_run_optimizer_propagates_the_optimizers_errors():
    class Unfinished(torch.optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

        def step(self, closure=None):
            raise NotImplementedError

    with pytest.raises(NotImplementedError):
        run_optimizer(Unfinished, quadratic(), (1.0, 1.0), 3)
