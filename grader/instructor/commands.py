"""The instructor's subcommands of ``python -m grader``: report, similar, regrade.

Each returns the exit status: 0 done, 1 the grader itself failed, 2 a usage error (a missing
gradebook, folder or assignment), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grader.instructor import progress


def fail(command: str, message: str) -> int:
    print(f"python -m grader {command}: error: {message}", file=sys.stderr)
    return 2


def course_dir(args: argparse.Namespace) -> Path:
    from grader.core.course import ROOT

    root = (args.course or ROOT).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"no such course directory: {root}")
    return root


def gradebook_url(args: argparse.Namespace, root: Path) -> str:
    """--db, else the gradebook nbgrader uses for the course at ``root``."""
    if getattr(args, "db", None):
        return args.db
    from grader.core.course import ROOT
    from grader.instructor.late import default_gradebook_url

    if root == ROOT:
        return default_gradebook_url()
    import os

    return os.environ.get("LOSSOPT_GRADEBOOK_URL", "").strip() or f"sqlite:///{root / 'gradebook.db'}"


def report(args: argparse.Namespace) -> int:
    """``python -m grader report``: from a folder of results, else from the gradebook."""
    from grader.instructor import report as class_report

    try:
        if args.results is not None:
            results = class_report.load(args.results)
        else:
            from grader.instructor import gradebook

            root = course_dir(args)
            results = gradebook.results(gradebook_url(args, root), root, args.assignment,
                                        progress=progress.bar)
        summary = class_report.aggregate(progress.bar(results, len(results), "counting"),
                                         args.assignment)
    except (FileNotFoundError, ValueError) as exc:
        return fail("report", str(exc))
    print(json.dumps(summary, indent=1) if args.json else class_report.text(summary))
    if args.html:
        args.html.write_text(class_report.page(summary), encoding="utf-8")
        print(f"the report with its plots: {args.html}", file=sys.stderr)
    return 0


def similar(args: argparse.Namespace) -> int:
    """``python -m grader similar ASSIGNMENT|FOLDER``."""
    from grader.core.course import Course
    from grader.instructor import similar as sim

    try:
        root = course_dir(args)
    except FileNotFoundError as exc:
        return fail("similar", str(exc))
    course = Course(root)
    target = Path(args.target)
    folder = target if target.is_dir() else None
    if folder is None and ("/" in args.target or args.target.startswith(".")):
        return fail("similar", f"no such folder of submissions: {args.target}")
    try:
        paths = sim.collect(root, args.target, folder)
    except FileNotFoundError as exc:
        return fail("similar", str(exc))
    name = args.assignment if folder is not None else args.target
    if name is None:
        found = {course.from_filename(p) for p in paths} - {None}
        if len(found) != 1:
            return fail("similar", "say which chapter the notebooks in the folder are "
                                   f"(--assignment; found: {', '.join(sorted(found)) or 'none'})")
        name = found.pop()
    if name not in course.names():
        return fail("similar", f"unknown assignment {name!r} (chapters: "
                               f"{', '.join(course.names()) or 'none'})")
    if not paths:
        return fail("similar", f"no submissions of {name} in {folder or root / 'submitted'} "
                               "(nbgrader collect or zip_collect first)")
    chapter = course.chapter(name)
    template = {gid: cell.source for gid, cell in chapter.answers.items()}
    keep = sim.template_names(c.source for c in chapter.cells if c.cell_type == "code")
    base = folder or root / "submitted"
    subs = [sim.Submission(sim.student_of(p, base), sim.answers_of(p, chapter))
            for p in progress.bar(paths, len(paths), "reading")]
    doc = sim.compare(subs, template, keep=keep, threshold=args.threshold,
                      min_fingerprints=args.min_fingerprints, max_share=args.max_share,
                      progress=progress.bar)
    doc["assignment"] = name
    print(json.dumps(doc, indent=1) if args.json else sim.text(doc))
    if args.html:
        args.html.write_text(sim.page(doc, f"Similar submissions: {name}"), encoding="utf-8")
        print(f"the pairs side by side: {args.html}", file=sys.stderr)
    return 0


def regrade(args: argparse.Namespace) -> int:
    """``python -m grader regrade ASSIGNMENT``."""
    from grader.core.course import Course
    from grader.core.sandbox import Limits
    from grader.instructor import regrade as rg

    try:
        root = course_dir(args)
    except FileNotFoundError as exc:
        return fail("regrade", str(exc))
    course = Course(root)
    if args.assignment not in course.names():
        return fail("regrade", f"unknown assignment {args.assignment!r} (chapters: "
                               f"{', '.join(course.names()) or 'none'})")
    url = gradebook_url(args, root)
    try:
        doc = rg.regrade(course, args.assignment, url=url, seed=args.seed,
                         limits=Limits(timeout=args.timeout), jobs=args.jobs,
                         dry_run=args.dry_run, log_path=args.log, progress=progress.Counter)
    except ValueError as exc:
        return fail("regrade", str(exc))
    except RuntimeError as exc:
        print(f"python -m grader regrade: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=1) if args.json else rg.text(doc))
    return 0
