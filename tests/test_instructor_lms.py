"""Grades into the LMS and submissions out of it (grader/instructor/lms.py), through nbgrader.

Import: ``nbgrader zip_collect`` on archives the tests write with Canvas's and Moodle's file-name
conventions. Export: ``nbgrader export`` with the Canvas and Moodle plugins, checked against the
columns the LMSs document (Canvas: Student, ID, SIS User ID, SIS Login ID, Section, one column per
assignment, a Points Possible row; Moodle: a user identifier column to map, one column per grade
item), with the course's mapping file naming the LMS's assignments.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from nbutils import ROOT, isolated_jupyter_env

from grader.instructor.lms import CANVAS_FILE, MOODLE_PREFIX, load_mapping

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "course"
NB = "99_fixture"


def nbgrader(course: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@contextlib.contextmanager
def alembic_on_path(env: dict[str, str]):
    """Gradebook() runs alembic from PATH: the venv's first, as `make` puts it."""
    old = os.environ["PATH"]
    os.environ["PATH"] = env["PATH"]
    try:
        yield
    finally:
        os.environ["PATH"] = old


@pytest.fixture
def course(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "course"
    shutil.copytree(FIXTURE, root)
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    env = isolated_jupyter_env(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.pop("LOSSOPT_GRADEBOOK_URL", None)
    env["NBGRADER_EXCHANGE"] = str(tmp_path / "exchange")
    from nbgrader.api import Gradebook

    with alembic_on_path(env), Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.add_assignment(NB, duedate=datetime(2026, 11, 1, 12))
        gb.add_student("ada", first_name="Ada", last_name="Lovelace", email="ada@uni.edu",
                       lms_user_id="12345")
        gb.add_student("grace", first_name="Grace", last_name="Hopper", email="grace@uni.edu",
                       lms_user_id="222")
        gb.add_student("alan", first_name="Alan", last_name="Turing", email="alan@uni.edu")
    return root, env


def archive(course: Path, files: dict[str, bytes]) -> None:
    folder = course / "downloaded" / NB / "archive"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "submissions.zip", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


def notebook(mark: str) -> bytes:
    nb = json.loads((FIXTURE / "notebooks" / NB / f"{NB}.ipynb").read_text())
    nb["cells"][0]["source"] = f"# {mark}"
    return json.dumps(nb).encode()


def collected(course: Path) -> dict[str, str]:
    return {p.parent.parent.name: json.loads(p.read_text())["cells"][0]["source"]
            for p in (course / "submitted").glob(f"*/{NB}/*.ipynb")}


def test_the_file_name_conventions():
    m = CANVAS_FILE.match("lovelaceada_LATE_12345_987654_99_fixture-2.ipynb")
    assert (m["lms_user_id"], m["submission_id"], m["file_id"], m["late"]) == (
        "12345", "987654", "99_fixture", "LATE")
    assert CANVAS_FILE.match("hoppergrace_222_11_99_fixture.ipynb")["file_id"] == "99_fixture"
    m = MOODLE_PREFIX.match("Ada Lovelace_555_assignsubmission_file_99_fixture.ipynb")
    assert (m["name"], m["lms_user_id"], m["rest"]) == ("Ada Lovelace", "555", "99_fixture.ipynb")


def test_zip_collect_from_canvas(course):
    root, env = course
    archive(root, {
        "lovelaceada_12345_987_99_fixture.ipynb": notebook("ada"),
        "hoppergrace_LATE_222_988_99_fixture-1.ipynb": notebook("grace"),  # a resubmission
        "lovelaceada_12345_987_notes.txt": b"not a notebook",
        "strangerx_999_989_99_fixture.ipynb": notebook("stranger"),  # not in the gradebook
    })
    out = nbgrader(root, env, "zip_collect", NB)
    assert collected(root) == {"ada": "# ada", "grace": "# grace"}
    assert "strangerx_999_989_99_fixture.ipynb" in out.stderr and "lms_user_id 999" in out.stderr


def test_zip_collect_from_moodle(course):
    root, env = course
    archive(root, {
        # "download submissions in folders", and the flat layout
        "Ada Lovelace_555_assignsubmission_file_/99_fixture.ipynb": notebook("ada"),
        "Grace Hopper_556_assignsubmission_file_99_fixture.ipynb": notebook("grace"),
        "Participant_777_assignsubmission_file_99_fixture.ipynb": notebook("blind"),
    })
    out = nbgrader(root, env, "zip_collect", NB,
                   "--ZipCollectApp.collector_plugin=grader.instructor.lms.MoodleCollector")
    assert collected(root) == {"ada": "# ada", "grace": "# grace"}
    assert "Participant_777" in out.stderr


def graded_class(root: Path, env: dict[str, str]) -> None:
    """ada: 5 of 7, on time; grace: 7 of 7, 2 days late (-20 % in this test); alan: nothing."""
    from nbgrader.api import Gradebook

    with alembic_on_path(env), Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.add_notebook(NB, NB)
        gb.add_grade_cell("test_mse_loss", NB, NB, max_score=2, cell_type="code")
        gb.add_grade_cell("test_SGD", NB, NB, max_score=5, cell_type="code")
        gb.add_assignment("98_other")
        gb.add_notebook("98_other", "98_other")
        gb.add_grade_cell("test_x", "98_other", "98_other", max_score=3, cell_type="code")
        for student, scores, penalty in (("ada", (0, 5), 0.0), ("grace", (2, 5), 1.4)):
            sub = gb.add_submission(NB, student)
            for cell, score in zip(("test_mse_loss", "test_SGD"), scores, strict=True):
                gb.find_grade(cell, NB, NB, student).auto_score = score
            sub.notebooks[0].late_submission_penalty = penalty  # as AssignLatePenalties
            gb.db.commit()
        gb.add_submission("98_other", "ada")
        gb.find_grade("test_x", "98_other", "98_other", "ada").auto_score = 3
        gb.db.commit()
    (root / "lms_assignments.json").write_text(json.dumps(
        {NB: "Fixture chapter (4711)", "98_other": "Other chapter"}))


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_canvas_gradebook_csv(course):
    root, env = course
    graded_class(root, env)
    out = nbgrader(root, env, "export", "--exporter=grader.instructor.lms.CanvasExport",
                   "--to", "canvas.csv")
    rows = read_csv(root / "canvas.csv")
    # assignments in the course's order (98_other, 99_fixture), named as the mapping file says
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                       "Other chapter", "Fixture chapter (4711)"]
    assert rows[1] == ["Points Possible", "", "", "", "", "3", "7"]
    assert rows[2:] == [["Hopper, Grace", "222", "", "", "", "0", "5.6"],  # 7 - 1.4 late
                        ["Lovelace, Ada", "12345", "", "", "", "3", "5"]]
    assert "alan has no lms_user_id" in out.stderr


def test_moodle_grade_import_csv(course):
    root, env = course
    graded_class(root, env)
    nbgrader(root, env, "export", "--exporter=grader.instructor.lms.MoodleExport",
             "--to", "moodle.csv", "--assignment=[\"99_fixture\"]")
    rows = read_csv(root / "moodle.csv")
    assert rows[0] == ["First name", "Last name", "ID number", "Email address",
                       "Fixture chapter (4711)"]
    assert rows[1:] == [["Grace", "Hopper", "222", "grace@uni.edu", "5.6"],
                        ["Ada", "Lovelace", "12345", "ada@uni.edu", "5"],
                        ["Alan", "Turing", "", "alan@uni.edu", "0"]]  # nbgrader's order


def test_a_bad_mapping_file_says_what_is_expected(tmp_path):
    bad = tmp_path / "lms_assignments.json"
    bad.write_text('["01_classification_losses"]')
    with pytest.raises(ValueError, match="must map each assignment"):
        load_mapping(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_mapping(bad)
    assert load_mapping(tmp_path / "none.json") == {}
