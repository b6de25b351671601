"""The course as the grading core sees it: chapters, their template cells, graded cells and checks.

A chapter ``NN_topic`` is three files (CONTRIBUTING.md): the instructor source
``solutions/NN_topic/NN_topic.ipynb``, the released student version
``notebooks/NN_topic/NN_topic.ipynb`` and the check module ``grader/chapters/chNN_topic.py``.
The core reads:

- the *template*: the released notebook's cells (ids, types, sources, nbgrader metadata), which a
  submission is matched against; the source notebook stands in when nothing is released yet;
- the *graded cells* and their points from the source notebook (what nbgrader's gradebook holds):
  each autograded test cell ``test_<name>`` is checked by ``EXERCISES[<name>]``; a graded cell that
  is also a solution cell (a written answer) is graded by hand;
- the *setup cell* (the first code cell), which the worker runs from the template, never from the
  submission.

Chapter modules are imported as ``grader.chapters.ch<chapter>``; directories listed in
``$LOSSOPT_GRADER_PATH`` (or passed as ``extra_paths``) may hold more, as top-level ``ch<chapter>``
modules (the test suite's fixture course uses this).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository: the default course root
CHAPTER_RE = re.compile(r"(\d\d)_[A-Za-z0-9_]+")


@dataclasses.dataclass(frozen=True)
class TemplateCell:
    """One cell of a chapter's released notebook."""

    index: int
    cell_type: str
    source: str
    cell_id: str | None
    grade_id: str | None
    role: str  # "setup" | "answer" | "test" | "manual" | "code" (demo) | "markdown"


@dataclasses.dataclass(frozen=True)
class GradedCell:
    """A cell that carries points in the gradebook."""

    grade_id: str
    points: float
    exercise: str | None  # the exercise's name, for an autograded test cell with a check
    manual: bool  # a written answer (solution and grade cell), graded by hand


@dataclasses.dataclass
class Chapter:
    """Everything the core needs to know about one chapter."""

    name: str
    module_name: str
    source_path: Path | None
    release_path: Path | None
    cells: list[TemplateCell]

    @functools.cached_property
    def graded(self) -> list[GradedCell]:
        """The graded cells, from the source notebook, matched with the check module."""
        path = self.source_path or self.release_path
        assert path is not None
        return graded_cells(read_json(path), self.exercises)

    @property
    def setup(self) -> TemplateCell | None:
        """The setup cell (the first code cell, when it is not an exercise cell)."""
        return next((c for c in self.cells if c.role == "setup"), None)

    @property
    def answers(self) -> dict[str, TemplateCell]:
        """Answer cells by grade_id (the exercise name)."""
        return {c.grade_id: c for c in self.cells if c.role == "answer" and c.grade_id}

    @property
    def grade_ids(self) -> set[str]:
        """Every nbgrader grade_id in the template."""
        return {c.grade_id for c in self.cells if c.grade_id}

    @functools.cached_property
    def module(self) -> Any:
        """The chapter's check module (imported in the grader's own process)."""
        return importlib.import_module(self.module_name)

    @property
    def exercises(self) -> dict[str, Any]:
        """``EXERCISES`` of the check module."""
        return dict(self.module.EXERCISES)

    def forbidden(self) -> dict[str, list[str]]:
        """Each exercise's forbidden dotted paths."""
        return {name: list(ex.forbidden) for name, ex in self.exercises.items()}


# ---------------------------------------------------------------------------------------------
# Reading notebooks


def nbgrader_meta(cell: dict[str, Any]) -> dict[str, Any]:
    """A cell's nbgrader metadata, {} when absent or malformed."""
    meta = cell.get("metadata")
    if not isinstance(meta, dict):
        return {}
    nb = meta.get("nbgrader")
    return dict(nb) if isinstance(nb, dict) else {}


