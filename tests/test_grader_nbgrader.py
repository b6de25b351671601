"""The classroom path: nbgrader autograde, generate_feedback and export, with the project's
nbgrader_config.py, give the same scores as ``python -m grader autograde``, hide the hidden tests,
and survive submissions that break nbgrader's own executor."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from grader.core.autograde import grade_batch
from grader.core.course import Course
from grader.core.sandbox import Limits
from nbutils import ROOT, isolated_jupyter_env
from submissions.threats import as_bytes, every, unreadable
from test_grader_threats import CHAPTERS, FIXTURES, fixture_chapter

pytestmark = pytest.mark.slow

SEED = 4242
STUDENTS = ("good", "untouched", "tamper_ipython_hooks", "tamper_liars", "forbidden_direct",
            "crash_exits", "crash_cells", "structure_shuffled", "structure_pasted",
            "overfit_public", "invalid_truncated")
LATE = "late_good"  # the good notebook, handed in 2 days and 1 hour after the due date


def nbgrader(course: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)}:\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def classroom(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("classroom")
    course = tmp / "course"
    course.mkdir()
    shutil.copytree(FIXTURES / "course/solutions", course / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    env = isolated_jupyter_env(tmp)
    env.update(PATH=f"{Path(sys.executable).parent}:{env['PATH']}", LOSSOPT_SEED=str(SEED),
               LOSSOPT_GRADER_PATH=str(CHAPTERS))
    nbgrader(course, env, "generate_assignment", "99_fixture", "--force")
    ch = fixture_chapter(course)
    corpus = {s.name: s for s in every(ch, solution_path="/x", course_dir="/y", other="/z")
              + unreadable()}
    files = {"good": ch.filled(), "untouched": ch.untouched()}
    paths = []
    for student in STUDENTS:
        path = course / "submitted" / student / "99_fixture" / "99_fixture.ipynb"
        path.parent.mkdir(parents=True)
        content = files.get(student)
        path.write_bytes(as_bytes(corpus[student]) if content is None else
                         as_bytes(type("S", (), {"content": content})()))
        paths.append(path)
    # Late work (grader/instructor/late.py, configured in nbgrader_config.py: 10 % per started
    # day, at most 50 %): a due date, and one more student who hands in the good notebook 2 days
    # and 1 hour late; the others' submissions carry no timestamp, so they are on time.
    nbgrader(course, env, "db", "assignment", "add", "99_fixture",
             "--duedate=2026-11-01 12:00:00 UTC")
    late = course / "submitted" / LATE / "99_fixture"
    late.mkdir(parents=True)
    (late / "99_fixture.ipynb").write_bytes(as_bytes(type("S", (), {"content": ch.filled()})()))
    (late / "timestamp.txt").write_text("2026-11-03 13:00:00.000000 UTC")
    nbgrader(course, env, "autograde", "99_fixture")
    nbgrader(course, env, "generate_feedback", "99_fixture")
    nbgrader(course, env, "export")
    cli = grade_batch([str(p) for p in paths], course=Course(course, [CHAPTERS]), seed=SEED,
                      limits=Limits(timeout=60.0), jobs=2)
    return course, dict(zip(STUDENTS, cli, strict=True))


def gradebook_scores(course: Path, student: str) -> dict[str, float]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook("99_fixture", "99_fixture", student)
        return {g.name: float(g.score) for g in nb.grades}


def test_nbgrader_and_the_command_line_agree(classroom):
    course, cli = classroom
    for student, res in cli.items():
        cells = {c["grade_id"]: c["score"] for c in res["cells"]}
        if res["status"] == "invalid":
            cells = {"test_mse_loss": 0.0, "test_softplus": 0.0, "test_SGD": 0.0, "why_max": 0.0}
        assert gradebook_scores(course, student) == cells, student
    assert cli["good"]["score"] == 6 and cli["tamper_ipython_hooks"]["score"] == 5
    assert cli["crash_cells"]["score"] == 5 and cli["overfit_public"]["score"] == 5


def test_export_has_every_student(classroom):
    course, cli = classroom
    with open(course / "grades.csv") as f:
        rows = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(f)}
    assert {s: r for s, r in rows.items() if s != LATE} == {s: cli[s]["score"] for s in STUDENTS}


def test_late_work_loses_ten_percent_per_started_day(classroom):
    course, cli = classroom
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        late = gb.find_submission("99_fixture", LATE)
        assert late.total_seconds_late == pytest.approx(2 * 86400 + 3600)
        full = cli["good"]["score"]
        assert late.score == full  # nbgrader keeps the raw score and the penalty apart
        assert late.late_submission_penalty == pytest.approx(0.3 * full)  # 3 started days
        assert gb.find_submission("99_fixture", "good").late_submission_penalty in (0, None)
    with open(course / "grades.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["student_id"] == LATE)
    assert float(row["late_submission_penalty"]) == pytest.approx(0.3 * full)
    assert float(row["score"]) == pytest.approx(0.7 * full)  # what the export hands on


def test_feedback_names_the_mistake_and_hides_the_hidden_tests(classroom):
    course, _ = classroom
    for student in STUDENTS:
        html = (course / "feedback" / student / "99_fixture" / "99_fixture.html").read_text()
        assert "HIDDEN TESTS" not in html and "hidden=True" not in html, student
        autograded = (course / "autograded" / student / "99_fixture" / "99_fixture.ipynb")
        assert "hidden=True" not in autograded.read_text(), student
    overfit = (course / "feedback/overfit_public/99_fixture/99_fixture.html").read_text()
    assert "hidden case" in overfit and "grading seed 4242" in overfit
    crash = (course / "feedback/crash_exits/99_fixture/99_fixture.html").read_text()
    assert "segmentation fault" in crash and "status 3" in crash
    invalid = (course / "feedback/invalid_truncated/99_fixture/99_fixture.html").read_text()
    assert "could not be graded" in invalid


def test_the_learners_own_cells_are_kept_in_the_autograded_notebook(classroom):
    import json

    course, _ = classroom
    nb = json.loads((course / "autograded/crash_cells/99_fixture/99_fixture.ipynb").read_text())
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert any("os._exit(1)" in s for s in sources)
    assert sum("check(" in s for s in sources) == 3  # the course's test cells, once each
