"""Reading a submitted notebook defensively, and matching it against the chapter's template.

A submission is untrusted JSON. :func:`read_submission` accepts a file of at most
:data:`MAX_BYTES` that parses as a notebook (format 4, or 3 converted), and otherwise raises
:class:`InvalidNotebook` with a reason a learner can act on.

:func:`make_plan` decides what the worker runs, in the submission's order:

- **answer cells**, matched to the template's answer cells by nbgrader ``grade_id``, then by cell
  id, then by the name the cell defines (``def cross_entropy``); a duplicated answer cell counts
  once (the last copy, as nbgrader keeps it) and earlier copies run as the learner's own cells;
- **the learner's own cells** (cells the template does not have), so that a helper defined there
  keeps working; each runs on its own and an error is recorded, never fatal;
- never the learner's copies of the template's other cells: test cells (tests come from the
  grader), the setup cell (the worker runs the template's own; an edited copy runs as the
  learner's cell) and the demo cells (not needed to grade, and slow).

After an answer cell and the learner's cells that follow it, at the point where the template's
test cell would run, the plan takes a *snapshot* of the answer (the object the name is bound to
then), which is what the checks call: the same semantics as running the test cell in place.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from grader.core.course import Chapter, cell_source, nbgrader_meta

MAX_BYTES = 32 * 2**20  # a chapter notebook with outputs is a few MB


class InvalidNotebook(Exception):
    """The file cannot be graded; the message says why."""


@dataclasses.dataclass(frozen=True)
class SubCell:
    """One cell of a submission."""

    index: int  # position in the submitted notebook (0-based)
    cell_type: str
    source: str
    cell_id: str | None
    grade_id: str | None

    @property
    def where(self) -> str:
        return f"cell {self.index + 1}"


@dataclasses.dataclass(frozen=True)
class Step:
    """One thing the worker does: run a cell, or snapshot the answers defined so far."""

    kind: str  # "cell" | "snapshot"
    source: str = ""
    label: str = ""
    role: str = ""  # "answer" | "student"
    exercise: str | None = None  # for an answer cell: the answer's grade_id
    names: tuple[str, ...] = ()  # for a snapshot


@dataclasses.dataclass
class Plan:
    """What to run, and what the matching found."""

    steps: list[Step]
    answers: dict[str, SubCell | None]  # answer grade_id -> the matched cell
    problems: dict[str, str]  # answer grade_id -> why no usable answer cell was found
    notes: list[str]
    roles: dict[int, str] = dataclasses.field(default_factory=dict)  # cell index -> role
    anchors: dict[int, str | None] = dataclasses.field(default_factory=dict)

    def student_sources(self) -> list[tuple[str, str]]:
        """(label, source) of every cell the worker runs, in order."""
        return [(s.label, s.source) for s in self.steps if s.kind == "cell"]


# ---------------------------------------------------------------------------------------------
# Reading


def read_submission(path: Path | str) -> list[SubCell]:
    """The cells of a submitted notebook.

    Raises:
        InvalidNotebook: unreadable, too large, not JSON, or not a notebook.
    """
    path = Path(path)
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:
            raise InvalidNotebook(f"the file is {size / 2**20:.0f} MB, over the "
                                  f"{MAX_BYTES // 2**20} MB limit: clear the outputs and resubmit")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidNotebook(f"cannot read the file: {exc.strerror or exc}") from None
    return parse_submission(raw)


def parse_submission(raw: bytes) -> list[SubCell]:
    """Parse notebook bytes (see :func:`read_submission`)."""
    if len(raw) > MAX_BYTES:
        raise InvalidNotebook(f"the file is over the {MAX_BYTES // 2**20} MB limit")
    if not raw.strip():
        raise InvalidNotebook("the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidNotebook(f"the file is not UTF-8 text (byte {exc.start})") from None
    try:
        nb = json.loads(text)
    except RecursionError:
        raise InvalidNotebook("the file is not a notebook (JSON nested too deeply)") from None
    except json.JSONDecodeError as exc:
        truncated = not text.rstrip().endswith("}")
        hint = " (it looks truncated: was the upload cut short?)" if truncated else ""
        raise InvalidNotebook(f"the file is not valid notebook JSON: {exc.msg} at line "
                              f"{exc.lineno}, column {exc.colno}{hint}") from None
    return cells_from_json(nb)


def cells_from_json(nb: Any) -> list[SubCell]:
    """The cells of a parsed notebook (see :func:`read_submission`).

    Raises:
        InvalidNotebook: not a notebook.
    """
    if not isinstance(nb, dict):
        raise InvalidNotebook("the file is JSON but not a notebook (no cells)")
    cells = nb.get("cells")
    if cells is None and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict)
                 for c in ws.get("cells", []) if isinstance(c, dict)]
        cells = [dict(c, source=c.get("input", c.get("source", ""))) for c in cells]
    if not isinstance(cells, list):
        raise InvalidNotebook("the file is JSON but not a notebook (no list of cells)")
    out = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            continue
        kind = cell.get("cell_type")
        kind = kind if kind in ("code", "markdown", "raw") else "raw"
        cid = cell.get("id") if isinstance(cell.get("id"), str) else None
        gid = nbgrader_meta(cell).get("grade_id")
        out.append(SubCell(i, kind, cell_source(cell), cid, gid if isinstance(gid, str) else None))
    return out


# ---------------------------------------------------------------------------------------------
# Matching


def defined_names(source: str) -> set[str]:
    """Names a cell binds at top level (def, class, assignment, import); empty if unparsable."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def make_plan(chapter: Chapter, cells: list[SubCell]) -> Plan:
    """Match a submission against the chapter's template and decide what the worker runs."""
    answers_t = chapter.answers
    by_id = {c.cell_id: c for c in chapter.cells if c.cell_id}
    instructor_ids = {c.grade_id: c for c in chapter.cells
                      if c.grade_id and c.role in ("test", "manual", "setup", "code")}
    template_code = {c.source.strip() for c in chapter.cells
                     if c.cell_type == "code" and c.role != "answer" and c.source.strip()}
    notes: list[str] = []
    role: dict[int, str] = {}  # submission cell index -> "answer:<gid>" | "student" | "skip"
    candidates: dict[str, list[SubCell]] = {gid: [] for gid in answers_t}

    for cell in cells:
        t = by_id.get(cell.cell_id) if cell.cell_id else None
        if cell.grade_id in answers_t:
            candidates[cell.grade_id].append(cell)
        elif cell.grade_id in instructor_ids:
            tcell = instructor_ids[cell.grade_id]
            role[cell.index] = "skip"
            edited = cell.source.strip() != tcell.source.strip()
            if tcell.role == "setup" and edited and cell.cell_type == "code":
                role[cell.index] = "student"
                notes.append("your setup cell was edited: the course's setup cell runs first, "
                             "then yours")
            elif tcell.role == "test" and edited:
                notes.append(f"your copy of the test cell {cell.grade_id} was edited; it is "
                             "ignored (tests always come from the course)")
        elif t is not None and t.role == "answer" and t.grade_id:
            candidates[t.grade_id].append(cell)
        elif t is not None and t.role == "setup" and cell.cell_type == "code":
            if cell.source.strip() != t.source.strip():
                role[cell.index] = "student"
                notes.append("your setup cell was edited: the course's setup cell runs first, "
                             "then yours")
            else:
                role[cell.index] = "skip"
        elif t is not None and t.role in ("test", "code", "manual", "markdown"):
            role[cell.index] = "skip" if t.cell_type == cell.cell_type or \
                cell.cell_type != "code" else "student"
        elif cell.cell_type == "code" and cell.source.strip() in template_code:
            role[cell.index] = "skip"
        else:
            role[cell.index] = "student" if cell.cell_type == "code" else "skip"

    answers: dict[str, SubCell | None] = {}
    problems: dict[str, str] = {}
    for gid, found in candidates.items():
        code = [c for c in found if c.cell_type == "code"]
        for c in found:
            role[c.index] = "student" if c.cell_type == "code" else "skip"
        if code:
            answers[gid] = code[-1]
            role[code[-1].index] = f"answer:{gid}"
            if len(code) > 1:
                notes.append(f"the answer cell {gid} appears {len(code)} times: the last copy "
                             f"({code[-1].where}) is graded, the others run as your own cells")
            continue
        # No cell carries the answer's metadata or id: the last cell of the learner's own that
        # defines the name stands in (metadata lost in a copy-paste, a new cell, ...).
        defining = [c for c in cells if role.get(c.index) == "student"
                    and gid in defined_names(c.source)]
        if defining:
            answers[gid] = defining[-1]
            role[defining[-1].index] = f"answer:{gid}"
            notes.append(f"no cell carries the answer metadata of {gid}: "
                         f"{defining[-1].where}, which defines it, is graded")
        else:
            answers[gid] = None
            problems[gid] = (f"the answer cell for {gid} was turned into a {found[-1].cell_type} "
                             "cell: change it back to code" if found else
                             f"no answer cell for {gid} was found (was it deleted?)")

    steps: list[Step] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            steps.append(Step("snapshot", names=tuple(pending)))
            pending.clear()

    for cell in cells:
        what = role.get(cell.index, "skip")
        if what.startswith("answer:"):
            flush()
            gid = what.split(":", 1)[1]
            steps.append(Step("cell", cell.source, f"your answer cell for {gid} ({cell.where})",
                              "answer", gid))
            pending.append(gid)
        elif what == "student":
            steps.append(Step("cell", cell.source, f"{cell.where} (your own cell)", "student"))
        elif cell.cell_type == "code" or cell.grade_id:
            flush()
    flush()
    return Plan(steps, answers, problems, notes, role, anchor_cells(chapter, cells, role))


