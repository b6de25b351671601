"""nbgrader configuration: the course directory is the repository root.

Run nbgrader commands from the repository root. ``solutions/`` holds the instructor sources,
``notebooks/`` the generated student versions (nbgrader's release directory).
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader/traitlets when this file is loaded)

ROOT = Path(__file__).resolve().parent

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "lossopt"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# Only notebooks belong to an assignment; helper files live in the installed packages.
c.CourseDirectory.include = ["*.ipynb"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# --- The gradebook: SQLite in the course directory (nbgrader's default) unless
# LOSSOPT_GRADEBOOK_URL names another database, e.g. PostgreSQL for a class on a JupyterHub:
#   LOSSOPT_GRADEBOOK_URL=postgresql+psycopg://grader@db.example.org:5432/lossopt
# The URL carries no password: libpq (psycopg 3) reads it from PGPASSWORD or ~/.pgpass, so it
# stays out of process lists and logs, and a '%' in it cannot break alembic's config parser.
_gradebook_url = os.environ.get("LOSSOPT_GRADEBOOK_URL", "").strip()
if _gradebook_url:
    from sqlalchemy.engine import make_url

    _url = make_url(_gradebook_url)
    if _url.password is not None:
        raise ValueError("LOSSOPT_GRADEBOOK_URL must not contain a password: "
                         "put it in PGPASSWORD or ~/.pgpass instead")
    if _url.get_backend_name() == "postgresql":
        _url = _url.set(drivername="postgresql+psycopg")  # psycopg 3, whatever the URL said
    c.CourseDirectory.db_url = _url.render_as_string(hide_password=False)

# The exchange directory must exist (nbgrader 0.9 fails otherwise); keep it inside the course
# unless an instructor points NBGRADER_EXCHANGE elsewhere (a shared directory on a JupyterHub).
exchange = Path(os.environ.get("NBGRADER_EXCHANGE", ROOT / ".exchange"))
exchange.mkdir(parents=True, exist_ok=True)
c.Exchange.root = str(exchange)

# --- Autograding through the project's grading core (grader/core/nbgrader_plugin.py, grader/README.md)
# Submissions never run in nbgrader's process or a Jupyter kernel: the core grades the submitted
# file in a sandbox and writes its verdict into each graded cell, so that nbgrader autograde,
# formgrader, generate_feedback and export see the same scores as `python -m grader autograde`.
c.Autograde.exporter_class = "grader.core.nbgrader_plugin.SubmissionExporter"
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "grader.core.nbgrader_plugin.GraderSanitize",
]
c.Autograde.autograde_preprocessors = [
    "grader.core.nbgrader_plugin.GraderOutputs",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "grader.core.nbgrader_plugin.StripHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.GraderSanitize.timeout = 60.0  # seconds per exercise check and per cell
c.GraderSanitize.memory_gib = 4.0

# --- Late work (grader/instructor/late.py): 10 % of a late notebook's score per started day past
# its due date (plus the student's extension: `python -m grader extend ASSIGNMENT STUDENT --days
# N`), at most half of it. Nothing is late until the instructor sets a due date
# (`nbgrader db assignment add NAME --duedate=...`). For nbgrader's own choices, set
# plugin_class back to "nbgrader.plugins.LateSubmissionPlugin".
c.AssignLatePenalties.plugin_class = "grader.instructor.late.PercentLatePenalty"
c.PercentLatePenalty.percent = 10.0
c.PercentLatePenalty.period = "day"  # or "hour"
c.PercentLatePenalty.cap = 50.0
c.PercentLatePenalty.grace_minutes = 0.0

# --- The LMS (grader/instructor/lms.py). `nbgrader zip_collect ASSIGNMENT` reads the archive an LMS
# gives for "download all submissions" (put it in downloaded/ASSIGNMENT/archive/): Canvas's file
# names by default; for Moodle's, use "grader.instructor.lms.MoodleCollector". Students are found
# in the gradebook by their lms_user_id (`nbgrader db student add ID --lms-user-id=...`).
# Grades out: `nbgrader export --exporter=grader.instructor.lms.CanvasExport --to canvas.csv` (or
# MoodleExport), assignments renamed by lms_assignments.json in the course directory.
c.ZipCollectApp.collector_plugin = "grader.instructor.lms.CanvasCollector"
