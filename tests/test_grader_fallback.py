"""The fallback sandbox (no bubblewrap): crashes, hangs, process limits and cleanup still hold.

The fallback cannot hide the course's files from a submission (grader/README.md says what it does
not protect); what it must still guarantee is tested here, on the corpus entries marked
``fallback=True``: the damage stays inside one exercise, no process outlives the grading, and (as
root, where the worker drops to an unprivileged uid) the course directory cannot be written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from grader.core.autograde import grade_batch
from grader.core.course import Course
from grader.core.sandbox import Limits
from submissions import own_cell_after_setup
from submissions.threats import Submission, describe
from test_grader_threats import (CHAPTERS, FIXTURES, SEED, TIMEOUT, check_verdict, corpus,
                                 fixture_chapter, sandbox_processes, write_corpus)


@pytest.fixture(scope="module")
def fallback_results(tmp_path_factory: pytest.TempPathFactory):
    course = tmp_path_factory.mktemp("course") / "course"
    shutil.copytree(FIXTURES / "course", course)
    root = tmp_path_factory.mktemp("fallback")
    subs = [s for s in corpus(course, root) if s.fallback]
    ch = fixture_chapter(course)
    subs.append(Submission("write_course", own_cell_after_setup(ch.filled(), f'''
for path in [{str(course / "pwned.txt")!r}, {str(course / "solutions/pwned.txt")!r}]:
    try:
        open(path, "w").write("pwned")
    except OSError:
        pass
''')))
    paths = write_corpus(subs, root)
    results = grade_batch([paths[s.name] for s in subs], course=Course(course, [CHAPTERS]),
                          seed=SEED, limits=Limits(timeout=TIMEOUT), jobs=2, mode="fallback")
    return course, {s.name: (s, r) for s, r in zip(subs, results, strict=True)}


def test_fallback_verdicts(fallback_results):
    _, graded = fallback_results
    for name, (sub, res) in graded.items():
        if name != "write_course":
            check_verdict(sub, res, "fallback")


def test_fallback_leaves_no_process_behind(fallback_results):
    assert sandbox_processes() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the fallback drops privileges only as root")
def test_fallback_protects_the_course_directory_as_root(fallback_results):
    course, graded = fallback_results
    assert not list(course.rglob("pwned.txt")), describe(graded["write_course"][1])
    assert graded["write_course"][1]["score"] == 6


@pytest.mark.parametrize("mode, name", [("bwrap", "crash_hangs"), ("fallback", "crash_exits")])
def test_one_sandbox_per_worker_without_the_zygote(mode, name, monkeypatch, tmp_path: Path):
    """What a grader that is not root gets: a fresh sandbox per worker, killed as a group."""
    from grader.core.sandbox import bwrap_works

    if mode == "bwrap" and not bwrap_works():
        pytest.skip("bubblewrap cannot run here")
    monkeypatch.setenv("LOSSOPT_ZYGOTE", "0")
    course = tmp_path / "course"
    shutil.copytree(FIXTURES / "course", course)
    subs = [s for s in corpus(course, tmp_path) if s.name == name]
    paths = write_corpus(subs, tmp_path / "submitted")
    results = grade_batch([paths[s.name] for s in subs], course=Course(course, [CHAPTERS]),
                          seed=SEED, limits=Limits(timeout=TIMEOUT), jobs=2, mode=mode)
    for sub, res in zip(subs, results, strict=True):
        check_verdict(sub, res, mode)
    assert sandbox_processes() == []
