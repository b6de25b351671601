"""The course as people use it: JupyterLab in headless Chromium, for learners and instructors.

One JupyterLab server per module serves a temporary copy of the course; one Chromium drives it.

- a learner restarts chapter 1's student notebook and runs everything: the only errors are the
  stubs' NotImplementedError;
- a learner types one answer into the editor and presses Validate: right, the success message;
  wrong (pos_weight on the negative term), the failure with the grader's diagnosis;
- chapter 3's optimizer explorer redraws its plot when the learning-rate slider moves;
- after ``nbgrader autograde`` of three submissions, formgrader lists chapter 1 with them and
  their scores.

Screenshots of the learner's Validate result, the explorer and formgrader are written to
``docs/images/`` (the README shows them). Without Chromium these tests are skipped, unless
``REQUIRE_BROWSER=1`` (CI), when they fail; the unit tests at the end check that decision.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from browser_support import (CHROMIUM, INSTALL_HINT, JupyterLab, browser_unavailable,
                             close_left_sidebar, copy_course, descendants, end_processes,
                             exception_of, launch_chromium, menu, open_notebook, read_cells,
                             restart_and_run_all, run_from, set_cell_source, start_time,
                             validate)
from nbutils import ROOT, SOLUTION_BLOCK, nbgrader_meta

CHAPTER = "01_classification_losses"
SOURCE = f"solutions/{CHAPTER}/{CHAPTER}.ipynb"
STUDENT = f"notebooks/{CHAPTER}/{CHAPTER}.ipynb"
LEARNER = f"learner/{CHAPTER}/{CHAPTER}.ipynb"  # a learner's working copy
WIDGET_CHAPTER = "03_sgd"
WIDGET_NOTEBOOK = f"solutions/{WIDGET_CHAPTER}/{WIDGET_CHAPTER}.ipynb"
IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 1280, "height": 800}

# Generous bounds for a loaded 2-core machine; each wait ends as soon as its condition holds.
KERNEL_S = 120  # open a notebook and start its kernel
RUN_S = 300  # run a whole chapter notebook
VALIDATE_S = 300  # a bound for a loaded machine; the seconds a click takes are printed
AUTOGRADE_S = 900

# The answer typed in, and a wrong one: right except that pos_weight multiplies the negative
# term. The test cell's hand-checkable asserts pass it (they use no pos_weight); the grader's
# check() names the mistake.
EXERCISE = "binary_cross_entropy_with_logits"
MISTAKE = "pos_weight_on_negative"
WRONG_ANSWER = '''\
def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """Binary cross-entropy of logits, with pos_weight on the wrong term."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.size()}) must be the same as input size "
                         f"({input.size()})")
    m = (-input).clamp(min=0)
    softplus_neg = m + torch.log(torch.exp(-m) + torch.exp(-input - m))  # -log sigmoid(x)
    positive = target * softplus_neg
    negative = (1 - target) * (input + softplus_neg)  # -log(1 - sigmoid(x))
    if pos_weight is not None:
        negative = negative * pos_weight
    loss = positive + negative
    if weight is not None:
        loss = loss * weight
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
'''

# Submissions for the instructor flow: (student id, first name, last name, answers filled in),
# and the seed of the hidden cases autograde draws.
STUDENTS = (
    ("ada", "Ada", "Lovelace", "all"),
    ("alan", "Alan", "Turing", ()),
    ("grace", "Grace", "Hopper", ("log_softmax", "nll_loss")),
)
GRADING_SEED = "20260302"


# ---------------------------------------------------------------------------------------------
# Fixtures: one server and one browser per module, a fresh page per test


def require_browser() -> None:
    """Skip (or, with REQUIRE_BROWSER=1, fail) when Chromium or Playwright is missing."""
    decision = browser_unavailable(CHROMIUM, dict(os.environ))
    if decision is not None:
        kind, reason = decision
        (pytest.fail if kind == "fail" else pytest.skip)(reason)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    require_browser()
    tmp = tmp_path_factory.mktemp("browser")
    with JupyterLab(copy_course(tmp / "course"), tmp / "home") as server:
        yield server


@pytest.fixture(scope="module")
def browser(lab: JupyterLab) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, lab: JupyterLab, autograding: Autograding | None,
         request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh page; when the test fails, a screenshot of it goes to the test's tmp_path.

    It asks for ``autograding`` only to start it with the first browser test.
    """
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)
    failed_before = request.session.testsfailed
    yield page
    # The call's report is logged before fixtures are torn down, so a failure is counted here.
    if request.session.testsfailed > failed_before:
        shot = tmp_path / "failure.png"
        try:
            page.screenshot(path=str(shot))
            print(f"\nscreenshot of the page at the failure: {shot}")
        except Exception as exc:  # a crashed page must not hide the test's own error
            print(f"\nno screenshot of the failure ({exc})")
        print(f"JupyterLab log ({lab.log_path}), last lines:\n{lab.log_tail(3000)}")
    context.close()


def save_screenshot(page: Any, name: str) -> Path:
    """Save the visible page as docs/images/<name>.png."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"{name}.png"
    page.screenshot(path=str(path))
    return path


# ---------------------------------------------------------------------------------------------
# Notebooks as the tests prepare them


def grade_ids(nb: nbformat.NotebookNode) -> dict[str, int]:
    """Cell index of each nbgrader grade_id."""
    return {nbgrader_meta(c)["grade_id"]: i for i, c in enumerate(nb.cells)
            if nbgrader_meta(c).get("grade_id")}


def answers(course: Path) -> dict[str, str]:
    """The solution's answer to each exercise, as a learner would type it (no markers)."""
    solution = nbformat.read(course / SOURCE, as_version=4)
    return {nbgrader_meta(c)["grade_id"]: SOLUTION_BLOCK.sub(r"\1", c.source)
            for c in solution.cells if nbgrader_meta(c).get("solution")}


def submission(course: Path, filled: Any) -> nbformat.NotebookNode:
    """The student notebook with the answers in ``filled`` ("all" or exercise names) taken from
    the solution, the others left as stubs.

    Both notebooks are read from the test's copy of the course, which the tests serve.
    """
    right = answers(course)
    student = nbformat.read(course / STUDENT, as_version=4)
    for cell in student.cells:
        name = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution") and (filled == "all" or name in filled):
            cell.source = right[name]
    return student


def points(nb: nbformat.NotebookNode, names: Any = "all") -> float:
    """Points of the test cells of the exercises ``names`` ("all": the whole notebook)."""
    return sum(float(nbgrader_meta(c).get("points", 0)) for c in nb.cells
               if nbgrader_meta(c).get("grade")
               and (names == "all" or nbgrader_meta(c)["grade_id"] in {f"test_{n}" for n in names}))


def diagnosis(exercise: str, key: str) -> str:
    """The grader's diagnosis text for a known mistake."""
    from grader.chapters.ch01_classification_losses import EXERCISES

    messages = {m.key: m.message for m in EXERCISES[exercise].mistakes}
    assert key in messages, f"{exercise} has no mistake {key!r} (known: {sorted(messages)})"
    return messages[key]


# ---------------------------------------------------------------------------------------------
# Learner


def run_everything(page: Any) -> list[dict[str, Any]]:
    """Restart the kernel and run all; where the run stops at an error, carry on from the first
    code cell that has not run (as a learner who skips an exercise for now) until every code
    cell has run. Starting from the first cell not run, not the one after the last that ran,
    also recovers when a click selected a cell further down than intended."""
    restart_and_run_all(page, RUN_S)
    tries: dict[int, int] = {}
    while True:
        cells = read_cells(page)
        ran = [i for i, c in enumerate(cells) if c["ran"]]
        assert ran, "no cell ran after Restart Kernel and Run All Cells"
        rest = [i for i, c in enumerate(cells) if c["code"] and not c["ran"]]
        if not rest:
            return cells
        stopped = [i for i in ran if i < rest[0]]
        assert stopped and cells[stopped[-1]]["errors"], (
            f"cell {rest[0]} did not run although the cell before it shows no error")
        tries[rest[0]] = tries.get(rest[0], 0) + 1
        assert tries[rest[0]] <= 3, f"cell {rest[0]} never ran after 3 runs from it"
        run_from(page, rest[0], RUN_S)


@pytest.mark.browser
def test_student_notebook_runs_with_only_the_stubs_failing(lab: JupyterLab, page: Any):
    student = nbformat.read(lab.course / STUDENT, as_version=4)
    open_notebook(page, lab, STUDENT, KERNEL_S)
    cells = run_everything(page)

    assert len(cells) == len(student.cells), "the page does not show every cell of the notebook"
    not_run = [i for i, c in enumerate(cells) if c["code"] and not c["ran"]]
    assert not not_run, f"cells {not_run} never ran"
    failed = {i: c["errors"][-1] for i, c in enumerate(cells) if c["errors"]}
    others = {i: err for i, err in failed.items() if not err.startswith("NotImplementedError")}
    assert not others, f"errors other than the stubs' NotImplementedError: {others}"
    # Every exercise is a stub here, so each test cell must have stopped on its NotImplementedError.
    tests = {gid: i for gid, i in grade_ids(student).items()
             if nbgrader_meta(student.cells[i]).get("grade")}
    silent = sorted(gid for gid, i in tests.items() if i not in failed)
    assert tests and not silent, f"test cells that raised nothing on a stub: {silent}"


@pytest.mark.browser
def test_validate_shows_success_then_the_named_mistake(lab: JupyterLab, page: Any):
    # The learner has answered every exercise but one; they now type that one in.
    notebook = submission(lab.course, [n for n in answers(lab.course) if n != EXERCISE])
    path = lab.course / LEARNER
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    answer_cell = grade_ids(notebook)[EXERCISE]
    right = answers(lab.course)[EXERCISE]
    expected = diagnosis(EXERCISE, MISTAKE)
    open_notebook(page, lab, LEARNER, KERNEL_S)

    set_cell_source(page, answer_cell, right)
    dialog, seconds = validate(page, VALIDATE_S)
    print(f"\nValidate, every answer right: {seconds:.2f} s from the click to the dialog")
    body = dialog.locator(".jp-Dialog-body")
    assert "validation-success" in (body.get_attribute("class") or ""), (
        f"Validate did not succeed with every answer right:\n{body.inner_text()[-3000:]}")
    assert "Success! Your notebook passes all the tests." in body.inner_text()
    saved = nbformat.read(path, as_version=4).cells[answer_cell].source
    assert saved.strip() == right.strip(), "the answer typed in the editor is not what was saved"
    dialog.locator(".jp-mod-accept").click()
    dialog.wait_for(state="detached")

    set_cell_source(page, answer_cell, WRONG_ANSWER)
    dialog, seconds = validate(page, VALIDATE_S)
    print(f"Validate, one wrong answer: {seconds:.2f} s from the click to the dialog")
    body = dialog.locator(".jp-Dialog-body")
    text = body.inner_text()
    assert "validation-failed" in (body.get_attribute("class") or ""), (
        f"Validate did not fail with a wrong {EXERCISE}:\n{text[-3000:]}")
    # The diagnosis is at the top: the first thing shown after "The following cell failed:" is
    # the exercise's headline, its score and the likely mistake; the full report follows.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == "The following cell failed:", text[:1000]
    assert re.fullmatch(rf"{EXERCISE}: [\d.]+ / [\d.]+ points — Likely mistake: "
                        rf"{re.escape(expected)}", lines[1]), (
        f"the diagnosis {expected!r} is not at the top of the Validate dialog:\n{text[:2000]}")
    assert "Traceback" not in text and "grader/" not in text, text[:2000]
    save_screenshot(page, "learner")


# ---------------------------------------------------------------------------------------------
# Widget


def image_bytes(locator: Any) -> bytes:
    """What the browser shows of an element, as PNG bytes."""
    return locator.screenshot(animations="disabled")


def changed_fraction(before: bytes, after: bytes) -> float:
    """The fraction of pixels that differ between two screenshots of the same element."""
    from PIL import Image, ImageChops

    a, b = (Image.open(io.BytesIO(x)).convert("RGB") for x in (before, after))
    if a.size != b.size:
        return 1.0
    diff = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 16 else 0)
    return sum(diff.histogram()[255:]) / (a.size[0] * a.size[1])


@pytest.mark.browser
def test_learning_rate_slider_redraws_the_explorer(lab: JupyterLab, page: Any):
    open_notebook(page, lab, WIDGET_NOTEBOOK, KERNEL_S)
    restart_and_run_all(page, RUN_S)
    errors = {i: c["errors"] for i, c in enumerate(read_cells(page)) if c["errors"]}
    assert not errors, f"the chapter 3 solution raised: {errors}"

    slider = page.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text=re.compile(r"^\s*lr\s*$"))).first
    slider.wait_for()
    explorer = page.locator(".jp-OutputArea-output").filter(has=slider).first
    image = explorer.locator("img").first
    image.wait_for()
    handle = slider.locator("[role=slider]")
    readout = slider.locator(".widget-readout")
    value, shown = handle.get_attribute("aria-valuenow"), readout.inner_text()
    src = image.get_attribute("src")
    image.scroll_into_view_if_needed()
    before = image_bytes(image)

    handle.focus()
    page.keyboard.press("PageUp")  # one keystroke, one new value: a single redraw
    page.wait_for_function(
        "([img, old]) => img.getAttribute('src') !== old && img.complete && img.naturalWidth > 0",
        arg=[image.element_handle(), src], timeout=60_000)
    after = image_bytes(image)

    assert handle.get_attribute("aria-valuenow") != value, "the slider did not move"
    assert readout.inner_text() != shown, f"the readout still shows {shown}"
    fraction = changed_fraction(before, after)
    assert fraction > 0.002, f"the plot barely changed ({fraction:.2%} of its pixels)"
    explorer.evaluate("e => e.scrollIntoView({block: 'start'})")  # the controls and the plot
    save_screenshot(page, "widget")


# ---------------------------------------------------------------------------------------------
# Instructor


def nbgrader(course: Path, env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                            capture_output=True, text=True, timeout=AUTOGRADE_S)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stderr[-4000:]}"


class Autograding:
    """``nbgrader autograde`` of the STUDENTS' submissions, from the course root, in the
    background (it takes a while, and the learner tests can run meanwhile)."""

    def __init__(self, course: Path, env: dict[str, str]) -> None:
        self.course, self.env = course, env
        self.log_path = course.parent / "autograde.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.failure: BaseException | None = None  # why it could not be started

    def start(self) -> None:
        from nbgrader.api import Gradebook

        nbgrader(self.course, self.env, "generate_assignment", CHAPTER, "--force")
        with Gradebook(f"sqlite:///{self.course / 'gradebook.db'}") as gradebook:
            for student, first, last, filled in STUDENTS:
                gradebook.update_or_create_student(student, first_name=first, last_name=last)
                folder = self.course / "submitted" / student / CHAPTER
                folder.mkdir(parents=True)
                nbformat.write(submission(self.course, filled), folder / f"{CHAPTER}.ipynb")
                (folder / "timestamp.txt").write_text("2026-03-02 09:30:00 UTC")
        # A fixed seed: the same hidden cases on every run (the grader's tests vary the seed).
        env = {**self.env, "LOSSOPT_SEED": GRADING_SEED}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "nbgrader", "autograde", CHAPTER], cwd=self.course,
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait(self, timeout: float) -> None:
        """Wait for autograde to finish; fail with its log if it failed."""
        if self.failure is not None:
            raise AssertionError(f"autograde could not be started: {self.failure!r}") \
                from self.failure
        assert self.process is not None, "autograde was not started"
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"nbgrader autograde still ran after {timeout:.0f} s") from None
        assert code == 0, f"nbgrader autograde failed ({code}):\n{self.log()[-4000:]}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def verdicts(self) -> str:
        """The grading core's one-line verdict per submission, from the log."""
        return "\n".join(line for line in self.log().splitlines() if ": graded, " in line)

    def stop(self) -> None:
        """End autograde and its workers, by process id, if it is still running."""
        if self.process is not None and self.process.poll() is None:
            end_processes(descendants(self.process.pid, include_self=True), grace=5)
            self.process.wait(timeout=10)


def expected_scores(course: Path) -> dict[str, str]:
    """Each student's score as formgrader shows it, e.g. ``"5 / 15"``."""
    source = nbformat.read(course / SOURCE, as_version=4)
    total = points(source)
    return {student: f"{total if filled == 'all' else points(source, filled):g} / {total:g}"
            for student, _, _, filled in STUDENTS}


@pytest.fixture(scope="module")
def autograding(lab: JupyterLab, request: pytest.FixtureRequest) -> Iterator[Autograding | None]:
    """Autograde started with the first browser test when formgrader's test is selected."""
    if not any(item.name.startswith("test_formgrader") for item in request.session.items):
        yield None
        return
    job = Autograding(lab.course, lab.env)
    try:
        job.start()
    except Exception as exc:  # formgrader's test reports it; the learner tests go on
        job.failure = exc
    try:
        yield job
    finally:
        job.stop()


@pytest.mark.browser
def test_formgrader_lists_the_autograded_submissions(lab: JupyterLab, page: Any,
                                                     autograding: Autograding | None):
    assert autograding is not None, "the autograding fixture did not see this test selected"
    autograding.wait(AUTOGRADE_S)
    page.goto(lab.url("lab?reset"))
    page.locator(".jp-LauncherCard").first.wait_for(timeout=KERNEL_S * 1000)
    close_left_sidebar(page)
    menu(page, "Nbgrader", "Formgrader")
    formgrader = page.frame_locator(".jp-MainAreaWidget:not(.lm-mod-hidden) iframe")

    row = formgrader.locator("#main-table tr", has=formgrader.locator("td.name", has_text=CHAPTER))
    row.wait_for()
    count = row.locator("td.num-submissions").inner_text().strip()
    assert count == str(len(STUDENTS)), f"formgrader lists {count} submissions of {CHAPTER}"

    row.locator("td.num-submissions a").click()
    rows = formgrader.locator("#main-table tr", has=formgrader.locator("td.student-id"))
    rows.nth(len(STUDENTS) - 1).wait_for()
    listed = {}
    for i in range(rows.count()):
        student = rows.nth(i).locator("td.student-id").inner_text().strip()
        listed[student] = rows.nth(i).locator("td.score").inner_text().strip()
    expected = expected_scores(lab.course)
    assert listed == expected, (f"formgrader shows {listed}, expected {expected}; "
                                f"autograde said:\n{autograding.verdicts()}")
    save_screenshot(page, "formgrader")


# ---------------------------------------------------------------------------------------------
# When the browser tests run, skip or fail (cheap: no browser needed)


def test_missing_chromium_is_a_skip_that_says_how_to_install_it(tmp_path: Path):
    decision = browser_unavailable(tmp_path / "chromium", {})
    assert decision is not None and decision[0] == "skip"
    assert INSTALL_HINT in decision[1] and str(tmp_path / "chromium") in decision[1]
    assert browser_unavailable(tmp_path / "chromium", {"REQUIRE_BROWSER": "0"})[0] == "skip"


def test_missing_chromium_fails_when_the_browser_is_required(tmp_path: Path):
    decision = browser_unavailable(tmp_path / "chromium", {"REQUIRE_BROWSER": "1"})
    assert decision is not None and decision[0] == "fail"
    assert INSTALL_HINT in decision[1] and "REQUIRE_BROWSER" in decision[1]


def test_a_present_chromium_runs_the_tests(tmp_path: Path):
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    assert browser_unavailable(fake, {})[0] == "skip", "a file that cannot run is no browser"
    fake.chmod(0o755)
    assert browser_unavailable(fake, {"REQUIRE_BROWSER": "1"}) is None


@pytest.mark.parametrize("require, outcome", [("", "skipped"), ("1", "error")])
def test_pytest_reports_the_browser_tests_without_chromium(tmp_path: Path, require: str,
                                                           outcome: str):
    env = {**os.environ, "CHROMIUM": str(tmp_path / "no-chromium"), "REQUIRE_BROWSER": require,
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # a quicker start: no plugin is needed here
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__)), "-m", "browser", "-p",
         "no:cacheprovider", "-q", "-rsE", f"--basetemp={tmp_path / 'pytest'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    counts = {word.rstrip("s"): int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}
    assert counts.get(outcome, 0) >= 4 and not {"passed", "failed"} & counts.keys(), (
        result.stdout[-3000:] + result.stderr[-2000:])
    assert result.returncode == (0 if outcome == "skipped" else 1)
    assert INSTALL_HINT in result.stdout, result.stdout[-3000:]


def test_errors_are_told_from_warnings_in_stderr_outputs():
    stub = ("-----\nNotImplementedError      Traceback (most recent call last)\n"
            "Cell In[2], line 4\n----> 4     raise NotImplementedError()\n\n"
            "NotImplementedError: \n")
    assert exception_of(stub) == "NotImplementedError:"
    feedback = ("AssertionError       Traceback (most recent call last)\n--> 440     raise "
                "AssertionError(message)\n\nAssertionError: bce failed on input (2, 3)\n"
                "  Likely mistake: pos_weight multiplies the positive term\n")
    assert exception_of(feedback) == ("AssertionError: bce failed on input (2, 3)\n"
                                      "  Likely mistake: pos_weight multiplies the positive term")
    assert exception_of("/x/plots.py:3: UserWarning: no legend\n  warnings.warn(w)\n") is None


def test_processes_are_ended_by_id_with_their_children():
    # A parent with two children, like a Jupyter server with its kernels.
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    try:
        deadline = time.monotonic() + 30
        while len(descendants(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = descendants(parent.pid, include_self=True)
        assert len(tree) == 3 and tree[0][0] == parent.pid
        end_processes(tree, grace=5)
        assert [pid for pid, _ in tree if start_time(pid) is not None] == []
    finally:
        parent.kill()
        parent.wait()

