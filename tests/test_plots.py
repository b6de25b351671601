"""Tests for lossopt_helpers.plots: each figure has the panels, lines, labels and data it claims."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from lossopt_helpers import plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labelled_lines(ax):
    """Data lines, without reference lines such as axhline/axvline (labels starting with _)."""
    return [line for line in ax.lines if not line.get_label().startswith("_")]


def legend_labels(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


AS_INPUT = {
    "tensor": torch.as_tensor,
    "array": np.asarray,
    "list": lambda a: np.asarray(a).tolist(),
}


def zeros_like(r):
    return torch.zeros_like(r)


REGRESSION_LOSSES = {
    "MSE": lambda r: F.mse_loss(r, zeros_like(r), reduction="none"),
    "L1": lambda r: F.l1_loss(r, zeros_like(r), reduction="none"),
    "Huber": lambda r: F.huber_loss(r, zeros_like(r), reduction="none", delta=1.0),
}


def bce_positive(z):
    return F.binary_cross_entropy_with_logits(z, torch.ones_like(z), reduction="none")


# ---------------------------------------------------------------- training curves
def test_loss_curves_with_metric_have_two_panels_with_the_history():
    history = {"train_loss": [1.0, 0.5, 0.25], "val_loss": [1.1, 0.6, 0.4],
               "train_metric": [0.5, 0.7, 0.9], "val_metric": [0.4, 0.6, 0.8], "lr": [0.1] * 3}
    fig = plots.plot_loss_curves(history, title="run", log_scale=True)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, metric_ax = fig.axes
    assert legend_labels(loss_ax) == legend_labels(metric_ax) == ["train", "validation"]
    np.testing.assert_array_equal(loss_ax.lines[1].get_ydata(), history["val_loss"])
    np.testing.assert_array_equal(metric_ax.lines[0].get_ydata(), history["train_metric"])
    np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), [1, 2, 3])  # epochs count from 1
    assert loss_ax.get_yscale() == "log" and metric_ax.get_yscale() == "linear"
    assert loss_ax.get_ylabel() == "loss" and metric_ax.get_ylabel() == "accuracy"
    assert fig.get_suptitle() == "run"


def test_loss_curves_without_validation_or_metric_have_one_panel_one_line():
    fig = plots.plot_loss_curves({"train_loss": torch.tensor([3.0, 2.0]), "val_loss": [],
                                  "train_metric": [], "val_metric": []})
    assert len(fig.axes) == 1 and legend_labels(fig.axes[0]) == ["train"]
    assert fig.axes[0].get_yscale() == "linear"


@pytest.mark.parametrize("kind", AS_INPUT)
def test_loss_vs_step_one_line_per_run_from_step_zero(kind):
    runs = {"SGD": AS_INPUT[kind]([4.0, 2.0, 1.0, 0.5]), "Adam": AS_INPUT[kind]([4.0, 1.0, 0.1])}
    fig = plots.plot_loss_vs_step(runs, title="steps")
    (ax,) = fig.axes
    assert legend_labels(ax) == ["SGD", "Adam"] and ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.lines[1].get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [4.0, 2.0, 1.0, 0.5])
    assert ax.get_title() == "steps"


def test_loss_vs_step_accepts_a_list_of_scalar_tensors_and_an_axes():
    fig, ax = plt.subplots()
    losses = [torch.tensor(2.0, requires_grad=True) * k for k in (3, 2, 1)]
    assert plots.plot_loss_vs_step({"run": losses}, log_scale=False, ax=ax) is fig
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [6.0, 4.0, 2.0])
    assert ax.get_yscale() == "linear"


# ---------------------------------------------------------------- losses as functions
def test_loss_vs_logit_draws_each_loss_at_the_right_values():
    def focal(z):
        return (1 - torch.sigmoid(z)) ** 2 * bce_positive(z)

    fig = plots.plot_loss_vs_logit({"BCE": bce_positive, "focal": focal}, logits=(-4, 4), num=81)
    (ax,) = fig.axes
    lines = labelled_lines(ax)
    assert [line.get_label() for line in lines] == legend_labels(ax) == ["BCE", "focal"]
    z, bce = lines[0].get_data()
    assert z[0] == -4 and z[-1] == 4 and len(z) == 81
    assert bce[40] == pytest.approx(np.log(2))  # z = 0: -log(1/2)
    np.testing.assert_allclose(lines[1].get_ydata(), (1 - 1 / (1 + np.exp(-z))) ** 2 * bce)


def test_loss_vs_logit_refuses_a_reduced_loss():
    with pytest.raises(ValueError, match="'mean BCE'.*reduction='none'"):
        plots.plot_loss_vs_logit({"mean BCE": lambda z: bce_positive(z).mean()})


def test_loss_and_gradient_reads_back_the_analytic_derivatives():
    fig = plots.plot_loss_and_gradient(REGRESSION_LOSSES, x=(-3, 3), num=61, title="robust")
    loss_ax, grad_ax = fig.axes
    assert legend_labels(loss_ax) == legend_labels(grad_ax) == ["MSE", "L1", "Huber"]
    r, mse_grad = labelled_lines(grad_ax)[0].get_data()
    for point in (-3.0, -1.0, 0.5, 2.0, 3.0):
        i = int(np.argmin(np.abs(r - point)))
        assert r[i] == pytest.approx(point)
        assert mse_grad[i] == pytest.approx(2 * point)  # d r^2 / dr = 2r
    np.testing.assert_allclose(labelled_lines(loss_ax)[0].get_ydata(), r**2)
    np.testing.assert_allclose(labelled_lines(grad_ax)[1].get_ydata(), np.sign(r))
    huber_grad = labelled_lines(grad_ax)[2].get_ydata()
    np.testing.assert_allclose(huber_grad, np.clip(r, -1, 1), atol=1e-12)
    for left, right in zip(labelled_lines(loss_ax), labelled_lines(grad_ax)):
        assert left.get_color() == right.get_color()
    assert fig.get_suptitle() == "robust"


def test_loss_and_gradient_refuses_a_loss_that_leaves_autograd():
    with pytest.raises(ValueError, match="'numpy' is not differentiable"):
        plots.plot_loss_and_gradient({"numpy": lambda r: torch.as_tensor(r.detach().numpy() ** 2)})


def test_loss_and_gradient_works_with_a_float32_loss():
    fig = plots.plot_loss_and_gradient({"cube": lambda r: r.float() ** 3}, x=(0, 2), num=3)
    np.testing.assert_allclose(labelled_lines(fig.axes[1])[0].get_ydata(), [0, 3, 12])


# ---------------------------------------------------------------- classification results
@pytest.mark.parametrize("kind", AS_INPUT)
def test_confusion_matrix_counts(kind):
    y_true = AS_INPUT[kind]([0, 0, 1, 1, 1, 2])
    y_pred = AS_INPUT[kind]([0, 1, 1, 1, 2, 2])
    fig = plots.plot_confusion_matrix(y_true, y_pred, class_names=["a", "b", "c"])
    ax = fig.axes[0]
    expected = [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    np.testing.assert_array_equal(ax.images[0].get_array(), expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.texts] == [str(v) for row in expected for v in row]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert len(fig.axes) == 2  # the matrix and its colour bar


def test_confusion_matrix_normalized_rows_and_logits():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [5.0, 0.0]])  # argmax 0, 1, 0, 0
    fig = plots.plot_confusion_matrix(torch.tensor([0, 1, 1, 1]), logits, normalize=True)
    matrix = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(matrix, [[1.0, 0.0], [2 / 3, 1 / 3]])
    assert fig.axes[0].texts[2].get_text() == "0.67"


def test_probability_histograms_compare_models_on_the_same_bins():
    y = torch.tensor([0, 0, 0, 0, 1, 1], dtype=torch.float32)
    probs = {"BCE": torch.tensor([0.1, 0.2, 0.2, 0.9, 0.8, 0.3]), "focal": np.linspace(0, 1, 6)}
    fig = plots.plot_probability_histograms(probs, y, bins=10, title="calibration")
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["BCE", "focal"]
    for ax in fig.axes:
        negatives, positives = [c for c in ax.containers if isinstance(c, BarContainer)]
        assert len(negatives) == len(positives) == 10
        assert sum(bar.get_height() for bar in negatives) == 4
        assert sum(bar.get_height() for bar in positives) == 2
        assert legend_labels(ax) == ["negative (y=0), n=4", "positive (y=1), n=2"]
        assert ax.get_xlim() == (0.0, 1.0)
    heights = [bar.get_height() for bar in fig.axes[0].containers[1]]
    assert heights[3] == 1 and heights[8] == 1  # positives at 0.3 and 0.8
    assert fig.get_suptitle() == "calibration"


def test_probability_histograms_single_model_and_labels():
    fig = plots.plot_probability_histograms(np.array([[0.2], [0.7]]), [0, 1], bins=5, log=False,
                                            labels=("healthy", "ill"))
    (ax,) = fig.axes
    assert legend_labels(ax) == ["healthy, n=1", "ill, n=1"] and ax.get_yscale() == "linear"
    with pytest.raises(ValueError, match="3 probabilities for 2 labels"):
        plots.plot_probability_histograms([0.1, 0.2, 0.3], [0, 1])


# ---------------------------------------------------------------- regression fits
@pytest.mark.parametrize("outliers", [[1, 3], np.array([False, True, False, True, False])],
                         ids=["indices", "mask"])
def test_regression_fit_highlights_outliers_and_draws_each_fit(outliers):
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    y = torch.tensor([1.0, 9.0, 5.0, -4.0, 9.0])
    torch.manual_seed(0)
    linear = nn.Linear(1, 1)
    fig = plots.plot_regression_fit(x, y, {"line": lambda g: 2 * g + 1, "model": linear},
                                    outliers=outliers, title="fit")
    (ax,) = fig.axes
    data, highlighted = ax.collections
    np.testing.assert_array_equal(highlighted.get_offsets(), [[1.0, 9.0], [3.0, -4.0]])
    np.testing.assert_array_equal(data.get_offsets(), [[0.0, 1.0], [2.0, 5.0], [4.0, 9.0]])
    line, model = labelled_lines(ax)
    grid, values = line.get_data()
    assert grid[0] == 0 and grid[-1] == 4
    np.testing.assert_allclose(values, 2 * grid + 1, rtol=1e-6)
    w, b = linear.weight.item(), linear.bias.item()
    np.testing.assert_allclose(model.get_ydata(), w * grid + b, rtol=1e-5, atol=1e-6)
    assert legend_labels(ax) == ["data", "outliers", "line", "model"]


def test_regression_fit_without_outliers_has_one_scatter():
    x = np.arange(4.0).reshape(4, 1)  # (N, 1) as well as (N,)
    fig = plots.plot_regression_fit(x, np.arange(4.0), {"id": lambda g: g})
    assert len(fig.axes[0].collections) == 1
    assert legend_labels(fig.axes[0]) == ["data", "id"]


# ---------------------------------------------------------------- landscapes
def rosenbrock(p):
    x, y = p[..., 0], p[..., 1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


TRAJECTORIES = {
    "SGD": [[-1.5, 2.0], [-1.0, 1.0], [0.0, 0.5], [0.9, 0.8]],
    "Adam": [[-1.5, 2.0], [-0.5, 0.0], [1.0, 1.0]],
}


@pytest.mark.parametrize("kind", AS_INPUT)
def test_trajectories_contours_paths_endpoints_minima_and_legend(kind):
    paths = {name: AS_INPUT[kind](points) for name, points in TRAJECTORIES.items()}
    fig = plots.plot_trajectories(rosenbrock, paths, xlim=(-2, 2), ylim=(-1, 3),
                                  minima=[(1.0, 1.0)], resolution=50, title="Rosenbrock")
    (ax,) = fig.axes
    assert any(isinstance(c, ContourSet) for c in ax.collections)
    assert legend_labels(ax) == ["SGD", "Adam", "minimum", "start", "end"]
    sgd, adam = labelled_lines(ax)[:2]
    np.testing.assert_allclose(np.column_stack(sgd.get_data()), TRAJECTORIES["SGD"], rtol=1e-6)
    markers = {(line.get_marker(), tuple(np.ravel(line.get_data()))) for line in ax.lines}
    assert ("o", (-1.5, 2.0)) in markers  # start
    assert ("s", (1.0, 1.0)) in markers  # Adam's end
    sgd_end = [
        line for line in ax.lines
        if line.get_marker() == "s" and line.get_color() == sgd.get_color()
    ]
    np.testing.assert_allclose(np.ravel(sgd_end[0].get_data()), [0.9, 0.8], rtol=1e-6)
    assert ("*", (1.0, 1.0)) in markers  # the minimum
    assert ax.get_xlim() == (-2, 2) and ax.get_ylim() == (-1, 3) and ax.get_title() == "Rosenbrock"


def test_trajectories_accept_a_list_of_parameter_tensors():
    w = torch.tensor([-1.0, 2.0], requires_grad=True)
    path = [w * 1.0, w * 0.5, w * 0.0]  # still attached to the graph
    fig = plots.plot_trajectories(rosenbrock, {"GD": path}, (-2, 2), (-1, 3), resolution=20)
    np.testing.assert_allclose(labelled_lines(fig.axes[0])[0].get_xdata(), [-1.0, -0.5, 0.0])
    assert legend_labels(fig.axes[0]) == ["GD", "start", "end"]  # no minima given


def test_trajectories_from_a_precomputed_grid_into_an_axes():
    grid = plots.landscape_grid(rosenbrock, (-2, 2), (-1, 3), resolution=40)
    X, Y, Z = grid
    assert X.shape == Y.shape == Z.shape == (40, 40)
    assert Z[0, 0] == pytest.approx(rosenbrock(torch.tensor([X[0, 0], Y[0, 0]])).item())
    assert X[0, -1] == 2 and Y[-1, 0] == 3  # "xy" indexing, as plt.contour expects
    fig, axes = plt.subplots(1, 2)
    assert plots.plot_trajectories(None, TRAJECTORIES, (-2, 2), (-1, 3), grid=grid,
                                   ax=axes[1]) is fig
    assert any(isinstance(c, ContourSet) for c in axes[1].collections)
    assert not axes[0].collections and not axes[0].lines


def test_trajectory_contour_levels_are_log_spaced_above_the_minimum():
    def bowl(p):
        return (p**2).sum(-1) + 5.0  # minimum value 5

    fig = plots.plot_trajectories(bowl, {}, (-1, 1), (-1, 1), levels=10, resolution=41)
    contour = next(c for c in fig.axes[0].collections if isinstance(c, ContourSet))
    gaps = np.diff(np.asarray(contour.levels) - 5.0)
    assert contour.levels[0] > 5.0 and np.all(gaps > 0)
    np.testing.assert_allclose(gaps[1:] / gaps[:-1], gaps[1] / gaps[0])  # geometric
    linear = plots.plot_trajectories(bowl, {}, (-1, 1), (-1, 1), levels=[5.5, 6.0],
                                     log_levels=True, resolution=41)
    contour = next(c for c in linear.axes[0].collections if isinstance(c, ContourSet))
    np.testing.assert_array_equal(contour.levels, [5.5, 6.0])  # explicit levels kept


def test_landscape_function_must_return_one_value_per_point():
    with pytest.raises(ValueError, match="needs fn or a precomputed grid"):
        plots.plot_trajectories(None, TRAJECTORIES, (-2, 2), (-1, 3))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        plots.landscape_grid(lambda p: p.sum(), (-1, 1), (-1, 1), resolution=5)


def test_to_numpy_detaches_and_keeps_integers():
    t = torch.ones(3, requires_grad=True) * 2
    assert plots.to_numpy(t).tolist() == [2.0, 2.0, 2.0]
    assert plots.to_numpy(torch.tensor([1, 2])).dtype.kind == "i"
    assert plots.to_numpy([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])]).shape == (2, 2)


def test_clip_path_stops_at_the_first_point_outside_the_window():
    path = np.array([[0.0, 0.0], [0.5, -0.5], [0.0, 2.0], [0.0, -4.0], [0.0, 0.1]])  # (T, 2)
    shown = plots.clip_path(path, (-1, 1), (-1, 1))
    np.testing.assert_array_equal(shown, path[:3])  # up to and including the first exit
    np.testing.assert_array_equal(plots.clip_path(path, (-1, 1), (-1, 1), margin=1.0), path[:4])
    np.testing.assert_array_equal(plots.clip_path(path[:2], (-1, 1), (-1, 1)), path[:2])


def test_trajectories_leaving_the_window_are_cut_and_say_so():
    paths = {"diverges": [[0.5, 0.5], [-0.8, -0.8], [3.0, 3.0], [-9.0, -9.0]],
             "converges": [[0.5, 0.5], [0.1, 0.1], [0.0, 0.0]]}
    fig = plots.plot_trajectories(lambda w: (w**2).sum(-1), paths, (-1, 1), (-1, 1), resolution=20)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "diverges (leaves the plot at step 2)" in labels and "converges" in labels
    (line,) = [l for l in ax.get_lines() if l.get_label().startswith("diverges")]
    assert len(line.get_xdata()) == 3  # the far point at step 3 is not drawn
    plt.close(fig)
