"""``python -m grader report`` on a synthetic class built from chapter 1's corpus.

Each student's cell is what the grading core writes (the facets of ``check_exercise``, as
``FacetResult.as_dict`` gives them), so the report reads the real schema; the corpus says which
facets each wrong answer loses and which mistake it shows, so the expected counts are known.
"""

import json

from corpus.ch01_classification_losses import CORPUS, LOSES, RIGHT

from grader.chapters.ch01_classification_losses import EXERCISES
from grader.core.cli import main
from grader.kit.exercise import check_exercise

EXERCISE = "nll_loss"
WRONG = [(key, fn) for ex, key, fn in CORPUS if ex == EXERCISE][:4]
RIGHT_ONES = [fn for ex, fn in RIGHT if ex == EXERCISE][:2]


def graded(student: str, impl) -> dict:
    ex = EXERCISES[EXERCISE]
    result, report = check_exercise(ex, impl, hidden=True, seed=0)
    cell = {"grade_id": ex.grade_id, "status": "passed" if result.score == ex.points else "failed",
            "score": result.score, "max_score": ex.points,
            "message": f"submitted/{student}/01_classification_losses.ipynb\n{report}",
            "facets": [f.as_dict(ex) for f in result.facets]}
    return {"notebook": f"submitted/{student}/01_classification_losses.ipynb",
            "assignment": "01_classification_losses", "status": "graded",
            "score": result.score, "cells": [cell]}


def test_counts_match_the_corpus(tmp_path, capsys):
    students = [(f"s{i}", fn) for i, (_, fn) in enumerate(WRONG)]
    students += [(f"r{i}", fn) for i, fn in enumerate(RIGHT_ONES)]
    results = [graded(name, fn) for name, fn in students]
    (tmp_path / "a.json").write_text(json.dumps(results[:3]))
    (tmp_path / "b.json").write_text(json.dumps(results[3:]))
    assert main(["report", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    facets = doc["exercises"][EXERCISES[EXERCISE].grade_id]
    mistakes = {m.key: m.message for m in EXERCISES[EXERCISE].mistakes}
    for facet in EXERCISES[EXERCISE].facet_list():
        losers = [(key, fn) for key, fn in WRONG if facet.name in LOSES[fn.__name__]]
        entry = facets[facet.name]
        assert entry["students"] == len(students)
        assert entry["earned"] == len(students) - len(losers), facet.name
        assert sum(d["count"] for d in entry["diagnoses"]) == len(losers)
        for d in entry["diagnoses"]:
            assert d["examples"] and all("s0" not in e and "submitted/" not in e
                                         for e in d["examples"])
        counts = [d["count"] for d in entry["diagnoses"]]
        assert counts == sorted(counts, reverse=True), "diagnoses are ranked by count"
    # Each wrong answer's own mistake is named, in words, on a facet it loses.
    for key, fn in WRONG:
        said = {d["diagnosis"] for name in LOSES[fn.__name__] for d in facets[name]["diagnoses"]}
        assert mistakes[key] in said, (key, said)
    assert sum(doc["score_histograms"]["01_classification_losses"].values()) == len(students)


def test_text_summary_says_how_many_of_the_class(tmp_path, capsys):
    fn = WRONG[0][1]
    (tmp_path / "r.json").write_text(json.dumps([graded("x", fn), graded("y", RIGHT_ONES[0])]))
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    key = WRONG[0][0]
    message = next(m.message for m in EXERCISES[EXERCISE].mistakes if m.key == key)
    assert f"1 of 2: {message}" in out


def test_missing_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_html_page_with_plots(tmp_path, capsys):
    results = [graded("x", WRONG[0][1]), graded("y", RIGHT_ONES[0])]
    (tmp_path / "r.json").write_text(json.dumps(results))
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path), "--html", str(out)]) == 0
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 2  # the score histogram and the facets chart
    message = next(m.message for m in EXERCISES[EXERCISE].mistakes if m.key == WRONG[0][0])
    assert "1 of 2</b>" in page and message.replace("'", "&#x27;") in page
    assert "submitted/" not in page and "http" not in page  # anonymised and self-contained
