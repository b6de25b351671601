"""Registering a chapter's corpus: wrong answers with the facets they lose, right ones.

A corpus module makes one :class:`Registry` and exports its lists under the names its tests use
(``CORPUS``, ``LOSES``, and the right answers)::

    _REGISTRY = Registry()
    CORPUS, LOSES, RIGHT = _REGISTRY.corpus, _REGISTRY.loses, _REGISTRY.right
    wrong, right = _REGISTRY.wrong, _REGISTRY.correct
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Answer = Callable[..., Any]


class Registry:
    """The entries of one chapter's corpus."""

    def __init__(self) -> None:
        self.corpus: list[tuple[str, str, Answer]] = []  # (exercise, mistake key, answer)
        self.loses: dict[str, frozenset[str]] = {}  # answer's name -> the facets it must lose
        self.right: list[tuple[str, Answer]] = []  # right answers written in other ways

    def wrong(self, exercise: str, key: str, *loses: str) -> Callable[[Answer], Answer]:
        """Register a wrong answer to ``exercise`` that the grader must diagnose as ``key`` and
        that must lose exactly the facets ``loses`` (it keeps the others)."""

        def register(fn: Answer) -> Answer:
            assert loses, f"{fn.__name__}: which facets does it lose?"
            assert fn.__name__ not in self.loses, f"{fn.__name__} is registered twice"
            self.corpus.append((exercise, key, fn))
            self.loses[fn.__name__] = frozenset(loses)
            return fn

        return register

    def correct(self, exercise: str) -> Callable[[Answer], Answer]:
        """Register a correct answer to ``exercise``, written in another legitimate way."""

        def register(fn: Answer) -> Answer:
            self.right.append((exercise, fn))
            return fn

        return register
