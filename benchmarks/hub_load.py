"""Print how a class runs on the course's JupyterHub: submissions per second through the exchange
service, and grading throughput into the PostgreSQL gradebook.

Usage: ``python benchmarks/hub_load.py [--students 40] [--graded 8] [--records 400] [--workers 4]``

Starts PostgreSQL and the hub (deploy/jupyterhub/jupyterhub_config.py) on 127.0.0.1, like the
tests (needs ``apt-get install postgresql`` and ``npm install -g configurable-http-proxy@4.6.3``),
releases the fixture chapter, and then measures:

1. *Submissions*: every student submits at once (one thread each) through the proxy and the
   exchange service: submissions per second, and the slowest submission.
2. *Collect*: ``nbgrader collect`` of the whole class through the service.
3. *Grading*: ``nbgrader autograde`` (the grading core) of ``--graded`` submissions split over
   ``--workers`` parallel nbgrader processes writing to one PostgreSQL gradebook: notebooks/s.
4. *Gradebook*: ``--records`` verdicts of the grading core written by ``--workers`` processes with
   the gradebook calls nbgrader's autograde makes: submissions recorded per second.

Every server is stopped by its process id at the end. The machine may be shared; the load
average is printed. Figures are measured, not tested (tests/test_hub_load.py holds the bounds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from hub_support import Hub, nbgrader, nbgrader_env  # noqa: E402
from lossopt_exchange.archive import pack  # noqa: E402
from postgres_support import PostgresServer  # noqa: E402
from test_postgres_gradebook import CHAPTER, FIXTURES, make_course, submission  # noqa: E402

INSTRUCTOR = "prof"
# The answers a student of the load tests fills in, by student index: all, some, none.
VARIANTS = (None, {"mse_loss"}, {"mse_loss", "softplus"}, set())


def student_names(n: int) -> list[str]:
    return [f"s{i:03d}" for i in range(n)]


class Class:
    """PostgreSQL + the hub + a released fixture chapter, for ``students``."""

    def __init__(self, root: Path, students: list[str]) -> None:
        self.root, self.students = root, students
        self.postgres = PostgresServer()
        self.hub: Hub | None = None

    def __enter__(self) -> Class:
        self.postgres.start()
        try:
            self.gradebook = self.postgres.create_database("lossopt")
            course = make_course(self.root / "course")
            self.hub = Hub(self.root / "state", course,
                           {"instructors": [INSTRUCTOR], "graders": [],
                            "students": self.students},
                           env=self.grading_env())
            self.hub.start()
            self.instructor("generate_assignment", CHAPTER, "--force")
            self.instructor("release_assignment", CHAPTER)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hub is not None:
            self.hub.stop()
        self.postgres.stop()

    def grading_env(self) -> dict[str, str]:
        return {"LOSSOPT_GRADEBOOK_URL": getattr(self, "gradebook", ""),
                "PGPASSWORD": self.postgres.password, "LOSSOPT_SEED": "1234",
                "LOSSOPT_GRADER_PATH": str(FIXTURES / "chapters")}

    def instructor(self, *args: str) -> subprocess.CompletedProcess:
        env = nbgrader_env(self.hub, self.hub.token(INSTRUCTOR), self.root / "homes" / INSTRUCTOR,
                           self.grading_env())
        return nbgrader(self.hub.course_dir, env, *args)

    def notebook(self, index: int, attempt: int) -> bytes:
        """A student's work, packed as the exchange plugin packs it; the attempt is recorded in
        the notebook's metadata so that the test can tell which one was collected."""
        folder = self.root / "work" / f"{index}-{attempt}" / CHAPTER
        folder.mkdir(parents=True, exist_ok=True)
        nb = submission(self.hub.course_dir, VARIANTS[index % len(VARIANTS)])
        nb.metadata["lossopt_load"] = {"attempt": attempt}
        nbformat.write(nb, folder / f"{CHAPTER}.ipynb")
        return pack(folder)

    def submit_all(self, attempt: int, threads: int | None = None) -> tuple[float, list[dict]]:
        """Every student submits at once; (wall seconds, the service's records)."""
        bodies = {s: self.notebook(i, attempt) for i, s in enumerate(self.students)}
        tokens = {s: self.hub.token(s) for s in self.students}

        def post(student: str) -> dict:
            start = time.monotonic()
            answer = requests.post(f"{self.hub.exchange_url}api/submissions/{CHAPTER}",
                                   data=bodies[student], timeout=60,
                                   headers={"Authorization": f"token {tokens[student]}"})
            answer.raise_for_status()
            return {**answer.json(), "seconds": time.monotonic() - start}

        start = time.monotonic()
        with ThreadPoolExecutor(threads or len(self.students)) as pool:
            records = list(pool.map(post, self.students))
        return time.monotonic() - start, records

    def autograde_parallel(self, groups: list[str]) -> float:
        """``nbgrader autograde --student <glob>``, one process per glob, all at once: seconds."""
        env = nbgrader_env(self.hub, self.hub.token(INSTRUCTOR), self.root / "homes" / INSTRUCTOR,
                           self.grading_env())
        start = time.monotonic()
        procs = [subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", CHAPTER,
                                   "--student", glob], cwd=self.hub.course_dir, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for glob in groups]
        errors = [(p.wait(timeout=900), p.stderr.read()) for p in procs]
        bad = [err[-3000:] for code, err in errors if code != 0]
        if bad:
            raise RuntimeError("parallel autograde failed:\n" + "\n".join(bad))
        return time.monotonic() - start


