"""Command line of the grading core: ``python -m grader autograde|validate``, and the
instructor's ``report|similar|regrade|extend`` (grader/instructor/, docs/instructor-guide.md).

``autograde`` grades submitted notebooks (no exchange, no gradebook); ``validate`` gives a learner
the verdict of the public checks on their own notebook. Results go to stdout (one JSON document
with ``--json``, a readable report otherwise); progress and logs go to stderr.

Exit status: 0 when every notebook got a verdict (0 points and ``invalid`` included) -- for
``validate``, 0 only when every autograded exercise passed its public checks, 1 otherwise;
1 when the grader itself failed on a notebook (the report says which); 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

from grader.core.course import ROOT, Course
from grader.core.sandbox import Limits, Pool, sandbox_mode

log = logging.getLogger("grader")


def parser() -> argparse.ArgumentParser:
    """The argument parser (``python -m grader --help``)."""
    top = argparse.ArgumentParser(
        prog="python -m grader",
        description="Grade Losses & Optimizers notebooks in a sandbox, outside the learner's "
                    "kernel.")
    sub = top.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true",
                       help="print one JSON document (a list, one object per notebook)")
        p.add_argument("--timeout", type=positive, default=Limits.timeout, metavar="SECONDS",
                       help="time limit per exercise check and per cell (default: %(default)s)")
        p.add_argument("--assignment", metavar="NAME",
                       help="the chapter, e.g. 01_classification_losses (default: from the "
                            "file name)")
        p.add_argument("--course", type=Path, default=None, metavar="DIR",
                       help="the course directory (default: this repository, else the first "
                            "folder above the notebook that holds notebooks/ or solutions/)")
        p.add_argument("--memory", type=positive, default=Limits.memory / 2**30, metavar="GIB",
                       help="memory limit of the process running a submission "
                            "(default: %(default)s GiB)")

    auto = sub.add_parser("autograde", help="grade submitted notebooks (public and hidden checks)")
    common(auto)
    auto.add_argument("--seed", type=int, metavar="N",
                      help="seed of the hidden cases (default: a fresh one, shown in the results)")
    auto.add_argument("--jobs", type=int, default=0, metavar="N",
                      help="notebooks graded at once (default: the number of cores)")
    auto.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")

    val = sub.add_parser("validate", help="the verdict of the public checks on your notebook")
    common(val)
    val.add_argument("notebooks", nargs=1, metavar="NOTEBOOK")

    rep = sub.add_parser("report", help="what the class got wrong: from the gradebook, or a "
                                        "folder of --json results",
                         description="For each exercise and facet, how many students earned it "
                                     "and the diagnoses ranked by how many students they hit; a "
                                     "score histogram per chapter. Reads nbgrader's gradebook and "
                                     "the autograded notebooks, or FOLDER when given.")
    rep.add_argument("results", type=Path, metavar="FOLDER", nargs="?",
                     help="folder of `python -m grader autograde --json` documents (default: "
                          "the gradebook)")
    rep.add_argument("--assignment", metavar="NAME", help="only this chapter's results")
    rep.add_argument("--json", action="store_true", help="print one JSON document")
    rep.add_argument("--html", type=Path, metavar="OUT",
                     help="also write the report as one HTML page with plots to OUT")
    instructor_paths(rep)

    ext = sub.add_parser("extend", help="give a student more time for an assignment (the "
                                        "late penalty counts from the extended due date)")
    ext.add_argument("assignment", metavar="ASSIGNMENT")
    ext.add_argument("student", metavar="STUDENT")
    for unit in ("days", "hours", "minutes"):
        ext.add_argument(f"--{unit}", type=float, default=0.0, help=f"extension in {unit}")
    ext.add_argument("--remove", action="store_true", help="take the extension back")
    ext.add_argument("--db", metavar="URL", help="gradebook URL (default: LOSSOPT_GRADEBOOK_URL, "
                                                 "else the course's gradebook.db)")

    sim = sub.add_parser("similar", help="pairs of students whose answer cells are similar "
                                         "(template code discounted), side by side in HTML",
                         description="Compares the answer cells of every collected submission "
                                     "(submitted/*/ASSIGNMENT/*.ipynb), or of the notebooks under "
                                     "FOLDER, by winnowed token fingerprints (identifiers and "
                                     "literals normalised, the released template's code and "
                                     "idioms common to the class removed). Offline.")
    sim.add_argument("target", metavar="ASSIGNMENT|FOLDER",
                     help="a chapter (its collected submissions) or a folder of notebooks")
    sim.add_argument("--assignment", metavar="NAME",
                     help="the chapter of the notebooks in FOLDER (default: from their names)")
    sim.add_argument("--threshold", type=fraction, default=0.5, metavar="X",
                     help="report pairs whose similarity is at least X, 0-1 (default: "
                          "%(default)s)")
    sim.add_argument("--min-fingerprints", type=int, default=8, metavar="N",
                     help="ignore submissions with fewer fingerprints of their own "
                          "(default: %(default)s)")
    sim.add_argument("--max-share", type=fraction, default=0.5, metavar="X",
                     help="ignore code found in more than this share of the class "
                          "(default: %(default)s)")
    sim.add_argument("--json", action="store_true", help="print one JSON document")
    sim.add_argument("--html", type=Path, metavar="OUT",
                     help="write the pairs side by side, matches highlighted, to OUT")
    sim.add_argument("--course", type=Path, default=None, metavar="DIR",
                     help="the course directory (default: this repository)")

    reg = sub.add_parser("regrade", help="grade every collected submission again after a fix "
                                         "to a check; say whose score changed and why",
                         description="Re-grades submitted/*/ASSIGNMENT/*.ipynb with the seed of "
                                     "their previous grading, prints each changed score with its "
                                     "old and new facets, appends the changes to a log, and "
                                     "(unless --dry-run) updates the gradebook and the "
                                     "autograded notebooks.")
    reg.add_argument("assignment", metavar="ASSIGNMENT")
    reg.add_argument("--dry-run", action="store_true",
                     help="only say what would change; write nothing but the log")
    reg.add_argument("--seed", type=int, metavar="N",
                     help="seed of the hidden cases (default: each submission's previous one)")
    reg.add_argument("--jobs", type=int, default=0, metavar="N",
                     help="notebooks graded at once (default: the number of cores)")
    reg.add_argument("--timeout", type=positive, default=Limits.timeout, metavar="SECONDS",
                     help="time limit per exercise check and per cell (default: %(default)s)")
    reg.add_argument("--log", type=Path, metavar="FILE",
                     help="where to append the changes (default: regrade.log in the course)")
    reg.add_argument("--json", action="store_true", help="print one JSON document")
    instructor_paths(reg)
    return top


def instructor_paths(p: argparse.ArgumentParser) -> None:
    """--course and --db of the instructor's commands."""
    p.add_argument("--course", type=Path, default=None, metavar="DIR",
                   help="the course directory, with autograded/ and submitted/ (default: this "
                        "repository)")
    p.add_argument("--db", metavar="URL", help="gradebook URL (default: LOSSOPT_GRADEBOOK_URL, "
                                               "else the course's gradebook.db)")


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def course_root(notebooks: list[str]) -> Path:
    """This repository when it holds chapters, else the first folder above a notebook that does."""
    if Course(ROOT).names():
        return ROOT
    for start in (Path(n).resolve().parent for n in notebooks):
        for folder in (start, *start.parents):
            if (folder / "notebooks").is_dir() or (folder / "solutions").is_dir():
                return folder
    return ROOT


