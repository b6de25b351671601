"""JupyterLab's Validate, answered by the grading core (grader.core.jupyter_validate).

A real Jupyter server on 127.0.0.1 (token, isolated config, stopped by its process id) serves a
copy of the course; the tests POST to ``/assignments/validate`` as nbgrader's labextension does and
check the answer's format: success, a wrong answer with the diagnosis first, an invalid notebook,
a path outside the root (403), and the same verdict as ``python -m grader validate``.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from browser_support import JupyterLab, copy_course
from nbutils import ROOT, filled_submission
from test_browser import EXERCISE, MISTAKE, WRONG_ANSWER, diagnosis, grade_ids

from grader.core.jupyter_validate import WRAP, answer, headline

CHAPTER = "01_classification_losses"
LEARNER = f"learner/{CHAPTER}/{CHAPTER}.ipynb"
CLICK_S = 300  # generous for a loaded 2-core machine; the figure is benchmarks/validate.py's


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    tmp = tmp_path_factory.mktemp("validate")
    with JupyterLab(copy_course(tmp / "course"), tmp / "home") as lab:
        yield lab


def post(lab: JupyterLab, path: str, *, as_argument: bool = False) -> tuple[int, Any]:
    """POST /assignments/validate as the labextension does (JSON body) or with a path argument."""
    if as_argument:
        url = lab.url("assignments/validate?" + urllib.parse.urlencode({"path": path}))
        data = b""
    else:
        url, data = lab.url("assignments/validate"), json.dumps({"path": path}).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=CLICK_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def write_learner(lab: JupyterLab, nb: Any, name: str = LEARNER) -> Path:
    path = lab.course / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def solution() -> Path:
    return ROOT / "solutions" / CHAPTER / f"{CHAPTER}.ipynb"


def wrong_submission() -> Any:
    nb = filled_submission(solution())
    nb.cells[grade_ids(nb)[EXERCISE]].source = WRONG_ANSWER
    return nb


def test_every_answer_right_is_success(server: JupyterLab):
    write_learner(server, filled_submission(solution()))
    status, body = post(server, LEARNER)
    assert status == 200
    assert body == {"success": True, "value": {}}, body


def test_a_wrong_answer_shows_its_diagnosis_first(server: JupyterLab):
    path = write_learner(server, wrong_submission())
    status, body = post(server, LEARNER, as_argument=True)
    assert status == 200 and body["success"] is True, body
    failed = body["value"]["failed"]
    assert len(failed) == 1, failed
    entry = failed[0]
    assert set(entry) == {"source", "error", "raw_error"}
    expected = diagnosis(EXERCISE, MISTAKE)
    assert "\n" not in entry["source"]
    assert re.match(rf"{EXERCISE}: [\d.]+ / [\d.]+ points — Likely mistake: ", entry["source"]), \
        entry["source"]
    assert entry["source"].endswith(expected), entry["source"]
    # The full report follows, escaped for innerHTML, with the diagnosis on its first lines.
    prefix, end = WRAP.split("{}")
    assert entry["error"].startswith(prefix) and entry["error"].endswith(end)
    report = entry["error"][len(prefix):-len(end)]
    assert report.startswith(f"{EXERCISE}: "), report[:300]
    assert "<" not in report and html.escape(expected) in report
    assert html.unescape(report) == entry["raw_error"]
    assert entry["raw_error"].splitlines()[0] == entry["source"].split(" — ")[0]

    # The same verdict as the command line.
    cli = subprocess.run([sys.executable, "-m", "grader", "validate", "--json", str(path)],
                         capture_output=True, text=True, timeout=CLICK_S, check=False)
    cells = json.loads(cli.stdout)[0]["cells"]
    lost = [c for c in cells if c["status"] not in ("passed", "manual")]
    assert [c["message"] for c in lost] == [e["raw_error"] for e in failed]
    assert cli.returncode == 1


def test_an_invalid_notebook_says_why(server: JupyterLab):
    path = server.course / LEARNER.replace(".ipynb", "-broken.ipynb")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"cells": [')
    status, body = post(server, str(path.relative_to(server.course)))
    assert status == 200 and body["success"] is False, body
    assert isinstance(body["value"], str) and "cannot be validated" in body["value"], body


def test_a_path_outside_the_root_is_refused(server: JupyterLab):
    outside = server.course.parent / "outside.ipynb"
    nbformat.write(filled_submission(solution()), outside)
    assert post(server, "../outside.ipynb")[0] == 403
    assert post(server, str(outside), as_argument=True)[0] == 403


def test_the_labextension_version_check_is_nbgraders(server: JupyterLab):
    import nbgrader

    assert server.api(f"nbgrader_version?version={nbgrader.__version__}") == {"success": True}
    assert "Loading the validate_assignment" not in server.log_tail(100_000)


def test_headline_of_an_exercise_without_facets():
    cell = {"grade_id": "test_nll_loss", "score": 0, "max_score": 3, "status": "error",
            "message": "nll_loss: 0 / 3 points\nIndexError: index 5 is out of bounds\n  line 3",
            "facets": []}
    assert headline(cell) == "nll_loss: 0 / 3 points — IndexError: index 5 is out of bounds"
    res = {"status": "graded", "message": "", "cells": [
        cell, dict(cell, grade_id="test_x", status="passed", message="x: 3 / 3 points")]}
    out = answer(res)
    assert out["success"] is True and len(out["value"]["failed"]) == 1
    assert answer(dict(res, status="invalid", message="truncated JSON"))["success"] is False
    assert answer(res, "KeyError: boom")["success"] is False
