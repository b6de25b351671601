"""Print how long the instructor's tools take for a class of 400 (chapter 1).

Usage: ``python benchmarks/instructor_tools.py [--students 400]``

1. ``python -m grader report`` from the gradebook: a SQLite gradebook with one submission per
   student (each graded cell's score) and each student's autograded notebook carrying the grading
   core's result, as ``nbgrader autograde`` leaves them; the results are chapter 1's corpus and
   right answers checked by the real checks (as in ``benchmarks/class_report.py``). Timed: reading
   the gradebook and the 400 notebooks, and counting.
2. ``python -m grader similar``: 400 submitted chapter-1 notebooks whose answers are drawn from
   the corpus and the right answers (source text, renamed to the exercise), plus one planted copy.
   Timed: reading the answer cells, fingerprinting and comparing every pair.

Building the class is not timed. Prints figures only.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import random
import re
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from class_report import CHAPTER, answers  # noqa: E402
from corpus.ch01_classification_losses import CORPUS, RIGHT  # noqa: E402

from grader.core.cli import main as grader_main  # noqa: E402
from grader.core.nbgrader_plugin import GRADER_KEY  # noqa: E402


def gradebook_class(root: Path, students: int) -> None:
    from nbgrader.api import Gradebook

    pool = answers()
    rng = random.Random(0)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.add_assignment(CHAPTER)
        gb.add_notebook(CHAPTER, CHAPTER)
        for entries in pool.values():
            cell = entries[0][1]
            gb.add_grade_cell(cell["grade_id"], CHAPTER, CHAPTER, max_score=cell["max_score"],
                              cell_type="code")
        for i in range(students):
            student = f"student{i:03d}"
            cells = []
            for entries in pool.values():
                right = [c for _, c in entries if c["status"] == "passed"]
                wrong = [c for _, c in entries if c["status"] != "passed"]
                cells.append(rng.choice(wrong) if wrong and rng.random() < 1 / 3
                             else rng.choice(right))
            gb.add_student(student)
            gb.add_submission(CHAPTER, student)
            for cell in cells:
                gb.find_grade(cell["grade_id"], CHAPTER, CHAPTER, student).auto_score = \
                    cell["score"]
            gb.db.commit()
            result = {"notebook": f"{root}/submitted/{student}/{CHAPTER}/{CHAPTER}.ipynb",
                      "assignment": CHAPTER, "status": "graded", "message": "", "seed": 0,
                      "score": sum(c["score"] for c in cells), "cells": cells}
            path = root / "autograded" / student / CHAPTER / f"{CHAPTER}.ipynb"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"cells": [], "metadata": {GRADER_KEY: result},
                                        "nbformat": 4, "nbformat_minor": 5}))


def answer_sources() -> dict[str, list[str]]:
    """Per exercise, the source of every corpus and right answer, named as the exercise."""
    out: dict[str, list[str]] = {}
    for ex, fn in [(ex, fn) for ex, _, fn in CORPUS] + list(RIGHT):
        src = textwrap.dedent(inspect.getsource(fn))
        src = "\n".join(line for line in src.splitlines() if not line.startswith("@"))
        out.setdefault(ex, []).append(re.sub(r"^def \w+", f"def {ex}", src, count=1, flags=re.M))
    return out


def submitted_class(root: Path, students: int) -> None:
    import shutil

    shutil.copytree(ROOT / "notebooks" / CHAPTER, root / "notebooks" / CHAPTER)  # the template
    release = json.loads((ROOT / "notebooks" / CHAPTER / f"{CHAPTER}.ipynb").read_text())
    sources = answer_sources()
    rng = random.Random(1)
    for i in range(students):
        nb = json.loads(json.dumps(release))
        for cell in nb["cells"]:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and gid in sources:
                cell["source"] = rng.choice(sources[gid])
        if i == students - 1:  # the last student copies the first
            nb = json.loads((root / "submitted/student000" / CHAPTER /
                             f"{CHAPTER}.ipynb").read_text())
        path = root / "submitted" / f"student{i:03d}" / CHAPTER / f"{CHAPTER}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(nb))


def timed(args: list[str]) -> tuple[float, str]:
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = grader_main(args)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"python -m grader {' '.join(args)} failed ({status})")
    return elapsed, out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=400)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="nbgrader")  # its add_submission's SAWarnings
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ["LOSSOPT_PROGRESS"] = "0"
    os.environ.pop("LOSSOPT_GRADEBOOK_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        gradebook_class(root, args.students)
        print(f"gradebook of {args.students} built in {time.perf_counter() - start:.1f} s")
        seconds, _ = timed(["report", "--course", str(root), "--json"])
        print(f"report from the gradebook, class of {args.students}: {seconds:.2f} s")
        submitted_class(root, args.students)
        seconds, out = timed(["similar", CHAPTER, "--course", str(root), "--json"])
        doc = json.loads(out)
        print(f"similar, class of {args.students} ({args.students * (args.students - 1) // 2} "
              f"pairs): {seconds:.2f} s, {len(doc['pairs'])} pair(s) flagged (the answers are "
              f"drawn from {sum(map(len, answer_sources().values()))} corpus answers, so many "
              "students share several; the planted copy is student000 and student"
              f"{args.students - 1:03d})")


if __name__ == "__main__":
    main()
