"""Shared test utilities: find chapters and notebooks, load a solution's answers, isolate Jupyter."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import nbformat

from grader.kit.exercise import check_exercise

ROOT = Path(__file__).resolve().parent.parent

SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"


def chapters() -> list[str]:
    """Chapter folder names in reading order, e.g. ``["01_classification_losses", ...]``."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and p.name[:2].isdigit())


def solution_notebooks() -> list[Path]:
    """Every instructor source notebook."""
    return sorted(SOLUTIONS.glob("[0-9][0-9]_*/*.ipynb"))


def nbgrader_meta(cell: Any) -> dict[str, Any]:
    """A cell's nbgrader metadata ({} when it has none)."""
    return dict(cell.get("metadata", {}).get("nbgrader", {}))


def solution_namespace(notebook: Path) -> dict[str, Any]:
    """Execute a solution notebook's setup cell and its answer cells only; return the namespace.

    Convention (CONTRIBUTING.md): the first code cell is the setup cell (imports, seeds) and every
    answer cell (nbgrader ``solution: true``) depends only on it and on earlier answer cells, so
    the tests can take the reference answers straight from the one source of truth.
    """
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    namespace: dict[str, Any] = {"__name__": f"solution_{notebook.stem}"}
    selected = code[:1] + [c for c in code[1:] if nbgrader_meta(c).get("solution")]
    for cell in selected:
        source = "\n".join(line for line in cell.source.splitlines()
                           if not line.lstrip().startswith(("%", "!")))
        exec(compile(source, f"<{notebook.name}:{nbgrader_meta(cell).get('grade_id', 'setup')}>",
                     "exec"), namespace)
    return namespace


def isolated_jupyter_env(tmp: Path) -> dict[str, str]:
    """Environment variables that keep Jupyter, IPython and matplotlib config inside ``tmp``."""
    env = dict(os.environ)
    home = tmp / "home"
    for sub in ("", "jupyter_config", "jupyter_data", "jupyter_runtime", "ipython", "mpl"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.update({
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / "jupyter_config"),
        "JUPYTER_DATA_DIR": str(home / "jupyter_data"),
        "JUPYTER_RUNTIME_DIR": str(home / "jupyter_runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "MPLCONFIGDIR": str(home / "mpl"),
        "MPLBACKEND": "Agg",
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    return env


SOLUTION_BLOCK = re.compile(r"^[ \t]*### BEGIN SOLUTION[ \t]*\n(.*?)^[ \t]*### END SOLUTION[ \t]*\n?",
                            re.DOTALL | re.MULTILINE)


def released_notebook(source: Path) -> Path:
    """The committed student version of a solution notebook."""
    return NOTEBOOKS / source.parent.name / source.name


def filled_submission(source: Path) -> nbformat.NotebookNode:
    """The student version with every answer cell filled in from the solution (a perfect learner).

    Answer cells are matched by grade_id; the solution markers are dropped as a learner would
    never type them.
    """
    solution = nbformat.read(source, as_version=4)
    answers = {nbgrader_meta(c)["grade_id"]: SOLUTION_BLOCK.sub(r"\1", c.source)
               for c in solution.cells if nbgrader_meta(c).get("solution")}
    student = nbformat.read(released_notebook(source), as_version=4)
    for cell in student.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    return student


def checks_passed(check: Any, name: str, impl: Any, **kwargs: Any) -> int:
    """Run a chapter's ``check`` silently; return how many cases were checked when every facet
    was earned, else 0 (the report is kept in ``checks_passed.report``)."""
    ex = check.exercises[name]
    result, report = check_exercise(ex, impl, **kwargs)
    checks_passed.report = report  # type: ignore[attr-defined]
    if not result.passed:
        return 0
    return sum(f.cases for f in result.facets)


def facet_scores(ex: Any, impl: Any, **kwargs: Any) -> tuple[float, dict[str, float], str]:
    """An answer checked in this process: its score, each facet's score, and the report."""
    result, report = check_exercise(ex, impl, **kwargs)
    return result.score, {f.name: f.score for f in result.facets}, report


def score_and_lost(ex: Any, impl: Any, **kwargs: Any) -> tuple[float, set[str], str]:
    """An answer checked in this process: its score, the facets it scores 0 on, the report."""
    score, by_facet, report = facet_scores(ex, impl, **kwargs)
    return score, {f for f, value in by_facet.items() if value == 0}, report


def assert_full_marks(ex: Any, impl: Any, runs: list[dict[str, Any]]) -> None:
    """``impl`` earns every point of ``ex`` in each run (``check_exercise`` keyword arguments)."""
    for kwargs in runs:
        score, lost, report = score_and_lost(ex, impl, **kwargs)
        assert score == ex.points and not lost, f"{kwargs}:\n{report}"


def lost_facets(ex: Any, impl: Any, **kwargs: Any) -> set[str]:
    """The names of the facets an answer loses."""
    result, _ = check_exercise(ex, impl, **kwargs)
    return {f.name for f in result.lost()}