def positive(text: str) -> float:
    """An argparse type: a positive number."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def extend_command(args: argparse.Namespace) -> int:
    """``python -m grader extend``: grant or remove one student's extension."""
    from grader.instructor import late

    if not args.remove and not (args.days or args.hours or args.minutes):
        print("python -m grader extend: error: say how long (--days, --hours, --minutes) or "
              "--remove", file=sys.stderr)
        return 2
    try:
        print(late.extend(args.db or late.default_gradebook_url(), args.assignment, args.student,
                          days=args.days, hours=args.hours, minutes=args.minutes))
    except ValueError as exc:
        print(f"python -m grader extend: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="grader: %(message)s")
    if args.command in ("report", "similar", "regrade"):
        from grader.instructor import commands

        return getattr(commands, args.command)(args)
    if args.command == "extend":
        return extend_command(args)
    course = Course(args.course or course_root(args.notebooks))
    if args.assignment and args.assignment not in course.names():
        print(f"python -m grader: error: unknown assignment {args.assignment!r} "
              f"(chapters: {', '.join(course.names()) or 'none'})", file=sys.stderr)
        return 2
    validate = args.command == "validate"
    limits = Limits(timeout=args.timeout, memory=int(args.memory * 2**30))
    mode = sandbox_mode()
    if mode != "bwrap":
        log.warning("bubblewrap is not available: grading in the fallback sandbox "
                    "(see grader/README.md for what it does not protect)")
    # Start the sandbox (the zygote, or a spare worker) before this process imports torch and
    # computes the references: both import torch, side by side.
    pool = Pool(mode, course.extra_paths)
    warming = threading.Thread(target=warm_quietly, args=(pool, limits), daemon=True)
    warming.start()
    # Imported here: torch loads with it, and a usage error should not wait for torch.
    from grader.core.autograde import GRADER_ERROR, available_cores, grade_batch
    jobs = 1 if validate else (args.jobs or available_cores())
    log.info("grading %d notebook(s), %d at a time", len(args.notebooks),
             min(jobs, len(args.notebooks)))

    def progress(done: int, total: int, res: dict[str, Any]) -> None:
        log.info("[%d/%d] %s: %s, %g/%g", done, total, res["notebook"], res["status"],
                 res["score"], res["max_score"])

    try:
        results = grade_batch(args.notebooks, course=course, seed=getattr(args, "seed", None),
                              hidden=not validate, limits=limits, jobs=jobs,
                              assignment=args.assignment, mode=mode, pool=pool,
                              progress=progress)
    finally:
        pool.close()
    failures = [r for r in results if r.pop(GRADER_ERROR, None)]
    for r in failures:
        log.error("the grader failed on %s: its result is incomplete", r["notebook"])
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n\n".join(report(r, validate) for r in results) + "\n")
    if failures:
        return 1
    if validate:
        ok = all(r["status"] == "graded" and all(c["status"] in ("passed", "manual")
                                                 for c in r["cells"]) for r in results)
        return 0 if ok else 1
    return 0


def warm_quietly(pool: Pool, limits: Limits) -> None:
    """Warm ``pool`` up (see :meth:`Pool.warm`); a failure here is met again, and reported, by
    the grading that needs the worker."""
    try:
        pool.warm(limits)
    except Exception as exc:
        log.debug("warming the sandbox up failed: %s", exc)


def report(res: dict[str, Any], validate: bool = False) -> str:
    """A readable report of one notebook's result."""
    head = f"{res['notebook']} [{res['assignment'] or 'unknown chapter'}]"
    if res["status"] == "invalid":
        return f"{head}: INVALID: {res['message']}"
    what = "public checks" if validate else f"seed {res['seed']}"
    lines = [f"{head}: {res['score']:g} / {res['max_score']:g} points ({what})"]
    width = max((len(c["grade_id"]) for c in res["cells"]), default=10)
    for cell in res["cells"]:
        lines.append(f"  {cell['grade_id']:<{width}}  {cell['score']:g}/{cell['max_score']:g}  "
                     f"{cell['status'].upper()}")
        if cell["status"] != "passed":
            lines.append(textwrap.indent(cell["message"], "      "))
    if res["message"]:
        lines.append(f"  Notes: {res['message']}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
