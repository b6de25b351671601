"""torch on one thread while grader-owned training runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block, as in the grading sandbox: tiny models train faster
    than on several threads fighting over a busy CPU, the float sums are the same on every
    machine, and CPU time measures work rather than idle threads spinning."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
