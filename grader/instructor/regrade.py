"""Regrading after a fix: ``python -m grader regrade ASSIGNMENT``.

When an instructor corrects a check (a wrong reference, a tolerance, a case), every collected
submission (``submitted/<student>/<assignment>/*.ipynb``, nbgrader collect's layout) is graded
again by the grading core **with the seed of its previous grading**, so that the hidden cases are
the same and a change in score comes from the fix, not from new random cases. The previous
result is the one ``nbgrader autograde`` stored in the autograded notebook
(:mod:`grader.instructor.gradebook`). For each student whose result changed, it prints the old and
new score and, per graded cell, the facets earned and lost before and after; every change is
appended to a log (one JSON document per line: when, who, old and new scores and facets, seed).

Unless ``--dry-run``: the gradebook's automatic scores of the changed cells are updated (manual
grades are left as they are: a manual score still overrides), and so are the autograded notebooks
(the core's result in their metadata and the verdict in their test cells), so that formgrader,
``nbgrader export`` and ``nbgrader generate_feedback --force`` see the new grades.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from grader.instructor.gradebook import autograded_path, check_url, core_result


def submissions(course_root: Path, assignment: str) -> list[tuple[str, Path]]:
    """(student, notebook) of every collected submission of ``assignment``."""
    return [(p.parent.parent.name, p)
            for p in sorted((course_root / "submitted").glob(f"*/{assignment}/*.ipynb"))]


def facet_states(cell: dict[str, Any] | None) -> dict[str, str]:
    return {f["name"]: f["status"] for f in (cell or {}).get("facets") or []}


def compare(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """The graded cells whose score, status or facets differ between ``old`` and ``new``."""
    before = {c["grade_id"]: c for c in (old or {}).get("cells", [])}
    changes = []
    for cell in new.get("cells", []):
        prev = before.get(cell["grade_id"])
        if (prev is not None and prev["score"] == cell["score"]
                and prev["status"] == cell["status"] and facet_states(prev) == facet_states(cell)):
            continue
        changes.append({"grade_id": cell["grade_id"],
                        "old_score": None if prev is None else prev["score"],
                        "new_score": cell["score"], "max_score": cell["max_score"],
                        "old_status": None if prev is None else prev["status"],
                        "new_status": cell["status"],
                        "old_facets": facet_states(prev), "new_facets": facet_states(cell),
                        "diagnoses": diagnoses(cell)})
    return changes


def diagnoses(cell: dict[str, Any]) -> list[str]:
    """The likely mistakes the core names on the cell's lost facets."""
    from grader.instructor.report import NO_DIAGNOSIS, diagnosis

    found = [diagnosis(f) for f in cell.get("facets") or [] if f["status"] != "earned"]
    return list(dict.fromkeys(d for d in found if d != NO_DIAGNOSIS))


def describe(change: dict[str, Any]) -> list[str]:
    """A changed cell in words: scores, then each facet that moved."""
    old = "not graded" if change["old_score"] is None else f"{change['old_score']:g}"
    lines = [f"  {change['grade_id']}: {old} -> {change['new_score']:g} of "
             f"{change['max_score']:g} ({change['old_status'] or 'none'} -> "
             f"{change['new_status']})"]
    names = list(dict.fromkeys([*change["old_facets"], *change["new_facets"]]))
    for name in names:
        a, b = change["old_facets"].get(name, "-"), change["new_facets"].get(name, "-")
        if a != b:
            lines.append(f"    facet {name!r}: {a} -> {b}")
    lines.extend(f"    likely mistake: {d}" for d in change["diagnoses"])
    return lines


