"""The grading core: one verdict per notebook, decided outside the submission's process.

:func:`grade_batch` grades many notebooks in parallel (threads in this process, each driving its
own sandboxed worker, see :mod:`grader.core.sandbox`). For one notebook (:func:`grade_notebook`):

1. read it defensively and find its chapter (:mod:`grader.core.notebook`,
   :mod:`grader.core.course`);
   an unusable file is ``invalid``, with the reason;
2. match it against the released template and plan what runs
   (:func:`grader.core.notebook.make_plan`);
3. scan each answer for forbidden calls (:mod:`grader.core.static`);
4. start a worker; run the course's setup cell, then the answer cells and the learner's own cells;
   a cell that hangs or kills the worker is skipped and the worker restarted, re-running the
   cells that worked;
5. for each graded cell, in the template's order: send the exercise's cases (public, then hidden
   ones drawn from the batch's seed) and judge the plain outputs that come back against the
   references computed here, once per batch (:class:`References`). A timeout, a crash or an
   off-limits call ends that exercise only; the worker is restarted for the next one.

Every graded cell ends with one status: ``passed``, ``failed`` (wrong values), ``error`` (the
answer raised, or returned something that is not a tensor), ``timeout``, ``crashed``,
``forbidden``, ``missing`` (no answer, or still the stub) or ``manual`` (graded by hand), and a
message that says what happened; scores are all-or-nothing per graded cell, like nbgrader's.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from grader.core import wire
from grader.core.course import Chapter, Course, GradedCell
from grader.kit import scoring
from grader.kit.exercise import ERROR_KEY, Case
from grader.core.notebook import InvalidNotebook, Plan, make_plan, read_submission, \
    submitted_grade_ids
from grader.core.sandbox import (Limits, Pool, Worker, WorkerDied, WorkerProtocolError,
                            WorkerTimeout, sandbox_mode)
from grader.core.static import Unit, forbidden_targets, parse, Scanner

log = logging.getLogger("grader")

STATUSES = ("passed", "failed", "error", "timeout", "crashed", "forbidden", "missing", "manual")
MAX_RESTARTS = 12
GRADER_ERROR = "grader_error"  # key set on a result the grader failed to produce (exit status 1)
PRINTED_SHOWN = 800  # characters of what the learner's code printed, shown with a failure


@dataclasses.dataclass(frozen=True)
class Options:
    """How to grade."""

    seed: int
    hidden: bool = True  # False for `validate`: public checks only
    limits: Limits = Limits()
    cell_budget: float | None = None  # seconds for all the learner's own cells (10 x timeout)

    @property
    def timeout(self) -> float:
        return self.limits.timeout


class GraderError(Exception):
    """The grader itself failed (not the submission's fault)."""


def new_seed() -> int:
    """A fresh seed for a batch's hidden cases."""
    return secrets.randbelow(2**31)


# ---------------------------------------------------------------------------------------------
# References: computed once per batch


@dataclasses.dataclass
class Checks:
    """An exercise's cases, their expected outputs, and the cases as sent to the worker."""

    cases: list[Case]
    expected: list[dict[str, Any]]
    wire_cases: list[dict[str, Any]]
    n_public: int


class References:
    """Cases and references per (chapter, exercise, hidden), shared by all notebooks of a batch."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._cache: dict[tuple[str, str, bool], Checks] = {}
        self._locks: dict[tuple[str, str, bool], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, chapter: Chapter, name: str, hidden: bool) -> Checks:
        key = (chapter.name, name, hidden)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                ex = chapter.exercises[name]
                public = list(ex.cases(hidden=False))
                cases = public + (list(ex.cases(hidden=True, seed=self.seed)) if hidden else [])
                expected = [ex.reference(c) for c in cases]
                sent = [{"label": c.label, "args": wire.encode(dict(c.args)),
                         "public": bool(c.public), "facet": c.facet} for c in cases]
                self._cache[key] = Checks(cases, expected, sent, len(public))
            return self._cache[key]


# ---------------------------------------------------------------------------------------------
# A worker session: cells run once, replayed after a restart


@dataclasses.dataclass
class StepOutcome:
    """How a plan step went the first time it ran."""

    status: str  # "ok" | "error" | "timeout" | "crashed" | "skipped"
    reply: dict[str, Any] = dataclasses.field(default_factory=dict)
    detail: str = ""


class Session:
    """Runs a plan's steps in a worker, restarting it when a step or a check kills it."""

    def __init__(self, chapter: Chapter, plan: Plan, options: Options, course: Course,
                 pool: Pool) -> None:
        self.chapter, self.plan, self.options, self.course = chapter, plan, options, course
        self.pool = pool
        self.worker: Worker | None = None
        self.outcomes: dict[int, StepOutcome] = {}
        self.restarts = 0
        self.cell_time = 0.0
        self.setup_output = ""

    @property
    def budget(self) -> float:
        return self.options.cell_budget or 10 * self.options.timeout

    def _spawn(self) -> Worker:
        try:
            return Worker(self.options.limits, self.pool)
        except Exception as exc:
            raise GraderError(f"the grader could not start its sandbox: {exc}") from exc

    def _init(self, worker: Worker) -> None:
        setup = self.chapter.setup
        message = {
            "cmd": "init", "module": self.chapter.module_name,
            "paths": [str(p) for p in self.course.extra_paths],
            "setup": setup.source if setup else "", "limits": worker.rlimits(),
            "uid": worker.uid,
        }
        try:
            reply = worker.request(message, max(120.0, self.options.timeout))
        except (WorkerTimeout, WorkerDied, WorkerProtocolError) as exc:
            raise GraderError(f"the grader's worker did not start ({type(exc).__name__}: {exc}); "
                              f"its output: {worker.raw_output()[-2000:]}") from exc
        if "fatal" in reply:
            raise GraderError(f"the grader's worker failed to start: {reply['fatal']}")
        setup_reply = reply.get("setup") or {}
        if not setup_reply.get("ok"):
            raise GraderError(f"the chapter's setup cell failed in the grader: "
                              f"{setup_reply.get('error')}")
        self.setup_output = setup_reply.get("output", "")

    def boot(self) -> None:
        """Start a worker and (re)run the plan's steps, skipping the ones that failed before."""
        while True:
            if self.restarts > MAX_RESTARTS:
                raise RestartLimit()
            worker = self._spawn()
            try:
                self._init(worker)
                if self._run_steps(worker):
                    self.worker = worker
                    return
            except BaseException:
                worker.close()
                raise
            worker.close()
            self.restarts += 1

    def _run_steps(self, worker: Worker) -> bool:
        for i, step in enumerate(self.plan.steps):
            done = self.outcomes.get(i)
            if done is not None and done.status in ("timeout", "crashed", "skipped"):
                continue
            if step.kind == "cell" and step.role == "student" and self.cell_time > self.budget:
                self.outcomes.setdefault(i, StepOutcome(
                    "skipped", detail="not run: your own cells used up their time budget"))
                continue
            message = ({"cmd": "cell", "source": step.source, "label": step.label}
                       if step.kind == "cell" else {"cmd": "snapshot", "names": list(step.names)})
            start = time.monotonic()
            try:
                reply = worker.request(message, self.options.timeout)
            except WorkerTimeout:
                self.cell_time += time.monotonic() - start
                detail = (f"{step.label} did not finish within {self.options.timeout:g} s and was "
                          f"stopped")
                if worker.near_memory_limit():
                    detail += (f"; it had run out of memory (the limit is "
                               f"{self.options.limits.memory / 2**30:g} GiB)")
                self.outcomes[i] = StepOutcome("timeout", detail=detail)
                return False
            except (WorkerDied, WorkerProtocolError) as exc:
                self.outcomes[i] = StepOutcome("crashed", detail=f"{step.label}: {exc}")
                return False
            self.cell_time += time.monotonic() - start
            if "fatal" in reply:
                raise GraderError(f"the worker failed: {reply['fatal']}")
            if done is None:
                ok = reply.get("ok", True)
                self.outcomes[i] = StepOutcome("ok" if ok else "error", reply)
        return True

    def check(self, name: str, checks: Checks) -> dict[str, Any]:
        """Run an exercise's cases; a dict with ``results``, or ``{"timeout"|"died": ...}``."""
        if self.worker is None:
            self.boot()
        assert self.worker is not None
        message = {"cmd": "check", "exercise": name, "cases": checks.wire_cases}
        try:
            return self.worker.request(message, self.options.timeout)
        except WorkerTimeout:
            oom = self.worker.near_memory_limit()
            self._drop()
            return {"timeout": True, "oom": oom}
        except WorkerDied as exc:
            output = self.worker.raw_output() if self.worker else ""
            oom = self.worker.near_memory_limit() or "MemoryError" in output
            self._drop()
            return {"died": str(exc), "raw": output, "oom": oom}
        except WorkerProtocolError as exc:
            self._drop()
            return {"garbled": str(exc)}

    def _drop(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None
            self.restarts += 1

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None


class RestartLimit(Exception):
    """The submission killed the worker too many times."""


# ---------------------------------------------------------------------------------------------
# One notebook


def cell_result(grade_id: str, points: float, status: str, message: str,
                score: float = 0.0, facets: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    """One entry of a result's ``cells`` (``facets``: each facet's points, score and diagnosis,
    for a checked exercise)."""
    assert status in STATUSES, status
    entry = {"grade_id": grade_id, "score": float(score), "max_score": float(points),
             "status": status, "message": message}
    if facets is not None:
        entry["facets"] = facets
    return entry


def result(notebook: str, assignment: str | None, status: str, message: str, seed: int,
           cells: list[dict[str, Any]]) -> dict[str, Any]:
    """One notebook's result (the JSON schema of `python -m grader autograde --json`)."""
    return {"notebook": notebook, "assignment": assignment, "status": status, "message": message,
            "score": float(sum(c["score"] for c in cells)),
            "max_score": float(sum(c["max_score"] for c in cells)), "seed": seed, "cells": cells}


def invalid(notebook: str, chapter: Chapter | None, reason: str, seed: int) -> dict[str, Any]:
    """The result of a notebook that cannot be graded: every graded cell scores 0."""
    cells = [cell_result(g.grade_id, g.points, "missing", f"not graded: {reason}")
             for g in (chapter.graded if chapter else [])]
    return result(notebook, chapter.name if chapter else None, "invalid", reason, seed, cells)


def grade_notebook(path: str, course: Course, options: Options, refs: References,
                   pool: Pool, assignment: str | None = None) -> dict[str, Any]:
    """Grade one notebook (never raises for anything the submission does)."""
    try:
        cells = read_submission(path)
    except InvalidNotebook as exc:
        name = assignment or course.from_filename(path)
        chapter = safe_chapter(course, name)
        return invalid(path, chapter, str(exc), options.seed)
    ids = submitted_grade_ids(cells)
    name = assignment or course.from_filename(path)
    by_content = course.from_content(ids)
    if name is None and by_content is None:
        return invalid(path, None, "cannot tell which chapter this notebook belongs to: its "
                       "file name is not a chapter's and it carries no chapter's cells",
                       options.seed)
    if name is None:
        name = by_content
    chapter = safe_chapter(course, name)
    if chapter is None:
        return invalid(path, None, f"unknown assignment {name!r} (chapters: "
                       f"{', '.join(course.names())})", options.seed)
    if by_content is not None and by_content != name and not (ids & chapter.grade_ids):
        return invalid(path, chapter, f"this notebook is chapter {by_content} (its cells carry "
                       f"that chapter's grade ids), not {name}: submit {name}'s notebook",
                       options.seed)
    return Grading(path, chapter, cells, course, options, refs, pool).run()


def safe_chapter(course: Course, name: str | None) -> Chapter | None:
    if name is None:
        return None
    try:
        return course.chapter(name)
    except KeyError:
        return None


class Grading:
    """Grades one readable notebook of a known chapter."""

    def __init__(self, path: str, chapter: Chapter, cells: list[Any], course: Course,
                 options: Options, refs: References, pool: Pool) -> None:
        self.path, self.chapter, self.course, self.options, self.refs = \
            path, chapter, course, options, refs
        self.plan = make_plan(chapter, cells)
        self.session = Session(chapter, self.plan, options, course, pool)
        self.statuses: dict[str, str] = {}  # exercise name -> status, in the template's order

    def run(self) -> dict[str, Any]:
        cells: list[dict[str, Any]] = []
        self.failure: str | None = None
        try:
            static = self.static_findings()
            if any(g.exercise and not g.manual for g in self.chapter.graded):
                try:
                    self.session.boot()
                except GraderError as exc:
                    log.error("%s: %s", self.path, exc)
                    self.failure = str(exc)
            for graded in self.chapter.graded:
                cells.append(self.grade_cell(graded, static))
                if graded.exercise is not None:
                    self.statuses[graded.exercise] = cells[-1]["status"]
        except RestartLimit:
            done = {c["grade_id"] for c in cells}
            for graded in self.chapter.graded:
                if graded.grade_id not in done:
                    cells.append(cell_result(graded.grade_id, graded.points, "crashed",
                                             f"not checked: the submission killed the grader's "
                                             f"worker {MAX_RESTARTS} times, grading stopped"))
        finally:
            self.session.close()
        res = result(self.path, self.chapter.name, "graded", self.notes(), self.options.seed,
                     cells)
        if self.failure is not None:
            res[GRADER_ERROR] = self.failure
        return res

    # -- static -----------------------------------------------------------------------------------
    def static_findings(self) -> dict[str, list[Any]]:
        setup = self.chapter.setup
        units = []
        if setup is not None:
            tree = parse(setup.source) or ast.Module(body=[], type_ignores=[])
            units.append(Unit("the setup cell", setup.source, tree, False))
        position: dict[str, int] = {}
        for step in self.plan.steps:
            if step.kind == "cell":
                tree = parse(step.source)
                if tree is not None:
                    units.append(Unit(step.label, step.source, tree, True))
            else:
                for name in step.names:
                    position[name] = len(units)
        scanner = Scanner(units)
        found = {}
        for name, ex in self.chapter.exercises.items():
            runtime_only = set(ex.runtime_only)
            targets = forbidden_targets([p for p in ex.forbidden if p not in runtime_only])
            found[name] = scanner.findings(name, position.get(name, len(units)), targets,
                                           tuple(getattr(ex, "depends_on", ())))
        return found

    # -- one graded cell --------------------------------------------------------------------------
    def grade_cell(self, graded: GradedCell, static: dict[str, list[Any]]) -> dict[str, Any]:
        gid, points = graded.grade_id, graded.points
        if graded.manual:
            return cell_result(gid, points, "manual", "graded by your instructor")
        if graded.exercise is None:
            log.warning("%s: graded cell %s has no check in %s: left to the instructor",
                        self.chapter.name, gid, self.chapter.module_name)
            return cell_result(gid, points, "manual", "no automatic check exists for this cell: "
                               "your instructor grades it")
        name = graded.exercise
        fail = lambda status, message: cell_result(gid, points, status, message)  # noqa: E731
        if self.failure is not None:
            return fail("error", f"not graded, because of a grader failure that is not your "
                                 f"fault: {self.failure}")
        if static.get(name):
            return fail("forbidden", static[name][0].message(name))
        answer_step = self.answer_outcome(name)
        if answer_step is not None and answer_step.status in ("timeout", "crashed"):
            status = answer_step.status
            return fail(status, answer_step.detail + (
                "" if status == "timeout" else " (while running your answer cell)"))
        try:
            checks = self.refs.get(self.chapter, name, self.options.hidden)
        except Exception as exc:  # a bug in the chapter's checks: not the learner's fault
            log.exception("%s: computing the references of %s failed", self.chapter.name, name)
            return fail("error", f"the grader could not compute the expected results for {name} "
                                 f"({type(exc).__name__}): please tell your instructor")
        try:
            reply = self.session.check(name, checks)
        except GraderError as exc:
            log.error("%s: %s", self.path, exc)
            self.failure = str(exc)
            return fail("error", f"grader failure, not your fault: {exc}")
        return self.verdict(graded, name, checks, reply, answer_step)

    def answer_outcome(self, name: str) -> StepOutcome | None:
        for i, step in enumerate(self.plan.steps):
            if step.kind == "cell" and step.role == "answer" and step.exercise == name:
                return self.session.outcomes.get(i)
        return None

    def verdict(self, graded: GradedCell, name: str, checks: Checks, reply: dict[str, Any],
                answer_step: StepOutcome | None) -> dict[str, Any]:
        gid, points = graded.grade_id, graded.points
        fail = lambda status, message: cell_result(gid, points, status, message)  # noqa: E731
        ex = self.chapter.exercises[name]
        limit = self.options.timeout
        memory = self.options.limits.memory / 2**30
        if reply.get("oom") or "MemoryError" in str(reply.get("fatal", "")):
            return fail("error", f"{name} ran out of memory while it was checked: your code "
                                 f"reached the {memory:g} GiB limit (a tensor far too large, or "
                                 f"memory kept growing from step to step or call to call)")
        if "timeout" in reply:
            return fail("timeout", f"checking {name} took longer than {limit:g} s and was "
                                   f"stopped (an infinite loop, or a very slow answer?)")
        if "died" in reply:
            return fail("crashed", f"the process running your code died while {name} was "
                                   f"checked: {reply['died']}")
        if "garbled" in reply:
            return fail("error", f"the grader could not read the results of {name} (something "
                                 f"in your code interfered with the grader: {reply['garbled']})")
        if "fatal" in reply:
            return fail("error", f"the check of {name} could not run in the worker "
                                 f"({reply['fatal'][:300]}); if your code changes the grader's "
                                 f"own modules or the shell, undo that")
        if reply.get("missing"):
            problem = self.plan.problems.get(name)
            if answer_step is not None and answer_step.status == "error":
                error = answer_step.reply.get("error") or {}
                if error.get("type") == "NotImplementedError":
                    # nbgrader's untouched stub at the top of the cell (a "paste your parts here"
                    # region): the exercise is not answered yet, nothing in it is broken.
                    return fail("missing", f"{name} is not answered yet: its answer cell still "
                                           f"raises NotImplementedError" + frames_text(error))
                return fail("error", f"{name} is not defined because your answer cell raised "
                                     f"an error:\n{render_error(answer_step.reply.get('error'))}")
            return fail("missing", problem or f"{name} is not defined: write it in its answer "
                                              f"cell")
        if reply.get("forbidden"):
            what = reply["forbidden"][0]
            if reply.get("subclass"):
                return fail("forbidden", f"{name} subclasses {what}, which this exercise asks you "
                                         f"to write yourself")
            return fail("forbidden", f"{name} called {what} while it was checked; it is "
                                     f"off-limits in this exercise: write it yourself")
        printed = reply.get("output") or ""
        if len(printed) > PRINTED_SHOWN:
            printed = printed[:PRINTED_SHOWN] + " [...]"
        if reply.get("crash"):
            crash = reply["crash"]
            return fail("crashed", f"your code raised {crash.get('type')} while {name} was "
                                   f"checked ({crash.get('message', '')[:200]}); an answer must "
                                   f"return, not end the program" + frames_text(crash))
        results = reply.get("results")
        if not isinstance(results, list) or len(results) != len(checks.cases):
            return fail("error", f"the grader got {len(results or [])} results for "
                                 f"{len(checks.cases)} cases of {name}: something in your code "
                                 f"interfered with the grader")
        return self.judge(graded, name, ex, checks, results, printed)

    def judge(self, graded: GradedCell, name: str, ex: Any, checks: Checks,
              results: list[Any], printed: str) -> dict[str, Any]:
        """Score the exercise by facet (:mod:`grader.kit.scoring`), as the notebook's check does."""
        gid, points = graded.grade_id, graded.points
        decoded: list[dict[str, Any] | str] = []
        for item in results:
            try:
                if not isinstance(item, dict) or "out" not in item:
                    raise wire.WireError(str(item.get("bad") if isinstance(item, dict) else item))
                decoded.append(wire.decode_outputs(item["out"]))
            except wire.WireError as exc:
                decoded.append(f"{name} returned something the grader cannot read: {exc}")
        stub = [isinstance(d, dict) and str(d.get(ERROR_KEY, "")) == "NotImplementedError"
                for d in decoded]
        if all(stub):
            return cell_result(gid, points, "missing",
                               f"{name} is not answered yet: it still raises NotImplementedError")
        try:
            outcome = scoring.score(ex, checks.cases, decoded, checks.expected)
        except Exception as exc:  # a bug in the chapter's facets: not the learner's fault
            log.exception("%s: scoring %s failed", self.chapter.name, name)
            return cell_result(gid, points, "error", f"the grader could not score {name} "
                               f"({type(exc).__name__}): please tell your instructor")
        # nbgrader's points for the cell are authoritative; the facets split them in proportion.
        scale = points / outcome.points if outcome.points else 0.0
        facets = [f.as_dict(ex) for f in outcome.facets]
        for entry in facets:
            entry["points"] = round(entry["points"] * scale, 9)
            entry["score"] = round(entry["score"] * scale, 9)
        earned = round(outcome.score * scale, 9)
        note = self.dependency_note(ex, outcome)
        if outcome.passed:
            n_hidden = len(checks.cases) - checks.n_public
            what = f"{checks.n_public} public" + (f" and {n_hidden} hidden" if n_hidden else "")
            text = f"{name}: all {what} checks passed"
            return cell_result(gid, points, "passed", text + (f"\n{note}" if note else ""),
                               score=points, facets=facets)
        text = scoring.render(ex, outcome, note=note)
        if any(not f.first(ex).case.public for f in outcome.lost()):
            text += f"\n(hidden cases are drawn with the grading seed {self.options.seed})"
        status = "error" if outcome.errored else "failed"
        if outcome.errored:
            first = min((x for f in outcome.lost() for x in f.failures),
                        key=lambda x: ex.simplicity(x.case))
            index = checks.cases.index(first.case)
            frames = results[index].get("frames") if isinstance(results[index], dict) else None
            text += frames_text({"frames": frames or []})
            err = first.message
            if "MemoryError" in err or "allocate memory" in err:
                text += (f"\n  Your code ran out of memory (the limit is "
                         f"{self.options.limits.memory / 2**30:g} GiB).")
        if printed.strip():
            text += "\n  Your code printed:\n    " + printed.strip().replace("\n", "\n    ")
        return cell_result(gid, points, status, text, score=earned, facets=facets)

    def dependency_note(self, ex: Any, outcome: Any) -> str:
        """Name the earlier answers that fail, when this exercise is checked on correct ones."""
        answer = self.plan.answers.get(ex.name)
        source = answer.source if answer is not None else ""
        failing = [dep for dep in getattr(ex, "depends_on", ())
                   if dep in self.statuses and self.statuses[dep] != "passed"
                   and re.search(rf"\b{re.escape(dep)}\b", source)]
        if not failing:
            return ""
        names = " and ".join(f"`{d}`" for d in failing)
        verb = "passes" if outcome.passed else "is scored as above"
        return (f"Your {names} {'fails' if len(failing) == 1 else 'fail'} (see "
                f"{'its' if len(failing) == 1 else 'their'} exercise); with a correct one in its "
                f"place, your `{ex.name}` {verb}: a mistake costs points once.")

    # -- notes ------------------------------------------------------------------------------------
    def notes(self) -> str:
        notes = list(self.plan.notes)
        errors = [(self.plan.steps[i], o) for i, o in sorted(self.session.outcomes.items())
                  if self.plan.steps[i].kind == "cell" and self.plan.steps[i].role == "student"
                  and o.status != "ok"]
        for step, outcome in errors[:5]:
            if outcome.status == "error":
                err = outcome.reply.get("error") or {}
                notes.append(f"{step.label} raised {err.get('type')}: "
                             f"{str(err.get('message', ''))[:150]} (it costs no points)")
            else:
                notes.append(f"{outcome.detail} (it costs no points)")
        if len(errors) > 5:
            notes.append(f"{len(errors) - 5} more of your own cells failed")
        return "; ".join(notes)


def render_error(error: dict[str, Any] | None) -> str:
    """A learner-facing rendering of an error reported by the worker."""
    if not error:
        return "  (no details)"
    text = f"  {error.get('type')}: {str(error.get('message', ''))[:500]}"
    return text + frames_text(error)


def frames_text(error: dict[str, Any]) -> str:
    """The learner's own frames of a traceback, innermost last."""
    frames = [f for f in error.get("frames") or [] if isinstance(f, list) and len(f) == 4]
    if not frames:
        return ""
    lines = ["\n  In your code:"]
    for label, line, func, text in frames:
        where = f"{label}, line {line}" if label else f"line {line}"
        func = f", in {func}" if func and func != "<module>" else ""
        lines.append(f"    {where}{func}: {str(text).strip()[:150]}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# A batch


def grade_batch(paths: Sequence[str], *, course: Course | None = None, seed: int | None = None,
                hidden: bool = True, limits: Limits | None = None, jobs: int | None = None,
                assignment: str | None = None, mode: str | None = None,
                pool: Pool | None = None, refs: References | None = None,
                progress: Callable[[int, int, dict[str, Any]], None] | None = None,
                ) -> list[dict[str, Any]]:
    """Grade notebooks in parallel; one result per path, in the order given.

    ``pool`` lends the workers (a zygote is started for the batch unless one is given);
    ``refs`` reuses references computed for the same seed; ``mode`` forces the sandbox
    (``"bwrap"`` or ``"fallback"``).
    """
    course = course or Course()
    options = Options(seed=new_seed() if seed is None else seed, hidden=hidden,
                      limits=limits or Limits())
    own_pool = pool is None
    pool = pool or Pool(mode or sandbox_mode(), course.extra_paths)
    if refs is None or refs.seed != options.seed:
        refs = References(options.seed)
    jobs = max(1, min(jobs or available_cores(), len(paths) or 1))
    done = [0]
    lock = threading.Lock()

    def one(path: str) -> dict[str, Any]:
        try:
            res = grade_notebook(path, course, options, refs, pool, assignment)
        except Exception as exc:  # a grader bug must not cost the rest of the batch
            log.exception("grading %s failed", path)
            res = result(path, assignment, "graded", f"grader failure: {exc}", options.seed, [])
            res[GRADER_ERROR] = f"{type(exc).__name__}: {exc}"
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], len(paths), res)
        return res

    try:
        with ThreadPoolExecutor(max_workers=jobs) as threads:
            return list(threads.map(one, paths))
    finally:
        if own_pool:
            pool.close()


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def grade_path(path: Path | str, **kwargs: Any) -> dict[str, Any]:
    """Grade one notebook (convenience for the nbgrader plugin and tests)."""
    return grade_batch([str(path)], **kwargs)[0]
