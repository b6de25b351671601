"""A class under load, bounded: 40 students submitting at once through the hub, and 400
submissions' grades written into PostgreSQL by parallel workers.

- 40 students submit, then all submit again, through the proxy and the exchange service, well
  within a minute: nothing is lost (80 kept), and ``nbgrader collect`` takes each student's
  latest once (a second collect takes nothing).
- ``nbgrader autograde`` (the grading core) runs in parallel processes on one PostgreSQL
  gradebook; then 400 verdicts of the grading core are recorded by 8 processes with the calls
  nbgrader's autograde makes: no lock errors, no deadlock, every grade there.

benchmarks/hub_load.py prints the same figures (submissions/s, grading throughput).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hub_support import hub_unavailable
from postgres_support import postgres_unavailable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from hub_load import (CHAPTER, INSTRUCTOR, VARIANTS, Class, grade_variants,  # noqa: E402
                      record_parallel, student_names)

pytestmark = pytest.mark.slow

STUDENTS = student_names(40)
SUBMIT_BOUND_S = 60.0
RECORDS, WORKERS = 400, 8


@pytest.fixture(scope="module")
def loaded_class(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Class]:
    for check in (hub_unavailable, postgres_unavailable):
        why = check(dict(os.environ))
        if why is not None:
            (pytest.fail if why[0] == "fail" else pytest.skip)(why[1])
    with Class(tmp_path_factory.mktemp("load"), STUDENTS) as cls:
        yield cls


def test_forty_students_submit_within_a_minute_and_each_is_collected_once(loaded_class):
    cls = loaded_class
    first_s, first = cls.submit_all(attempt=1)
    second_s, second = cls.submit_all(attempt=2)
    assert first_s + second_s < SUBMIT_BOUND_S, (first_s, second_s)
    assert sorted(r["student"] for r in first) == sorted(r["student"] for r in second) == STUDENTS
    headers = {"Authorization": f"token {cls.hub.token(INSTRUCTOR)}"}
    kept = requests.get(f"{cls.hub.exchange_url}api/submissions/{CHAPTER}", timeout=30,
                        params={"all": "1"}, headers=headers).json()["submissions"]
    assert len(kept) == 2 * len(STUDENTS), "a submission was lost"
    assert len({r["id"] for r in kept}) == len(kept)

    cls.instructor("collect", CHAPTER)
    submitted = cls.hub.course_dir / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == STUDENTS
    latest = {r["student"]: r for r in second}
    for student in STUDENTS:
        folder = submitted / student / CHAPTER
        notebook = json.loads((folder / f"{CHAPTER}.ipynb").read_text())
        assert notebook["metadata"]["lossopt_load"]["attempt"] == 2, student
        assert (folder / "timestamp.txt").read_text() == latest[student]["timestamp"]
    before = {p: p.stat().st_mtime_ns for p in submitted.rglob("*")}
    again = cls.instructor("collect", CHAPTER)
    assert "Collected" not in again.stderr
    assert {p: p.stat().st_mtime_ns for p in submitted.rglob("*")} == before


def test_parallel_autograde_into_postgres_without_lock_errors(loaded_class, tmp_path):
    cls = loaded_class
    # The real path: two nbgrader autograde processes at once on one gradebook.
    pair = STUDENTS[:2]
    cls.autograde_parallel(pair)
    import psycopg
    with psycopg.connect(cls.postgres.dsn("lossopt")) as conn:
        scores = dict(conn.execute(
            "SELECT s.student_id, sum(g.auto_score) FROM grade g "
            "JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment s ON n.assignment_id = s.id GROUP BY s.student_id"
        ).fetchall())
    assert scores == {"s000": 6.0, "s001": 1.0}  # VARIANTS: all answers, then mse_loss only

    # 400 submissions, 8 processes at once, each grade committed as nbgrader commits it.
    verdicts = grade_variants(cls.hub.course_dir, tmp_path)
    assert [sum(c["score"] for c in v) for v in verdicts] == [6.0, 1.0, 3.0, 0.0]
    start = time.monotonic()
    seconds, done, errors = record_parallel(cls.gradebook, cls.postgres.password, verdicts,
                                            RECORDS, WORKERS)
    assert errors == [] and done == RECORDS
    with psycopg.connect(cls.postgres.dsn("lossopt")) as conn:
        (count,) = conn.execute("SELECT count(*) FROM submitted_assignment "
                                "WHERE student_id LIKE 'r%'").fetchone()
        (total,) = conn.execute(
            "SELECT sum(g.auto_score) FROM grade g JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment s ON n.assignment_id = s.id WHERE s.student_id LIKE 'r%'"
        ).fetchone()
    per_variant = [sum(c["score"] for c in v) for v in verdicts]
    assert count == RECORDS
    assert total == sum(per_variant[i % len(VARIANTS)] for i in range(RECORDS))
    log = cls.postgres.log_tail(200_000).lower()
    for trouble in ("deadlock", "could not serialize", "lock timeout", "too many clients"):
        assert trouble not in log, trouble
    print(f"\n400 submissions recorded by {WORKERS} processes in {seconds:.1f} s "
          f"({RECORDS / seconds:.0f}/s; {time.monotonic() - start:.1f} s with start-up)")
