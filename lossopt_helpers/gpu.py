"""Chapter 7 helpers: the chapter's model, number formats, autocast dtypes, a data-parallel demo,
and the recorded GPU results file.

Everything here runs on a CPU-only machine. ``load_gpu_results`` reads the file that
``benchmarks/gpu.py`` writes on a real GPU; when it is absent, ``no_gpu_results_message`` says so
plainly and how to produce it, so the notebook never shows numbers that were not measured.
``ddp_matches_one_big_batch`` runs ``DistributedDataParallel`` with the gloo backend on two local
CPU processes (127.0.0.1 only) and compares the update with one process on the whole batch.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

RESULTS_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "gpu.json"

FORMATS = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


# ---------------------------------------------------------------------------------------------
# The chapter's model


def chapter_model(in_features: int = 64, width: int = 256, depth: int = 3,
                  num_classes: int = 10) -> nn.Sequential:
    """The MLP the chapter trains: ``depth`` blocks of Linear -> GELU, then a linear head.

    Small by default (the notebook trains it on a CPU); ``benchmarks/gpu.py`` uses the same
    architecture with ``width=4096`` so that its matmuls keep a GPU busy.
    """
    layers: list[nn.Module] = []
    features = in_features
    for _ in range(depth):
        layers += [nn.Linear(features, width), nn.GELU()]
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# Number formats and autocast


def number_formats() -> list[dict[str, Any]]:
    """One row per format from ``torch.finfo``: bits, eps (precision), tiny and max (range)."""
    rows = []
    for name, dtype in FORMATS.items():
        info = torch.finfo(dtype)
        rows.append(
            {"format": name, "bits": info.bits, "eps": info.eps, "tiny": info.tiny, "max": info.max}
        )
    return rows


def autocast_dtypes(device_type: str = "cpu", dtype: torch.dtype = torch.bfloat16,
                    ) -> dict[str, str]:
    """What ``torch.autocast(device_type, dtype=dtype)`` does to each common operation.

    Measured, not listed from memory: each operation runs inside autocast once on float32
    inputs and once on inputs already in ``dtype`` (what a previous matmul hands on). Returns, per
    operation, ``"lower precision"`` (float32 in, ``dtype`` out: autocast casts down),
    ``"float32"`` (``dtype`` in, float32 out: autocast casts up for accuracy) or
    ``"as its input"`` (autocast leaves it alone; the widest input's dtype wins).
    """
    gen = torch.Generator().manual_seed(0)
    a32 = torch.randn(8, 8, generator=gen).to(device_type)  # (8, 8)
    b32 = torch.randn(8, 8, generator=gen).to(device_type)
    target = torch.arange(8).to(device_type)  # (8,) class indices
    ops: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "matmul": lambda a, b: a @ b,
        "linear": lambda a, b: F.linear(a, b),
        "conv2d": lambda a, b: F.conv2d(a[None, None], b[None, None, :3, :3]),
        "relu": lambda a, b: F.relu(a),
        "add": lambda a, b: a + b,
        "softmax": lambda a, b: torch.softmax(a, dim=1),
        "log_softmax": lambda a, b: torch.log_softmax(a, dim=1),
        "exp": lambda a, b: torch.exp(a),
        "sum": lambda a, b: a.sum(),
        "layer_norm": lambda a, b: F.layer_norm(a, (8,)),
        "cross_entropy": lambda a, b: F.cross_entropy(a, target),
        "mse_loss": lambda a, b: F.mse_loss(a, b),
    }
    a_low, b_low = a32.to(dtype), b32.to(dtype)
    table = {}
    with torch.autocast(device_type, dtype=dtype):
        for name, op in ops.items():
            if op(a32, b32).dtype == dtype:
                table[name] = "lower precision"
            elif op(a_low, b_low).dtype == torch.float32:
                table[name] = "float32"
            else:
                table[name] = "as its input"
    return table


# ---------------------------------------------------------------------------------------------
# Data parallel with gloo: 2 processes x batch B == 1 process x batch 2B


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demo_problem(batch_size: int, seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A float64 model and a regression batch of ``batch_size`` examples, from ``seed``.

    The caller's random state is left as it was (the notebook's seeded cells are unaffected).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = chapter_model(in_features=8, width=16, depth=2, num_classes=1).double()
        X = torch.randn(batch_size, 8, dtype=torch.float64)  # (N, 8)
        y = torch.randn(batch_size, 1, dtype=torch.float64)  # (N, 1)
    return model, X, y


def _ddp_worker(rank: int, world_size: int, port: int, batch_size: int, lr: float, seed: int,
                queue: Any) -> None:
    """One process of the demo: its shard of the batch, one DDP step, rank 0 reports the weights."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world_size, timeout=timedelta(seconds=30))
        model, X, y = _demo_problem(batch_size * world_size, seed)
        ddp = DDP(model)  # broadcasts rank 0's weights, then all-reduces (averages) gradients
        optimizer = torch.optim.SGD(ddp.parameters(), lr=lr)
        shard = slice(rank * batch_size, (rank + 1) * batch_size)  # this process's B examples
        optimizer.zero_grad()
        F.mse_loss(ddp(X[shard]), y[shard]).backward()  # the mean over its own B examples
        optimizer.step()
        if rank == 0:
            # Plain lists: tensors would travel as shared memory that dies with this process.
            queue.put(("ok", [p.detach().tolist() for p in model.parameters()]))
        dist.barrier()
        dist.destroy_process_group()
    except Exception as exc:  # report, so that the parent does not wait for a timeout
        queue.put(("error", f"rank {rank}: {type(exc).__name__}: {exc}"))


def ddp_matches_one_big_batch(batch_size: int = 16, lr: float = 0.1, seed: int = 0,
                              world_size: int = 2, timeout_s: float = 60.0) -> dict[str, Any]:
    """Train one step with DistributedDataParallel on ``world_size`` CPU processes (gloo backend,
    127.0.0.1, spawned), each on ``batch_size`` examples, and one step in this process on all
    ``world_size * batch_size`` examples; compare the weights.

    Returns:
        ``{"max_abs_diff": float, "seconds": float, "world_size": int, "batch_size": int}``:
        the largest difference between the two updated models (float64) and the wall time of
        the distributed run (mostly starting the processes).

    Raises:
        RuntimeError: When a worker fails or the run takes longer than ``timeout_s`` (the workers
            are terminated first).
    """
    import torch.multiprocessing as mp

    start = time.perf_counter()
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = _free_port()
    workers = [ctx.Process(target=_ddp_worker,
                           args=(rank, world_size, port, batch_size, lr, seed, queue), daemon=True)
               for rank in range(world_size)]
    for worker in workers:
        worker.start()
    try:
        deadline = start + timeout_s
        while queue.empty():
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the DDP demo took longer than {timeout_s:g} s")
            if all(not w.is_alive() for w in workers) and queue.empty():
                raise RuntimeError("the DDP workers exited without a result")
            time.sleep(0.05)
        status, payload = queue.get()
        if status != "ok":
            raise RuntimeError(payload)
        for worker in workers:
            worker.join(timeout=max(1.0, deadline - time.perf_counter()))
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
    seconds = time.perf_counter() - start

    model, X, y = _demo_problem(batch_size * world_size, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    optimizer.zero_grad()
    F.mse_loss(model(X), y).backward()  # the mean over all world_size * B examples
    optimizer.step()
    diff = max((torch.tensor(a, dtype=torch.float64) - b).abs().max().item()
               for a, b in zip(payload, model.parameters()))
    return {"max_abs_diff": diff, "seconds": seconds, "world_size": world_size,
            "batch_size": batch_size}


# ---------------------------------------------------------------------------------------------
# The GPU results file (written by benchmarks/gpu.py on a CUDA device only)


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


def format_gpu_results(results: dict[str, Any]) -> str:
    """The results file as the text table the notebook prints (one row per configuration)."""
    lines = [f"device: {results['device']}   torch {results['torch']}   measured {results['date']}",
             f"model: {results['model']}",
             "",
             f"{'configuration':42s} {'ms/step':>8s} {'speed-up':>8s} {'peak MiB':>9s} "
             f"{'final loss':>10s} {'1st step ms':>11s}"]
    for row in results["runs"]:
        lines.append(f"{row['name']:42s} {row['ms_per_step']:8.2f} {row['speedup']:7.2f}x "
                     f"{row['peak_mib']:9.1f} {row['final_loss']:10.4f} {row['first_step_ms']:11.0f}")
    mm = results["matmul"]
    lines += ["", f"bf16 matmul {mm['n']}x{mm['n']}: {mm['tflops']:.1f} TFLOP/s achieved"
              + (f", {mm['fraction_of_peak']:.0%} of the card's datasheet peak "
                 f"{mm['peak_tflops']:.0f} TFLOP/s (dense bf16)"
                 if mm.get("peak_tflops") else " (the card's peak is not known to the script)")]
    return "\n".join(lines)

