"""Progress bars for the instructor's long runs (a report over a class, regrade, similarity).

A bar goes to stderr, and only when stderr is a terminal: piped or redirected output (``--json >
file``, a cron job, CI logs) stays free of carriage returns. ``LOSSOPT_PROGRESS=1`` forces it on,
``LOSSOPT_PROGRESS=0`` off. tqdm is one of the course's pinned dependencies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


def wanted(stream: TextIO | None = None) -> bool:
    """Whether to draw bars on ``stream`` (stderr by default)."""
    forced = os.environ.get("LOSSOPT_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    stream = stream if stream is not None else sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def bar(items: Iterable[T], total: int | None = None, what: str = "") -> Iterator[T]:
    """``items``, with a bar on stderr when :func:`wanted` says so."""
    if not wanted():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=what or None, file=sys.stderr, leave=False,
                    dynamic_ncols=True, mininterval=0.2)


class Counter:
    """A bar advanced by hand (for callbacks such as ``grade_batch``'s ``progress``)."""

    def __init__(self, total: int, what: str = "") -> None:
        self._bar: Any = None
        if wanted():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=what or None, file=sys.stderr, leave=False,
                             dynamic_ncols=True, mininterval=0.2)

    def step(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
