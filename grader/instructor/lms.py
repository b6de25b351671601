"""Grades into the LMS and submissions out of it: nbgrader plugins for Canvas and Moodle.

**Import** (``nbgrader zip_collect ASSIGNMENT``): put the archive an LMS gives for "download all
submissions" in ``downloaded/ASSIGNMENT/archive/``; nbgrader extracts it and asks the collector
plugin, for each file, which student and notebook it is.

- :class:`CanvasCollector`: Canvas names each file
  ``<lastfirst>_[LATE_]<canvas user id>_<submission id>_<file name>`` (a resubmission's file name
  gains ``-1``, ``-2``... before the extension). The student is the gradebook student whose
  ``lms_user_id`` is that Canvas user id.
- :class:`MoodleCollector`: Moodle names each file ``<Full Name>_<participant id>_assignsubmission_
  file_<file name>``, or puts it in a folder of that name ("download submissions in folders");
  with blind marking the name is ``Participant``. The student is the gradebook student whose
  ``lms_user_id`` is the participant id, else the one whose first and last name make the full name.

A file whose student is not in the gradebook is skipped with a warning that names it (add the
student with ``nbgrader db student add ID --lms-user-id=...``).

**Export** (``nbgrader export --exporter=grader.instructor.lms.CanvasExport --to canvas.csv``):

- :class:`CanvasExport` writes Canvas's gradebook CSV: ``Student``, ``ID`` (the student's
  ``lms_user_id``: Canvas matches rows on it), ``SIS User ID``, ``SIS Login ID``, ``Section``, then
  one column per assignment, headed by its Canvas name; a ``Points Possible`` row first, as Canvas
  exports it. Students without an ``lms_user_id`` are left out, with a warning.
- :class:`MoodleExport` writes a CSV for Moodle's grade import: ``First name``, ``Last name``,
  ``ID number`` (the ``lms_user_id``), ``Email address``, then one column per assignment, headed by
  its Moodle grade item name; in Moodle's import, map ``Email address`` to ``useremail`` or ``ID
  number`` to ``useridnumber``, and each assignment column to its grade item.

Both write the score after the late penalty (what nbgrader's own CSV calls ``score``), 0 for
work not handed in, and rename assignments with the **mapping file** ``lms_assignments.json`` in
the course directory (``{"01_classification_losses": "Losses for classification (1234)"}``; a
Canvas name may carry the assignment id in parentheses, as Canvas's own export does). An
assignment not in the file keeps its nbgrader name.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin, FileNameCollectorPlugin
from traitlets import Unicode

MAPPING_FILE = "lms_assignments.json"

CANVAS_FILE = re.compile(r"^(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<lms_user_id>\d+)_"
                         r"(?P<submission_id>\d+)_(?P<file_id>.+?)(?:-(?P<attempt>\d+))?"
                         r"(?P<ext>\.[A-Za-z0-9]+)$")
MOODLE_PREFIX = re.compile(r"^(?P<name>.+?)_(?P<lms_user_id>\d+)_assignsubmission_file_"
                           r"(?P<rest>.*)$")


def coursedir(plugin: Any) -> Any:
    """The course directory of the nbgrader app running ``plugin``."""
    found = getattr(plugin.parent, "coursedir", None)
    if found is None:
        from nbgrader.coursedir import CourseDirectory

        found = CourseDirectory(parent=plugin.parent)
    return found


def _students(gradebook_url: str) -> list[dict[str, str]]:
    with Gradebook(gradebook_url) as gb:
        return [{"id": s.id, "first": s.first_name or "", "last": s.last_name or "",
                 "lms": str(s.lms_user_id or "")} for s in gb.students]


class _GradebookCollector(FileNameCollectorPlugin):
    """A collector that looks students up in the course's gradebook."""

    gradebook_url = Unicode("", help="the gradebook (default: the course's, as nbgrader "
                            "uses it)").tag(config=True)

    def _roster(self) -> list[dict[str, str]]:
        if not hasattr(self, "_cache"):
            self._cache = _students(self.gradebook_url or coursedir(self).db_url)
        return self._cache

    def by_lms_id(self, lms_id: str) -> str | None:
        return next((s["id"] for s in self._roster() if s["lms"] and s["lms"] == lms_id), None)

    def by_name(self, name: str) -> str | None:
        def norm(text: str) -> str:
            return " ".join(text.lower().split())

        hits = [s["id"] for s in self._roster()
                if norm(f"{s['first']} {s['last']}") == norm(name) and norm(name)]
        return hits[0] if len(hits) == 1 else None

    def _found(self, path: str, student: str | None, file_id: str, why: str) -> dict | None:
        _, ext = os.path.splitext(file_id)
        if ext not in self.valid_ext:
            self.log.debug("not a notebook, skipped: %s", path)
            return None
        if student is None:
            self.log.warning("skipped %s: no student in the gradebook with %s", path, why)
            return None
        return {"student_id": student, "file_id": file_id}


