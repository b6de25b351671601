"""``python -m grader report`` on a tiny synthetic class of --json results."""

import json

from grader.core.cli import main


def result(name, passed):
    facet = {"name": "weights", "points": 1, "status": "passed" if passed else "failed",
             "diagnosis": None if passed else "divided by N"}
    return {"notebook": name, "assignment": "ch", "status": "graded",
            "cells": [{"grade_id": "ex1", "facets": [facet]}]}


def test_counts(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps([result("a", True), result("b", False)]))
    (tmp_path / "b.json").write_text(json.dumps([result("c", False)]))
    assert main(["report", str(tmp_path), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["ex1"]["weights"]
    assert got == {"students": 3, "earned": 1,
                   "diagnoses": [{"diagnosis": "divided by N", "count": 2}]}


def test_missing_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
