"""Chapter 5 helpers: schedulers' learning-rate traces, the LR-range-test plot, the schedule widget.

>>> lr_trace(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3), 10)   # lrs, momentums
>>> plot_lr_range_test(lrs, losses, suggestion=3e-2)
>>> explore_schedules(yours={"StepLR": StepLR, ...})   # in a notebook cell: torch's beside yours

The widget follows the design of :mod:`lossopt_helpers.widgets`: an Agg figure sent as a PNG to an
``ipywidgets.Image`` (no JupyterLab extension needed; a test can compare the bytes), sliders with
``continuous_update=False``. A schedule is a few hundred scalars, cheap to recompute; what costs is
drawing the axes (ticks and their labels). So the axes are drawn once per schedule, number of steps
and *rounded* y range, kept as a bitmap, and a redraw only paints the curves over it (matplotlib
"blitting"); the y limits snap to round values so that most slider moves keep them.
"""

from __future__ import annotations

import html
import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from lossopt_helpers.plots import _axes

__all__ = ["KINDS", "ScheduleExplorer", "explore_schedules", "lr_trace", "plot_lr_range_test"]


def lr_trace(make_scheduler: Callable[[torch.optim.Optimizer], object], steps: int,
             lr: float = 0.1, momentum: float = 0.9) -> tuple[list[float], list[float]]:
    """Lrs and momentums of group 0 at steps 0..steps-1 for the scheduler ``make_scheduler`` builds.

    The optimizer is a one-parameter SGD with momentum, so OneCycleLR's momentum cycling shows;
    ``scheduler.step()`` follows ``optimizer.step()`` as torch expects (no order warning).
    """
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=lr, momentum=momentum)
    scheduler = make_scheduler(optimizer)
    lrs, moms = [], []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(float(group["lr"]))
        moms.append(float(group.get("momentum", 0.0)))
        optimizer.step()
        scheduler.step()
    return lrs, moms


# ---------------------------------------------------------------------------------------------
# The LR range test's plot


def plot_lr_range_test(lrs: Sequence[float], losses: Sequence[float],
                       suggestion: float | None = None, ax: Axes | None = None,
                       label: str = "smoothed loss", title: str = "LR range test") -> Axes:
    """Loss against learning rate on a log x axis, with the suggested learning rate marked.

    Args:
        lrs: The learning rate of each step of the sweep.
        losses: The (smoothed) loss recorded at each step, same length as ``lrs``.
        suggestion: A learning rate to mark with a vertical line (e.g. ``suggest_lr``'s pick).
        ax: Axes to draw on (default: a new figure).
        label: The curve's legend entry.
        title: The axes' title.

    Returns:
        The axes drawn on.
    """
    if len(lrs) != len(losses):
        raise ValueError(f"lrs and losses differ in length: {len(lrs)} and {len(losses)}")
    _, ax = _axes(ax, figsize=(6.0, 4.0))
    ax.semilogx(lrs, losses, "-", color="tab:blue", label=label)
    if suggestion is not None:
        ax.axvline(suggestion, color="tab:red", linestyle="--",
                   label=f"suggested lr = {suggestion:.2g}")
    finite = np.asarray([v for v in losses if np.isfinite(v)], dtype=float)
    if finite.size:
        # The last points shoot up by design (the sweep stops at divergence): keep the interesting
        # part, the descent and the minimum, readable.
        low, high = finite.min(), finite[0]
        ax.set_ylim(low - 0.1 * (high - low + 1e-12), high + 0.5 * (high - low + 1e-12))
    ax.set(xlabel="learning rate (log scale)", ylabel="loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


# ---------------------------------------------------------------------------------------------
# The schedule widget


@dataclass(frozen=True)
class Param:
    """One slider of the schedule widget: its name, kind and range."""

    name: str
    kind: str  # "int", "float", "log" or "choice"
    value: Any
    low: Any = None
    high: Any = None
    step: Any = None


PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("step_size", "int", 30, 1, 100, 1),
    Param("gamma", "float", 0.1, 0.05, 0.99, 0.01),
    Param("milestone_1", "int", 30, 0, 300, 1),
    Param("milestone_2", "int", 60, 0, 300, 1),
    Param("start_factor", "float", 1 / 3, 0.01, 1.0, 0.01),
    Param("end_factor", "float", 1.0, 0.0, 1.0, 0.01),
    Param("total_iters", "int", 10, 1, 200, 1),
    Param("T_max", "int", 100, 1, 300, 1),
    Param("eta_min", "float", 0.0, 0.0, 0.05, 0.001),
    Param("max_lr", "log", 1.0, -3, 1, 0.1),
    Param("pct_start", "float", 0.3, 0.05, 0.95, 0.05),
    Param("anneal_strategy", "choice", "cos", ("cos", "linear")),
    Param("div_factor", "float", 25.0, 1.0, 100.0, 1.0),
    Param("final_div_factor", "log", 1e4, 0, 5, 0.5),
    Param("three_phase", "choice", False, (False, True)),
    Param("warmup", "int", 10, 1, 100, 1),
)}


