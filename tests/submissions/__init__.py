"""Builders of submissions, good and bad, made at test time from a chapter's real notebooks.

A submission starts from the released student notebook (what a learner downloads) and is edited
the way learners and cheaters edit it: answers filled from the instructor's source, cells added,
deleted, duplicated, reordered, retyped, metadata lost, test cells edited. Nothing here is a
committed copy of a notebook, so the corpus follows the chapters as they change.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

Notebook = dict[str, Any]


def load(path: Path) -> Notebook:
    """A notebook file as JSON."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write(nb: Notebook, path: Path) -> Path:
    """Write a notebook (JSON) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def meta(cell: dict[str, Any]) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def strip_solution(text: str) -> str:
    """An instructor answer without nbgrader's solution markers."""
    return "\n".join(line for line in text.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def code_cell(text: str, **nbgrader: Any) -> dict[str, Any]:
    """A new code cell (the learner's own unless ``nbgrader`` metadata is given)."""
    cell = {"cell_type": "code", "id": uuid.uuid4().hex[:8], "metadata": {},
            "execution_count": None, "outputs": [], "source": text}
    if nbgrader:
        cell["metadata"]["nbgrader"] = dict(nbgrader)
    return cell


def markdown_cell(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": uuid.uuid4().hex[:8], "metadata": {}, "source": text}


def pseudo_release(source_nb: Notebook) -> Notebook:
    """What ``nbgrader generate_assignment`` makes of a source notebook, for chapters not yet
    released: solutions replaced by nbgrader's stub, hidden tests removed, outputs cleared."""
    nb = copy.deepcopy(source_nb)
    for cell in nb["cells"]:
        text = source(cell)
        out, skip = [], False
        for line in text.splitlines():
            mark = line.strip()
            if mark in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
                skip = True
                if mark == "### BEGIN SOLUTION":
                    indent = line[:len(line) - len(line.lstrip())]
                    out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
                continue
            if mark in ("### END SOLUTION", "### END HIDDEN TESTS"):
                skip = False
                continue
            if not skip:
                out.append(line)
        cell["source"] = "\n".join(out)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


class Chapter:
    """A chapter's source and released notebooks, and edits of them."""

    def __init__(self, source: Path, release: Path) -> None:
        self.source_nb = load(source)
        self.release_nb = load(release) if Path(release).exists() else \
            pseudo_release(self.source_nb)
        self.name = Path(release).stem

    def answers(self) -> dict[str, str]:
        """The instructor's answers (solution markers removed) by grade_id."""
        return {meta(c)["grade_id"]: strip_solution(source(c)) for c in self.source_nb["cells"]
                if meta(c).get("solution") and not meta(c).get("grade")}

    def untouched(self) -> Notebook:
        """The released notebook as a learner downloads it."""
        return copy.deepcopy(self.release_nb)

    def filled(self, **overrides: str) -> Notebook:
        """The released notebook with every answer written (the instructor's, or ``overrides``)."""
        nb = self.untouched()
        answers = {**self.answers(), **overrides}
        for cell in nb["cells"]:
            gid = meta(cell).get("grade_id")
            if meta(cell).get("solution") and gid in answers and cell["cell_type"] == "code":
                cell["source"] = answers[gid]
        return nb


# ---------------------------------------------------------------------------------------------
# Edits (each returns a new notebook)


def index_of(nb: Notebook, grade_id: str) -> int:
    """Position of the cell with this nbgrader grade_id (or cell id)."""
    for i, cell in enumerate(nb["cells"]):
        if meta(cell).get("grade_id") == grade_id or cell.get("id") == grade_id:
            return i
    raise KeyError(grade_id)


def set_answer(nb: Notebook, grade_id: str, text: str) -> Notebook:
    nb = copy.deepcopy(nb)
    nb["cells"][index_of(nb, grade_id)]["source"] = text
    return nb


def insert(nb: Notebook, position: int | str, *cells: dict[str, Any],
           after: bool = True) -> Notebook:
    """Insert cells at an index, or after (before) the cell with a grade_id."""
    nb = copy.deepcopy(nb)
    if isinstance(position, str):
        position = index_of(nb, position) + (1 if after else 0)
    nb["cells"][position:position] = [copy.deepcopy(c) for c in cells]
    return nb


def own_cell_after_setup(nb: Notebook, text: str) -> Notebook:
    """The learner's own code cell right after the setup cell."""
    first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    return insert(nb, first_code + 1, code_cell(text))


def delete(nb: Notebook, *grade_ids: str) -> Notebook:
    nb = copy.deepcopy(nb)
    for gid in grade_ids:
        del nb["cells"][index_of(nb, gid)]
    return nb


def move_to_end(nb: Notebook, grade_id: str) -> Notebook:
    nb = copy.deepcopy(nb)
    cell = nb["cells"].pop(index_of(nb, grade_id))
    nb["cells"].append(cell)
    return nb


def duplicate(nb: Notebook, grade_id: str, first_source: str) -> Notebook:
    """Duplicate a cell (metadata included); the first copy gets ``first_source``."""
    nb = copy.deepcopy(nb)
    i = index_of(nb, grade_id)
    copy_ = copy.deepcopy(nb["cells"][i])
    copy_["source"] = first_source
    copy_["id"] = uuid.uuid4().hex[:8]
    nb["cells"].insert(i, copy_)
    return nb


def retype(nb: Notebook, grade_id: str, cell_type: str = "markdown") -> Notebook:
    nb = copy.deepcopy(nb)
    cell = nb["cells"][index_of(nb, grade_id)]
    cell["cell_type"] = cell_type
    if cell_type == "markdown":
        cell.pop("outputs", None)
        cell.pop("execution_count", None)
    return nb


def strip_metadata(nb: Notebook, *, ids: bool = False) -> Notebook:
    """Remove nbgrader metadata from every cell (and the cell ids, as a copy-paste does)."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("nbgrader", None)
        if ids:
            cell["id"] = uuid.uuid4().hex[:8]
    return nb


def edit_test_cells(nb: Notebook, text: str = "pass  # tests? what tests") -> Notebook:
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if meta(cell).get("grade") and not meta(cell).get("solution"):
            cell["source"] = text
    return nb
