"""An interactive explorer: optimizers racing on 2-D loss landscapes, redrawn on every change.

>>> explore(optimizers={"my SGD": SGD})      # in a notebook cell: torch's and your own

Pick a landscape and one or more optimizers; sliders set the learning rate, momentum, Nesterov,
the number of steps and the starting point. The left panel shows the paths over the contours,
the right one the gap to the minimum, :math:`f(w_t) - f^*`, on a log scale; below, one line per
optimizer gives its final value, or says why it has no path (it diverged, its options are
invalid, or its ``step`` raised, e.g. ``NotImplementedError`` in an unfinished exercise).

Design, for a redraw that stays well under 100 ms on a 2-core CPU:

* The figure is drawn with matplotlib's Agg canvas and sent as a PNG to an ``ipywidgets.Image``.
  That needs no extra JupyterLab extension (``ipympl`` is not part of the course), renders the
  same in JupyterLab, Notebook 7 and VS Code, and a test can tell that the plot changed by
  comparing the image's bytes.
* The expensive part, the contours, is drawn once per landscape (and per number of steps, which
  sets the right panel's x axis) and kept as a bitmap; a redraw restores that bitmap and draws
  only the paths on top (matplotlib "blitting"). ``plot_trajectories`` draws everything afresh
  each time, which takes about 200 ms here: fine for a static figure, too slow for a slider.
* Sliders use ``continuous_update=False``: the paths are recomputed when a slider is released,
  not for every pixel it moves through, so the kernel never queues up stale redraws.
"""

from __future__ import annotations

import functools
import html
import inspect
import io
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from lossopt_helpers.landscapes import LANDSCAPES, Landscape, run_optimizer
from lossopt_helpers.plots import clip_path, landscape_grid

__all__ = ["DEFAULT_OPTIMIZERS", "Explorer", "explore"]

DEFAULT_OPTIMIZERS: dict[str, Callable[..., Any]] = {
    "SGD": torch.optim.SGD,
    "Adam": torch.optim.Adam,
    "RMSprop": torch.optim.RMSprop,
    "Adagrad": torch.optim.Adagrad,
}
# A learning rate that makes plain gradient descent do something sensible on each landscape;
# the slider is reset to it when the landscape changes.
SUGGESTED_LR = {"quadratic": 0.03, "ravine": 0.01, "rosenbrock": 1e-3, "beale": 3e-3,
                "saddle": 0.01, "himmelblau": 3e-3}
COLORS = ("tab:red", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown",
          "tab:pink", "tab:olive", "tab:cyan", "black")
GAP_FLOOR = 1e-12  # f - f* is drawn on a log axis; exact convergence sits on this floor
FAR = 100.0  # paths are drawn until they leave the window enlarged this many times


def explore(
    optimizers: Mapping[str, Callable[..., Any]] | None = None,
    landscapes: Mapping[str, Landscape | Callable[[], Landscape]] | None = None,
) -> Explorer:
    """Build the explorer widget (display it by making it a cell's value).

    Args:
        optimizers: Extra optimizers by name, e.g. ``{"my SGD": SGD}``: classes (or factories)
            called as ``cls([param], lr=..., momentum=..., nesterov=...)`` with only the options
            their signature accepts. They are added to torch's SGD, Adam, RMSprop and Adagrad,
            and selected at the start together with torch's SGD.
        landscapes: Landscapes by name (a :class:`Landscape` or a factory of one); default
            :data:`lossopt_helpers.landscapes.LANDSCAPES`.

    Returns:
        The widget; its :meth:`Explorer.redraw` redraws on demand and returns the time taken.
    """
    return Explorer(optimizers=optimizers, landscapes=landscapes)


