"""JupyterLab's Validate button, answered by the grading core (a Jupyter server extension).

It replaces nbgrader's ``validate_assignment`` server extension, which re-executes the whole
notebook in a fresh kernel (13 s idle, a fatal timeout under load). Same routes, same answers as
nbgrader's, so the nbgrader labextension's Validate button works unchanged:

- ``POST /assignments/validate`` with a ``path`` argument or a JSON body ``{"path": ...}``,
  relative to the server's root (a path outside it: 403). The notebook (saved by the button first)
  goes through :func:`grader.core.autograde.grade_batch` with the public checks only, exactly as
  ``python -m grader validate`` does, in a thread (the server's loop never waits on it).
  The answer is ``{"success": true, "value": {}}`` when every autograded exercise passed, else
  ``{"success": true, "value": {"failed": [...]}}`` with one entry per exercise that lost points,
  in the template's order: ``source`` is a one-line headline (``name: 2 / 3 points -- Likely
  mistake: ...``, shown first, in a ``<pre>``), ``error`` the whole report, HTML-escaped
  (in a block whose long lines wrap).
  An invalid notebook or a failure of the grader itself: ``{"success": false, "value": "<why>"}``.
- ``GET /nbgrader_version``: nbgrader's own handler (the labextension checks it).

When the server loads the extension, a background thread imports the grading core and torch,
computes the public references of every chapter and warms the sandbox (the zygote as root, else
a spare worker that has imported torch), so that a click costs running the learner's cells and
the public checks only.

Enable it instead of nbgrader's (``make setup`` does)::

    jupyter server extension disable --sys-prefix nbgrader.server_extensions.validate_assignment
    jupyter server extension enable --sys-prefix grader.core.jupyter_validate
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from nbgrader.server_extensions.validate_assignment.handlers import NbGraderVersionHandler
from tornado import web
from tornado.ioloop import IOLoop

log = logging.getLogger("grader")

HEADLINE = re.compile(r"^\S+: [\d.]+ / [\d.]+ points$")
# The report goes into a <pre> as HTML: long lines wrap instead of hiding the diagnosis's end.
WRAP = '<span style="display: block; white-space: pre-wrap; overflow-wrap: anywhere;">{}</span>'


class Validation:
    """What outlives one click: the sandbox pool and the public references, per course."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.state: dict[Path, tuple[Any, Any, Any]] = {}  # course root -> (course, pool, refs)
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lossopt-validate")
        self.warmed = threading.Event()

    def course_state(self, notebook: Path) -> tuple[Any, Any, Any]:
        """The course of ``notebook`` (found as the command line finds it), its pool and refs."""
        from grader.core.autograde import References, new_seed
        from grader.core.cli import course_root
        from grader.core.course import Course
        from grader.core.sandbox import shared_pool

        root = course_root([str(notebook)])
        with self.lock:
            if root not in self.state:
                course = Course(root)
                self.state[root] = (course, shared_pool(None, course.extra_paths),
                                    References(new_seed()))
            return self.state[root]

    def warm(self) -> None:
        """Import the core and torch, compute the public references, warm the sandbox."""
        try:
            import torch  # noqa: F401 (imported now, not at the first click)

            from grader.core.sandbox import Limits

            course, pool, refs = self.course_state(self.root / "notebook.ipynb")
            pool.warm(Limits())
            for name in course.names():
                chapter = course.chapter(name)
                for exercise in chapter.exercises:
                    refs.get(chapter, exercise, False)
            log.info("Validate is warm (grading core, torch, sandbox, references)")
        except Exception:  # the first click meets the same problem and reports it
            log.warning("warming Validate up failed:\n%s", traceback.format_exc())
        finally:
            self.warmed.set()

    def validate(self, notebook: Path) -> dict[str, Any]:
        """The answer to one click (the format nbgrader's labextension renders)."""
        try:
            from grader.core.autograde import GRADER_ERROR, grade_batch

            course, pool, refs = self.course_state(notebook)
            res = grade_batch([str(notebook)], course=course, seed=refs.seed, hidden=False,
                              jobs=1, pool=pool, refs=refs)[0]
        except Exception as exc:
            log.error("Validate failed on %s:\n%s", notebook, traceback.format_exc())
            return {"success": False, "value": f"The grader failed on this notebook (not your "
                                               f"fault; please tell your instructor): "
                                               f"{type(exc).__name__}: {exc}"}
        return answer(res, res.pop(GRADER_ERROR, None))


