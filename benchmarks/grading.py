"""Print how fast the grading core is, against the targets of the grader's issue, in one run.

Usage: ``python benchmarks/grading.py [--chapter NAME] [--students N]``
(default: chapter ``01_classification_losses``, 40 students).

1. *One submission*: a correct submission (the released notebook with the solution's answers) is
   executed plainly with nbclient from a fresh kernel, then graded with
   ``python -m grader autograde`` (public and hidden checks, in the sandbox). Both are measured
   end to end (kernel start, or the grader's start and sandbox); target: grading <= 1.5 x plain.
2. *A class*: N copies graded in one ``python -m grader autograde`` call (in parallel, one per
   core); target: 40 in <= 300 s on a 2-core machine.

The machine may be shared: the load average is printed before and after. The script prints the
figures and flags a missed target; it does not fail (speed is measured, not tested).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from nbutils import isolated_jupyter_env  # noqa: E402
from submissions import Chapter, write  # noqa: E402

RATIO_TARGET, CLASS_TARGET_S, CLASS_SIZE = 1.5, 300.0, 40


def plain_run(path: Path, env: dict[str, str]) -> float:
    """Seconds to execute a notebook top to bottom with nbclient, kernel start included."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute(env=env)
    return time.perf_counter() - start


def grade(paths: list[Path]) -> tuple[float, list[dict]]:
    """Seconds for one ``python -m grader autograde --json`` call, and its results."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "grader", "autograde", "--json",
                           *map(str, paths)], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"the grader failed:\n{proc.stderr[-3000:]}")
    return elapsed, json.loads(proc.stdout)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapter", default="01_classification_losses")
    parser.add_argument("--students", type=int, default=CLASS_SIZE)
    args = parser.parse_args(argv)
    name = args.chapter
    chapter = Chapter(ROOT / "solutions" / name / f"{name}.ipynb",
                      ROOT / "notebooks" / name / f"{name}.ipynb")
    print(f"chapter {name}; {os.cpu_count()} cores; {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = isolated_jupyter_env(tmp_path / "jupyter")
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        one = write(chapter.filled(), tmp_path / "one" / f"{name}.ipynb")
        plain = plain_run(one, env)
        print(f"plain nbclient run of a correct submission: {plain:7.1f} s", flush=True)
        graded, (result,) = grade([one])
        ratio = graded / plain
        ok = result["score"] == sum(c["max_score"] for c in result["cells"]
                                    if c["status"] != "manual")
        flag = ("" if ratio <= RATIO_TARGET else "  MISSED") + ("" if ok else "  (NOT FULL MARKS)")
        print(f"grading it (python -m grader autograde):    {graded:7.1f} s  "
              f"ratio {ratio:.2f} (target <= {RATIO_TARGET}){flag}", flush=True)
        paths = [write(chapter.filled(), tmp_path / f"s{i:03d}" / f"{name}.ipynb")
                 for i in range(args.students)]
        elapsed, results = grade(paths)
        full = sum(r["score"] == result["score"] for r in results)
        target = CLASS_TARGET_S * args.students / CLASS_SIZE
        print(f"a class of {args.students} graded in one call:          {elapsed:7.1f} s  "
              f"({elapsed / args.students:.1f} s per notebook; target <= {target:.0f} s)"
              f"{'' if elapsed <= target else '  MISSED'}; {full}/{args.students} full marks",
              flush=True)
    print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
