"""nbgrader on top of the grading core: nbgrader autograde gets the CLI's protections and scores.

nbgrader 0.9 autogrades in two passes over each submitted notebook (``Autograde`` in
nbgrader/converters/autograde.py): *sanitize* (clear outputs, overwrite locked cells from the
gradebook, ...) and *autograde* (``Execute`` runs the notebook in a kernel, then ``SaveAutoGrades``
stores a grade per grade cell with ``nbgrader.utils.determine_grade``: 0 when the cell's outputs
hold an error, full points otherwise). The project's ``nbgrader_config.py`` swaps three pieces:

- :class:`SubmissionExporter` reads submissions leniently, so that malformed or truncated JSON, or
  a huge file, becomes an empty notebook to grade as ``invalid`` instead of an nbgrader failure;
- :class:`GraderSanitize` replaces the sanitize pass: it runs the grading core on the submitted
  file (sandboxed worker, checks judged outside it, exactly as ``python -m grader autograde``), and
  returns a *canonical* notebook: the source notebook's cells in the source order (so deleted,
  duplicated, reordered or retyped cells and edited metadata cannot confuse nbgrader), with the
  learner's answers and own cells put back, and the core's result in the notebook metadata;
- :class:`GraderOutputs` replaces ``Execute``: it writes into every graded test cell an output that
  makes ``SaveAutoGrades`` record exactly the core's score (a ``stream`` for a pass; an ``error``
  carrying the core's feedback otherwise) and removes the hidden tests from the cell's source, so
  that neither formgrader nor ``generate_feedback`` shows them.

Nothing of the learner's runs in nbgrader's process or in a Jupyter kernel, so one ``os._exit``,
an infinite loop or a patched builtin cannot fail or fool the rest of the notebook.
:class:`StripHiddenTests` is also in the feedback pipeline, for notebooks autograded before.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter
from nbformat.notebooknode import NotebookNode
from traitlets import Float, Integer, List

from nbgrader.preprocessors import NbGraderPreprocessor

from grader.core.autograde import References, grade_batch
from grader.core.course import Course, cell_source, nbgrader_meta, read_json
from grader.core.notebook import MAX_BYTES, InvalidNotebook, cells_from_json, make_plan
from grader.core.sandbox import Limits, shared_pool

GRADER_KEY = "lossopt_grader"  # notebook metadata: the core's result
UNREADABLE = "lossopt_unreadable"  # notebook metadata: why the submitted file could not be read
HIDDEN = re.compile(r"^[^\n]*BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*$", re.S | re.M)
_BATCH_SEED: list[int] = []
_REFERENCES: dict[tuple[str, int], References] = {}  # one set of references per course and seed


def batch_seed() -> int:
    """One seed per nbgrader process (``$LOSSOPT_SEED`` when set), shared by its submissions."""
    if not _BATCH_SEED:
        from grader.core.autograde import new_seed

        env = os.environ.get("LOSSOPT_SEED")
        _BATCH_SEED.append(int(env) if env else new_seed())
    return _BATCH_SEED[0]


def strip_hidden_tests(source: str) -> str:
    """A test cell's source with its hidden tests replaced by a note."""
    return HIDDEN.sub("# (hidden tests: run by the grader, not shown)", source)


class SubmissionExporter(NotebookExporter):
    """Reads a submission leniently: an unreadable file becomes an empty, flagged notebook."""

    def from_filename(self, filename: str, resources: Any = None, **kw: Any) -> Any:
        try:
            too_big = os.stat(filename).st_size > MAX_BYTES
        except OSError:
            too_big = False
        if not too_big:
            try:
                return super().from_filename(filename, resources=resources, **kw)
            except Exception as exc:  # malformed, truncated, not UTF-8, not a notebook...
                reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        else:
            reason = f"the file is over the {MAX_BYTES // 2**20} MB limit"
        nb = nbformat.v4.new_notebook()
        nb.metadata[UNREADABLE] = reason
        resources = resources if resources is not None else {}
        meta = resources.setdefault("metadata", {})
        meta["path"], base = os.path.split(filename)
        meta["name"] = os.path.splitext(base)[0]
        return self.from_notebook_node(nb, resources=resources, **kw)