class Explorer(widgets.VBox):
    """The explorer widget. Build it with :func:`explore`.

    Attributes:
        landscape: Dropdown of landscape names.
        selected: Name -> checkbox choosing whether that optimizer is drawn.
        lr, momentum, nesterov, steps, x0, y0: The option widgets.
        image: The rendered figure (PNG bytes in ``image.value``).
        legend: HTML with one line per selected optimizer: its final value or its error.
        paths: Name -> the path (T, 2) drawn at the last redraw, for the optimizers that ran.
        errors: Name -> the message shown instead of a path at the last redraw.
    """

    def __init__(
        self,
        optimizers: Mapping[str, Callable[..., Any]] | None = None,
        landscapes: Mapping[str, Landscape | Callable[[], Landscape]] | None = None,
    ) -> None:
        extra = dict(optimizers or {})
        self.optimizers = {**DEFAULT_OPTIMIZERS, **extra}
        self._landscapes = dict(landscapes or LANDSCAPES)
        if not self._landscapes:
            raise ValueError("at least one landscape is needed")
        self.paths: dict[str, np.ndarray] = {}
        self.errors: dict[str, str] = {}
        self._cache: OrderedDict[tuple, np.ndarray | str] = OrderedDict()
        self._hold = False
        self.last_redraw_s = 0.0  # seconds the last redraw took

        slider = {"continuous_update": False, "style": {"description_width": "80px"},
                  "layout": widgets.Layout(width="340px")}
        self.landscape = widgets.Dropdown(options=list(self._landscapes), description="landscape",
                                          style=slider["style"])
        initial = {"SGD", *extra}
        self.selected = {name: widgets.Checkbox(value=name in initial, description=name,
                                                indent=False, layout=widgets.Layout(width="auto"))
                         for name in self.optimizers}
        self.lr = widgets.FloatLogSlider(value=0.01, base=10, min=-4, max=1, step=0.1,
                                         readout_format=".1e", description="lr", **slider)
        self.momentum = widgets.FloatSlider(value=0.0, min=0.0, max=0.99, step=0.01,
                                            description="momentum", **slider)
        self.nesterov = widgets.Checkbox(value=False, description="nesterov", indent=False)
        self.steps = widgets.IntSlider(value=100, min=1, max=300, description="steps", **slider)
        self.x0 = widgets.FloatSlider(value=0.0, min=-1.0, max=1.0, step=0.01,
                                      description="start x", **slider)
        self.y0 = widgets.FloatSlider(value=0.0, min=-1.0, max=1.0, step=0.01,
                                      description="start y", **slider)
        self.image = widgets.Image(format="png")
        self.legend = widgets.HTML()

        self._figure = Figure(figsize=(9.6, 4.2), dpi=80)
        self._canvas = FigureCanvasAgg(self._figure)
        self._ax, self._gap_ax = self._figure.subplots(1, 2, width_ratios=(1.15, 1))
        self._figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.91, wspace=0.22)
        self._background: Any = None
        self._background_key: tuple | None = None
        self._artists: dict[str, tuple[Any, Any, Any]] = {}
        # Everything right of the left panel belongs to the right one (its tick labels too).
        divider = self._ax.get_position().x1 + 0.01
        self._gap_eraser = Rectangle((divider, 0), 1 - divider, 1, facecolor="white",
                                     edgecolor="none", transform=self._figure.transFigure,
                                     animated=True)
        self._figure.add_artist(self._gap_eraser)
        self._start_marker = self._ax.plot([], [], "o", markersize=9, markerfacecolor="none",
                                           markeredgecolor="black", animated=True)[0]

        super().__init__([
            widgets.HBox([self.landscape, *self.selected.values()]),
            widgets.HBox([widgets.VBox([self.lr, self.momentum, self.nesterov]),
                          widgets.VBox([self.steps, self.x0, self.y0])]),
            self.image,
            self.legend,
        ])
        self.landscape.observe(self._on_landscape, names="value")
        for control in (self.lr, self.momentum, self.nesterov, self.steps, self.x0, self.y0,
                        *self.selected.values()):
            control.observe(self._on_change, names="value")
        self._on_landscape()

    # -- events -------------------------------------------------------------------------------
    def _on_change(self, change: Any = None) -> None:
        if not self._hold:
            self.redraw()

    def _on_landscape(self, change: Any = None) -> None:
        land = self.current_landscape()
        self._hold = True
        try:
            _set_range(self.x0, *land.xlim, land.start[0])
            _set_range(self.y0, *land.ylim, land.start[1])
            self.lr.value = SUGGESTED_LR.get(self.landscape.value, self.lr.value)
        finally:
            self._hold = False
        self.redraw()

    # -- public -------------------------------------------------------------------------------
    def current_landscape(self) -> Landscape:
        """The selected :class:`Landscape` (built once per name)."""
        name = self.landscape.value
        land = self._landscapes[name]
        if not isinstance(land, Landscape):
            land = self._landscapes[name] = land()
        return land

    def options_for(self, name: str) -> tuple[dict[str, Any], list[str]]:
        """The keyword options optimizer ``name`` is built with, and those it does not take."""
        wanted = {"lr": float(self.lr.value), "momentum": float(self.momentum.value),
                  "nesterov": bool(self.nesterov.value)}
        accepted = _accepted_options(self.optimizers[name])
        if accepted is None:
            return wanted, []
        kwargs = {k: v for k, v in wanted.items() if k in accepted}
        # Unticked Nesterov and zero momentum are everyone's default: not worth reporting.
        ignored = [k for k in wanted if k not in accepted
                   and not (k == "nesterov" and not wanted[k])
                   and not (k == "momentum" and wanted[k] == 0)]
        return kwargs, ignored

    def redraw(self) -> float:
        """Recompute the paths of the selected optimizers and redraw; return the seconds taken."""
        begin = time.perf_counter()
        land = self.current_landscape()
        self._ensure_background(land)
        start = (float(self.x0.value), float(self.y0.value))
        steps = int(self.steps.value)
        self.paths, self.errors = {}, {}
        lines = []
        self._canvas.restore_region(self._background)
        for index, (name, box) in enumerate(self.selected.items()):
            path_artist, end_artist, gap_artist = self._artists_for(name, index)
            if not box.value:
                continue
            kwargs, ignored = self.options_for(name)
            result = self._run(land, name, kwargs, start, steps)
            note = f" (ignores {', '.join(ignored)})" if ignored else ""
            if isinstance(result, str):
                self.errors[name] = result
                lines.append(_legend_line(name, index, f"no path: {result}"))
                continue
            self.paths[name] = result
            shown = _clip_far(result, land)
            path_artist.set_data(shown[:, 0], shown[:, 1])
            end_artist.set_data(shown[-1:, 0], shown[-1:, 1])
            gap = self._gap(land, result)
            gap_artist.set_data(np.arange(gap.size), gap)
            for artist in (path_artist, end_artist):
                self._ax.draw_artist(artist)
            self._gap_ax.draw_artist(gap_artist)
            lines.append(_legend_line(name, index, self._summary(land, result, steps) + note))
        self._start_marker.set_data([start[0]], [start[1]])
        self._ax.draw_artist(self._start_marker)
        self.image.value = _png(self._canvas)
        self.legend.value = "<br>".join(lines) or "<i>select at least one optimizer</i>"
        self.last_redraw_s = time.perf_counter() - begin
        return self.last_redraw_s

    # -- internals ----------------------------------------------------------------------------
    def _run(self, land: Landscape, name: str, kwargs: dict[str, Any],
             start: tuple[float, float], steps: int) -> np.ndarray | str:
        key = (self.landscape.value, name, tuple(sorted(kwargs.items())), start, steps)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        factory = functools.partial(self.optimizers[name], **kwargs)
        try:
            result: np.ndarray | str = run_optimizer(factory, land, start, steps)
        except Exception as exc:  # the learner's own class may raise anything: show it
            detail = str(exc) or ("not implemented yet" if isinstance(exc, NotImplementedError)
                                  else "")
            result = f"{type(exc).__name__}: {detail}"
        self._cache[key] = result
        if len(self._cache) > 128:
            self._cache.popitem(last=False)
        return result

    def _artists_for(self, name: str, index: int) -> tuple[Any, Any, Any]:
        if name not in self._artists:
            color = COLORS[index % len(COLORS)]
            path = self._ax.plot([], [], "-o", color=color, markersize=2.5, linewidth=1.5,
                                 animated=True)[0]
            end = self._ax.plot([], [], "s", color=color, markersize=7, animated=True)[0]
            gap = self._gap_ax.plot([], [], "-", color=color, linewidth=1.5, animated=True)[0]
            self._artists[name] = (path, end, gap)
        return self._artists[name]

    def _optimum(self, land: Landscape) -> float:
        if land.minima:
            with torch.no_grad():
                return float(land(torch.tensor(land.minima, dtype=torch.float64)).min())
        return float(np.nanmin(self._grid[2]))

    def _gap(self, land: Landscape, path: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            values = land(torch.from_numpy(path)).numpy()
        return np.maximum(values - self._f_star, GAP_FLOOR)

    def _summary(self, land: Landscape, path: np.ndarray, steps: int) -> str:
        with torch.no_grad():
            final = float(land(torch.from_numpy(path[-1])))
        where = f"({path[-1, 0]:.3g}, {path[-1, 1]:.3g})"
        if len(path) < steps + 1:
            return f"diverged: values overflowed after step {len(path) - 1}, last at {where}"
        if _clip_far(path, land).shape[0] < path.shape[0]:
            return f"left the window far behind; after {steps} steps f = {final:.3g} at {where}"
        return f"after {steps} steps f = {final:.3g} at {where}"

    def _ensure_background(self, land: Landscape) -> None:
        key = (self.landscape.value, int(self.steps.value))
        if key == self._background_key:
            return
        new_landscape = self._background_key is None or key[0] != self._background_key[0]
        if new_landscape:
            self._grid = landscape_grid(land, land.xlim, land.ylim, resolution=150)
            self._f_star = self._optimum(land)
            self._draw_contours(land)
            top = max(float(np.nanmax(self._grid[2])) - self._f_star, 1.0) * 10
            self._gap_ax.set_ylim(GAP_FLOOR / 2, top)
        self._gap_ax.set_xlim(0, key[1])
        if new_landscape:
            self._canvas.draw()
        else:
            # Only the right panel's x axis changed: repaint that panel over the old bitmap
            # instead of redrawing the contours, which cost several times more.
            self._canvas.restore_region(self._background)
            self._figure.draw_artist(self._gap_eraser)
            self._figure.draw_artist(self._gap_ax)
        self._background = self._canvas.copy_from_bbox(self._figure.bbox)
        self._background_key = key

    def _draw_contours(self, land: Landscape) -> None:
        ax = self._ax
        for artist in list(ax.collections) + [a for a in ax.lines if not a.get_animated()]:
            artist.remove()
        X, Y, Z = self._grid
        if land.log_levels:
            span = np.nanmax(Z) - self._f_star
            shifted = np.log10(np.maximum(Z - self._f_star, 0) + 1e-3 * span)
        else:
            shifted = Z
        levels = np.linspace(np.nanmin(shifted), np.nanmax(shifted), 30)
        ax.contourf(X, Y, shifted, levels=levels, cmap="viridis", alpha=0.55)
        ax.contour(X, Y, shifted, levels=levels, cmap="viridis", linewidths=0.6)
        for point in land.minima:
            ax.plot(*point, "*", markersize=14, color="gold", markeredgecolor="black")
        ax.set(xlim=land.xlim, ylim=land.ylim, xlabel="$w_1$", ylabel="$w_2$", title=land.name)
        gap = self._gap_ax
        gap.set_yscale("log")
        gap.set(xlabel="step $t$", ylabel=r"$f(w_t) - f^*$", title="gap to the minimum")
        gap.grid(alpha=0.3)


# ---------------------------------------------------------------------------------------------
# Small helpers


def _set_range(slider: widgets.FloatSlider, low: float, high: float, value: float) -> None:
    """Move a slider to a new range without tripping its min <= value <= max validation."""
    slider.min, slider.max = min(slider.min, low), max(slider.max, high)
    slider.value = value
    slider.min, slider.max = low, high
    slider.step = (high - low) / 400


@functools.lru_cache(maxsize=64)
def _accepted_options(factory: Callable[..., Any]) -> frozenset[str] | None:
    """Keyword options the factory accepts; None when it takes ``**kwargs`` (pass everything)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters)


def _clip_far(path: np.ndarray, land: Landscape) -> np.ndarray:
    """The path up to and including its first point far outside the window.

    Beyond that it is invisible, and huge coordinates only slow the rasteriser down.
    """
    return clip_path(path, land.xlim, land.ylim, margin=FAR)


def _legend_line(name: str, index: int, text: str) -> str:
    color = to_hex(COLORS[index % len(COLORS)])
    swatch = f'<span style="color:{color}; font-size:130%">&#9632;</span>'
    return f"{swatch} <b>{html.escape(name)}</b>: {html.escape(text)}"


def _png(canvas: FigureCanvasAgg) -> bytes:
    # PIL at compression level 1 encodes this figure in ~15 ms; savefig's default level is
    # several times slower, and the bytes only travel to a browser on the same machine.
    rgba = np.asarray(canvas.buffer_rgba())
    buffer = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()

