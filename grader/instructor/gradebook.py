"""The class's results read from nbgrader's gradebook and the autograded notebooks.

``nbgrader autograde`` runs the grading core on each submission (grader/core/nbgrader_plugin.py):
the core's whole result -- every graded cell's status, message and facets with their diagnoses --
is stored in the autograded notebook's metadata (``lossopt_grader``), in
``autograded/<student>/<assignment>/<notebook>.ipynb``, and the cell scores go to the gradebook.
:func:`results` gives one result per graded notebook in the schema of ``python -m grader autograde
--json`` (plus ``student``), with the gradebook's score (manual grades included). A notebook the
gradebook scored but whose autograded file is gone, or was graded without the course's plugin,
still counts, with its cell scores from the gradebook and no facets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grader.core.nbgrader_plugin import GRADER_KEY


def check_url(url: str) -> None:
    """Raise ValueError when ``url`` is a SQLite gradebook that does not exist (nbgrader would
    create an empty one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise ValueError(f"no gradebook at {parsed.database} (run nbgrader autograde first, run "
                         "this from the course directory, or give --db)")


def assignment_names(url: str) -> list[str]:
    """The assignments the gradebook knows."""
    from nbgrader.api import Gradebook

    check_url(url)
    with Gradebook(url) as gb:
        return [a.name for a in gb.assignments]


def known_assignment(url: str, assignment: str | None) -> list[str]:
    """The assignments to read: ``[assignment]`` or all of them; ValueError, with the ones there
    are, for an unknown name or an empty gradebook."""
    names = assignment_names(url)
    if not names:
        raise ValueError("the gradebook has no assignments yet (nbgrader generate_assignment, "
                         "collect and autograde fill it)")
    if assignment is None:
        return names
    if assignment not in names:
        raise ValueError(f"no assignment {assignment!r} in the gradebook (it has: "
                         f"{', '.join(names)})")
    return [assignment]


def autograded_path(course_root: Path, student: str, assignment: str, notebook: str) -> Path:
    return course_root / "autograded" / student / assignment / f"{notebook}.ipynb"


def core_result(path: Path) -> dict[str, Any] | None:
    """The grading core's result stored in an autograded notebook, or None."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = nb.get("metadata", {}).get(GRADER_KEY) if isinstance(nb, dict) else None
    return found if isinstance(found, dict) else None


def results(url: str, course_root: Path, assignment: str | None = None,
            progress: Any = None) -> list[dict[str, Any]]:
    """Every graded notebook of ``assignment`` (or of every assignment) in the gradebook."""
    from nbgrader.api import Gradebook

    wanted = known_assignment(url, assignment)
    out: list[dict[str, Any]] = []
    with Gradebook(url) as gb:
        subs = [s for name in wanted for s in gb.find_assignment(name).submissions]
        for sub in (progress(subs, len(subs), "reading the gradebook") if progress else subs):
            for nb in sub.notebooks:
                grades = list(nb.grades)
                if not grades or all(g.auto_score is None and g.manual_score is None
                                     for g in grades):
                    continue  # a submission row without grades: not autograded yet
                path = autograded_path(course_root, sub.student.id, sub.assignment.name, nb.name)
                res = core_result(path)
                if res is None:
                    res = from_grades(sub, nb, grades)
                res = dict(res)
                res.update(student=sub.student.id, assignment=sub.assignment.name,
                           score=float(nb.score), max_score=float(nb.max_score))
                res.setdefault("notebook", str(path))
                out.append(res)
    return out


def from_grades(sub: Any, nb: Any, grades: list[Any]) -> dict[str, Any]:
    """A result from the gradebook's cell scores alone (no facets, no messages)."""
    cells = []
    for g in grades:
        score = float(g.score)
        cells.append({"grade_id": g.name, "score": score, "max_score": float(g.max_score),
                      "status": "passed" if score == float(g.max_score) else "failed",
                      "message": ""})
    return {"notebook": f"autograded/{sub.student.id}/{sub.assignment.name}/{nb.name}.ipynb",
            "assignment": sub.assignment.name, "status": "graded", "message": "", "cells": cells}
