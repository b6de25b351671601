"""grader.core.wire: plain data crosses the sandbox boundary exactly, and nothing else crosses it."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest

from grader.core import wire
from grader.core.course import Course

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def roundtrip(value):
    return wire.decode(wire.loads(wire.dumps(wire.encode(value))))


def same(a, b) -> bool:
    """Equal, with the same types all the way down (tuple is not list, int is not float)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and \
            np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and (a == b or (a != a and b != b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def test_plain_data_round_trips_exactly():
    value = {
        "input": np.arange(12, dtype=np.float32).reshape(3, 4), "target": np.array([0, 2, 1]),
        "mask": np.array([True, False]), "empty": np.zeros((0, 3)), "scalar": np.array(2.5),
        "n": np.int64(3), "f": np.float64(0.1), "inf": float("inf"), "nan": float("nan"),
        "tuple": (1, 2.0, "x", None, True), "list": [1, [2, (3,)]],
        "int keys": {0: {"step": np.array(1.0)}, 1: {}}, "text": np.array("ValueError"),
        "big": 2**70, "strided": np.arange(20.0)[::3], "fortran": np.asfortranarray(np.eye(3)),
    }
    assert same(roundtrip(value), value)


def chapter_cases():
    """Every case of every chapter (public and hidden), with the fixture's."""
    import os

    os.environ.setdefault("LOSSOPT_GRADER_PATH", str(FIXTURES / "chapters"))
    out = []
    for course in (Course(FIXTURES / "course", [FIXTURES / "chapters"]), Course()):
        for name in course.names():
            try:
                chapter = course.chapter(name)
                exercises = chapter.exercises
            except Exception:  # a chapter whose module is not written yet
                continue
            for ex in exercises.values():
                out += ex.cases(hidden=False) + ex.cases(hidden=True, seed=3)
    return out


def test_every_chapter_case_crosses_unchanged():
    cases = chapter_cases()
    assert len(cases) > 20
    for case in cases:
        args = dict(case.args)
        assert same(roundtrip(args), args), case.label


@pytest.mark.parametrize("tree, why", [
    ({"a": "object", "s": [1], "b": "AAAAAAAAAAA="}, "refused dtype"),
    ({"a": "float64", "s": [2], "b": base64.b64encode(b"\0" * 8).decode()}, "needs 16"),
    ({"a": "float64", "s": [-1], "b": ""}, "bad array shape"),
    ({"a": "float64", "s": [10**6, 10**6], "b": ""}, "exceeds"),
    ({"a": "float64", "s": [1], "b": "not base64!"}, "not base64"),
    ({"py/object": "os.system"}, "unknown tag"),
    ({"__reduce__": ["os.system", ["true"]]}, "unknown tag"),
    ({"d": [[["unhashable"], 1]]}, "unexpected"),
    ([1, 2], "unexpected list"),
])
def test_malformed_or_dangerous_trees_are_refused(tree, why):
    with pytest.raises(wire.WireError, match=why):
        wire.decode(tree)


def test_outputs_must_be_a_dictionary_of_arrays():
    good = wire.encode({"out": np.ones(2), "__error__": np.array("ValueError")})
    assert set(wire.decode_outputs(good)) == {"out", "__error__"}
    for bad in ([np.ones(2)], {"out": 1.0}, {1: np.ones(1)}, {"out": [np.ones(1)]}):
        with pytest.raises(wire.WireError):
            wire.decode_outputs(wire.encode(bad))


def test_encoding_refuses_what_is_not_plain_data():
    class Liar(float):
        pass

    for value in (Liar(1.0), np.array([object()]), {1, 2}, b"bytes", np.array([1j])):
        with pytest.raises(wire.WireError):
            wire.encode(value)


def test_limits_on_size_and_nesting():
    with pytest.raises(wire.WireError, match="nested"):
        wire.decode(json.loads('{"l": [' * 40 + "1" + "]}" * 40))
    with pytest.raises(wire.WireError, match="JSON"):
        wire.loads(b"[" * 100000)
    with pytest.raises(wire.WireError, match="exceeds"):
        wire.loads(b" " * (wire.MAX_TOTAL_BYTES + 1))
