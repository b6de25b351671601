"""Late work: a percentage per day or hour with a cap (an nbgrader plugin), and extensions.

nbgrader's own late-submission plugin knows only "none" and "zero". :class:`PercentLatePenalty`
takes ``percent`` of a late notebook's score for every started ``period`` (a day or an hour) past
the due date, after ``grace_minutes``, and never more than ``cap`` percent. nbgrader applies it
per notebook during ``autograde``, with the lateness it computes from the due date plus the
student's extension, so an extension moves the start of the penalty. Configured in
``nbgrader_config.py``::

    c.AssignLatePenalties.plugin_class = "grader.instructor.late.PercentLatePenalty"
    c.PercentLatePenalty.percent = 10      # of the score, per started period
    c.PercentLatePenalty.period = "day"    # or "hour"
    c.PercentLatePenalty.cap = 50          # at most half the score

Extensions: ``python -m grader extend ASSIGNMENT STUDENT --days 2`` calls the gradebook's
``grant_extension`` (``--remove`` takes it back); nbgrader has the method but nothing calls it.
"""

from __future__ import annotations

import math

from nbgrader.plugins.base import BasePlugin
from traitlets import Enum, Float, TraitError, validate

SECONDS = {"day": 86400.0, "hour": 3600.0}


class PercentLatePenalty(BasePlugin):
    """``percent`` of the score per started ``period`` late, after ``grace_minutes``, at most
    ``cap`` percent."""

    percent = Float(10.0, help="percent of the score taken per started period late").tag(
        config=True)
    period = Enum(("day", "hour"), default_value="day", help="the unit of lateness").tag(
        config=True)
    cap = Float(100.0, help="the most that is taken, in percent of the score").tag(config=True)
    grace_minutes = Float(0.0, help="lateness forgiven, in minutes").tag(config=True)

    @validate("percent", "cap", "grace_minutes")
    def _in_range(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        if value < 0:
            raise TraitError(f"{name} must be >= 0, not {value}")
        if name == "cap" and value > 100:
            raise TraitError(f"cap is a percentage of the score: at most 100, not {value}")
        return value

    def periods_late(self, total_seconds_late: float) -> int:
        """Started periods past the due date (0 within the grace time)."""
        late = total_seconds_late - 60 * self.grace_minutes
        return math.ceil(late / SECONDS[self.period]) if late > 0 else 0

    def late_submission_penalty(self, student_id: str, score: float,
                                total_seconds_late: float) -> float:
        """The points taken from ``score`` (nbgrader subtracts them, never below 0)."""
        periods = self.periods_late(total_seconds_late)
        share = min(self.cap, self.percent * periods) / 100
        if periods:
            self.log.info("%s is %d %s(s) late: %g%% of %g points taken", student_id, periods,
                          self.period, 100 * share, score)
        return round(score * share, 6)


def default_gradebook_url() -> str:
    """The gradebook nbgrader uses for this course: the URL nbgrader_config.py settles on
    (LOSSOPT_GRADEBOOK_URL, with its driver and password rules), else nbgrader's default SQLite
    file in the course directory."""
    from traitlets.config.loader import PyFileConfigLoader

    from grader.core.course import ROOT

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    return config.CourseDirectory.get("db_url") or f"sqlite:///{ROOT / 'gradebook.db'}"


def extend(url: str, assignment: str, student: str, *, days: float = 0, hours: float = 0,
           minutes: float = 0) -> str:
    """Grant (or, with no time, remove) ``student``'s extension for ``assignment``; what changed,
    in words. Raises ValueError with the reason for an unknown gradebook, assignment or student."""
    from pathlib import Path

    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise ValueError(f"no gradebook at {parsed.database} (run nbgrader from the course "
                         "directory, or give --db)")
    with Gradebook(url) as gb:
        try:
            record = gb.find_assignment(assignment)
        except MissingEntry:
            raise ValueError(f"no assignment {assignment!r} in the gradebook") from None
        try:
            gb.find_student(student)
        except MissingEntry:
            raise ValueError(f"no student {student!r} in the gradebook") from None
        gb.update_or_create_submission(assignment, student)  # an extension may come first
        gb.grant_extension(assignment, student, minutes=minutes, hours=hours, days=days)
        submission = gb.find_submission(assignment, student)
        if submission.extension is None:
            return f"{student}: no extension for {assignment} (due {record.duedate or 'never'})"
        due = f"{submission.duedate:%Y-%m-%d %H:%M}" if record.duedate else "no due date set"
        return f"{student}: {assignment} extended by {submission.extension}, now due {due}"