# ---------------------------------------------------------------------------------------------
# Writing verdicts into the gradebook from parallel processes


def grade_variants(course: Path, workdir: Path) -> list[list[dict]]:
    """The grading core's verdict on each variant of the fixture chapter (graded once each)."""
    paths = []
    for i, answered in enumerate(VARIANTS):
        path = workdir / f"v{i}" / f"{CHAPTER}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(submission(course, answered), path)
        paths.append(str(path))
    env = dict(os.environ, LOSSOPT_GRADER_PATH=str(FIXTURES / "chapters"), LOSSOPT_SEED="1234")
    out = subprocess.run([sys.executable, "-m", "grader", "autograde", "--json",
                          "--course", str(course), *paths], env=env, capture_output=True,
                         text=True, check=True, timeout=600)
    return [[cell for cell in verdict["cells"] if cell["status"] != "manual"]
            for verdict in json.loads(out.stdout)]


def record(db_url: str, password: str, rows: list[tuple[str, str, list[dict]]]
           ) -> tuple[int, list[str]]:
    """Write verdicts as nbgrader's autograde does (student, submission, one commit per grade
    cell), each student in its own short transaction; (recorded, errors)."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning
    # nbgrader's update_or_create_submission trips SQLAlchemy's autoflush notes; harmless here.
    warnings.filterwarnings("ignore", category=SAWarning)
    os.environ["PGPASSWORD"] = password  # this worker's libpq; never in the URL
    done, errors = 0, []
    with Gradebook(db_url, "lossopt") as gb:
        for student, timestamp, cells in rows:
            try:
                gb.update_or_create_student(student)
                gb.update_or_create_submission(CHAPTER, student, timestamp=timestamp)
                for cell in cells:
                    grade = gb.find_grade(cell["grade_id"], CHAPTER, CHAPTER, student)
                    grade.auto_score = cell["score"]
                    grade.needs_manual_grade = False
                    gb.db.commit()
                done += 1
            except Exception as error:  # reported, not raised: the caller counts them
                gb.db.rollback()
                errors.append(f"{student}: {type(error).__name__}: {error}")
    return done, errors


def record_parallel(db_url: str, password: str, verdicts: list[list[dict]], n: int,
                    workers: int) -> tuple[float, int, list[str]]:
    """n submissions ("r0000"...) recorded by ``workers`` processes at once: (s, done, errors)."""
    now = datetime.now(timezone.utc)
    rows = [(f"r{i:04d}", (now - timedelta(seconds=i)).isoformat(), verdicts[i % len(verdicts)])
            for i in range(n)]
    chunks = [rows[k::workers] for k in range(workers)]
    start = time.monotonic()
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(record, [db_url] * workers, [password] * workers, chunks))
    seconds = time.monotonic() - start
    return seconds, sum(d for d, _ in results), [e for _, errs in results for e in errs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--graded", type=int, default=8)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="lossopt-hub-bench-") as tmp:
        students = student_names(args.students)
        with Class(Path(tmp), students) as cls:
            seconds, records = cls.submit_all(attempt=1)
            slowest = max(r["seconds"] for r in records)
            print(f"submissions: {len(records)} students at once in {seconds:.2f} s = "
                  f"{len(records) / seconds:.1f} submissions/s (slowest {slowest:.2f} s)")
            start = time.monotonic()
            cls.instructor("collect", CHAPTER)
            print(f"collect: {len(students)} submissions in {time.monotonic() - start:.2f} s")
            graded = students[:args.graded]
            # nbgrader's --student takes one id or a glob: one process per student, in waves.
            seconds = 0.0
            for wave in range(0, len(graded), args.workers):
                seconds += cls.autograde_parallel(graded[wave:wave + args.workers])
            print(f"grading: {len(graded)} submissions by nbgrader autograde (grading core), "
                  f"{args.workers} at a time, in {seconds:.1f} s = {len(graded) / seconds:.2f} "
                  f"notebooks/s into PostgreSQL")
            verdicts = grade_variants(cls.hub.course_dir, Path(tmp) / "variants")
            seconds, done, errors = record_parallel(cls.gradebook, cls.postgres.password,
                                                    verdicts, args.records, args.workers)
            print(f"gradebook: {done}/{args.records} submissions recorded by {args.workers} "
                  f"processes in {seconds:.2f} s = {done / seconds:.0f} submissions/s, "
                  f"{len(errors)} errors")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
