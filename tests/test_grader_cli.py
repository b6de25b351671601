"""``python -m grader autograde|validate``: output format, exit statuses, logs on stderr."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from submissions import Chapter, write
from submissions.threats import M_WRONG

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHAPTER = Chapter(FIXTURES / "course/solutions/99_fixture/99_fixture.ipynb",
                  FIXTURES / "course/notebooks/99_fixture/99_fixture.ipynb")


def grader(*args: str, course: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, LOSSOPT_GRADER_PATH=str(FIXTURES / "chapters"))
    return subprocess.run([sys.executable, "-m", "grader", *args, "--course", str(course)],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture course plus a second chapter, 98_other (same checks, other grade ids)."""
    dest = tmp_path_factory.mktemp("cli") / "course"
    shutil.copytree(FIXTURES / "course", dest)
    nb = CHAPTER.untouched()
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta:
            meta["grade_id"] = "other_" + meta["grade_id"]
    write(nb, dest / "notebooks/98_other/98_other.ipynb")
    return dest


@pytest.fixture(scope="module")
def submissions(course: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-submissions")
    other = CHAPTER.filled()
    for cell in other["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta:
            meta["grade_id"] = "other_" + meta["grade_id"]
    return {
        "good": write(CHAPTER.filled(), root / "good/99_fixture.ipynb"),
        "wrong": write(CHAPTER.filled(mse_loss=M_WRONG), root / "wrong/99_fixture.ipynb"),
        "other": write(other, root / "other/99_fixture.ipynb"),
        "renamed": write(CHAPTER.filled(), root / "renamed/homework.ipynb"),
    }


@pytest.fixture(scope="module")
def autograde_json(course, submissions):
    paths = [str(submissions[k]) for k in ("good", "wrong", "other", "renamed")]
    return grader("autograde", "--json", "--seed", "7", "--timeout", "30", *paths,
                  course=course), paths


def test_autograde_json_is_one_document_with_one_result_per_notebook(autograde_json):
    proc, paths = autograde_json
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)  # nothing else on stdout
    assert [r["notebook"] for r in results] == paths
    assert all(r["seed"] == 7 for r in results)
    good, wrong, other, renamed = results
    assert (good["status"], good["score"], good["max_score"]) == ("graded", 6.0, 7.0)
    assert [c["status"] for c in good["cells"]] == ["passed", "passed", "passed", "manual"]
    assert wrong["score"] == 5.0
    assert wrong["cells"][0]["status"] == "failed"
    assert "Likely mistake" in wrong["cells"][0]["message"]
    assert other["status"] == "invalid" and "98_other" in other["message"]
    assert renamed["assignment"] == "99_fixture" and renamed["score"] == 6.0
    for r in results:
        for cell in r["cells"]:
            assert isinstance(cell["score"], float) and isinstance(cell["max_score"], float)


def test_progress_and_logs_go_to_stderr(autograde_json):
    proc, paths = autograde_json
    assert "[4/4]" in proc.stderr
    assert all(p in proc.stderr for p in paths)


def test_the_readable_report(autograde_json):
    from grader.core.cli import report

    proc, _ = autograde_json
    wrong = json.loads(proc.stdout)[1]
    out = report(wrong)
    assert "5 / 7 points (seed 7)" in out
    assert "test_mse_loss" in out and "FAILED" in out and "Likely mistake" in out
    assert "test_softplus" in out and "PASSED" in out
    assert "INVALID" in report(json.loads(proc.stdout)[2])


def test_validate_passes_a_good_notebook_on_public_checks_only(course, submissions):
    proc = grader("validate", "--json", "--assignment", "99_fixture",
                  str(submissions["renamed"]), course=course)
    assert proc.returncode == 0, proc.stderr
    (res,) = json.loads(proc.stdout)
    assert res["assignment"] == "99_fixture"
    assert all("hidden" not in c["message"] for c in res["cells"])  # public checks only
    assert "all 3 public checks passed" in res["cells"][0]["message"]


def test_validate_exit_status_reflects_the_verdict(course, submissions):
    bad = grader("validate", str(submissions["wrong"]), course=course)
    assert bad.returncode == 1
    assert "FAILED" in bad.stdout and "public checks" in bad.stdout
    invalid = grader("validate", str(submissions["other"]), course=course)
    assert invalid.returncode == 1 and "INVALID" in invalid.stdout


@pytest.mark.parametrize("args", [
    ("autograde",), ("autograde", "--timeout", "-1", "x.ipynb"),
    ("autograde", "--assignment", "no_such_chapter", "x.ipynb"), ("grade", "x.ipynb"),
    ("validate", "a.ipynb", "b.ipynb"),
])
def test_usage_errors_exit_with_status_2(course, args):
    proc = grader(*args, course=course)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