class GraderSanitize(NbGraderPreprocessor):
    """Grades the submitted file with the core and returns the canonical notebook."""

    timeout = Float(60.0, help="time limit per exercise check and per cell").tag(config=True)
    memory_gib = Float(4.0, help="memory limit of the process running a submission"
                       ).tag(config=True)
    seed = Integer(None, allow_none=True, help="seed of the hidden cases (default: "
                   "$LOSSOPT_SEED, else one fresh seed per nbgrader run)").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        from nbgrader.coursedir import CourseDirectory

        root = CourseDirectory(parent=self).root
        course = Course(root)
        assignment = resources["nbgrader"]["assignment"]
        path = os.path.join(resources["metadata"]["path"], resources["metadata"]["name"] + ".ipynb")
        limits = Limits(timeout=self.timeout, memory=int(self.memory_gib * 2**30))
        seed = self.seed if self.seed is not None else batch_seed()
        pool = shared_pool(None, course.extra_paths)  # one zygote for the whole nbgrader run
        refs = _REFERENCES.setdefault((str(root), seed), References(seed))
        result = grade_batch([path], course=course, seed=seed, limits=limits, jobs=1,
                             assignment=assignment, pool=pool, refs=refs)[0]
        failure = result.pop("grader_error", None)
        if failure:
            raise RuntimeError(f"the grading core failed on {path}: {failure}")
        chapter = course.chapter(assignment)
        self.log.info("%s: %s, %g/%g (seed %s)", path, result["status"], result["score"],
                      result["max_score"], result["seed"])
        out = canonical_notebook(chapter, nb)
        out.metadata[GRADER_KEY] = result
        return out, resources


def canonical_notebook(chapter: Any, submitted: NotebookNode) -> NotebookNode:
    """The source notebook's cells in order, with the learner's answers and own cells put back."""
    source = nbformat.read(str(chapter.source_path or chapter.release_path), as_version=4)
    release = read_json(chapter.release_path) if chapter.release_path else {"cells": []}
    release_meta = {c.get("id"): nbgrader_meta(c) for c in release.get("cells", [])}
    raw = submitted.get("cells", []) if UNREADABLE not in submitted.metadata else []
    try:
        cells = cells_from_json({"cells": [dict(c) for c in raw]})
    except InvalidNotebook:
        cells = []
    plan = make_plan(chapter, cells)
    by_index = {c.index: c for c in cells}
    # The learner's version of every template cell they kept, by template cell id.
    theirs: dict[str, str] = {}
    for gid, cell in plan.answers.items():
        t = chapter.answers.get(gid)
        if cell is not None and t is not None and t.cell_id:
            theirs[t.cell_id] = cell.source
    for t in chapter.cells:
        if t.role == "manual":
            match = [c for c in cells if (c.grade_id and c.grade_id == t.grade_id)
                     or (c.cell_id and c.cell_id == t.cell_id)]
            if match:
                theirs[str(t.cell_id)] = match[-1].source
    extras: dict[str | None, list[NotebookNode]] = {}
    for index, anchor in plan.anchors.items():
        original = raw[index] if index < len(raw) else None
        sub = by_index.get(index)
        if sub is None:
            continue
        cell = (nbformat.v4.new_code_cell(sub.source) if sub.cell_type == "code" else
                nbformat.v4.new_markdown_cell(sub.source) if sub.cell_type == "markdown" else
                nbformat.v4.new_raw_cell(sub.source))
        if isinstance(original, dict) and isinstance(original.get("id"), str):
            cell.id = original["id"]
        extras.setdefault(anchor, []).append(cell)
    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(source.metadata))
    out.cells.extend(extras.get(None, []))
    ours: set[int] = set()  # the course's own cells keep their ids
    for cell in source.cells:
        c = copy.deepcopy(cell)
        ours.add(id(c))
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
        cid = c.get("id")
        if cid in theirs:
            c.source = theirs[cid]
        elif nbgrader_meta(c).get("solution") and cid in release_meta:
            c.source = next(cell_source(r) for r in release.get("cells", []) if r.get("id") == cid)
        if cid in release_meta and release_meta[cid]:
            c.metadata["nbgrader"] = copy.deepcopy(release_meta[cid])
        out.cells.append(c)
        out.cells.extend(extras.get(f"id:{cid}", []))
    taken = {c.get("id") for c in out.cells if id(c) in ours}
    for k, cell in enumerate(out.cells):  # nbformat needs unique ids; a learner's copy may clash
        if id(cell) not in ours:
            if cell.get("id") in taken or not cell.get("id"):
                cell.id = f"own-{k}"
            taken.add(cell.id)
    return out


