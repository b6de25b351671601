"""The grading core against its corpus of bad submissions (tests/submissions/threats.py).

One batch grades the whole corpus of the fixture chapter in parallel, with a fixed seed and a short
time limit; each test below asserts one threat's verdict. Tampering, forbidden calls, crashes and
resource abuse, broken structure, secrets and randomized grading are all covered.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from grader.core.autograde import References, grade_batch
from grader.core.course import Course
from grader.core.sandbox import UID_BASE, UID_COUNT, Limits, sandbox_mode
from submissions import Chapter
from submissions.threats import Submission, as_bytes, describe, every, unreadable

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHAPTERS = FIXTURES / "chapters"
SEED = 20240611
TIMEOUT = 8.0


def fixture_chapter(course: Path) -> Chapter:
    return Chapter(course / "solutions/99_fixture/99_fixture.ipynb",
                   course / "notebooks/99_fixture/99_fixture.ipynb")


def corpus(course: Path, root: Path) -> list[Submission]:
    """Every submission of the corpus, the unreadable ones and a huge file included."""
    ch = fixture_chapter(course)
    subs = every(ch, solution_path=str(course / "solutions/99_fixture/99_fixture.ipynb"),
                 course_dir=str(course), other=str(root / "forbidden_direct/99_fixture.ipynb"))
    subs += unreadable()
    subs.append(Submission("invalid_huge", b"", status="invalid", message_has=("MB limit",)))
    return subs


NAMES = [s.name for s in corpus(FIXTURES / "course", Path("/nonexistent"))]


def write_corpus(subs: list[Submission], root: Path) -> dict[str, str]:
    paths = {}
    for sub in subs:
        path = root / sub.name / (sub.filename or "99_fixture.ipynb")
        path.parent.mkdir(parents=True, exist_ok=True)
        if sub.name == "invalid_huge":
            with open(path, "wb") as f:
                f.truncate(40 * 2**20)
        else:
            path.write_bytes(as_bytes(sub))
        paths[sub.name] = str(path)
    return paths


def sandbox_processes() -> list[str]:
    """Live processes of the sandbox uids, or running the corpus's marker sleep."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = int(fields["Uid"].split()[0])
        if fields["State"].strip().startswith("Z"):
            continue  # dead, waiting to be reaped
        if UID_BASE <= uid < UID_BASE + UID_COUNT or "4321.5" in cmdline:
            found.append(f"{entry} uid={uid} {cmdline[:80]}")
    return found


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("course") / "course"
    shutil.copytree(FIXTURES / "course", dest)
    (dest / "nbgrader_config.py").write_text("c = get_config()\n")
    return dest


@pytest.fixture(scope="module")
def graded(course: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, tuple[Submission, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("submitted")
    subs = corpus(course, root)
    paths = write_corpus(subs, root)
    results = grade_batch([paths[s.name] for s in subs], course=Course(course, [CHAPTERS]),
                          seed=SEED, limits=Limits(timeout=TIMEOUT), jobs=2)
    return {s.name: (s, r) for s, r in zip(subs, results, strict=True)}


def check_verdict(sub: Submission, res: dict[str, Any], mode: str) -> None:
    """Assert that a result is the one the submission expects."""
    info = describe(res)
    assert res["status"] == sub.status, info
    for word in sub.message_has:
        assert word in res["message"], f"{word!r} missing from the notes\n{info}"
    cells = {c["grade_id"]: c for c in res["cells"]}
    for gid, (statuses, words) in sub.expect.items():
        if sub.name == "secrets_files" and mode != "bwrap":
            continue
        cell = cells[gid]
        assert cell["status"] in statuses, info
        for word in words:
            assert word in cell["message"], f"{word!r} missing from {gid}\n{info}"
        if cell["status"] != "passed":
            assert cell["score"] == 0, info
        else:
            assert cell["score"] == cell["max_score"], info


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_verdict(graded: dict[str, tuple[Submission, dict[str, Any]]], name: str):
    sub, res = graded[name]
    check_verdict(sub, res, sandbox_mode())


def test_results_follow_the_schema(graded):
    for _, res in graded.values():
        assert set(res) == {"notebook", "assignment", "status", "message", "score", "max_score",
                            "seed", "cells"}
        assert res["seed"] == SEED
        assert res["assignment"] == "99_fixture"
        assert res["score"] == sum(c["score"] for c in res["cells"])
        for cell in res["cells"]:
            keys = {"grade_id", "score", "max_score", "status", "message"}
            assert set(cell) in (keys, keys | {"facets"}), cell  # facets: a checked exercise
            for facet in cell.get("facets", []):
                assert {"name", "points", "score", "status"} <= set(facet)
                assert 0 <= facet["score"] <= facet["points"]
            assert cell["message"], describe(res)
        if res["status"] == "invalid":
            assert res["score"] == 0 and res["message"]
            assert [c["grade_id"] for c in res["cells"]] == [
                "test_mse_loss", "test_softplus", "test_SGD", "why_max"]


def test_tampering_never_earns_points_for_wrong_answers(graded):
    for name in ("tamper_builtins", "tamper_modules", "tamper_liars", "tamper_thread"):
        _, res = graded[name]
        assert res["score"] == 0, describe(res)


def test_no_process_of_a_submission_outlives_its_grading(graded):
    assert graded["crash_processes"][1]["score"] == 6
    assert sandbox_processes() == []


def test_feedback_shows_no_hidden_tests_no_solution_and_no_grader_frames(graded):
    solution_lines = ["torch.log(torch.exp(-m) + torch.exp(z - m))", "p.sub_(group"]
    for name, (_, res) in graded.items():
        text = json.dumps(res)
        for secret in ("hidden=True", "HIDDEN TESTS", "ch99_fixture.py", "site-packages",
                       "/grader/", "Traceback"):
            assert secret not in text, f"{name}: {secret!r} in the feedback"
        if not name.startswith(("structure", "secrets", "scratch", "crash", "overfit")):
            for line in solution_lines:
                assert line not in text, f"{name}: solution code in the feedback"


def test_submissions_cannot_touch_the_course(graded, course: Path):
    assert not (course / "pwned.txt").exists()
    assert not any(course.rglob("*.pwned"))
    if sandbox_mode() == "bwrap":
        _, res = graded["secrets_files"]
        assert res["score"] == 6, describe(res)


def test_printed_output_is_truncated(graded):
    _, res = graded["crash_output"]
    message = next(c["message"] for c in res["cells"] if c["grade_id"] == "test_mse_loss")
    assert len(message) < 3000


def test_the_same_seed_reproduces_the_verdict(graded, course: Path, tmp_path: Path):
    again = []
    for name in ("overfit_public", "forbidden_direct"):
        path = Path(graded[name][1]["notebook"])
        again.append((name, str(path)))
    results = grade_batch([p for _, p in again], course=Course(course, [CHAPTERS]), seed=SEED,
                          limits=Limits(timeout=TIMEOUT), jobs=2)
    for (name, _), res in zip(again, results, strict=True):
        assert res == graded[name][1]


def test_hidden_cases_come_from_the_seed(course: Path):
    chapter = Course(course, [CHAPTERS]).chapter("99_fixture")
    a, b, a2 = (References(s).get(chapter, "mse_loss", True) for s in (1, 2, 1))
    assert [c.label for c in a.cases] == [c.label for c in a2.cases]
    hidden = slice(a.n_public, None)
    assert all(json.dumps(x) == json.dumps(y) for x, y in zip(a.wire_cases, a2.wire_cases))
    assert [json.dumps(x) for x in a.wire_cases[hidden]] != \
        [json.dumps(x) for x in b.wire_cases[hidden]]
