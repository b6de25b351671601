"""Print how long the optimizer explorer (``lossopt_helpers.widgets``) takes to redraw.

Usage: ``python benchmarks/widget_redraw.py [--optimizers N] [--steps S]``.

It builds the explorer headless with the first N optimizers ticked (default 2: SGD and Adam),
then, on every landscape, moves five controls (learning rate, momentum, steps, start x,
start y) to values not seen before, so that no path comes from the explorer's cache: 30 slider
changes in all. It prints the median and maximum redraw time of those changes, the time of the
landscape switches (which also redraw the contours), and, for comparison, one full redraw with
``plot_trajectories`` and ``savefig``. The target is 100 ms per slider change; the script prints
the figures and flags a miss, it does not fail (speed is measured, not tested).

Then the same for chapter 5's schedule explorer (``lossopt_helpers.schedules``), with torch's
schedulers beside a second copy standing in for the learner's: on every schedule it moves the
number of steps, the initial lr and each of that schedule's own sliders once (about 30 changes).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lossopt_helpers.plots import landscape_grid, plot_trajectories  # noqa: E402
from lossopt_helpers.schedules import KINDS, TORCH_CLASSES, explore_schedules  # noqa: E402
from lossopt_helpers.widgets import explore  # noqa: E402

BUDGET_MS = 100.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", type=int, default=2, help="optimizers ticked (default 2)")
    parser.add_argument("--steps", type=int, default=100, help="steps per path (default 100)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the notebooks do: tiny tensors, threads only add overhead

    start = time.perf_counter()
    explorer = explore()
    built_ms = (time.perf_counter() - start) * 1e3
    for index, box in enumerate(explorer.selected.values()):
        box.value = index < args.optimizers
    explorer.steps.value = args.steps

    changes: list[float] = []
    switches: list[float] = []
    for round_, name in enumerate(explorer.landscape.options):
        if explorer.landscape.value != name:
            explorer.landscape.value = name
            switches.append(explorer.last_redraw_s * 1e3)
        x_span = explorer.x0.max - explorer.x0.min
        y_span = explorer.y0.max - explorer.y0.min
        moves = [
            (explorer.lr, explorer.lr.value * 1.5),
            (explorer.momentum, 0.5 + 0.05 * round_),
            (explorer.steps, args.steps + 7 * (round_ + 1)),
            (explorer.x0, explorer.x0.value + 0.05 * x_span),
            (explorer.y0, explorer.y0.value - 0.05 * y_span),
        ]
        for control, value in moves:
            control.value = value
            changes.append(explorer.last_redraw_s * 1e3)

    land = explorer.current_landscape()
    fig, ax = plt.subplots(figsize=(6, 5), layout="constrained")
    grid = landscape_grid(land, land.xlim, land.ylim)
    full: list[float] = []
    for _ in range(3):
        begin = time.perf_counter()
        ax.clear()
        plot_trajectories(None, explorer.paths, land.xlim, land.ylim, minima=land.minima,
                          ax=ax, grid=grid)
        fig.savefig(io.BytesIO(), format="png")
        full.append((time.perf_counter() - begin) * 1e3)

    median, worst = statistics.median(changes), max(changes)
    print(f"explorer built in {built_ms:.0f} ms; {args.optimizers} optimizers ticked, "
          f"about {args.steps} steps each")
    print(f"slider changes:      {len(changes):3d}  median {median:6.1f} ms  max {worst:6.1f} ms"
          f"  (budget {BUDGET_MS:.0f} ms){'' if worst <= BUDGET_MS else '  OVER BUDGET'}")
    print(f"landscape switches:  {len(switches):3d}  median {statistics.median(switches):6.1f} ms"
          f"  max {max(switches):6.1f} ms  (these also redraw the contours)")
    print(f"for comparison, plot_trajectories + savefig with a precomputed grid: "
          f"median {statistics.median(full):.0f} ms")
    schedule_explorer()
    return 0


def schedule_explorer() -> None:
    """Time chapter 5's schedule explorer: every schedule, its own sliders moved once each."""
    start = time.perf_counter()
    explorer = explore_schedules(yours=dict(TORCH_CLASSES), steps=100)
    built_ms = (time.perf_counter() - start) * 1e3
    changes: list[float] = []
    switches: list[float] = []
    for round_, kind in enumerate(KINDS):
        explorer.kind.value = kind
        switches.append(explorer.last_redraw_s * 1e3)
        moves = [(explorer.steps, 100 + 7 * (round_ + 1)),
                 (explorer.lr, explorer.lr.value * 1.5 if round_ % 2 else explorer.lr.value / 1.5)]
        for name in KINDS[kind][1]:
            control = explorer.controls[name]
            if hasattr(control, "options"):
                options = list(control.options)
                value = options[(options.index(control.value) + 1) % len(options)]
            elif hasattr(control, "base"):
                value = control.value * 1.5
            else:
                value = control.value + control.step * (1 if control.value < control.max else -1)
            moves.append((control, value))
        for control, value in moves:
            control.value = value
            changes.append(explorer.last_redraw_s * 1e3)
    median, worst = statistics.median(changes), max(changes)
    print(f"schedule explorer built in {built_ms:.0f} ms; torch's and 'your' schedule drawn, "
          f"100-300 steps")
    print(f"slider changes:      {len(changes):3d}  median {median:6.1f} ms  max {worst:6.1f} ms"
          f"  (budget {BUDGET_MS:.0f} ms){'' if worst <= BUDGET_MS else '  OVER BUDGET'}")
    print(f"schedule switches:   {len(switches):3d}  median {statistics.median(switches):6.1f} ms"
          f"  max {max(switches):6.1f} ms")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