class GraderOutputs(NbGraderPreprocessor):
    """Writes the core's verdict into each graded test cell (see the module docstring)."""

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        result = nb.metadata.get(GRADER_KEY)
        cells = {c["grade_id"]: c for c in (result or {}).get("cells", [])}
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
                continue
            cell.source = strip_hidden_tests(cell.source)
            verdict = cells.get(meta.get("grade_id"))
            if result is None:
                verdict = {"status": "error", "message": "not graded: run the sanitize step of "
                           "the project's nbgrader_config.py (grader.core.nbgrader_plugin)"}
            elif verdict is None:
                verdict = {"status": "error", "message": "not graded by the grading core"}
            cell.outputs = outputs_for(verdict, result)
            cell.execution_count = None
        notes = (result or {}).get("message")
        if result is not None and (notes or result.get("status") == "invalid"):
            head = ("**This notebook could not be graded:** " if result["status"] == "invalid"
                    else "**Grader notes:** ")
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(head + notes))
        return nb, resources


def outputs_for(verdict: dict[str, Any], result: dict[str, Any] | None) -> list[NotebookNode]:
    """The outputs that make nbgrader record the core's score for one graded cell.

    nbgrader's ``determine_grade`` reads a cell's outputs in order: an ``error`` (or stderr)
    scores 0, an ``execute_result`` holding a number scores that number (partial credit), and
    anything else full points. So: a pass is a ``stream``; a partial score is the report as a
    ``stream`` followed by the score as an ``execute_result``; a score of 0 is an ``error``
    carrying the report, shown in red by formgrader and the feedback.
    """
    message = verdict.get("message", "")
    status = verdict.get("status", "error")
    if status == "passed":
        return [nbformat.v4.new_output("stream", name="stdout", text=f"passed: {message}\n")]
    score = float(verdict.get("score") or 0.0)
    if score > 0:
        report = nbformat.v4.new_output("stream", name="stdout", text=f"{message}\n")
        value = nbformat.v4.new_output("execute_result", data={"text/plain": f"{score:g}"},
                                       execution_count=None)
        return [report, value]
    lines = [f"{status.upper()}: {message}"]
    if result is not None and status in ("failed", "error"):
        lines.append(f"(grading seed {result.get('seed')})")
    return [nbformat.v4.new_output("error", ename=status.upper(),
                                   evalue=message.split("\n", 1)[0], traceback=lines)]


class StripHiddenTests(NbGraderPreprocessor):
    """Removes hidden tests from graded cells (feedback of notebooks autograded elsewhere)."""

    # Declared as configurable (as GetGrades does) so that the HTML exporter's setting of it
    # does not warn.
    display_data_priority = List(["text/html", "application/pdf", "text/latex", "image/svg+xml",
                                  "image/png", "image/jpeg", "text/plain"]).tag(config=True)

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int
                        ) -> tuple[NotebookNode, Any]:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("grade"):
            cell.source = strip_hidden_tests(cell.source)
        return cell, resources
