"""Tests for lossopt_helpers.diagnostics: the numbers are the ones defined, the figures show them."""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lossopt_helpers import diagnostics as dg  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))


def test_grad_norms_are_the_norms_of_the_weight_gradients():
    model = mlp()
    model(torch.randn(5, 4)).sum().backward()
    norms = dg.grad_norms(model)
    assert list(norms) == ["0.weight", "2.weight", "4.weight"]
    for name, p in model.named_parameters():
        if name in norms:
            assert norms[name] == pytest.approx(float(p.grad.norm()), rel=1e-12)
    assert len(dg.grad_norms(model, weights_only=False)) == 6


def test_grad_norms_of_a_parameter_without_gradient_is_nan():
    model = mlp()
    assert all(math.isnan(v) for v in dg.grad_norms(model).values())


def test_update_ratios_measure_the_step_relative_to_the_weights():
    model = mlp()
    before = dg.snapshot(model)
    with torch.no_grad():
        model[0].weight.mul_(1.01)  # a step of 1 % of the weights
    ratios = dg.update_ratios(before, model)
    assert ratios["0.weight"] == pytest.approx(0.01, rel=1e-5)
    assert ratios["2.weight"] == 0.0
    before["2.weight"].zero_()
    assert dg.update_ratios(before, model)["2.weight"] == math.inf


def test_snapshot_is_a_detached_copy():
    model = mlp()
    before = dg.snapshot(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(before["0.weight"], model[0].weight)
    assert not before["0.weight"].requires_grad


def test_record_activations_keeps_each_activation_and_removes_its_hooks():
    model = mlp()
    x = torch.randn(6, 4)
    acts = dg.record_activations(model, x)
    assert list(acts) == ["1", "3"]
    assert torch.allclose(acts["1"], torch.sigmoid(model[0](x)))
    assert acts["3"].shape == (6, 2) and (acts["3"] >= 0).all()
    assert all(not m._forward_hooks for m in model.modules())


def test_gradient_flow_plot_has_one_log_line_per_network():
    flows = {"a": {"w1": 1.0, "w2": 0.1, "w3": 0.01}, "b": {"w1": 1.0, "w2": 2.0}}
    fig = dg.plot_gradient_flow(flows)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1.0, 0.1, 0.01])


def test_update_ratio_plot_draws_the_reference_level():
    fig = dg.plot_update_ratios({"0.weight": [1e-2, 1e-3], "2.weight": [1e-4, 1e-4]})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    levels = [line for line in ax.lines if list(line.get_ydata()) == [1e-3, 1e-3]]
    assert levels, "no reference line at 1e-3"
    assert len(ax.get_legend().get_texts()) == 3


def test_histograms_are_fractions_per_layer():
    fig = dg.plot_histograms({"a": torch.rand(1000), "b": torch.rand(10, 10)}, bins=10)
    ax = fig.axes[0]
    assert len(ax.patches) == 2 and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_anomaly_report_names_the_backward_function_quietly():
    def step():
        x = torch.zeros(3, requires_grad=True)
        torch.sqrt((x**2).sum()).backward()  # d sqrt / ds = inf at 0, times ds/dx = 0: NaN

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escaped would raise here
        report = dg.anomaly_report(step)
    assert report.error is not None and "PowBackward0" in report.error
    assert "Traceback of forward call" in report.forward_trace
    assert report.warnings == []


def test_anomaly_report_of_a_clean_run_is_empty():
    def step():
        x = torch.ones(3, requires_grad=True)
        torch.sqrt((x**2).sum()).backward()

    report = dg.anomaly_report(step)
    assert report.error is None and report.forward_trace == ""
