"""Chapter 7 helpers: number formats and the recorded GPU results file.

Everything here runs on a CPU-only machine. ``load_gpu_results`` reads the file that
``benchmarks/gpu.py`` writes on a real GPU; when it is absent, ``no_gpu_results_message`` says so
plainly and how to produce it, so the notebook never shows numbers that were not measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

RESULTS_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "gpu.json"

FORMATS = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def number_formats() -> list[dict[str, Any]]:
    """One row per format from ``torch.finfo``: bits, eps (precision), tiny and max (range)."""
    rows = []
    for name, dtype in FORMATS.items():
        info = torch.finfo(dtype)
        rows.append(
            {"format": name, "bits": info.bits, "eps": info.eps, "tiny": info.tiny, "max": info.max}
        )
    return rows


def load_gpu_results(path: str | Path | None = None) -> dict[str, Any] | None:
    """The recorded GPU results (a dict), or None when no GPU measurement has been recorded."""
    file = Path(path) if path is not None else RESULTS_PATH
    if not file.is_file():
        return None
    return json.loads(file.read_text(encoding="utf-8"))


def no_gpu_results_message() -> str:
    """What the notebook says when no GPU measurement exists yet."""
    return (
        "No GPU measurement has been recorded yet. On a machine with a CUDA GPU run\n"
        "    python benchmarks/gpu.py\n"
        f"which measures the chapter's table and writes {RESULTS_PATH.name} under benchmarks/results/."
    )