def _warmup_cosine(lib: Mapping[str, Any], optimizer: Any, o: Mapping[str, Any], steps: int):
    warmup = min(int(o["warmup"]), steps - 1)
    first = lib["LinearLR"](optimizer, start_factor=o["start_factor"], total_iters=warmup)
    second = lib["CosineAnnealingLR"](optimizer, T_max=max(steps - warmup, 1), eta_min=o["eta_min"])
    return lib["SequentialLR"](optimizer, [first, second], milestones=[warmup])


# kind -> (the classes it needs, the sliders it reads,
#          a builder(classes, optimizer, options, steps) -> scheduler)
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[..., Any]]] = {
    "StepLR": (("StepLR",), ("step_size", "gamma"),
               lambda c, opt, o, n: c["StepLR"](opt, step_size=o["step_size"], gamma=o["gamma"])),
    "MultiStepLR": (("MultiStepLR",), ("milestone_1", "milestone_2", "gamma"),
                    lambda c, opt, o, n: c["MultiStepLR"](
                        opt, milestones=[o["milestone_1"], o["milestone_2"]], gamma=o["gamma"])),
    "ExponentialLR": (("ExponentialLR",), ("gamma",),
                      lambda c, opt, o, n: c["ExponentialLR"](opt, gamma=o["gamma"])),
    "LinearLR": (("LinearLR",), ("start_factor", "end_factor", "total_iters"),
                 lambda c, opt, o, n: c["LinearLR"](opt, start_factor=o["start_factor"],
                                                    end_factor=o["end_factor"],
                                                    total_iters=o["total_iters"])),
    "CosineAnnealingLR": (("CosineAnnealingLR",), ("T_max", "eta_min"),
                          lambda c, opt, o, n: c["CosineAnnealingLR"](opt, T_max=o["T_max"],
                                                                      eta_min=o["eta_min"])),
    "OneCycleLR": (("OneCycleLR",), ("max_lr", "pct_start", "anneal_strategy", "div_factor",
                                     "final_div_factor", "three_phase"),
                   lambda c, opt, o, n: c["OneCycleLR"](
                       opt, max_lr=o["max_lr"], total_steps=n, pct_start=o["pct_start"],
                       anneal_strategy=o["anneal_strategy"], div_factor=o["div_factor"],
                       final_div_factor=o["final_div_factor"], three_phase=o["three_phase"])),
    "warmup + cosine (SequentialLR)": (("SequentialLR", "LinearLR", "CosineAnnealingLR"),
                                       ("warmup", "start_factor", "eta_min"), _warmup_cosine),
}

TORCH_CLASSES: dict[str, Any] = {name: getattr(torch.optim.lr_scheduler, name) for name in (
    "StepLR", "MultiStepLR", "ExponentialLR", "LinearLR", "CosineAnnealingLR", "OneCycleLR",
    "SequentialLR")}


def explore_schedules(yours: Mapping[str, Any] | None = None, kind: str = "OneCycleLR",
                      steps: int = 100) -> ScheduleExplorer:
    """Build the schedule widget (display it by making it a cell's value).

    Args:
        yours: Your scheduler classes by torch's name (``{"StepLR": StepLR, ...}``); each kind
            whose classes are all there is drawn twice, torch's (solid) and yours (dashed).
        kind: The schedule shown first, a key of :data:`KINDS`.
        steps: The number of steps shown first.

    Returns:
        The widget; :meth:`ScheduleExplorer.redraw` redraws on demand and returns the seconds.
    """
    return ScheduleExplorer(yours=yours, kind=kind, steps=steps)


