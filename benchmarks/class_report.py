"""Print how long the class report takes for a class of 400, and optionally screenshot its page.

Usage: ``python benchmarks/class_report.py [--students 400] [--screenshot PNG]``

The class is synthetic, built from chapter 1's wrong-implementation corpus and its right
answers: each distinct answer is checked once in this process (public and hidden cases, as the
grading core scores them) and the students are drawn from those answers, so each result is what
``python -m grader autograde --json`` writes for a graded chapter-1 notebook. Timed: reading the
folder of JSON results, aggregating, and writing the HTML page with its plots (what
``python -m grader report FOLDER --html OUT`` does). Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from corpus.ch01_classification_losses import CORPUS, RIGHT

from grader.chapters.ch01_classification_losses import EXERCISES
from grader.instructor import report
from grader.kit.exercise import check_exercise

CHAPTER = "01_classification_losses"


def answers() -> dict[str, list[tuple[str, dict]]]:
    """Per exercise, each distinct answer's name and its graded cell."""
    out: dict[str, list[tuple[str, dict]]] = {}
    entries = [(ex, fn) for ex, _, fn in CORPUS] + list(RIGHT)
    for ex_name, fn in entries:
        ex = EXERCISES[ex_name]
        result, text = check_exercise(ex, fn, hidden=True, seed=0)
        cell = {"grade_id": ex.grade_id, "score": result.score, "max_score": ex.points,
                "status": "passed" if result.score == ex.points else "failed", "message": text,
                "facets": [f.as_dict(ex) for f in result.facets]}
        out.setdefault(ex_name, []).append((fn.__name__, cell))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=400)
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the report page here")
    args = parser.parse_args()
    start = time.perf_counter()
    pool = answers()
    print(f"{sum(map(len, pool.values()))} distinct answers checked in "
          f"{time.perf_counter() - start:.1f} s")
    rng = random.Random(0)
    results = []
    for i in range(args.students):
        # Most of a class gets an exercise right; a third of the time, a corpus mistake.
        cells = []
        for entries in pool.values():
            right = [c for name, c in entries if c["status"] == "passed"]
            wrong = [c for name, c in entries if c["status"] != "passed"]
            cells.append(rng.choice(wrong) if wrong and rng.random() < 1 / 3 else rng.choice(right))
        results.append({"notebook": f"submitted/student{i:03d}/{CHAPTER}/{CHAPTER}.ipynb",
                        "assignment": CHAPTER, "status": "graded",
                        "score": sum(c["score"] for c in cells), "cells": cells})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "class.json").write_text(json.dumps(results))
        start = time.perf_counter()
        summary = report.aggregate(report.load(folder), CHAPTER)
        counted = time.perf_counter() - start
        page = report.page(summary)
        total = time.perf_counter() - start
        out = folder / "report.html"
        out.write_text(page, encoding="utf-8")
        print(f"class of {args.students}: numbers in {counted:.2f} s, with the HTML page and its "
              f"plots in {total:.2f} s ({len(page) / 1e6:.1f} MB)")
        if args.screenshot:
            from browser_support import launch_chromium
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                tab = browser.new_page(viewport={"width": 1100, "height": 1400})
                tab.goto(out.as_uri())
                tab.screenshot(path=str(args.screenshot))
                browser.close()
            print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
