"""Tests for lossopt_helpers.widgets: the explorer builds headless, redraws, and never crashes."""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np
import pytest
import torch

from lossopt_helpers.landscapes import LANDSCAPES, quadratic, run_optimizer
from lossopt_helpers.widgets import DEFAULT_OPTIMIZERS, Explorer, explore

PNG = b"\x89PNG\r\n\x1a\n"


def image(explorer: Explorer) -> bytes:
    """The rendered figure's bytes (ipywidgets hands them back as a memoryview)."""
    return bytes(explorer.image.value)


class LearnerSGD(torch.optim.Optimizer):
    """A learner's optimizer: plain SGD with momentum, through the torch.optim interface."""

    def __init__(self, params, lr=1e-3, momentum=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        with torch.enable_grad():
            loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if group["momentum"] and "momentum_buffer" in state:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(p.grad)
                elif group["momentum"]:
                    state["momentum_buffer"] = p.grad.clone()
                step = state.get("momentum_buffer", p.grad)
                p.add_(step, alpha=-group["lr"])
        return loss


class Unfinished(torch.optim.Optimizer):
    """The student version of the exercise: builds, then raises at step time."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        raise NotImplementedError()


@pytest.fixture(scope="module")
def explorer() -> Explorer:
    return explore()


def test_builds_headless_as_a_widget(explorer):
    assert isinstance(explorer, widgets.Widget)
    assert image(explorer).startswith(PNG)
    assert list(explorer.landscape.options) == list(LANDSCAPES)
    assert set(explorer.selected) == set(DEFAULT_OPTIMIZERS)
    assert [n for n, box in explorer.selected.items() if box.value] == ["SGD"]
    assert "SGD" in explorer.legend.value and "after 100 steps" in explorer.legend.value
    for slider in (explorer.lr, explorer.momentum, explorer.steps, explorer.x0, explorer.y0):
        assert slider.continuous_update is False  # recompute on release, not on every pixel
    assert isinstance(explorer.lr, widgets.FloatLogSlider)


def test_redraw_returns_its_duration_and_draws_the_paths(explorer):
    seconds = explorer.redraw()
    assert isinstance(seconds, float) and 0 < seconds < 60
    land = explorer.current_landscape()
    expected = run_optimizer(functools.partial(torch.optim.SGD, lr=explorer.lr.value,
                                               momentum=explorer.momentum.value),
                             land, (explorer.x0.value, explorer.y0.value), explorer.steps.value)
    assert np.array_equal(explorer.paths["SGD"], expected)


def test_changing_the_learning_rate_changes_the_image(explorer):
    before, path_before = image(explorer), explorer.paths["SGD"]
    explorer.lr.value = explorer.lr.value * 2
    assert image(explorer).startswith(PNG)
    assert image(explorer) != before
    assert not np.array_equal(explorer.paths["SGD"], path_before)


def test_every_control_redraws():
    explorer = explore()
    moves = [(explorer.momentum, 0.5), (explorer.nesterov, True), (explorer.steps, 40),
             (explorer.x0, explorer.x0.value + 0.5), (explorer.y0, explorer.y0.value - 0.5),
             (explorer.selected["Adam"], True), (explorer.landscape, "rosenbrock")]
    for control, value in moves:
        before = image(explorer)
        control.value = value
        assert image(explorer) != before, f"{control.description} did not redraw"
    assert set(explorer.paths) == {"SGD", "Adam"}
    assert len(explorer.paths["SGD"]) <= 41


def test_a_landscape_change_moves_the_start_sliders_to_its_window():
    explorer = explore()
    for name in LANDSCAPES:
        explorer.landscape.value = name
        land = explorer.current_landscape()
        assert (explorer.x0.min, explorer.x0.max) == land.xlim
        assert (explorer.y0.min, explorer.y0.max) == land.ylim
        assert (explorer.x0.value, explorer.y0.value) == pytest.approx(land.start, abs=1e-9)
        assert tuple(explorer.paths["SGD"][0]) == pytest.approx(land.start, abs=1e-9)


def test_a_learners_optimizer_class_can_be_added():
    explorer = explore(optimizers={"my SGD": LearnerSGD})
    assert explorer.selected["my SGD"].value and explorer.selected["SGD"].value
    explorer.momentum.value = 0.9
    assert "my SGD" in explorer.legend.value
    # Same options, same arithmetic: the learner's path is torch's path.
    np.testing.assert_allclose(explorer.paths["my SGD"], explorer.paths["SGD"], rtol=1e-12)
    explorer.nesterov.value = True  # LearnerSGD has no nesterov: ignored for it, said so
    assert "my SGD" in explorer.paths and "ignores nesterov" in explorer.legend.value


def test_an_invalid_option_combination_shows_a_message_instead_of_crashing():
    explorer = explore()
    explorer.selected["Adam"].value = True
    explorer.momentum.value = 0.0
    explorer.nesterov.value = True  # torch.optim.SGD refuses Nesterov without momentum
    assert "SGD" not in explorer.paths and "Adam" in explorer.paths
    assert "Nesterov momentum requires a momentum and zero dampening" in explorer.errors["SGD"]
    assert "ValueError" in explorer.legend.value and "no path" in explorer.legend.value
    assert "ignores nesterov" in explorer.legend.value  # Adam takes neither option
    explorer.momentum.value = 0.9
    assert "SGD" in explorer.paths and not explorer.errors


def test_an_unfinished_exercise_shows_its_error_and_the_others_still_draw():
    explorer = explore(optimizers={"my SGD": Unfinished})
    assert explorer.errors == {"my SGD": "NotImplementedError: not implemented yet"}
    assert "SGD" in explorer.paths
    assert "my SGD" in explorer.legend.value and "NotImplementedError" in explorer.legend.value


def test_a_diverging_run_is_reported_not_raised():
    explorer = explore(landscapes={"bowl": quadratic(condition_number=10.0)})
    explorer.lr.value = 0.5  # above 2 / L = 0.2
    assert "diverged" in explorer.legend.value or "left the window" in explorer.legend.value
    assert np.all(np.isfinite(explorer.paths["SGD"]))


def test_nothing_selected():
    explorer = explore()
    explorer.selected["SGD"].value = False
    assert explorer.paths == {} and "select at least one optimizer" in explorer.legend.value


def test_the_legend_escapes_names():
    explorer = explore(optimizers={"<b>mine</b>": LearnerSGD})
    assert "&lt;b&gt;mine&lt;/b&gt;" in explorer.legend.value