def answer(res: dict[str, Any], grader_error: str | None = None) -> dict[str, Any]:
    """A grading result (see grader/README.md) as nbgrader's Validate answer."""
    if grader_error:
        return {"success": False, "value": f"The grader failed on this notebook (not your fault; "
                                           f"please tell your instructor): {grader_error}"}
    if res["status"] == "invalid":
        return {"success": False, "value": f"This notebook cannot be validated: {res['message']}"}
    failed = [{"source": headline(cell), "error": WRAP.format(html.escape(report(cell, res))),
               "raw_error": cell["message"]}
              for cell in res["cells"] if cell["status"] not in ("passed", "manual")]
    return {"success": True, "value": {"failed": failed} if failed else {}}


def headline(cell: dict[str, Any]) -> str:
    """``name: X / Y points -- <the diagnosis>``: the first line of the first lost facet, else of
    the report after its own headline."""
    lines = [line.strip() for line in cell["message"].splitlines() if line.strip()]
    if lines and HEADLINE.match(lines[0]):
        head, rest = lines[0], lines[1:]
    else:
        name = cell["grade_id"].removeprefix("test_")
        head, rest = f"{name}: {cell['score']:g} / {cell['max_score']:g} points", lines
    lost = [f for f in cell.get("facets") or [] if f.get("score", 0) < f.get("points", 0)
            and f.get("message")]
    if lost:
        why = lost[0]["message"].strip().splitlines()[0]
    else:
        why = next((line for line in rest if not line.startswith("✓")), cell["status"])
        why = why.lstrip("✗ ")
    return f"{head} — {why}"


def report(cell: dict[str, Any], res: dict[str, Any]) -> str:
    """The full report of one exercise, with the notebook's notes (if any) after it."""
    text = cell["message"]
    if res.get("message"):
        text += f"\n\nNotes on your notebook: {res['message']}"
    return text


class ValidateHandler(JupyterHandler):
    """``POST /assignments/validate``: nbgrader's route, answered by the grading core."""

    @property
    def validation(self) -> Validation:
        return self.settings["lossopt_validation"]

    @web.authenticated
    async def post(self) -> None:
        try:
            path = self.get_argument("path")
        except web.MissingArgumentError:
            body = self.get_json_body() or {}
            path = body.get("path") if isinstance(body, dict) else None
        if not isinstance(path, str) or not path:
            raise web.HTTPError(400, "no notebook path given")
        root = Path(self.settings["root_dir"]).resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise web.HTTPError(403, "Access denied: path outside allowed directory")
        if not target.is_file():
            result = {"success": False, "value": f"There is no notebook at {path}."}
        else:
            result = await IOLoop.current().run_in_executor(
                self.validation.executor, self.validation.validate, target)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "grader.core.jupyter_validate"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the routes and start warming up in the background."""
    webapp = serverapp.web_app
    base_url = webapp.settings["base_url"]
    root = Path(serverapp.root_dir).resolve()
    webapp.settings["root_dir"] = str(root)
    validation = Validation(root)
    webapp.settings["lossopt_validation"] = validation
    webapp.add_handlers(".*$", [
        (url_path_join(base_url, "/assignments/validate"), ValidateHandler),
        (url_path_join(base_url, "/nbgrader_version"), NbGraderVersionHandler),
    ])
    threading.Thread(target=validation.warm, name="lossopt-validate-warm", daemon=True).start()
    serverapp.log.info("Validate answered by the grading core (grader.core.jupyter_validate)")


load_jupyter_server_extension = _load_jupyter_server_extension
