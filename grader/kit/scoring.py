"""Partial credit by facet, a mistake charged once, and the report a learner reads first.

An exercise's points split over named facets (:class:`grader.kit.exercise.Facet`): for an
optimizer, the update rule (the bulk), each option family, the API contract. Every case belongs to
one facet, and a facet is earned when all its cases pass. A failing case is *charged* to a facet:

- to the facet of the diagnosed mistake when the answer behaves like a known mistake that names
  one (Adam without bias correction fails the AMSGrad cases too, but it is charged to the update
  rule, once, and the AMSGrad facet is kept);
- otherwise to the case's own facet.

:func:`score` does this for the notebook's ``check`` and for the grading core alike, so both give
the same score and the same words. :func:`render` writes the report: the lost facets first, each
with its simplest failing case, expected against got, and the likely mistake (named whenever any
failing case matches it, not only when the first one does), then the facets earned.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from grader.kit.exercise import ERROR_KEY, Case, Exercise, Mistake, Outputs, Verdict


@dataclasses.dataclass
class Failure:
    """One failing case, judged."""

    case: Case
    message: str  # the verdict's message: where, expected against got (and maybe the mistake)
    mistake: Mistake | None
    error: bool  # the answer raised, or returned something unreadable, where PyTorch did not


@dataclasses.dataclass
class FacetResult:
    """How one facet went."""

    name: str
    points: float
    covers: str
    cases: int = 0  # cases of this facet that were checked
    failures: list[Failure] = dataclasses.field(default_factory=list)

    @property
    def earned(self) -> bool:
        return not self.failures

    @property
    def score(self) -> float:
        return self.points if self.earned else 0.0

    @property
    def checked(self) -> bool:
        return self.cases > 0 or bool(self.failures)

    def first(self, ex: Exercise) -> Failure:
        """The failure to show: the simplest case."""
        return min(self.failures, key=lambda f: ex.simplicity(f.case))

    def mistake(self) -> Mistake | None:
        """The mistake most of this facet's failures behave like (any one will do)."""
        named = [f.mistake for f in self.failures if f.mistake is not None]
        if not named:
            return None
        counts = Counter(m.key for m in named)
        best = max(counts, key=lambda k: (counts[k], -[m.key for m in named].index(k)))
        return next(m for m in named if m.key == best)

    def as_dict(self, ex: Exercise) -> dict[str, Any]:
        """The facet in the grading core's JSON."""
        entry: dict[str, Any] = {"name": self.name, "points": float(self.points),
                                 "score": float(self.score), "covers": self.covers,
                                 "status": "earned" if self.earned else "lost",
                                 "cases": self.cases, "failed": len(self.failures)}
        if not self.earned:
            mistake = self.mistake()
            entry["mistake"] = mistake.key if mistake else None
            entry["message"] = facet_message(ex, self)
        return entry


@dataclasses.dataclass
class ExerciseScore:
    """An exercise's facets, score and headline."""

    name: str
    points: float
    facets: list[FacetResult]

    @property
    def score(self) -> float:
        total = sum(f.score for f in self.facets)
        return float(min(self.points, round(total, 9)))

    @property
    def passed(self) -> bool:
        return all(f.earned for f in self.facets)

    @property
    def errored(self) -> bool:
        """Every failure is an error (the answer raised where PyTorch returned)."""
        failures = [x for f in self.facets for x in f.failures]
        return bool(failures) and all(x.error for x in failures)

    def lost(self) -> list[FacetResult]:
        return [f for f in self.facets if not f.earned]


def charge(ex: Exercise, failure: Failure) -> str:
    """The facet a failure is charged to (see the module docstring)."""
    names = {f.name for f in ex.facet_list()}
    if failure.mistake is not None and failure.mistake.facet in names:
        return str(failure.mistake.facet)
    return ex.facet_of(failure.case)


def find_mistake(ex: Exercise, key: str | None) -> Mistake | None:
    if key is None:
        return None
    return next((m for m in ex.mistakes if m.key == key), None)


def judge_case(ex: Exercise, case: Case, got: Outputs | str, expected: Outputs
               ) -> Failure | None:
    """``None`` when the case passes, else the judged failure. ``got`` may be a string: the
    reason the answer's outputs could not be read."""
    if isinstance(got, str):
        return Failure(case, f"{ex.name} failed on {case.label}:\n  {got}", None, True)
    try:
        verdict = ex.judge(case, got, expected)
    except Exception as exc:  # outputs the chapter's judge cannot compare
        verdict = Verdict(False, f"{ex.name} failed on {case.label}: its outputs could not be "
                                 f"compared ({type(exc).__name__})")
    if verdict.ok:
        return None
    error = ERROR_KEY in got and ERROR_KEY not in expected
    return Failure(case, verdict.message, find_mistake(ex, verdict.mistake), error)


def score(ex: Exercise, cases: Sequence[Case], gots: Sequence[Outputs | str],
          expected: Sequence[Outputs]) -> ExerciseScore:
    """Judge every case and add up the facets."""
    facets = {f.name: FacetResult(f.name, f.points, f.covers) for f in ex.facet_list()}
    for case, got, want in zip(cases, gots, expected, strict=True):
        own = facets.get(ex.facet_of(case))
        if own is None:
            raise ValueError(f"{ex.name}: case {case.label!r} names an unknown facet "
                             f"{case.facet!r}")
        own.cases += 1
        failure = judge_case(ex, case, got, want)
        if failure is not None:
            facets[charge(ex, failure)].failures.append(failure)
    return ExerciseScore(ex.name, float(ex.points), list(facets.values()))


# ---------------------------------------------------------------------------------------------
# Words


def points_text(value: float) -> str:
    return f"{value:g}"


def facet_message(ex: Exercise, facet: FacetResult) -> str:
    """The likely mistake of a lost facet, then its simplest failing case (expected, got)."""
    first = facet.first(ex)
    lines = [line.strip() for line in first.message.split("\n")
             if line.strip() and not line.strip().startswith("Likely mistake:")]
    mistake = facet.mistake()
    if mistake is not None:  # the diagnosis first, then the case that shows it
        lines.insert(0, f"Likely mistake: {mistake.message}")
    if len(facet.failures) > 1:
        lines.append(f"({len(facet.failures)} of its cases failed; the simplest is shown.)")
    return "\n".join(lines)


def render(ex: Exercise, result: ExerciseScore, *, note: str = "") -> str:
    """The learner's report: lost facets first (diagnosis, case, got/expected), then the rest."""
    lines = [f"{ex.name}: {points_text(result.score)} / {points_text(result.points)} points"]
    for facet in result.lost():
        lines.append(f"✗ {facet.name} (0 / {points_text(facet.points)}): "
                     + facet_message(ex, facet).replace("\n", "\n    "))
    for facet in result.facets:
        if facet.earned:
            mark = "✓" if facet.checked else "·"
            extra = "" if facet.checked else " — not checked by these cases"
            lines.append(f"{mark} {facet.name} ({points_text(facet.points)} / "
                         f"{points_text(facet.points)}){extra}")
    if note:
        lines.append(note)
    return "\n".join(lines)