def cell_source(cell: dict[str, Any]) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    src = cell.get("source", "")
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def read_json(path: Path) -> dict[str, Any]:
    """A trusted notebook (from the course) as a JSON dictionary."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def template_cells(nb: dict[str, Any]) -> list[TemplateCell]:
    """The cells of a template notebook, each with its role."""
    cells = []
    seen_setup = False
    for i, cell in enumerate(nb.get("cells", [])):
        meta = nbgrader_meta(cell)
        kind = cell.get("cell_type", "code")
        grade_id = meta.get("grade_id") or None
        if meta.get("solution") and meta.get("grade"):
            role = "manual"
        elif meta.get("solution"):
            role = "answer"
        elif meta.get("grade"):
            role = "test"
        elif kind == "code" and not seen_setup:
            role = "setup"
        elif kind == "code":
            role = "code"
        else:
            role = "markdown"
        seen_setup = seen_setup or kind == "code"
        cells.append(TemplateCell(i, kind, cell_source(cell), cell.get("id"), grade_id, role))
    return cells


def graded_cells(nb: dict[str, Any], exercises: dict[str, Any]) -> list[GradedCell]:
    """The graded cells of a source notebook, matched with the chapter's exercises."""
    by_grade_id = {getattr(ex, "grade_id", "") or f"test_{name}": name
                   for name, ex in exercises.items()}
    graded = []
    for cell in nb.get("cells", []):
        meta = nbgrader_meta(cell)
        if not meta.get("grade"):
            continue
        grade_id = str(meta.get("grade_id", ""))
        manual = bool(meta.get("solution")) or cell.get("cell_type") != "code"
        exercise = None if manual else by_grade_id.get(grade_id)
        graded.append(GradedCell(grade_id, float(meta.get("points", 0) or 0), exercise, manual))
    return graded


# ---------------------------------------------------------------------------------------------
# The course


class Course:
    """A course directory (solutions/, notebooks/) and where its check modules live."""

    def __init__(self, root: Path | str = ROOT, extra_paths: list[Path] | None = None) -> None:
        self.root = Path(root).resolve()
        env = [Path(p) for p in os.environ.get("LOSSOPT_GRADER_PATH", "").split(os.pathsep) if p]
        self.extra_paths = [p.resolve() for p in (extra_paths or []) + env]
        for path in self.extra_paths:
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))
        self._cache: dict[str, Chapter] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Chapter names in reading order (folders of solutions/ or notebooks/)."""
        found = set()
        for tree in ("solutions", "notebooks"):
            folder = self.root / tree
            if folder.is_dir():
                found |= {p.name for p in folder.iterdir()
                          if p.is_dir() and CHAPTER_RE.fullmatch(p.name)
                          and (p / f"{p.name}.ipynb").exists()}
        return sorted(found)

    def module_name(self, name: str) -> str:
        """The check module of a chapter: ``grader.chapters.ch<name>``, or ``ch<name>`` on an
        extra path."""
        for path in self.extra_paths:
            if (path / f"ch{name}.py").exists():
                return f"ch{name}"
        return f"grader.chapters.ch{name}"

    def chapter(self, name: str) -> Chapter:
        """Load a chapter (cached)."""
        with self._lock:
            if name not in self._cache:
                self._cache[name] = self._load(name)
            return self._cache[name]

    def _load(self, name: str) -> Chapter:
        source = self.root / "solutions" / name / f"{name}.ipynb"
        release = self.root / "notebooks" / name / f"{name}.ipynb"
        source_p = source if source.exists() else None
        release_p = release if release.exists() else None
        if source_p is None and release_p is None:
            raise KeyError(f"no chapter {name!r} in {self.root}")
        template = read_json(release_p or source_p)  # type: ignore[arg-type]
        return Chapter(name, self.module_name(name), source_p, release_p,
                       template_cells(template))

    # -- which chapter is this submission? ---------------------------------------------------------
    def from_filename(self, path: Path | str) -> str | None:
        """The chapter a file name names (``01_topic.ipynb``, ``01_topic (1).ipynb``, ...)."""
        stem = Path(path).name.rsplit(".", 1)[0]
        names = self.names()
        if stem in names:
            return stem
        for name in sorted(names, key=len, reverse=True):  # "01_topic-Copy1", "01_topic (2)"
            if stem.startswith(name):
                return name
        return None

    def from_content(self, grade_ids: set[str]) -> str | None:
        """The chapter whose grade ids a notebook carries most of (at least half of them)."""
        best, best_score = None, 0.0
        for name in self.names():
            try:
                ids = self.chapter(name).grade_ids
            except Exception:  # a broken chapter must not stop identification of the others
                continue
            if not ids:
                continue
            score = len(ids & grade_ids) / len(ids)
            if score > best_score:
                best, best_score = name, score
        return best if best_score >= 0.5 else None
