"""grader.core.notebook and grader.core.course: reading submissions defensively, matching them to the
template, and finding their chapter. No worker runs here: these are the plans the core makes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from grader.core.course import Course
from grader.core.notebook import InvalidNotebook, cells_from_json, make_plan, parse_submission
from submissions import (Chapter, code_cell, delete, duplicate, edit_test_cells, insert,
                         move_to_end, retype, strip_metadata)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
COURSE = Course(FIXTURES / "course", [FIXTURES / "chapters"])
CH = Chapter(FIXTURES / "course/solutions/99_fixture/99_fixture.ipynb",
             FIXTURES / "course/notebooks/99_fixture/99_fixture.ipynb")


def plan_of(nb):
    return make_plan(COURSE.chapter("99_fixture"), cells_from_json(nb))


def answer_sources(plan) -> dict[str, str]:
    return {s.exercise: s.source for s in plan.steps if s.role == "answer"}


def test_the_fixture_chapter_is_read_from_its_notebooks():
    chapter = COURSE.chapter("99_fixture")
    assert [(g.grade_id, g.points, g.exercise, g.manual) for g in chapter.graded] == [
        ("test_mse_loss", 1.0, "mse_loss", False), ("test_softplus", 2.0, "softplus", False),
        ("test_SGD", 3.0, "SGD", False), ("why_max", 1.0, None, True)]
    assert set(chapter.answers) == {"mse_loss", "softplus", "SGD"}
    assert "from ch99_fixture import check" in chapter.setup.source


def test_a_filled_notebook_runs_answers_only_and_snapshots_each_before_its_test():
    plan = plan_of(CH.filled())
    kinds = [(s.kind, s.role or s.names) for s in plan.steps]
    assert kinds == [("cell", "answer"), ("snapshot", ("mse_loss",)), ("cell", "answer"),
                     ("snapshot", ("softplus",)), ("cell", "answer"), ("snapshot", ("SGD",))]
    assert not plan.notes and not plan.problems
    assert all("check(" not in s.source for s in plan.steps)  # never the learner's test cells


def test_the_learners_own_cells_run_in_place():
    nb = insert(CH.filled(), "mse_loss", code_cell("def helper():\n    return 1"), after=False)
    nb = insert(nb, "mse_loss", code_cell("scratch = 2"))
    plan = plan_of(nb)
    roles = [s.role for s in plan.steps if s.kind == "cell"]
    assert roles == ["student", "answer", "student", "answer", "answer"]
    # the scratch cell after the answer runs before the answer's snapshot (its test point)
    assert [s.kind for s in plan.steps[:4]] == ["cell", "cell", "cell", "snapshot"]


@pytest.mark.parametrize("edit, expect_note", [
    (lambda nb: strip_metadata(nb), None),
    (lambda nb: strip_metadata(nb, ids=True), "which defines it"),
    (lambda nb: move_to_end(nb, "mse_loss"), None),
    (lambda nb: delete(nb, "test_mse_loss", "test_SGD"), None),
    (lambda nb: duplicate(nb, "softplus", "def softplus(input, beta=1.0):\n    return input"),
     "appears 2 times"),
    (lambda nb: edit_test_cells(nb), "is ignored"),
])
def test_answers_are_found_whatever_happened_to_the_cells(edit, expect_note):
    filled = CH.filled()
    plan = plan_of(edit(filled))
    assert answer_sources(plan) == CH.answers()
    if expect_note:
        assert any(expect_note in n for n in plan.notes), plan.notes


def test_a_retyped_or_deleted_answer_is_reported():
    plan = plan_of(delete(retype(CH.filled(), "mse_loss"), "softplus"))
    assert plan.answers["mse_loss"] is None and plan.answers["softplus"] is None
    assert "markdown" in plan.problems["mse_loss"]
    assert "deleted" in plan.problems["softplus"]


def test_the_template_demo_and_test_cells_never_run():
    nb = CH.filled()
    for cell in nb["cells"]:  # even edited by the learner
        if cell.get("id") == "mse-demo":
            cell["source"] = "import os\nos._exit(1)"
    plan = plan_of(nb)
    assert all("os._exit" not in s.source and "check(" not in s.source for s in plan.steps)


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty"), (b"   \n", "empty"), (b"{\"cells\": [", "truncated"),
    (b"\xff\xfe\x00garbage", "UTF-8"), (b"42", "not a notebook"), (b'{"cells": 3}', "no list"),
    (b"[" * 50000, "not"),
])
def test_unusable_files_are_invalid_with_a_reason(raw, reason):
    with pytest.raises(InvalidNotebook, match=reason):
        parse_submission(raw)


def test_odd_but_usable_notebooks_are_read():
    nb = CH.filled()
    nb["cells"].insert(0, "not a cell")
    nb["cells"][3]["source"] = ["a list ", "of lines"]
    nb["cells"][4]["cell_type"] = "weird"
    assert len(cells_from_json(nb)) == len(nb["cells"]) - 1
    v3 = {"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": "x = 1"}]}]}
    assert cells_from_json(v3)[0].source == "x = 1"


def test_the_chapter_comes_from_the_file_name_or_the_content(tmp_path: Path):
    course = tmp_path / "course"
    shutil.copytree(FIXTURES / "course", course)
    other = course / "notebooks/98_other/98_other.ipynb"
    other.parent.mkdir(parents=True)
    nb = json.loads((course / "notebooks/99_fixture/99_fixture.ipynb").read_text())
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta:
            meta["grade_id"] = "other_" + meta["grade_id"]
    other.write_text(json.dumps(nb))
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters/ch98_other.py").write_text("from ch99_fixture import *\n")
    c = Course(course, [FIXTURES / "chapters", tmp_path / "chapters"])
    assert c.names() == ["98_other", "99_fixture"]
    assert c.from_filename("x/99_fixture.ipynb") == "99_fixture"
    assert c.from_filename("99_fixture (2).ipynb") == "99_fixture"
    assert c.from_filename("99_fixture-Copy1.ipynb") == "99_fixture"
    assert c.from_filename("homework.ipynb") is None
    ids = {cell.grade_id for cell in cells_from_json(CH.filled()) if cell.grade_id}
    assert c.from_content(ids) == "99_fixture"
    assert c.from_content({"other_" + i for i in ids}) == "98_other"
    assert c.from_content({"test_mse_loss"}) is None
