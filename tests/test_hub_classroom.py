"""A class on the course's JupyterHub, end to end, with real servers on 127.0.0.1.

PostgreSQL holds the gradebook; the hub (deploy/jupyterhub/jupyterhub_config.py, as deployed)
runs configurable-http-proxy, the exchange service and the course's formgrader. An instructor and
three students act with their API tokens, through nbgrader's own commands:

release -> fetch -> submit (twice, for one student) -> collect (the latest) -> autograde (the
grading core, partial credit kept) -> generate and release feedback -> students fetch their
feedback -> export. Then what students must not be able to do: read or overwrite another
student's work or feedback, backdate a submission, use the formgrader, and what a wrong
assignment or a malformed file gets (a clear error, nothing lost).

Skipped without configurable-http-proxy or PostgreSQL, unless REQUIRE_HUB=1 / REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest
import requests

from hub_support import Hub, hub_unavailable, nbgrader, nbgrader_env
from postgres_support import PostgresServer, postgres_unavailable
from test_postgres_gradebook import CHAPTER, FIXTURES, make_course, submission

pytestmark = pytest.mark.slow

INSTRUCTOR = "prof"
STUDENTS = ("ada", "bob", "cy")
# ada answers everything (6 of 6 autograded points), bob only mse_loss (1), cy nothing (0).
ANSWERS = {"ada": None, "bob": {"mse_loss"}, "cy": set()}
EXPECTED = {"ada": 6.0, "bob": 1.0, "cy": 0.0}


def require(check) -> None:
    why = check(dict(os.environ))
    if why is not None:
        (pytest.fail if why[0] == "fail" else pytest.skip)(why[1])


class Classroom:
    def __init__(self, root: Path, postgres: PostgresServer, hub: Hub, gradebook: str) -> None:
        self.root, self.postgres, self.hub, self.gradebook = root, postgres, hub, gradebook
        self.course = hub.course_dir

    def home(self, user: str) -> Path:
        path = self.root / "homes" / user
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, user: str) -> dict[str, str]:
        extra = {"LOSSOPT_GRADER_PATH": str(FIXTURES / "chapters"), "LOSSOPT_SEED": "1234"}
        if user == INSTRUCTOR:
            extra.update(LOSSOPT_GRADEBOOK_URL=self.gradebook, PGPASSWORD=self.postgres.password)
        return nbgrader_env(self.hub, self.hub.token(user), self.home(user), extra)

    def run(self, user: str, *args: str, ok: bool = True):
        cwd = self.course if user == INSTRUCTOR else self.home(user)
        return nbgrader(cwd, self.env(user), *args, ok=ok)

    def call(self, user: str, method: str, path: str, headers: dict[str, str] | None = None,
             **kwargs) -> requests.Response:
        """The exchange service's API with ``user``'s token."""
        headers = {**(headers or {}), "Authorization": f"token {self.hub.token(user)}"}
        return requests.request(method, self.hub.exchange_url + "api/" + path, timeout=30,
                                headers=headers, **kwargs)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Classroom]:
    require(hub_unavailable)
    require(postgres_unavailable)
    root = tmp_path_factory.mktemp("hub")
    postgres = PostgresServer()
    postgres.start()
    hub = None
    try:
        gradebook = postgres.create_database("lossopt")
        course = make_course(root / "course")
        hub = Hub(root / "state", course,
                  {"instructors": [INSTRUCTOR], "graders": [], "students": list(STUDENTS)},
                  env={"LOSSOPT_GRADEBOOK_URL": gradebook, "PGPASSWORD": postgres.password,
                       "LOSSOPT_GRADER_PATH": str(FIXTURES / "chapters")})
        hub.start()
        yield Classroom(root, postgres, hub, gradebook)
    finally:
        if hub is not None:
            hub.stop()
        postgres.stop()


def fill(classroom: Classroom, student: str, answered: set[str] | None) -> Path:
    path = classroom.home(student) / CHAPTER / f"{CHAPTER}.ipynb"
    nbformat.write(submission(classroom.course, answered), path)
    return path


def test_release_fetch_submit_collect_autograde_feedback_export(classroom):
    c = classroom
    c.run(INSTRUCTOR, "generate_assignment", CHAPTER, "--force")
    c.run(INSTRUCTOR, "release_assignment", CHAPTER)
    for student in STUDENTS:
        c.run(student, "fetch_assignment", CHAPTER)
        assert (c.home(student) / CHAPTER / f"{CHAPTER}.ipynb").is_file()
    # ada first submits a half-done notebook, then the finished one: the latest is collected.
    fill(c, "ada", {"mse_loss"})
    c.run("ada", "submit", CHAPTER)
    for student in STUDENTS:
        fill(c, student, ANSWERS[student])
        c.run(student, "submit", CHAPTER)
    mine = c.call("ada", "GET", f"submissions/{CHAPTER}").json()["submissions"]
    assert len(mine) == 2, "every submission is kept"

    c.run(INSTRUCTOR, "collect", CHAPTER)
    for student in STUDENTS:
        assert (c.course / "submitted" / student / CHAPTER / "timestamp.txt").is_file()
    c.run(INSTRUCTOR, "autograde", CHAPTER)
    c.run(INSTRUCTOR, "generate_feedback", CHAPTER)
    c.run(INSTRUCTOR, "release_feedback", CHAPTER)
    for student in STUDENTS:
        c.run(student, "fetch_feedback", CHAPTER)
        html = list((c.home(student) / CHAPTER / "feedback").glob(f"*/{CHAPTER}.html"))
        assert len(html) == 1, f"{student}'s feedback: {html}"
        assert "Hidden" not in html[0].read_text() or student == "cy"
    grades = c.root / "grades.csv"
    c.run(INSTRUCTOR, "export", "--to", str(grades))
    rows = {r["student_id"]: r for r in csv.DictReader(grades.open())}
    assert {s: float(rows[s]["raw_score"]) for s in STUDENTS} == EXPECTED


def test_student_cannot_read_or_overwrite_anothers_work_or_feedback(classroom):
    c = classroom
    theirs = c.call("ada", "GET", f"submissions/{CHAPTER}",
                    params={"student": "bob"})
    assert theirs.status_code == 403 and "may not see bob" in theirs.json()["message"]
    record = c.call(INSTRUCTOR, "GET", f"submissions/{CHAPTER}",
                    params={"student": "bob"}).json()["submissions"][-1]
    assert c.call("ada", "GET", f"submissions/{CHAPTER}/bob/{record['id']}").status_code == 403
    assert c.call("ada", "GET", f"feedback/{CHAPTER}/bob").status_code == 403
    forged = c.call("ada", "PUT", f"feedback/{CHAPTER}/bob", params={"submission": "x"},
                    data=b"")
    assert forged.status_code == 403
    assert c.call("ada", "PUT", f"releases/{CHAPTER}", params={"force": "1"},
                  data=b"").status_code == 403
    assert c.call("ada", "GET", f"submissions/{CHAPTER}", params={"all": "1"}).json() == {
        "submissions": c.call("ada", "GET", f"submissions/{CHAPTER}").json()["submissions"]}
    # There is no way to write into someone else's submissions: a POST always files the work
    # under the token's owner. bob's work and feedback are untouched.
    after = c.call(INSTRUCTOR, "GET", f"submissions/{CHAPTER}", params={"student": "bob"})
    assert after.json()["submissions"][-1] == record
    bob = c.home("bob") / CHAPTER / "feedback"
    shutil.rmtree(bob)
    c.run("bob", "fetch_feedback", CHAPTER)
    assert list(bob.glob(f"*/{CHAPTER}.html"))


def test_a_backdated_submission_gets_the_servers_time(classroom):
    c = classroom
    folder = c.home("cy") / CHAPTER
    (folder / "timestamp.txt").write_text("2000-01-01 00:00:00.000000 UTC")
    long_ago = "2000-01-01T00:00:00+00:00"
    before = datetime.now(timezone.utc)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder / f"{CHAPTER}.ipynb", arcname=f"{CHAPTER}.ipynb")
        tar.add(folder / "timestamp.txt", arcname="timestamp.txt")
    answer = c.call("cy", "POST", f"submissions/{CHAPTER}", data=buffer.getvalue(),
                    headers={"Date": "Sat, 01 Jan 2000 00:00:00 GMT", "X-Timestamp": long_ago})
    assert answer.status_code == 200, answer.text
    recorded = datetime.fromisoformat(answer.json()["timestamp"])
    assert before - timedelta(seconds=5) <= recorded <= datetime.now(timezone.utc)
    assert "timestamp.txt" not in answer.json()["files"]
    c.run("cy", "submit", CHAPTER)  # the nbgrader client ignores the stale file as well
    c.run(INSTRUCTOR, "collect", "--update", CHAPTER)
    collected = (c.course / "submitted" / "cy" / CHAPTER / "timestamp.txt").read_text()
    assert datetime.fromisoformat(collected) >= before


def test_students_cannot_use_the_formgrader(classroom):
    c = classroom
    headers = {"Authorization": f"token {c.hub.token('ada')}"}
    for path in ("formgrader/api/assignments", "formgrader/api/submissions/" + CHAPTER,
                 "api/contents"):
        answer = requests.get(c.hub.formgrader_url + path, headers=headers, timeout=30,
                              allow_redirects=False)
        assert answer.status_code == 403, (path, answer.status_code)
    staff = requests.get(c.hub.formgrader_url + "formgrader/api/assignments", timeout=30,
                         headers={"Authorization": f"token {c.hub.token(INSTRUCTOR)}"})
    assert staff.status_code == 200 and CHAPTER in staff.text


def test_wrong_assignment_or_malformed_file_is_a_clear_error_and_loses_nothing(classroom):
    c = classroom
    kept = c.call("bob", "GET", f"submissions/{CHAPTER}").json()["submissions"]
    # An assignment that was never released.
    wrong = c.home("bob") / "02_regression_losses"
    shutil.copytree(c.home("bob") / CHAPTER, wrong, ignore=shutil.ignore_patterns("feedback"))
    proc = c.run("bob", "submit", "02_regression_losses", ok=False)
    assert proc.returncode != 0
    assert "no assignment named '02_regression_losses' has been released" in proc.stderr
    # A notebook that is not one (truncated JSON).
    notebook = c.home("bob") / CHAPTER / f"{CHAPTER}.ipynb"
    good = notebook.read_bytes()
    notebook.write_bytes(good[: len(good) // 2])
    proc = c.run("bob", "submit", CHAPTER, ok=False)
    assert proc.returncode != 0
    assert f"{CHAPTER}.ipynb is not a readable notebook" in proc.stderr
    assert "nothing was stored" in proc.stderr
    # Not an archive at all.
    garbage = c.call("bob", "POST", f"submissions/{CHAPTER}", data=b"\x00not a tarball")
    assert garbage.status_code == 400 and "not a readable .tar.gz" in garbage.json()["message"]
    # Nothing lost: the earlier submissions are all there, unchanged, and the local file too.
    assert c.call("bob", "GET", f"submissions/{CHAPTER}").json()["submissions"] == kept
    assert notebook.read_bytes() == good[: len(good) // 2]
    assert json.loads(good)  # (the original was a notebook)


# ---------------------------------------------------------------------------------------------
# The formgrader in a browser, through the hub, in a tab of its own


def open_formgrader(browser, hub: Hub, user: str):
    """Log in at the hub as ``user``, find the formgrader under the Services menu, and open it
    in a new tab (JupyterHub 4.1+ blanks it inside JupyterLab's iframe: nbgrader #1870)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    hub_page = context.new_page()
    # next=: land on the hub's home page (its Services menu), not on a server to spawn.
    hub_page.goto(f"{hub.url}/hub/login?next=%2Fhub%2Fhome")
    hub_page.fill("#username_input", user)
    hub_page.fill("#password_input", hub.password)
    hub_page.click("#login_submit")
    hub_page.wait_for_url(f"{hub.url}/hub/home", timeout=30_000)
    link = hub_page.locator("a[href*='/services/formgrader-lossopt']")
    href = link.first.get_attribute("href") if link.count() else None
    tab = context.new_page()
    response = tab.goto(href and hub.url + href if href and href.startswith("/") else
                        href or hub.formgrader_url)
    return context, hub_page, tab, response, href


@pytest.mark.browser
def test_formgrader_opens_through_the_hub_in_its_own_tab(classroom):
    from browser_support import CHROMIUM, browser_unavailable, launch_chromium
    why = browser_unavailable(CHROMIUM, dict(os.environ))
    if why is not None:
        (pytest.fail if why[0] == "fail" else pytest.skip)(why[1])
    if not (classroom.course / "autograded").is_dir():
        pytest.skip("needs the class graded by this module's end-to-end test (run the module)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context, hub_page, tab, _, href = open_formgrader(browser, classroom.hub, INSTRUCTOR)
            assert href, "the hub's Services menu does not link the formgrader"
            assert len(context.pages) == 2 and tab.url.startswith(classroom.hub.formgrader_url)
            row = tab.locator("#main-table tr", has=tab.locator("td.name", has_text=CHAPTER))
            row.wait_for(timeout=60_000)
            assert row.locator("td.num-submissions").inner_text().strip() == str(len(STUDENTS))
            row.locator("td.num-submissions a").click()
            rows = tab.locator("#main-table tr", has=tab.locator("td.student-id"))
            rows.nth(len(STUDENTS) - 1).wait_for(timeout=60_000)
            listed = sorted(rows.nth(i).locator("td.student-id").inner_text().strip()
                            for i in range(rows.count()))
            assert listed == sorted(STUDENTS)
            context.close()
            # A student who finds the address gets a refusal, not the class.
            context, _, tab, response, href = open_formgrader(browser, classroom.hub, "ada")
            assert href is None, "the formgrader is linked for a student"
            assert response.status == 403, response.status
            assert tab.locator("#main-table").count() == 0
            context.close()
        finally:
            browser.close()