def template_key(chapter: Chapter, cell: SubCell, role: str) -> str | None:
    """The template cell a submission cell stands for, as ``id:<cell id>`` (None: the learner's)."""
    if role.startswith("answer:"):
        gid = role.split(":", 1)[1]
        t = chapter.answers.get(gid)
        return f"id:{t.cell_id}" if t is not None and t.cell_id else None
    if role == "student":
        return None
    for t in chapter.cells:
        if (cell.grade_id and t.grade_id == cell.grade_id) or \
                (cell.cell_id and t.cell_id == cell.cell_id):
            return f"id:{t.cell_id}" if t.cell_id else None
    return None


def anchor_cells(chapter: Chapter, cells: list[SubCell], role: dict[int, str]
                 ) -> dict[int, str | None]:
    """For each of the learner's own cells, the template cell it follows (``id:...``, or None)."""
    anchors: dict[int, str | None] = {}
    last: str | None = None
    for cell in cells:
        what = role.get(cell.index, "skip")
        key = template_key(chapter, cell, what)
        if what == "student" or (key is None and cell.cell_type != "code"):
            anchors[cell.index] = last
        elif key is not None:
            last = key
    return anchors


def submitted_grade_ids(cells: list[SubCell]) -> set[str]:
    """The nbgrader grade ids a submission carries (for identifying its chapter)."""
    return {c.grade_id for c in cells if c.grade_id}


def describe_cell(cell: SubCell | None) -> str:
    """Where a cell is, for messages."""
    return cell.where if cell is not None else "nowhere"


def as_dict(plan: Plan) -> dict[str, Any]:
    """A plan as plain data (for debugging output)."""
    return {"steps": [dataclasses.asdict(s) for s in plan.steps], "notes": plan.notes,
            "problems": plan.problems}
