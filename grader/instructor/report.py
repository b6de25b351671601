"""What the class got wrong: facet earned counts and ranked diagnoses over the graded submissions.

Reads the gradebook and the autograded notebooks (:mod:`grader.instructor.gradebook`), or a folder
of ``python -m grader autograde --json`` documents (each a list of notebook results). It gives the numbers (``--json``: per exercise and facet, diagnoses with counts and up
to three anonymised example messages; score counts per chapter), a text summary, and an HTML page
(``--html``) with a histogram of scores per chapter and a bar chart of each exercise's facets,
embedded as PNG, for an instructor to open or project in class.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any


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
    """``message`` with the student's notebook path and its parts, and the student's id,
    replaced by ``<student>``."""
    for part in sorted({res.get("notebook", ""), *Path(res.get("notebook", "")).parts,
                        str(res.get("student") or "")},
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


def pyplot() -> Any:
    """matplotlib's pyplot, drawing off screen (a command line has no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any) -> str:
    """A matplotlib figure as a data URL, closed afterwards."""
    plt = pyplot()

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def score_histogram(chapter: str, hist: dict[Any, int]) -> str:
    fig, ax = pyplot().subplots(figsize=(6, 3))
    scores = sorted(float(k) for k in hist)
    gaps = [b - a for a, b in itertools.pairwise(scores)]
    ax.bar(scores, [hist[k] for k in sorted(hist, key=float)], width=0.8 * min(gaps, default=1),
           color="#4c72b0")
    ax.set_xlabel("score (points)")
    ax.set_ylabel("number of students")
    ax.set_title(f"{chapter}: scores of {sum(hist.values())} students")
    return figure_png(fig)


def facet_chart(exercise: str, facets: dict[str, Any]) -> str:
    names = list(facets)
    share = [100 * f["earned"] / f["students"] if f["students"] else 0 for f in facets.values()]
    fig, ax = pyplot().subplots(figsize=(6, 0.5 + 0.45 * len(names)))
    ax.barh(names, share, color="#55a868")
    ax.set_xlim(0, 100)
    ax.set_xlabel("students who earned the facet (%)")
    ax.set_ylabel("facet")
    ax.set_title(exercise)
    ax.invert_yaxis()
    return figure_png(fig)


def page(summary: dict[str, Any], title: str = "What the class got wrong") -> str:
    """The report as one self-contained HTML page (plots embedded, no outside resources)."""
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             ("<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;}"
              "td,th{padding:.2em .6em;text-align:left;vertical-align:top;}"
              "pre{white-space:pre-wrap;background:#f4f4f4;padding:.4em;font-size:85%;}</style>"),
             f"</head><body><h1>{esc(title)}</h1>"]
    for chapter, hist in summary["score_histograms"].items():
        parts.append(f"<h2>{esc(chapter)}</h2><img alt='score histogram of {esc(chapter)}' "
                     f"src='{score_histogram(chapter, hist)}'>")
    for exercise, facets in summary["exercises"].items():
        exercise = exercise.removeprefix("test_")  # the test cell's grade_id names the exercise
        parts.append(f"<h2>{esc(exercise)}</h2><img alt='facets of {esc(exercise)}' "
                     f"src='{facet_chart(exercise, facets)}'><table>"
                     "<tr><th>facet</th><th>earned</th><th>what went wrong</th></tr>")
        for name, f in facets.items():
            wrong = "".join(
                f"<p><b>{d['count']} of {f['students']}</b>: {esc(d['diagnosis'])}</p>"
                + "".join(f"<details><summary>example</summary><pre>{esc(e)}</pre></details>"
                          for e in d["examples"])
                for d in f["diagnoses"])
            parts.append(f"<tr><td>{esc(name)}</td><td>{f['earned']} of {f['students']}</td>"
                         f"<td>{wrong or '—'}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
