"""Tests for lossopt_helpers.gpu and benchmarks/gpu.py: finfo rows, autocast's measured dtypes,
the gloo data-parallel demo, and the GPU results file (absent, refused without CUDA, or read)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lossopt_helpers.gpu import (autocast_dtypes, chapter_model, ddp_matches_one_big_batch,
                                 format_gpu_results, load_gpu_results, no_gpu_results_message,
                                 number_formats)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu as gpu_benchmark  # noqa: E402  (benchmarks/gpu.py)


def test_number_formats_match_finfo():
    rows = {row["format"]: row for row in number_formats()}
    assert rows["fp16"]["max"] == torch.finfo(torch.float16).max == 65504.0
    assert rows["bf16"]["bits"] == 16 and rows["bf16"]["eps"] == torch.finfo(torch.bfloat16).eps
    assert rows["fp32"]["tiny"] == torch.finfo(torch.float32).tiny


def test_chapter_model_shapes():
    model = chapter_model(in_features=5, width=7, depth=2, num_classes=3)
    assert model(torch.randn(4, 5)).shape == (4, 3)
    assert sum(isinstance(m, torch.nn.Linear) for m in model) == 3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cpu_autocast_casts_matmuls_down_and_losses_up(dtype):
    table = autocast_dtypes("cpu", dtype)
    assert table["matmul"] == table["linear"] == "lower precision"
    assert table["cross_entropy"] == table["mse_loss"] == "float32"
    assert table["relu"] == "as its input"


def test_ddp_with_gloo_equals_one_process_on_the_double_batch():
    result = ddp_matches_one_big_batch(batch_size=4, timeout_s=120)
    assert result["world_size"] == 2
    assert result["max_abs_diff"] < 1e-12  # float64: the all-reduce's average is the mean


def test_the_demo_problem_leaves_the_callers_random_stream_alone():
    from lossopt_helpers.gpu import _demo_problem

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model, X, _ = _demo_problem(batch_size=4, seed=7)
    assert torch.equal(torch.rand(3), expected)  # the notebook's next draw is unchanged
    again = _demo_problem(batch_size=4, seed=7)  # and the problem depends on its seed only
    assert torch.equal(again[1], X) and all(torch.equal(a, b) for a, b in zip(
        again[0].parameters(), model.parameters()))


def test_ddp_demo_is_bounded_in_time():
    # Far too short to start two processes: the demo stops them and says so instead of hanging.
    with pytest.raises(RuntimeError, match="took longer than"):
        ddp_matches_one_big_batch(batch_size=4, timeout_s=0.01)


def test_missing_results_file_gives_none_and_a_plain_message(tmp_path):
    assert load_gpu_results(tmp_path / "gpu.json") is None
    assert "No GPU measurement has been recorded yet" in no_gpu_results_message()


def test_results_file_is_read(tmp_path):
    file = tmp_path / "gpu.json"
    file.write_text(json.dumps({"device": "test", "torch": "2.13.0"}), encoding="utf-8")
    assert load_gpu_results(file) == {"device": "test", "torch": "2.13.0"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script measures for real")
def test_benchmark_refuses_without_cuda_and_writes_nothing(tmp_path):
    out = tmp_path / "results" / "gpu.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr
    assert not out.exists() and not out.parent.exists()


def test_benchmark_rows_on_a_tiny_cpu_run():
    # The measuring code itself, tiny and on the CPU (main() never writes such numbers).
    for name in ("fp32", "fp16 autocast + GradScaler", "bf16 autocast + fused Adam"):
        row = gpu_benchmark.run_config(name, "cpu", width=16, depth=1, in_features=8,
                                       batch_size=32, steps=2, warmup=2)
        assert row["name"] == name and row["ms_per_step"] > 0 and row["peak_mib"] is None
        assert 0 < row["final_loss"] < 10


def test_card_peaks_pick_the_longest_matching_name():
    assert gpu_benchmark.card_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu_benchmark.card_peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert gpu_benchmark.card_peak_tflops("Some Future Card") is None


def test_a_file_in_the_benchmarks_format_is_read_and_formatted(tmp_path):
    # Synthetic rows, written only under tmp_path: the format, not a measurement.
    runs = [{"name": name, "ms_per_step": ms, "first_step_ms": ms, "peak_mib": 100.0,
             "final_loss": 1.0} for name, ms in (("fp32", 4.0), ("bf16 autocast", 1.0))]
    matmul = {"n": 64, "tflops": 8.0, "peak_tflops": 10.0, "fraction_of_peak": 0.8}
    record = gpu_benchmark.results_record("synthetic test device", runs, matmul, "tiny")
    file = tmp_path / "gpu.json"
    file.write_text(json.dumps(record), encoding="utf-8")
    loaded = load_gpu_results(file)
    assert loaded["device"] == "synthetic test device" and loaded["torch"] == torch.__version__
    assert [r["speedup"] for r in loaded["runs"]] == [1.0, 4.0]
    text = format_gpu_results(loaded)
    assert "bf16 autocast" in text and "4.00x" in text and "80% of the card's datasheet peak" in text
