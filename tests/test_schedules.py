import math

import numpy as np
import torch

from lossopt_helpers.schedules import lr_trace


def test_step_lr_trace_matches_closed_form():
    lrs, _ = lr_trace(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 7)
    assert lrs == [0.1 * 0.5 ** (t // 3) for t in range(7)]


def test_cosine_trace_ends_at_eta_min():
    lrs, _ = lr_trace(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10), 11)
    assert math.isclose(lrs[0], 0.1) and abs(lrs[10]) < 1e-12


def test_one_cycle_moves_momentum_against_lr():
    lrs, moms = lr_trace(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=20), 20)
    peak = max(range(20), key=lrs.__getitem__)
    assert moms[peak] == min(moms) and moms[0] > moms[peak]


# ---------------------------------------------------------------------------------------------
# The LR-range-test plot and the schedule widget

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lossopt_helpers.schedules import KINDS, explore_schedules, plot_lr_range_test  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_range_test_plot_has_log_axis_labels_and_marks_the_suggestion():
    lrs = [1e-5 * 10 ** (k / 10) for k in range(50)]
    losses = [2.0 - 0.02 * k if k < 40 else 2.0 + (k - 40) for k in range(50)]
    ax = plot_lr_range_test(lrs, losses, suggestion=1e-2)
    assert ax.get_xscale() == "log" and ax.get_xlabel() and ax.get_ylabel()
    assert any("suggested" in text.get_text() for text in ax.get_legend().get_texts())
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="length"):
        plot_lr_range_test([1e-3, 1e-2], [1.0])


class LearnerStepLR(torch.optim.lr_scheduler.StepLR):
    """A learner's StepLR that is right (torch's own, under another name)."""


class OffByOneStepLR(torch.optim.lr_scheduler.LRScheduler):
    """A learner's StepLR that decays one step late: (t + 1) // step_size is off by one."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** (max(self.last_epoch - 1, 0) // self.step_size)
                for base in self.base_lrs]


class Unfinished:
    """The student version: the constructor raises."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError()


def test_widget_draws_torch_and_yours_and_tells_them_apart():
    explorer = explore_schedules(yours={"StepLR": LearnerStepLR}, kind="StepLR", steps=60)
    explorer.controls["step_size"].value = 7
    assert bytes(explorer.image.value).startswith(PNG)
    torch_lrs, yours_lrs = explorer.traces["torch"][0], explorer.traces["yours"][0]
    assert torch_lrs == yours_lrs and torch_lrs[7] == pytest.approx(0.01)
    assert "same as torch" in explorer.legend.value
    before = bytes(explorer.image.value)
    explorer.yours["StepLR"] = OffByOneStepLR
    explorer.redraw()
    assert "DIFFERS" in explorer.legend.value and bytes(explorer.image.value) != before


def test_widget_shows_errors_instead_of_crashing_and_hides_unused_sliders():
    explorer = explore_schedules(yours={"OneCycleLR": Unfinished}, kind="OneCycleLR", steps=40)
    assert "NotImplementedError" in explorer.errors["yours"]
    assert "yours" not in explorer.traces and "torch" in explorer.traces
    lrs, moms = explorer.traces["torch"]
    peak = int(np.argmax(lrs))
    assert moms[peak] == min(moms)
    assert explorer.controls["step_size"].layout.display == "none"
    assert explorer.controls["pct_start"].layout.display is None
    explorer.controls["pct_start"].value = 0.95
    explorer.kind.value = "StepLR"  # an invalid option of one kind never reaches another
    assert "torch" in explorer.traces


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_draws_with_torch_and_follows_the_sliders(kind):
    explorer = explore_schedules(kind=kind, steps=50)
    assert not explorer.errors, explorer.errors
    lrs, _ = explorer.traces["torch"]
    assert len(lrs) == 50 and all(np.isfinite(lrs))
    explorer.steps.value = 80
    assert len(explorer.traces["torch"][0]) == 80
    assert explorer.last_redraw_s < 2.0


def test_axis_limits_snap_to_round_values_so_small_moves_keep_them():
    from lossopt_helpers.schedules import _nice_range

    assert _nice_range([0.04, 1.0], 0.0) == (0.0, 1.2)
    assert _nice_range([0.04, 1.05], 0.0) == (0.0, 1.2)  # a small move: same axes, no redraw
    assert _nice_range([-0.1, 0.5], 0.0) == (-0.12, 0.6)
    low, high = _nice_range([0.85, 0.95], 0.05)
    assert math.isclose(low, 0.8) and math.isclose(high, 1.0)
    assert _nice_range([], 0.0) == (0.0, 1.0)


def test_widget_redraws_only_the_curves_while_the_axes_stay():
    explorer = explore_schedules(kind="CosineAnnealingLR", steps=100)
    key = explorer._background_key
    explorer.controls["T_max"].value = 60  # same schedule, steps and y range
    assert explorer._background_key == key
    explorer.steps.value = 150  # a new x range: the axes are redrawn
    assert explorer._background_key != key
