"""Every chapter keeps the contract of CONTRIBUTING.md between its notebook and its checks."""

from __future__ import annotations

import ast
import importlib
import json

import nbformat
import pytest

from grader.core.wire import decode, encode
from nbutils import SOLUTIONS, chapters, nbgrader_meta


def chapter_module(chapter: str):
    """``grader.chapters.chNN_topic`` for the chapter folder ``NN_topic``."""
    return importlib.import_module(f"grader.chapters.ch{chapter}")


@pytest.mark.parametrize("chapter", chapters())
def test_notebook_cells_match_the_exercises(chapter: str):
    module = chapter_module(chapter)
    assert module.CHAPTER == chapter
    nb = nbformat.read(SOLUTIONS / chapter / f"{chapter}.ipynb", as_version=4)
    graded = {nbgrader_meta(c)["grade_id"]: nbgrader_meta(c) for c in nb.cells
              if nbgrader_meta(c).get("grade")}
    answer_ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells
                  if nbgrader_meta(c).get("solution")]
    assert answer_ids == list(module.EXERCISES), "answer cells and EXERCISES differ (or order)"
    for name, ex in module.EXERCISES.items():
        assert ex.name == name and ex.grade_id == f"test_{name}" and ex.grade_id in graded
        assert graded[ex.grade_id]["points"] == ex.points, f"{name}: notebook and grader points"
        assert graded[ex.grade_id]["locked"], f"{ex.grade_id} must be locked"
        test_cell = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == ex.grade_id)
        assert f'check("{name}", {name})' in test_cell.source
        assert f'check("{name}", {name}, hidden=True)' in test_cell.source
        hidden = test_cell.source.split("### BEGIN HIDDEN TESTS", 1)
        assert len(hidden) == 2 and "hidden=True" in hidden[1] and "hidden=True" not in hidden[0]
        # The first statement calls the answer, so that a stub raises NotImplementedError only.
        first = ast.parse(test_cell.source).body[0]
        called = {n.func.id for n in ast.walk(first)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert name in called, ast.unparse(first)


@pytest.mark.parametrize("chapter", chapters())
def test_the_setup_cell_imports_the_chapters_check(chapter: str):
    nb = nbformat.read(SOLUTIONS / chapter / f"{chapter}.ipynb", as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert f"from grader.chapters.ch{chapter} import check" in setup.source
    assert "manual_seed" in setup.source, "the setup cell seeds torch"


def encoded(cases) -> list[str]:
    """Each case's label and arguments as canonical JSON (dtypes, shapes and bytes included)."""
    return [json.dumps([c.label, encode(dict(c.args))], sort_keys=True) for c in cases]


@pytest.mark.parametrize("chapter", chapters())
def test_hidden_cases_depend_on_the_seed_only(chapter: str):
    for ex in chapter_module(chapter).EXERCISES.values():
        first = encoded(ex.cases(hidden=True, seed=11))
        assert first == encoded(ex.cases(hidden=True, seed=11)), f"{ex.name}: not reproducible"
        assert first != encoded(ex.cases(hidden=True, seed=12)), f"{ex.name}: ignores the seed"


@pytest.mark.parametrize("chapter", chapters())
def test_cases_are_plain_data_that_cross_the_sandbox_wire(chapter: str):
    for ex in chapter_module(chapter).EXERCISES.values():
        cases = ex.cases(hidden=False) + ex.cases(hidden=True, seed=0)
        for case in cases:
            text = json.dumps(encode(dict(case.args)), sort_keys=True)
            back = decode(json.loads(text))
            assert back.keys() == case.args.keys(), case.label
            assert json.dumps(encode(back), sort_keys=True) == text, case.label
