"""The grading core on the course's real chapters: a perfect submission gets every point, an
untouched one none, calling PyTorch's own function is forbidden, and the chapter's corpus of wrong
answers comes back failed *and* diagnosed, through the sandbox and the wire.

Chapters whose notebooks are not released yet are graded against their source notebook.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from grader.core.autograde import grade_batch
from grader.core.course import Course
from grader.kit.exercise import check_exercise
from grader.core.sandbox import Limits
from nbutils import NOTEBOOKS, SOLUTIONS
from submissions import Chapter, own_cell_after_setup, write
from submissions.threats import describe

pytestmark = pytest.mark.slow

SEED = 99
COURSE = Course()
ROUNDS = 2  # corpus entries per exercise, taken from the start and the end of its list


def chapters() -> list[str]:
    names = []
    for name in COURSE.names():
        try:
            COURSE.chapter(name).exercises
        except Exception:  # a check module still being written
            continue
        if (SOLUTIONS / name / f"{name}.ipynb").exists():
            names.append(name)
    return names


CHAPTERS = chapters()


def builder(name: str) -> Chapter:
    return Chapter(SOLUTIONS / name / f"{name}.ipynb", NOTEBOOKS / name / f"{name}.ipynb")


def forbidden_answer(name: str, ex: Any) -> tuple[str, str]:
    """An answer that hands the work to the library (subclass its class, or call its function),
    and the forbidden path it uses."""
    for path in ex.forbidden:
        owner, attr = path.rsplit(".", 1)
        obj = getattr(importlib.import_module(owner), attr, None) if "._" not in path else None
        if isinstance(obj, type) and isinstance(ex.torch_reference(), type):
            return f"import {owner}\nclass {name}({path}):\n    pass", path
        if callable(obj) and not isinstance(obj, type) and not path.startswith("torch.Tensor"):
            return (f"import {owner}\ndef {name}(*args, **kwargs):\n"
                    f"    return {path}(*args, **kwargs)"), path
    return None


REGISTRY_IMPORT = "from corpus.registry import Registry\n"
REGISTRY = Path(__file__).parent / "corpus" / "registry.py"

# Generated corpus entries (chapter 4 builds its wrong classes by editing a correct one) are
# typed into the answer cells as their own text, after these imports.
GENERATED_PRELUDE = "import math\nfrom torch.optim import Optimizer\n\n"


def corpus_rounds(name: str) -> list[tuple[str | None, dict[str, tuple[str, str]],
                                           dict[str, str]]]:
    """Per round: (corpus module source to put in an own cell, or None;
    {exercise: (entry name, mistake key)}; {exercise: the answer cell's text})."""
    try:
        module = importlib.import_module(f"corpus.ch{name}")
    except ImportError:
        return []
    by_exercise: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    generated: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for exercise, key, fn, *_ in module.CORPUS:
        if hasattr(fn, "__corpus_source__"):
            # Entries built on the learner's own Adam would depend on the Adam cell's answer.
            if fn.__mro__[1].__name__ != "Adam":
                generated[exercise].append((key, fn))
            continue
        try:
            inspect.getsource(fn)  # entries built at run time cannot be re-typed in a cell
        except (OSError, TypeError):
            continue
        if getattr(module, fn.__name__, None) is fn:
            by_exercise[exercise].append((key, fn))
    text = Path(module.__file__).read_text()
    rounds = []
    for k in range(ROUNDS):
        if by_exercise:
            picks = {ex: (entries[-1] if k else entries[0]) for ex, entries in by_exercise.items()
                     if entries and (k == 0 or len(entries) > 1)}
            answers = {ex: f"{ex} = {fn.__name__}" for ex, (_, fn) in picks.items()}
            module_text: str | None = text
        else:
            picks = {ex: (entries[-1] if k else entries[0]) for ex, entries in generated.items()
                     if entries and (k == 0 or len(entries) > 1)}
            answers = {ex: GENERATED_PRELUDE + fn.__corpus_source__ for ex, (_, fn) in picks.items()}
            module_text = None
        if picks:
            rounds.append((module_text, {ex: (fn, key) for ex, (key, fn) in picks.items()},
                           answers))
    return rounds


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory):
    sys.path.insert(0, str(Path(__file__).parent))
    root = tmp_path_factory.mktemp("chapters")
    jobs: list[tuple[str, str, Path, Any]] = []
    for name in CHAPTERS:
        ch = builder(name)
        exercises = COURSE.chapter(name).exercises
        jobs.append((name, "filled", write(ch.filled(), root / name / "filled" / f"{name}.ipynb"),
                     None))
        jobs.append((name, "untouched", write(ch.untouched(),
                                              root / name / "untouched" / f"{name}.ipynb"), None))
        cheats = {ex_name: forbidden_answer(ex_name, ex) for ex_name, ex in exercises.items()}
        cheats = {k: v for k, v in cheats.items() if v is not None}
        forbidden = ch.filled(**{ex_name: src for ex_name, (src, _) in cheats.items()})
        jobs.append((name, "forbidden", write(forbidden, root / name / "forbidden" /
                                              f"{name}.ipynb"), cheats))
        for k, (text, picks, answers) in enumerate(corpus_rounds(name)):
            nb = ch.filled(**answers)
            if text is not None:
                # The corpus module as the learner's own cell; the registry it imports from the
                # tests (not importable in the sandbox) goes in a cell of its own before it.
                nb = own_cell_after_setup(nb, text.replace(REGISTRY_IMPORT, ""))
                if REGISTRY_IMPORT in text:
                    nb = own_cell_after_setup(nb, REGISTRY.read_text())
            jobs.append((name, f"corpus{k}", write(nb, root / name / f"corpus{k}" /
                                                    f"{name}.ipynb"), picks))
    results = grade_batch([str(p) for _, _, p, _ in jobs], course=COURSE, seed=SEED,
                          limits=Limits(timeout=120), jobs=2)
    return {(name, kind): (res, extra) for (name, kind, _, extra), res
            in zip(jobs, results, strict=True)}


def autograded(res: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in res["cells"] if c["status"] != "manual"]


@pytest.mark.parametrize("name", CHAPTERS)
def test_a_perfect_submission_gets_every_point(graded, name):
    res, _ = graded[(name, "filled")]
    assert res["status"] == "graded", describe(res)
    assert autograded(res) and all(c["status"] == "passed" for c in autograded(res)), \
        describe(res)


@pytest.mark.parametrize("name", CHAPTERS)
def test_an_untouched_submission_gets_none_and_says_why(graded, name):
    res, _ = graded[(name, "untouched")]
    assert res["score"] == 0, describe(res)
    for cell in autograded(res):
        assert cell["status"] == "missing" and "NotImplementedError" in cell["message"], \
            describe(res)


@pytest.mark.parametrize("name", CHAPTERS)
def test_handing_the_work_to_pytorch_is_forbidden(graded, name):
    res, cheats = graded[(name, "forbidden")]
    cell_of = {g.grade_id: g.exercise for g in COURSE.chapter(name).graded if g.exercise}
    for cell in autograded(res):
        if cell_of[cell["grade_id"]] not in cheats:
            continue
        assert cell["status"] == "forbidden" and cell["score"] == 0, describe(res)
        assert cheats[cell_of[cell["grade_id"]]][1] in cell["message"], describe(res)


@pytest.mark.parametrize("name", CHAPTERS)
def test_corpus_entries_are_caught_and_diagnosed_through_the_core(graded, name):
    rounds = [(res, picks) for (n, kind), (res, picks) in graded.items()
              if n == name and kind.startswith("corpus")]
    assert rounds, f"{name}: no corpus entries reached the grading core"
    exercises = COURSE.chapter(name).exercises
    cell_of = {g.exercise: g.grade_id for g in COURSE.chapter(name).graded if g.exercise}
    for res, picks in rounds:
        cells = {c["grade_id"]: c for c in res["cells"]}
        for exercise, (impl, key) in picks.items():
            fn = impl.__name__
            cell = cells[cell_of[exercise]]
            assert cell["status"] in ("failed", "error") and cell["score"] < cell["max_score"], \
                f"{exercise}/{key} ({fn}):\n{describe(res)}"
            mistake = next(m for m in exercises[exercise].mistakes if m.key == key)
            assert mistake.message in cell["message"], \
                f"{exercise}/{key} ({fn}) not diagnosed:\n{cell['message']}"
            # The sandboxed core and the notebook's check give the same partial score and lose
            # the same facets, on the same seed.
            result, _ = check_exercise(exercises[exercise], impl, hidden=True, seed=SEED)
            assert cell["score"] == pytest.approx(result.score), (exercise, fn)
            lost = {f["name"] for f in cell["facets"] if f["status"] == "lost"}
            assert lost == {f.name for f in result.lost()}, (exercise, fn)