class CanvasCollector(_GradebookCollector):
    """Files of a Canvas "Download Submissions" archive (see the module docstring)."""

    def collect(self, submitted_file: str) -> dict | None:
        base = os.path.basename(submitted_file)
        match = CANVAS_FILE.match(base)
        if not match:
            self.log.warning("skipped %s: not a Canvas submission file name "
                             "(<name>_[LATE_]<user id>_<submission id>_<file>)", submitted_file)
            return None
        lms_id = match["lms_user_id"]
        return self._found(submitted_file, self.by_lms_id(lms_id),
                           match["file_id"] + match["ext"], f"lms_user_id {lms_id}")


class MoodleCollector(_GradebookCollector):
    """Files of a Moodle "Download all submissions" archive (see the module docstring)."""

    def collect(self, submitted_file: str) -> dict | None:
        path = Path(submitted_file)
        match = MOODLE_PREFIX.match(path.name)
        if match and match["rest"]:
            file_id = match["rest"]
        else:  # downloaded in folders: <Full Name>_<id>_assignsubmission_file_/<file>
            match = MOODLE_PREFIX.match(path.parent.name)
            file_id = path.name
        if not match:
            self.log.warning("skipped %s: not a Moodle submission file name "
                             "(<Full Name>_<id>_assignsubmission_file_<file>)", submitted_file)
            return None
        student = self.by_lms_id(match["lms_user_id"])
        if student is None and match["name"] != "Participant":
            student = self.by_name(match["name"])
        return self._found(submitted_file, student, file_id,
                           f"lms_user_id {match['lms_user_id']} or the name {match['name']!r}")


# ---------------------------------------------------------------------------------------------
# Export


def load_mapping(path: Path) -> dict[str, str]:
    """The course's assignment -> LMS assignment name mapping ({} without the file); ValueError
    for a file that is not a JSON object of names."""
    if not path.is_file():
        return {}
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                and v.strip() for k, v in mapping.items()):
        raise ValueError(f"{path} must map each assignment to an LMS assignment name, e.g. "
                         '{"01_classification_losses": "Losses for classification"}')
    return mapping


class _LmsExport(ExportPlugin):
    """Common part: which students and assignments, their scores, the mapping file."""

    mapping_file = Unicode("", help=f"assignment name mapping (default: {MAPPING_FILE} in the "
                           "course directory)").tag(config=True)
    default_to = "grades.csv"

    def mapping(self) -> dict[str, str]:
        path = self.mapping_file or os.path.join(coursedir(self).root, MAPPING_FILE)
        return load_mapping(Path(path))

    def table(self, gradebook: Gradebook) -> tuple[list[Any], list[Any], dict]:
        names = [str(a) for a in self.assignment]
        assignments = sorted((a for a in gradebook.assignments if not names or a.name in names),
                             key=lambda a: a.name)  # the course's order: 01_..., 02_...
        wanted = [str(s) for s in self.student]
        students = [s for s in gradebook.students if not wanted or s.id in wanted]
        scores: dict[tuple[str, str], float] = {}
        for a in assignments:
            for s in students:
                try:
                    sub = gradebook.find_submission(a.name, s.id)
                except MissingEntry:
                    scores[a.name, s.id] = 0.0
                    continue
                penalty = sub.late_submission_penalty or 0.0
                scores[a.name, s.id] = round(max(0.0, sub.score - penalty), 6)
        return assignments, students, scores

    def write(self, header: list[str], rows: list[list[Any]]) -> None:
        dest = self.to or self.default_to
        with open(dest, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        self.log.info("wrote %d row(s) to %s", len(rows), dest)


def number(value: float) -> str:
    return f"{value:g}"


class CanvasExport(_LmsExport):
    """Canvas's gradebook CSV (see the module docstring)."""

    default_to = "canvas_grades.csv"
    section = Unicode("", help="the Section column's value (Canvas accepts it empty)").tag(
        config=True)

    def export(self, gradebook: Gradebook) -> None:
        assignments, students, scores = self.table(gradebook)
        mapping = self.mapping()
        header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                  *[mapping.get(a.name, a.name) for a in assignments]]
        rows: list[list[Any]] = [["Points Possible", "", "", "", "",
                                  *[number(a.max_score) for a in assignments]]]
        for s in students:
            if not s.lms_user_id:
                self.log.warning("%s has no lms_user_id: left out of the Canvas file (nbgrader "
                                 "db student add %s --lms-user-id=<Canvas user id>)", s.id, s.id)
                continue
            name = ", ".join(p for p in (s.last_name, s.first_name) if p) or s.id
            rows.append([name, s.lms_user_id, "", "", self.section,
                         *[number(scores[a.name, s.id]) for a in assignments]])
        self.write(header, rows)


class MoodleExport(_LmsExport):
    """A CSV for Moodle's grade import (see the module docstring)."""

    default_to = "moodle_grades.csv"

    def export(self, gradebook: Gradebook) -> None:
        assignments, students, scores = self.table(gradebook)
        mapping = self.mapping()
        header = ["First name", "Last name", "ID number", "Email address",
                  *[mapping.get(a.name, a.name) for a in assignments]]
        rows = [[s.first_name or "", s.last_name or "", s.lms_user_id or "", s.email or "",
                 *[number(scores[a.name, s.id]) for a in assignments]] for s in students]
        self.write(header, rows)
