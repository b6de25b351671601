"""``python -m grader report`` on a tiny synthetic class of --json results."""

import json

from grader.core.cli import main


def result(name, passed):
    """One graded notebook of chapter ``ch``: facet ``weights`` of ``ex1`` earned or not."""
    facet = {"name": "weights", "points": 1, "status": "passed" if passed else "failed",
             "diagnosis": None if passed else "divided by N"}
    return {"notebook": f"submitted/{name}/ch.ipynb", "assignment": "ch", "status": "graded",
            "score": 1 if passed else 0,
            "cells": [{"grade_id": "ex1", "facets": [facet],
                       "message": f"in submitted/{name}/ch.ipynb: divided by N"}]}


def test_counts(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps([result("a", True), result("b", False)]))
    (tmp_path / "b.json").write_text(json.dumps([result("c", False)]))
    assert main(["report", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["exercises"]["ex1"]["weights"] == {
        "students": 3, "earned": 1,
        "diagnoses": [{"diagnosis": "divided by N", "count": 2,
                       "examples": ["in <student>: divided by N"]}]}
    assert doc["score_histograms"] == {"ch": {"0": 2, "1": 1}}


def test_missing_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
