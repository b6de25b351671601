"""Every figure of every solution notebook, rendered for real and read back: are its axes labelled?

The test suite runs notebooks with ``MPLBACKEND=Agg``, whose ``plt.show()`` draws nothing. Here
each solution notebook runs once more under the inline backend, as a learner's JupyterLab runs
it: every figure becomes an ``image/png`` output. A first cell, added to the executed copy only,
registers a JSON formatter for matplotlib figures, so that next to each PNG the notebook records
what every axes shows: its labels, its title, how many labelled artists it draws and whether a
legend explains them. The rules checked, for every axes that draws data:

- an x label and a y label (a label on a shared axis counts for the axes that share it; a
  colorbar is not a data axes);
- a title (its own, or the figure's suptitle when the figure has one axes row per subject);
- a legend (on the axes or on the figure) when it draws more than one labelled artist.

``render_figures`` is reused by whoever wants the PNGs themselves, e.g. to look at them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from nbutils import isolated_jupyter_env, solution_notebooks

pytestmark = pytest.mark.slow

SOLUTIONS = solution_notebooks()
IDS = [p.stem for p in SOLUTIONS]
MIME = "application/json"

# Runs in the kernel before the notebook's own cells (never written to any notebook on disk).
RECORDER = '''\
%matplotlib inline
from IPython import get_ipython as _get_ipython
from matplotlib.figure import Figure as _Figure


def _describe_figure(fig):
    """What each axes of a figure shows, for tests/test_figures.py."""
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    axes = []
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        _, labels = ax.get_legend_handles_labels()
        shared_x = ax.get_shared_x_axes().get_siblings(ax)
        shared_y = ax.get_shared_y_axes().get_siblings(ax)
        axes.append({
            "title": " ".join(t for t in (ax.get_title("left"), ax.get_title(),
                                          ax.get_title("right")) if t),
            "xlabel": ax.get_xlabel() or next((a.get_xlabel() for a in shared_x if a.get_xlabel()), ""),
            "ylabel": ax.get_ylabel() or next((a.get_ylabel() for a in shared_y if a.get_ylabel()), ""),
            "has_data": bool(ax.has_data()),
            "labelled_artists": len(labels),
            "legend": ax.get_legend() is not None,
        })
    return {"suptitle": suptitle, "figure_legend": bool(fig.legends), "axes": axes}


_get_ipython().display_formatter.formatters["application/json"].for_type(_Figure, _describe_figure)
'''


def render_figures(source: Path, env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    """Execute a notebook under the inline backend; one record per figure it displays.

    Each record: ``cell`` (the cell id), ``png`` (bytes) and ``figure`` (the description made
    by ``RECORDER``).
    """
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(RECORDER, id="figure-recorder"))
    env = {**env, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute(env=env)
    figures = []
    for cell in nb.cells[1:]:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data and MIME in data:
                figure = data[MIME]
                figures.append({"cell": cell.get("id"), "figure": figure if isinstance(figure, dict)
                                else json.loads(figure),
                                "png": base64.b64decode(data["image/png"])})
    return figures


def problems(figure: dict[str, Any]) -> list[str]:
    """What is missing from one figure, one message per axes and rule."""
    found = []
    data_axes = [a for a in figure["axes"] if a["has_data"]]
    for i, ax in enumerate(data_axes):
        name = f"axes {i} ({ax['title'] or 'untitled'!r})"
        if not ax["xlabel"].strip():
            found.append(f"{name}: no x label")
        if not ax["ylabel"].strip():
            found.append(f"{name}: no y label")
        if not (ax["title"].strip() or (figure["suptitle"].strip() and len(data_axes) == 1)):
            found.append(f"{name}: no title")
        if ax["labelled_artists"] > 1 and not (ax["legend"] or figure["figure_legend"]):
            found.append(f"{name}: {ax['labelled_artists']} labelled artists and no legend")
    return found


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return isolated_jupyter_env(tmp_path_factory.mktemp("jupyter"))


@pytest.mark.parametrize("source", SOLUTIONS, ids=IDS)
def test_every_figure_is_rendered_and_labelled(source: Path, jupyter_env: dict[str, str],
                                               tmp_path: Path):
    figures = render_figures(source, jupyter_env, tmp_path)
    assert figures, f"{source.name} displayed no figure under the inline backend"
    for record in figures:
        # A real rendering: a PNG, and not a blank canvas of a few hundred bytes.
        assert record["png"].startswith(b"\x89PNG") and len(record["png"]) > 5000, record["cell"]
    report = [f"cell {r['cell']!r}, {message}" for r in figures for message in problems(r["figure"])]
    assert not report, f"{source.name}: figures without labels:\n" + "\n".join(report)


def test_problems_finds_what_is_missing():
    unlabelled = {"suptitle": "", "figure_legend": False, "axes": [
        {"title": "", "xlabel": "", "ylabel": "y", "has_data": True, "labelled_artists": 2,
         "legend": False},
        {"title": "", "xlabel": "", "ylabel": "", "has_data": False, "labelled_artists": 0,
         "legend": False},  # an empty axes (e.g. a hidden panel) needs nothing
    ]}
    assert problems(unlabelled) == ["axes 0 ('untitled'): no x label", "axes 0 ('untitled'): no title",
                                    "axes 0 ('untitled'): 2 labelled artists and no legend"]
    labelled = {"suptitle": "", "figure_legend": True, "axes": [
        {"title": "t", "xlabel": "x", "ylabel": "y", "has_data": True, "labelled_artists": 3,
         "legend": False}]}
    assert problems(labelled) == []
