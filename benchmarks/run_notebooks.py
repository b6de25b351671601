"""Print how long each solution notebook takes to run top to bottom from a fresh kernel.

Usage: ``python benchmarks/run_notebooks.py [NOTEBOOK ...]`` (default: every solution notebook).
The target is at most 60 s per notebook on a 2-core CPU; the script prints the figures and
flags notebooks over budget, it does not fail (speed targets are measured, not tested).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from nbutils import isolated_jupyter_env, solution_notebooks  # noqa: E402

BUDGET_S = 60.0


def run(path: Path, env: dict[str, str]) -> tuple[float, float]:
    """Execute one notebook; return (wall seconds including kernel start, seconds in cells)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    with client.setup_kernel(env=env):
        ready = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    end = time.perf_counter()
    return end - start, end - ready


def main(argv: list[str]) -> int:
    paths = [Path(a).resolve() for a in argv] or solution_notebooks()
    with tempfile.TemporaryDirectory() as tmp:
        env = isolated_jupyter_env(Path(tmp))
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        print(f"{'notebook':<40} {'total s':>8} {'cells s':>8}  budget {BUDGET_S:.0f} s")
        for path in paths:
            total, cells = run(path, env)
            flag = "" if total <= BUDGET_S else "  OVER BUDGET"
            print(f"{path.name:<40} {total:8.1f} {cells:8.1f}{flag}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
