"""What the class got wrong: facet earned counts and ranked diagnoses over ``--json`` results.

Reads a folder of ``python -m grader autograde --json`` documents (each a list of notebook
results). The numbers (``--json``: per exercise and facet, diagnoses with counts and up to three
anonymised example messages; score counts per chapter) and a text summary exist so far; the
gradebook source and the HTML page with plots of issue 17 are not built yet.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable


def load(folder: Path) -> list[dict[str, Any]]:
    """Every notebook result in the ``*.json`` files of ``folder``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder of results: {folder}")
    results: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        results.extend(doc if isinstance(doc, list) else [doc])
    return results


def aggregate(results: Iterable[dict[str, Any]], assignment: str | None = None) -> dict[str, Any]:
    """Per exercise and facet: students graded, earned count, diagnoses ranked by count."""
    earned: dict[str, Counter] = defaultdict(Counter)
    seen: dict[str, Counter] = defaultdict(Counter)
    diagnoses: dict[tuple[str, str], Counter] = defaultdict(Counter)
    examples: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    scores: dict[str, list[float]] = defaultdict(list)
    for res in results:
        if res.get("status") != "graded" or (assignment and res.get("assignment") != assignment):
            continue
        scores[res.get("assignment") or "unknown"].append(res.get("score", 0))
        for cell in res.get("cells", []):
            for facet in cell.get("facets") or []:
                seen[cell["grade_id"]][facet["name"]] += 1
                if facet["status"] == "earned":
                    earned[cell["grade_id"]][facet["name"]] += 1
                    continue
                said = diagnosis(facet)
                diagnoses[cell["grade_id"], facet["name"]][said] += 1
                shown = examples[cell["grade_id"], facet["name"], said]
                message = anonymise(facet.get("message") or "", res)
                if message and len(shown) < 3 and message not in shown:
                    shown.append(message)
    exercises = {ex: {name: {"students": n, "earned": earned[ex][name],
                             "diagnoses": [{"diagnosis": d, "count": c,
                                            "examples": examples[ex, name, d]}
                                           for d, c in diagnoses[ex, name].most_common()]}
                      for name, n in facets.items()}
                 for ex, facets in seen.items()}
    return {"exercises": exercises,
            "score_histograms": {a: dict(sorted(Counter(v).items())) for a, v in scores.items()}}


NO_DIAGNOSIS = "no known mistake recognised (see the examples)"


def diagnosis(facet: dict[str, Any]) -> str:
    """The words of a lost facet's likely mistake (the first line of its message, as the
    grading core writes it: "Likely mistake: ..."), or :data:`NO_DIAGNOSIS`."""
    first = (facet.get("message") or "").split("\n", 1)[0]
    prefix = "Likely mistake: "
    return first[len(prefix):] if facet.get("mistake") and first.startswith(prefix) else NO_DIAGNOSIS


def anonymise(message: str, res: dict[str, Any]) -> str:
    """``message`` with the student's notebook path and its parts replaced by ``<student>``."""
    for part in sorted({res.get("notebook", ""), *Path(res.get("notebook", "")).parts},
                       key=len, reverse=True):
        if len(part) > 2:
            message = message.replace(part, "<student>")
    return message


def text(summary: dict[str, Any]) -> str:
    """A readable summary ("12 of 40: <diagnosis>")."""
    lines = []
    for ex, facets in summary["exercises"].items():
        lines.append(ex)
        for name, f in facets.items():
            lines.append(f"  {name}: earned by {f['earned']} of {f['students']}")
            lines.extend(f"    {d['count']} of {f['students']}: {d['diagnosis']}"
                         for d in f["diagnoses"])
    for chapter, hist in summary["score_histograms"].items():
        lines.append(f"{chapter} scores: " + ", ".join(f"{k:g}: {n}" for k, n in hist.items()))
    return "\n".join(lines)