def regrade(course: Any, assignment: str, *, url: str | None, seed: int | None = None,
            limits: Any = None, jobs: int = 0, dry_run: bool = False,
            log_path: Path | None = None, progress: Any = None) -> dict[str, Any]:
    """Regrade ``assignment``; return what changed (see the module docstring)."""
    from grader.core.autograde import GRADER_ERROR, available_cores, grade_batch
    from grader.core.sandbox import Limits, Pool, sandbox_mode

    root = Path(course.root)
    subs = submissions(root, assignment)
    if not subs:
        raise ValueError(f"no collected submissions of {assignment!r} in "
                         f"{root / 'submitted'} (nbgrader collect or zip_collect first)")
    if url is not None and not dry_run:
        check_url(url)
    old = {(s, p.stem): core_result(autograded_path(root, s, assignment, p.stem))
           for s, p in subs}
    # Group by the seed of the previous grading: the same hidden cases again.
    groups: dict[int | None, list[tuple[str, Path]]] = defaultdict(list)
    for s, p in subs:
        prev = old[s, p.stem]
        groups[seed if seed is not None else (prev or {}).get("seed")].append((s, p))
    limits = limits or Limits()
    mode = sandbox_mode()
    pool = Pool(mode, course.extra_paths)
    new: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for group_seed, members in groups.items():
            counter = progress(len(members), "regrading") if progress else None

            def tick(done: int, total: int, res: dict[str, Any], counter: Any = counter) -> None:
                if counter is not None:
                    counter.step()

            graded = grade_batch([str(p) for _, p in members], course=course, seed=group_seed,
                                 limits=limits, jobs=jobs or available_cores(),
                                 assignment=assignment, mode=mode, pool=pool, progress=tick)
            if counter is not None:
                counter.close()
            for (s, p), res in zip(members, graded, strict=True):
                if res.pop(GRADER_ERROR, None):
                    raise RuntimeError(f"the grading core failed on {p}: {res['message']}")
                new[s, p.stem] = res
    finally:
        pool.close()
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    changed = []
    for (student, notebook), res in sorted(new.items()):
        prev = old[student, notebook]
        cells = compare(prev, res)
        if not cells:
            continue
        changed.append({"time": when, "assignment": assignment, "student": student,
                        "notebook": notebook, "seed": res["seed"],
                        "old_score": None if prev is None else prev["score"],
                        "new_score": res["score"], "max_score": res["max_score"],
                        "cells": cells, "applied": False})
    if not dry_run:
        for entry in changed:
            entry["applied"] = apply(root, url, entry, new[entry["student"], entry["notebook"]])
    log_path = log_path or root / "regrade.log"
    if changed:
        with open(log_path, "a", encoding="utf-8") as f:
            for entry in changed:
                f.write(json.dumps(entry) + "\n")
    return {"assignment": assignment, "regraded": len(new), "changed": changed,
            "log": str(log_path), "dry_run": dry_run}


def apply(root: Path, url: str | None, entry: dict[str, Any], res: dict[str, Any]) -> bool:
    """Write a changed result into the autograded notebook and the gradebook; whether anything
    was there to update (a submission never autograded through nbgrader has neither)."""
    wrote = False
    path = autograded_path(root, entry["student"], entry["assignment"], entry["notebook"])
    if path.is_file():
        update_notebook(path, res)
        wrote = True
    if url is None:
        return wrote
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(url) as gb:
        for cell in entry["cells"]:
            try:
                grade = gb.find_grade(cell["grade_id"], entry["notebook"], entry["assignment"],
                                      entry["student"])
            except MissingEntry:
                continue  # never autograded through nbgrader: nothing to update there
            grade.auto_score = cell["new_score"]
            wrote = True
        gb.db.commit()
    return wrote


def update_notebook(path: Path, res: dict[str, Any]) -> None:
    """The core's new result in an autograded notebook: its metadata and the graded cells'
    outputs, exactly as ``nbgrader autograde`` writes them."""
    import nbformat

    from grader.core.nbgrader_plugin import GRADER_KEY, GraderOutputs

    nb = nbformat.read(str(path), as_version=4)
    if nb.cells and nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(
            ("**Grader notes:** ", "**This notebook could not be graded:** ")):
        nb.cells.pop(0)  # GraderOutputs writes the notes again
    nb.metadata[GRADER_KEY] = res
    nb, _ = GraderOutputs().preprocess(nb, {})
    nbformat.write(nb, str(path))


def text(doc: dict[str, Any]) -> str:
    """What changed, student by student."""
    what = "would change (dry run: nothing written)" if doc["dry_run"] else "changed"
    lines = [f"{doc['assignment']}: {doc['regraded']} submission(s) regraded, "
             f"{len(doc['changed'])} score(s) {what}"]
    for entry in doc["changed"]:
        old = "not graded" if entry["old_score"] is None else f"{entry['old_score']:g}"
        lines.append(f"{entry['student']}: {old} -> {entry['new_score']:g} of "
                     f"{entry['max_score']:g}")
        for cell in entry["cells"]:
            lines.extend(describe(cell))
    if doc["changed"]:
        lines.append(f"logged in {doc['log']}")
    return "\n".join(lines)
