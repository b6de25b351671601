"""``python -m grader report`` from nbgrader's gradebook and the autograded notebooks.

The class is what ``nbgrader autograde`` leaves behind with the course's plugin
(grader/core/nbgrader_plugin.py): a gradebook with each graded cell's score, and each autograded
notebook carrying the grading core's result (facets and diagnoses) in its metadata. The students'
results are chapter 1's corpus graded by the real checks, so the expected counts are known.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from test_instructor_report import RIGHT_ONES, WRONG, graded

from grader.chapters.ch01_classification_losses import EXERCISES
from grader.core.cli import main
from grader.core.nbgrader_plugin import GRADER_KEY

CH = "01_classification_losses"
EX = EXERCISES["nll_loss"]


@pytest.fixture
def path_with_alembic(monkeypatch):
    # Gradebook() runs alembic from PATH: the venv's, as `make` puts it first.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def build_class(root: Path, students: dict[str, dict], manual: dict[str, float] | None = None,
                write_notebooks: bool = True) -> str:
    from nbgrader.api import Gradebook

    url = f"sqlite:///{root / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment(CH)
        gb.add_notebook(CH, CH)
        gb.add_grade_cell(EX.grade_id, CH, CH, max_score=EX.points, cell_type="code")
        gb.add_assignment("02_regression_losses")
        for student, res in students.items():
            gb.add_student(student)
            gb.add_submission(CH, student)
            grade = gb.find_grade(EX.grade_id, CH, CH, student)
            grade.auto_score = res["score"]
            if student in (manual or {}):
                grade.manual_score = manual[student]
            gb.db.commit()
            if write_notebooks:
                path = root / "autograded" / student / CH / f"{CH}.ipynb"
                path.parent.mkdir(parents=True)
                path.write_text(json.dumps({"cells": [], "metadata": {GRADER_KEY: res},
                                            "nbformat": 4, "nbformat_minor": 5}))
        gb.add_student("late_one")  # an extension was granted, nothing graded yet
        gb.update_or_create_submission(CH, "late_one")
    return url


def test_report_reads_the_gradebook(tmp_path, capsys, path_with_alembic):
    students = {f"s{i}": graded(f"s{i}", fn) for i, (_, fn) in enumerate(WRONG)}
    students.update({f"r{i}": graded(f"r{i}", fn) for i, fn in enumerate(RIGHT_ONES)})
    build_class(tmp_path, students, manual={"s0": EX.points})
    assert main(["report", "--course", str(tmp_path), "--assignment", CH, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    facets = doc["exercises"][EX.grade_id]
    for facet in EX.facet_list():
        entry = facets[facet.name]
        expected = sum(r["cells"][0]["facets"][[f["name"] for f in r["cells"][0]["facets"]]
                                                .index(facet.name)]["status"] == "earned"
                       for r in students.values())
        assert entry["students"] == len(students)
        assert entry["earned"] == expected, facet.name
        for d in entry["diagnoses"]:
            assert all("s0" not in e and "submitted/" not in e for e in d["examples"])
    # The score is the gradebook's: s0's manual grade overrides the automatic one.
    hist = doc["score_histograms"][CH]
    assert sum(hist.values()) == len(students)
    full = sum(1 for s, r in students.items() if r["score"] == EX.points or s == "s0")
    assert hist[str(float(EX.points))] == full


def test_gradebook_without_the_autograded_notebooks(tmp_path, capsys, path_with_alembic):
    students = {"x": graded("x", WRONG[0][1]), "y": graded("y", RIGHT_ONES[0])}
    build_class(tmp_path, students, write_notebooks=False)
    assert main(["report", "--course", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["exercises"] == {}  # no facets without the core's results
    assert sum(doc["score_histograms"][CH].values()) == 2


def test_missing_gradebook_or_assignment(tmp_path, capsys, path_with_alembic):
    assert main(["report", "--course", str(tmp_path)]) == 2
    assert "no gradebook at" in capsys.readouterr().err
    build_class(tmp_path, {"x": graded("x", RIGHT_ONES[0])})
    assert main(["report", "--course", str(tmp_path), "--assignment", "03_sgd"]) == 2
    err = capsys.readouterr().err
    assert "no assignment '03_sgd' in the gradebook" in err and CH in err


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    from grader.instructor import progress

    monkeypatch.delenv("LOSSOPT_PROGRESS", raising=False)
    assert list(progress.bar(range(3), 3, "x")) == [0, 1, 2]
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal
    monkeypatch.setenv("LOSSOPT_PROGRESS", "1")
    assert list(progress.bar(range(3), 3, "counting")) == [0, 1, 2]
    assert "counting" in capsys.readouterr().err
    counter = progress.Counter(2, "regrading")
    counter.step()
    counter.step()
    counter.close()
    assert "regrading" in capsys.readouterr().err
    monkeypatch.setenv("LOSSOPT_PROGRESS", "0")
    assert list(progress.bar(range(2), 2, "y")) == [0, 1]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command, says", [("report", "diagnoses ranked"),
                                           ("similar", "answer cells"),
                                           ("regrade", "seed of"),
                                           ("extend", "--days")])
def test_each_instructor_command_has_help(command, says, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert says in " ".join(capsys.readouterr().out.split())
