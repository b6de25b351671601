"""Measure chapter 7's table on a real CUDA GPU, print it and record it.

Usage: ``python benchmarks/gpu.py [--steps 50] [--out benchmarks/results/gpu.json]``

The chapter's model (``lossopt_helpers.gpu.chapter_model`` at width 4096) is trained on a fixed
synthetic classification problem in six configurations: fp32 (TF32 off), TF32, bf16 autocast,
fp16 autocast with ``torch.amp.GradScaler``, bf16 with ``fused`` Adam, and that with
``torch.compile``. For each: the time per training step (CUDA events after warmup), the speed-up
over fp32, the peak memory (``torch.cuda.max_memory_allocated``) and the final loss. Then a large
bf16 matmul's achieved TFLOP/s against the card's dense bf16 peak from its datasheet.

Only numbers measured on a CUDA device are ever written: without one the script says so and
exits with status 2, writing nothing. The notebook reads the file with
``lossopt_helpers.gpu.load_gpu_results``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lossopt_helpers.gpu import RESULTS_PATH, chapter_model, format_gpu_results  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s, by a substring
# of torch.cuda.get_device_name(). Longest match wins ("H100 PCIe" before "H100").
PEAK_BF16_TFLOPS = {
    "H200": 989.4,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.4,  # SXM ("NVIDIA H100 80GB HBM3")
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
    "A10G": 70.0,
    "RTX 4090": 165.2,
}

CONFIGS = ("fp32", "tf32", "bf16 autocast", "fp16 autocast + GradScaler",
           "bf16 autocast + fused Adam", "bf16 autocast + fused Adam + torch.compile")


def card_peak_tflops(name: str) -> float | None:
    """The card's dense bf16 peak from ``PEAK_BF16_TFLOPS``, or None for an unknown card."""
    matches = [key for key in PEAK_BF16_TFLOPS if key in name]
    return PEAK_BF16_TFLOPS[max(matches, key=len)] if matches else None


def make_problem(device: str, n: int, in_features: int, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed classification problem: inputs and the labels of a random linear teacher."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, in_features, generator=gen)  # (N, D)
    teacher = torch.randn(in_features, 10, generator=gen)
    y = (X @ teacher).argmax(dim=1)  # (N,)
    return X.to(device), y.to(device)


class Timer:
    """Wall time of a region: CUDA events on a GPU (the GPU's own clock), perf_counter on a CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def __enter__(self) -> Timer:
        if self.cuda:
            torch.cuda.synchronize()
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()  # the kernels were only queued: wait for them
            self.ms = self.start.elapsed_time(self.end)
        else:
            self.ms = (time.perf_counter() - self.t0) * 1e3


def run_config(name: str, device: str = "cuda", *, width: int = 4096, depth: int = 4,
               in_features: int = 1024, batch_size: int = 4096, steps: int = 50,
               warmup: int = 10) -> dict[str, Any]:
    """Train the chapter's model for ``warmup + steps`` steps in configuration ``name``.

    Returns the row of the table: ms per step (over the last ``steps`` steps), peak memory in MiB
    (None on a CPU) and the loss after the last step.
    """
    cuda = device.startswith("cuda")
    torch.manual_seed(0)
    # fp32 means IEEE float32 matmuls; "tf32" lets them use TensorFloat-32 (10-bit mantissa).
    torch.set_float32_matmul_precision("high" if name == "tf32" else "highest")
    model = chapter_model(in_features=in_features, width=width, depth=depth).to(device)
    # torch.compile compiles the model; its first call pays for the compilation (first_step_ms).
    forward = torch.compile(model) if "compile" in name else model
    fused = "fused" in name
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=fused or None,
                                 foreach=None if fused else True)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name[:4])
    device_type = "cuda" if cuda else "cpu"
    scaler = torch.amp.GradScaler(device_type, enabled=name.startswith("fp16"))
    X, y = make_problem(device, batch_size, in_features)

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            loss = F.cross_entropy(forward(X), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with Timer(device) as first:
        step()  # the first call: torch.compile compiles here
    for _ in range(warmup - 1):
        step()
    with Timer(device) as timed:
        for _ in range(steps):
            loss = step()
    torch.set_float32_matmul_precision("highest")
    return {"name": name, "ms_per_step": timed.ms / steps, "first_step_ms": first.ms,
            "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "final_loss": float(loss)}


def matmul_tflops(device: str = "cuda", n: int = 8192, iters: int = 50) -> dict[str, Any]:
    """Achieved TFLOP/s of an (n, n) @ (n, n) bf16 matmul (2 n^3 flops each), after warmup."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    with Timer(device) as timed:
        for _ in range(iters):
            a @ b
    tflops = 2 * n**3 * iters / (timed.ms / 1e3) / 1e12
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    peak = card_peak_tflops(name)
    return {"n": n, "tflops": tflops, "peak_tflops": peak,
            "fraction_of_peak": tflops / peak if peak else None}


def results_record(device_name: str, runs: list[dict[str, Any]], matmul: dict[str, Any],
                   model: str) -> dict[str, Any]:
    """The results file's content: the rows plus what they were measured on, and when."""
    base = next(r["ms_per_step"] for r in runs if r["name"] == "fp32")
    return {
        "device": device_name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "model": model,
        "runs": [{**r, "speedup": base / r["ms_per_step"]} for r in runs],
        "matmul": matmul,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per configuration")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH, help="results file to write")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA GPU and none is available here: nothing measured, "
              "nothing written.", file=sys.stderr)
        return 2
    device_name = torch.cuda.get_device_name()
    width, depth, in_features, batch_size = 4096, 4, 1024, 4096
    model = (f"chapter_model(in_features={in_features}, width={width}, depth={depth}), "
             f"batch {batch_size}, Adam, {args.steps} timed steps after 10 warmup steps")
    print(f"{device_name}, torch {torch.__version__}: {model}", flush=True)
    runs = []
    for name in CONFIGS:
        runs.append(run_config(name, "cuda", width=width, depth=depth, in_features=in_features,
                               batch_size=batch_size, steps=args.steps))
        print(f"  {name}: {runs[-1]['ms_per_step']:.2f} ms/step", flush=True)
    record = results_record(device_name, runs, matmul_tflops("cuda"), model)
    print(format_gpu_results(record))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
