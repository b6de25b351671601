"""The gradebook in PostgreSQL: nbgrader_config.py takes its URL from the environment, and the
classroom path (generate, autograde through the grading core, export) works against a real
server started for this module on 127.0.0.1.

Without a PostgreSQL server the server tests are skipped with the reason, unless
``REQUIRE_POSTGRES=1`` (CI), when they fail. The configuration tests always run.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from nbutils import ROOT, SOLUTION_BLOCK, isolated_jupyter_env, nbgrader_meta
from postgres_support import PostgresServer, postgres_unavailable

FIXTURES = Path(__file__).parent / "fixtures"
CHAPTER = "99_fixture"  # tests/fixtures: three autograded cells worth 1, 2 and 3 points


def load_config(monkeypatch: pytest.MonkeyPatch, url: str | None) -> object:
    """The project's nbgrader_config.py as nbgrader loads it, with LOSSOPT_GRADEBOOK_URL = url."""
    if url is None:
        monkeypatch.delenv("LOSSOPT_GRADEBOOK_URL", raising=False)
    else:
        monkeypatch.setenv("LOSSOPT_GRADEBOOK_URL", url)
    monkeypatch.setenv("NBGRADER_EXCHANGE", "/tmp")  # the config creates the exchange folder
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()


def test_gradebook_defaults_to_nbgraders_sqlite(monkeypatch):
    config = load_config(monkeypatch, None)
    assert "db_url" not in config.CourseDirectory  # nbgrader's own sqlite:///<course>/gradebook.db


def test_postgres_urls_use_psycopg3(monkeypatch):
    for given in ("postgresql://grader@db:5432/lossopt", "postgresql+psycopg2://grader@db/lossopt",
                  "postgresql+psycopg://grader@db:5432/lossopt"):
        url = load_config(monkeypatch, given).CourseDirectory.db_url
        assert url.startswith("postgresql+psycopg://grader@db"), (given, url)


def test_a_password_in_the_url_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="PGPASSWORD"):
        load_config(monkeypatch, "postgresql+psycopg://grader:s3cr%25t@db/lossopt")


# ---------------------------------------------------------------------------------------------
# Against a real server


def require_postgres() -> None:
    why = postgres_unavailable(dict(os.environ))
    if why is not None:
        (pytest.fail if why[0] == "fail" else pytest.skip)(why[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    require_postgres()
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def nbgrader_env(tmp: Path, url: str, server: PostgresServer) -> dict[str, str]:
    env = server.client_env(isolated_jupyter_env(tmp))
    # nbgrader's Gradebook() runs alembic from PATH: the venv's bin first.
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
               LOSSOPT_GRADEBOOK_URL=url, LOSSOPT_GRADER_PATH=str(FIXTURES / "chapters"),
               NBGRADER_EXCHANGE=str(tmp / "exchange"), LOSSOPT_SEED="1234")
    return env


def nbgrader(course: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)}:\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def submission(course: Path, answered: set[str] | None) -> nbformat.NotebookNode:
    """The released notebook with the answers in ``answered`` (every one when None) filled in
    from the solution."""
    source = nbformat.read(course / "solutions" / CHAPTER / f"{CHAPTER}.ipynb", as_version=4)
    answers = {nbgrader_meta(c)["grade_id"]: SOLUTION_BLOCK.sub(r"\1", c.source)
               for c in source.cells if nbgrader_meta(c).get("solution")}
    student = nbformat.read(course / "notebooks" / CHAPTER / f"{CHAPTER}.ipynb", as_version=4)
    for cell in student.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in answers and (answered is None or grade_id in answered):
            cell.source = answers[grade_id]
    return student


def make_course(dest: Path) -> Path:
    """A course directory with the fixture chapter's sources and the project's config."""
    shutil.copytree(FIXTURES / "course" / "solutions", dest / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    return dest


@pytest.mark.slow
def test_autograde_and_export_through_postgres(postgres, tmp_path):
    url = postgres.create_database("classroom")
    course = make_course(tmp_path / "course")
    env = nbgrader_env(tmp_path, url, postgres)
    assert "PGPASSWORD" in env and postgres.password not in url
    # The first command creates the schema in the empty database (and stamps alembic's head);
    # `nbgrader db upgrade` is for later nbgrader upgrades and must then find nothing to do.
    nbgrader(course, env, "generate_assignment", CHAPTER, "--force")
    nbgrader(course, env, "db", "upgrade")
    for student, answered in (("ada", None), ("bob", {"mse_loss"})):
        path = course / "submitted" / student / CHAPTER / f"{CHAPTER}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(submission(course, answered), path)
    nbgrader(course, env, "autograde", CHAPTER)
    nbgrader(course, env, "export", "--to", str(tmp_path / "grades.csv"))
    rows = {r["student_id"]: r for r in csv.DictReader((tmp_path / "grades.csv").open())}
    # Partial credit survives: ada answered all three autograded exercises, bob only mse_loss.
    assert float(rows["ada"]["raw_score"]) == 6.0 and float(rows["bob"]["raw_score"]) == 1.0
    assert not (course / "gradebook.db").exists(), "the SQLite default was used instead"
    import psycopg
    with psycopg.connect(postgres.dsn("classroom")) as conn:
        (total,) = conn.execute("SELECT sum(auto_score) FROM grade").fetchone()
    assert total == 7.0  # the same 6 + 1 points, read straight from PostgreSQL