class ScheduleExplorer(widgets.VBox):
    """lr and momentum against step for one schedule, torch's beside yours.

    Attributes:
        kind: Dropdown of :data:`KINDS`.
        lr, momentum, steps: The optimizer's initial lr and momentum, and the steps shown.
        controls: Slider name -> widget, for every name in :data:`PARAMS`; those the kind does
            not read are hidden.
        image: The rendered figure (PNG bytes in ``image.value``).
        legend: HTML: what was drawn, and for your schedule its largest gap to torch's, or its
            error.
        traces: ``"torch"`` / ``"yours"`` -> ``(lrs, momentums)`` drawn at the last redraw.
        errors: ``"torch"`` / ``"yours"`` -> the message shown instead of a curve.
    """

    def __init__(self, yours: Mapping[str, Any] | None = None, kind: str = "OneCycleLR",
                 steps: int = 100) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown schedule {kind!r}; choose from {', '.join(KINDS)}")
        self.yours = dict(yours or {})
        self.traces: dict[str, tuple[list[float], list[float]]] = {}
        self.errors: dict[str, str] = {}
        self.last_redraw_s = 0.0
        self._hold = False
        style = {"description_width": "110px"}
        common = {"continuous_update": False, "style": style}
        self.kind = widgets.Dropdown(options=list(KINDS), value=kind, description="schedule",
                                     style=style, layout=_layout())
        self.lr = widgets.FloatLogSlider(value=0.1, base=10, min=-4, max=0, step=0.1,
                                         readout_format=".1e", description="initial lr",
                                         layout=_layout(), **common)
        self.momentum = widgets.FloatSlider(value=0.9, min=0.0, max=0.99, step=0.01,
                                            description="momentum", layout=_layout(), **common)
        self.steps = widgets.IntSlider(value=steps, min=10, max=300, description="steps",
                                       layout=_layout(), **common)
        self.controls: dict[str, widgets.Widget] = {p.name: _control(p, common)
                                                    for p in PARAMS.values()}
        self.image = widgets.Image(format="png")
        self.legend = widgets.HTML()
        self._figure = Figure(figsize=(9.6, 3.6), dpi=80)
        self._canvas = FigureCanvasAgg(self._figure)
        self._lr_ax, self._mom_ax = self._figure.subplots(1, 2)
        self._figure.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.9, wspace=0.25)
        self._lines = {
            (who, panel): ax.plot([], [], style_, color=color, linewidth=lw, label=label,
                                  animated=True)[0]
            for who, style_, color, lw, label in (("torch", "-", "tab:blue", 2.5, "torch"),
                                                  ("yours", "--", "tab:orange", 1.5, "yours"))
            for panel, ax in (("lr", self._lr_ax), ("momentum", self._mom_ax))
        }
        self._lr_ax.set(xlabel="step", ylabel="lr (group 0)", title="learning rate")
        self._mom_ax.set(xlabel="step", ylabel="momentum (group 0)", title="momentum")
        for ax in (self._lr_ax, self._mom_ax):
            ax.grid(alpha=0.3)
        self._lr_ax.legend(loc="upper right", fontsize=8)
        self._background: Any = None
        self._background_key: tuple | None = None
        super().__init__([
            widgets.HBox([widgets.VBox([self.kind, self.lr, self.momentum, self.steps]),
                          widgets.VBox(list(self.controls.values())[:8]),
                          widgets.VBox(list(self.controls.values())[8:])]),
            self.image, self.legend,
        ])
        for control in (self.kind, self.lr, self.momentum, self.steps, *self.controls.values()):
            control.observe(self._on_change, names="value")
        self.redraw()

    def _on_change(self, change: Any = None) -> None:
        if not self._hold:
            self.redraw()

    def options(self) -> dict[str, Any]:
        """The values of the sliders the selected kind reads."""
        _, names, _ = KINDS[self.kind.value]
        return {name: self.controls[name].value for name in names}

    def _trace(self, classes: Mapping[str, Any]) -> tuple[list[float], list[float]] | str:
        _, _, build = KINDS[self.kind.value]
        steps, options = int(self.steps.value), self.options()
        try:
            return lr_trace(lambda opt: build(classes, opt, options, steps), steps,
                            lr=float(self.lr.value), momentum=float(self.momentum.value))
        except Exception as exc:  # invalid options, or the learner's class raised: show it
            detail = str(exc) or ("not implemented yet" if isinstance(exc, NotImplementedError)
                                  else "")
            return f"{type(exc).__name__}: {detail}"

    def redraw(self) -> float:
        """Recompute the traces of the selected schedule and redraw; return the seconds taken."""
        begin = time.perf_counter()
        needed, names, _ = KINDS[self.kind.value]
        for name, control in self.controls.items():
            control.layout.display = None if name in names else "none"
        candidates = {"torch": TORCH_CLASSES}
        if all(name in self.yours for name in needed):
            candidates["yours"] = {**TORCH_CLASSES, **{n: self.yours[n] for n in needed}}
        self.traces, self.errors = {}, {}
        lines = []
        for who in ("torch", "yours"):
            for panel in ("lr", "momentum"):
                self._lines[who, panel].set_data([], [])
            if who not in candidates:
                if self.yours:
                    lines.append(f"<b>yours</b>: no {html.escape(', '.join(needed))} given")
                continue
            result = self._trace(candidates[who])
            if isinstance(result, str):
                self.errors[who] = result
                lines.append(f"<b>{who}</b>: no curve: {html.escape(result)}")
                continue
            self.traces[who] = result
            t = np.arange(len(result[0]))
            self._lines[who, "lr"].set_data(t, result[0])
            self._lines[who, "momentum"].set_data(t, result[1])
        if "torch" in self.traces:
            lrs = self.traces["torch"][0]
            lines.insert(0, f"<b>torch</b>: lr from {lrs[0]:.3g}, max {max(lrs):.3g}, "
                            f"last {lrs[-1]:.3g}")
        if "torch" in self.traces and "yours" in self.traces:
            gap = max(np.max(np.abs(np.subtract(a, b)))
                      for a, b in zip(self.traces["torch"], self.traces["yours"]))
            verdict = "same as torch's" if gap <= 1e-9 else "DIFFERS from torch's"
            lines.append(f"<b>yours</b>: {verdict} (largest gap {gap:.2g})")
        lrs = [v for lrs, _ in self.traces.values() for v in lrs]
        moms = [v for _, moms in self.traces.values() for v in moms]
        key = (self.kind.value, int(self.steps.value), _nice_range(lrs, 0.0),
               _nice_range(moms, 0.05))
        if key != self._background_key:
            self._lr_ax.set_xlim(0, max(key[1] - 1, 1))
            self._mom_ax.set_xlim(0, max(key[1] - 1, 1))
            self._lr_ax.set_ylim(*key[2])
            self._mom_ax.set_ylim(*key[3])
            self._lr_ax.set_title(f"learning rate: {self.kind.value}", fontsize=10)
            self._canvas.draw()  # everything but the (animated) curves
            self._background = self._canvas.copy_from_bbox(self._figure.bbox)
            self._background_key = key
        self._canvas.restore_region(self._background)
        for (who, panel), line in self._lines.items():
            if who in self.traces:
                (self._lr_ax if panel == "lr" else self._mom_ax).draw_artist(line)
        self.image.value = _png(self._canvas)
        self.legend.value = "<br>".join(lines)
        self.last_redraw_s = time.perf_counter() - begin
        return self.last_redraw_s


