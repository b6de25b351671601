"""Tests for lossopt_helpers.gpu: finfo rows and the GPU results file (absent or present)."""

from __future__ import annotations

import json

import torch

from lossopt_helpers.gpu import load_gpu_results, no_gpu_results_message, number_formats


def test_number_formats_match_finfo():
    rows = {row["format"]: row for row in number_formats()}
    assert rows["fp16"]["max"] == torch.finfo(torch.float16).max == 65504.0
    assert rows["bf16"]["bits"] == 16 and rows["bf16"]["eps"] == torch.finfo(torch.bfloat16).eps
    assert rows["fp32"]["tiny"] == torch.finfo(torch.float32).tiny


def test_missing_results_file_gives_none_and_a_plain_message(tmp_path):
    assert load_gpu_results(tmp_path / "gpu.json") is None
    assert "No GPU measurement has been recorded yet" in no_gpu_results_message()


def test_results_file_is_read(tmp_path):
    file = tmp_path / "gpu.json"
    file.write_text(json.dumps({"device": "test", "torch": "2.13.0"}), encoding="utf-8")
    assert load_gpu_results(file) == {"device": "test", "torch": "2.13.0"}
