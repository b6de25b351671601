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
        # The first statement hands the answer to check, which calls it first, so that a stub
        # raises NotImplementedError and nothing else.
        first = ast.parse(test_cell.source).body[0]
        called = {n.func.id for n in ast.walk(first)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        named = {n.id for n in ast.walk(first) if isinstance(n, ast.Name)}
        assert name in called or ("check" in called and name in named), ast.unparse(first)


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


@pytest.mark.parametrize("chapter", chapters())
def test_points_split_into_named_facets_stated_in_the_exercise_text(chapter: str):
    """Partial credit (grader/kit/scoring.py): every exercise splits its points over named
    facets, its text states each facet with its points, every case counts towards one declared
    facet, every mistake charged to a facet names a declared one, and each facet has cases."""
    module = chapter_module(chapter)
    nb = nbformat.read(SOLUTIONS / chapter / f"{chapter}.ipynb", as_version=4)
    for name, ex in module.EXERCISES.items():
        facets = ex.facet_list()
        assert len(facets) >= 2, f"{name}: one all-or-nothing facet; split the points"
        assert abs(sum(f.points for f in facets) - ex.points) < 1e-9, f"{name}: facet points"
        names = [f.name for f in facets]
        assert len(set(names)) == len(names), f"{name}: duplicate facet names"
        for mistake in ex.mistakes:
            assert mistake.facet is None or mistake.facet in names, (name, mistake.key)
        covered = {ex.facet_of(c) for c in ex.cases(hidden=False) + ex.cases(hidden=True, seed=0)}
        assert covered <= set(names), f"{name}: cases name unknown facets {covered - set(names)}"
        assert covered == set(names), f"{name}: facets without cases {set(names) - covered}"
        # The exercise's own Markdown (the cells between the previous test cell and its answer
        # cell) names every facet and its points.
        index = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == name)
        text = []
        for cell in reversed(nb.cells[:index]):
            if nbgrader_meta(cell).get("grade"):
                break
            if cell.cell_type == "markdown":
                text.append(cell.source)
        text = "\n".join(text).lower()
        for facet in facets:
            assert facet.name.lower() in text, f"{name}: the exercise text does not state facet " \
                                               f"{facet.name!r}"


@pytest.mark.parametrize("chapter", chapters())
def test_test_cells_end_with_the_score_and_diagnose_before_hand_checks(chapter: str):
    """The diagnosing check runs first (its report is what a learner reads), and the cell's last
    expression is the hidden check's score, which nbgrader records as partial credit."""
    nb = nbformat.read(SOLUTIONS / chapter / f"{chapter}.ipynb", as_version=4)
    for name in chapter_module(chapter).EXERCISES:
        cell = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == f"test_{name}")
        body = ast.parse(cell.source).body
        assert ast.unparse(body[0]).startswith(f"check('{name}', {name})"), ast.unparse(body[0])
        assert isinstance(body[-1], ast.Expr) and "hidden=True" in ast.unparse(body[-1]), \
            f"test_{name}: the last expression must be the hidden check (its score)"