def _nice_range(values: Sequence[float], step: float) -> tuple[float, float]:
    """Axis limits around ``values`` that snap to round numbers, so that small changes keep them.

    With ``step == 0`` (learning rates): from 0 (or a round negative value) up to the next of
    1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten above 5% headroom. Otherwise
    (momentums): the multiples of ``step`` around the values.
    """
    if not values:
        return (0.0, 1.0)
    low, high = float(min(values)), float(max(values))
    if step:
        return (math.floor((low - step / 5) / step) * step,
                math.ceil((high + step / 5) / step) * step)

    def ceil_nice(x: float) -> float:
        if x <= 0:
            return 1.0
        exponent = math.floor(math.log10(x))
        # float("6e-1") is 0.6 exactly as printed; 6 * 10.0**-1 is 0.6000000000000001
        return next(value for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
                    if (value := float(f"{m}e{exponent}")) >= x)

    top = ceil_nice(1.05 * high) if high > 0 else 1.0
    bottom = 0.0 if low >= 0 else -ceil_nice(-1.05 * low)
    return (bottom, top)


def _layout() -> widgets.Layout:
    # One Layout per widget: a shared one would hide every slider when one is hidden.
    return widgets.Layout(width="330px")


def _control(param: Param, common: Mapping[str, Any]) -> widgets.Widget:
    common = {**common, "layout": _layout()}
    if param.kind == "int":
        return widgets.IntSlider(value=param.value, min=param.low, max=param.high,
                                 step=param.step, description=param.name, **common)
    if param.kind == "float":
        return widgets.FloatSlider(value=param.value, min=param.low, max=param.high,
                                   step=param.step, description=param.name, **common)
    if param.kind == "log":
        return widgets.FloatLogSlider(value=param.value, base=10, min=param.low, max=param.high,
                                      step=param.step, readout_format=".2g",
                                      description=param.name, **common)
    return widgets.Dropdown(options=list(param.low), value=param.value, description=param.name,
                            style=common["style"], layout=common["layout"])


def _png(canvas: FigureCanvasAgg) -> bytes:
    rgba = np.asarray(canvas.buffer_rgba())
    buffer = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
