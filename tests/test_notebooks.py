"""Every notebook as a learner meets it, and the nbgrader round trip as an instructor runs it.

- notebooks/ equals a fresh ``nbgrader generate_assignment`` of solutions/;
- every solution notebook runs top to bottom from a fresh kernel;
- every student notebook runs up to its first stub, whose NotImplementedError is the only error;
- through nbgrader (generate, autograde of submitted copies, feedback, export) a perfect
  submission earns full marks, an untouched one 0 without crashing, and a partial one exactly
  the points of its correct answers.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from nbutils import (ROOT, chapters, filled_submission, isolated_jupyter_env, nbgrader_meta,
                     released_notebook, solution_notebooks)

pytestmark = pytest.mark.slow

SOLUTIONS = solution_notebooks()
IDS = [p.stem for p in SOLUTIONS]
NBGRADER = [sys.executable, "-m", "nbgrader"]


def run_nbgrader(course: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run one nbgrader command in the course directory; fail with its log if it fails."""
    result = subprocess.run([*NBGRADER, *args], cwd=course, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stderr[-4000:]}"
    return result


def copy_course(dest: Path) -> Path:
    """A throwaway copy of the course directory (what nbgrader needs of it)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "solutions", dest / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    return dest


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = isolated_jupyter_env(tmp_path_factory.mktemp("jupyter"))
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return env


def execute(nb: nbformat.NotebookNode, cwd: Path, env: dict[str, str], **kwargs) -> NotebookClient:
    """Execute a notebook in place from a fresh kernel, with Jupyter config isolated."""
    client = NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}, **kwargs)
    client.execute(env=env)
    return client


# ---------------------------------------------------------------------------------------------
# Generated student versions


def test_every_chapter_has_a_released_notebook():
    assert chapters(), "no chapters under solutions/"
    for source in SOLUTIONS:
        assert released_notebook(source).exists(), f"{source.name}: run `make notebooks`"


def test_notebooks_match_a_fresh_generation(tmp_path: Path, jupyter_env: dict[str, str]):
    course = copy_course(tmp_path / "course")
    for chapter in chapters():
        run_nbgrader(course, jupyter_env, "generate_assignment", chapter, "--force",
                     f"--CourseDirectory.db_url=sqlite:///{tmp_path}/gradebook.db")
    for source in SOLUTIONS:
        fresh = json.loads((course / "notebooks" / source.parent.name / source.name).read_text())
        committed = json.loads(released_notebook(source).read_text())
        assert committed == fresh, (
            f"notebooks/{source.parent.name}/{source.name} differs from a fresh generation of "
            "solutions/: run `make notebooks` (never edit notebooks/ by hand)")


def test_student_versions_hide_answers_and_hidden_tests():
    for source in SOLUTIONS:
        text = released_notebook(source).read_text()
        assert "### BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        student = nbformat.read(released_notebook(source), as_version=4)
        stubs = [c for c in student.cells if nbgrader_meta(c).get("solution")]
        assert stubs and all("raise NotImplementedError()" in c.source for c in stubs
                             if c.cell_type == "code")


# ---------------------------------------------------------------------------------------------
# Executing the notebooks


@pytest.mark.parametrize("source", SOLUTIONS, ids=IDS)
def test_solution_runs_top_to_bottom(source: Path, jupyter_env: dict[str, str], tmp_path: Path):
    nb = nbformat.read(source, as_version=4)
    try:
        execute(nb, tmp_path, jupyter_env)
    except CellExecutionError as exc:
        pytest.fail(f"{source.name} raised while running top to bottom:\n{str(exc)[-3000:]}")
    graded = [c for c in nb.cells if nbgrader_meta(c).get("grade") and c.cell_type == "code"]
    assert graded, f"{source.name} has no autograded test cells"
    for cell in graded:
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        points = nbgrader_meta(cell)["points"]
        assert f"{points:g} / {points:g} points" in text, \
            f"{nbgrader_meta(cell)['grade_id']} printed no full-marks report:\n{text[-800:]}"
        # The cell's value is the hidden check's score: nbgrader's partial credit, here full.
        values = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert values and float(values[-1]["data"]["text/plain"]) == points


@pytest.mark.parametrize("source", SOLUTIONS, ids=IDS)
def test_student_version_runs_up_to_its_stubs(source: Path, jupyter_env: dict[str, str],
                                              tmp_path: Path):
    nb = nbformat.read(released_notebook(source), as_version=4)
    execute(nb, tmp_path, jupyter_env, allow_errors=True)
    errors = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert errors, "the student version raised nothing: are the stubs there?"
    first_cell, first = errors[0]
    assert first.ename == "NotImplementedError", (
        f"cell {first_cell} raised {first.ename}: {first.evalue} before any stub")
    stub_cells = {i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("solution")}
    assert min(stub_cells) <= first_cell, "an error came before the first stub cell"


# ---------------------------------------------------------------------------------------------
# The classroom path, headless: generate, autograde, feedback, export


@pytest.fixture(scope="module")
def classroom(tmp_path_factory: pytest.TempPathFactory, jupyter_env: dict[str, str]):
    """A course copy where three students submitted every chapter, then autograded and exported.

    - ``ada`` answered everything correctly (answers taken from the solutions);
    - ``bob`` submitted the untouched student version;
    - ``cyd`` answered the first exercise of every chapter correctly and nothing else.
    """
    course = copy_course(tmp_path_factory.mktemp("classroom") / "course")
    db = f"--CourseDirectory.db_url=sqlite:///{course}/gradebook.db"
    for chapter in chapters():
        run_nbgrader(course, jupyter_env, "generate_assignment", chapter, "--force", db)
    for student in ("ada", "bob", "cyd"):
        run_nbgrader(course, jupyter_env, "db", "student", "add", student, db)
    expected: dict[tuple[str, str], float] = {}
    for source in SOLUTIONS:
        chapter = source.parent.name
        filled = filled_submission(source)
        blank = nbformat.read(released_notebook(source), as_version=4)
        partial = nbformat.read(released_notebook(source), as_version=4)
        answers = [c for c in filled.cells if nbgrader_meta(c).get("solution")]
        first_id = nbgrader_meta(answers[0])["grade_id"]
        for cell in partial.cells:
            if nbgrader_meta(cell).get("grade_id") == first_id:
                cell.source = answers[0].source
        points = {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
                  for c in blank.cells if nbgrader_meta(c).get("grade")}
        for student, nb in (("ada", filled), ("bob", blank), ("cyd", partial)):
            target = course / "submitted" / student / chapter / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
            (target.parent / "timestamp.txt").write_text("2026-11-26 12:00:00.000000 UTC")
        expected[("ada", chapter)] = sum(points.values())
        expected[("bob", chapter)] = 0.0
        expected[("cyd", chapter)] = points[f"test_{first_id}"]
    for chapter in chapters():
        run_nbgrader(course, jupyter_env, "autograde", chapter, "--force", db)
        run_nbgrader(course, jupyter_env, "generate_feedback", chapter, "--force", db)
    run_nbgrader(course, jupyter_env, "export", db, "--to", str(course / "grades.csv"))
    return course, expected


def gradebook_scores(course: Path) -> dict[tuple[str, str], float]:
    """(student, assignment) -> score, read from nbgrader's gradebook."""
    with sqlite3.connect(course / "gradebook.db") as con:
        rows = con.execute(
            "SELECT sub.student_id, a.name, SUM(COALESCE(g.manual_score, g.auto_score, 0)) "
            "FROM grade g JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment sub ON n.assignment_id = sub.id "
            "JOIN assignment a ON sub.assignment_id = a.id GROUP BY sub.student_id, a.name"
        ).fetchall()
    return {(student, assignment): float(score) for student, assignment, score in rows}


def test_autograde_gives_full_marks_zero_and_partial_credit(classroom):
    course, expected = classroom
    scores = gradebook_scores(course)
    for key, want in expected.items():
        assert scores.get(key) == pytest.approx(want), f"{key}: gradebook {scores.get(key)}, expected {want}"


def test_feedback_is_generated_without_hidden_tests_or_solutions(classroom):
    course, _ = classroom
    for student in ("ada", "bob", "cyd"):
        for source in SOLUTIONS:
            page = course / "feedback" / student / source.parent.name / f"{source.stem}.html"
            assert page.exists(), f"no feedback for {student}/{source.parent.name}"
            html = page.read_text()
            assert "BEGIN HIDDEN TESTS" not in html and "hidden=True" not in html
            if student == "bob":
                assert "### BEGIN SOLUTION" not in html


def test_export_csv_has_every_student_and_chapter(classroom):
    course, expected = classroom
    with open(course / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    exported = {(r["student_id"], r["assignment"]): float(r["score"]) for r in rows}
    for key, want in expected.items():
        assert exported.get(key) == pytest.approx(want), f"grades.csv {key}: {exported.get(key)}"
