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

# The exchange directory must exist (nbgrader 0.9 fails otherwise); keep it inside the course
# unless an instructor points NBGRADER_EXCHANGE elsewhere (a shared directory on a JupyterHub).
exchange = Path(os.environ.get("NBGRADER_EXCHANGE", ROOT / ".exchange"))
exchange.mkdir(parents=True, exist_ok=True)
c.Exchange.root = str(exchange)
