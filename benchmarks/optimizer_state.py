"""Print what each optimizer's state costs, and how long one of its steps takes.

Usage: ``python benchmarks/optimizer_state.py [HIDDEN_WIDTH]`` (default 1024).

For a float32 MLP (64 -> H -> H -> 10) the script takes one optimizer step and sums the bytes of
every tensor in ``optimizer.state``: divided by the number of parameters, that is the memory an
optimizer adds per parameter (SGD 0, momentum and RMSprop 4, Adam 8, AMSGrad 12; the ``step``
counters add 4 bytes per *tensor*). It also prints the mean time of a step (single-tensor path,
one thread), the other price of a richer state. Figures are printed, not asserted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

OPTIMIZERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "SGD": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "SGD, momentum=0.9": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "Adagrad": lambda ps: torch.optim.Adagrad(ps),
    "RMSprop": lambda ps: torch.optim.RMSprop(ps),
    "RMSprop, centered, momentum": lambda ps: torch.optim.RMSprop(ps, momentum=0.9, centered=True),
    "Adam": lambda ps: torch.optim.Adam(ps),
    "AdamW": lambda ps: torch.optim.AdamW(ps),
    "Adam, amsgrad=True": lambda ps: torch.optim.Adam(ps, amsgrad=True),
}


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor the optimizer keeps in its state."""
    return sum(v.nbytes for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))


def main(width: int = 1024, repeats: int = 20) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, 10))
    n_params = sum(p.numel() for p in model.parameters())
    X, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    print(f"MLP 64-{width}-{width}-10: {n_params:,} float32 parameters "
          f"({4 * n_params / 2**20:.1f} MiB of weights)\n")
    print(f"{'optimizer':30s} {'state MiB':>9s} {'bytes/param':>11s} {'ms/step':>8s}")
    for name, make in OPTIMIZERS.items():
        optimizer = make(model.parameters())
        model.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()  # creates the state
        start = time.perf_counter()
        for _ in range(repeats):
            optimizer.step()
        ms = 1000 * (time.perf_counter() - start) / repeats
        nbytes = state_bytes(optimizer)
        print(f"{name:30s} {nbytes / 2**20:9.2f} {nbytes / n_params:11.3f} {ms:8.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
