"""Plain data across the sandbox boundary: JSON lines, no pickle, strictly checked on the way in.

The grading core and the worker that runs a submission talk through two pipes, one JSON document
per line. Anything that is not JSON-native travels as a small tagged object:

=============  =====================================================================
``{"a": ...}``  a NumPy array: ``{"a": dtype, "s": shape, "b": base64 of its bytes}``
``{"n": ...}``  a NumPy scalar: ``{"n": dtype, "b": base64}``
``{"u": str}``  a 0-d unicode array (how :func:`grader.kit.exercise.error_outputs` stores text)
``{"t": [...]}`` a tuple; ``{"l": [...]}`` a list; ``{"d": [[key, value], ...]}`` a dict
=============  =====================================================================

Plain ``str``, ``bool``, ``int``, ``float`` (``NaN`` and ``Infinity`` included) and ``None`` are
JSON's own. A JSON object with any other shape is refused, so nothing on the wire can name a
class to build or code to run.

What comes back from the worker is untrusted: :func:`decode_outputs` accepts only a dictionary of
string keys to arrays whose dtype is on :data:`ALLOWED_DTYPES` (never ``object``), whose byte count
matches the shape exactly, within :data:`MAX_ELEMENTS` elements and :data:`MAX_DEPTH` levels of
nesting. Anything else raises :class:`WireError`, which the core reports as the submission
interfering with the grader, for that exercise only.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np

# Dtypes an answer's outputs may have (bool, integers, floats); unicode only for error text.
ALLOWED_DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
})
MAX_ELEMENTS = 50_000_000  # per array: 400 MB of float64, far beyond any exercise
MAX_TOTAL_BYTES = 512 * 2**20  # per message
MAX_DEPTH = 32
MAX_TEXT = 100_000  # characters in one string


class WireError(ValueError):
    """A message that is not valid plain data (malformed, too large, or of a refused type)."""


# ---------------------------------------------------------------------------------------------
# Encoding (both directions)


def encode(value: Any) -> Any:
    """Turn plain data into a JSON-ready tree (see the module docstring for the tags).

    Raises:
        WireError: ``value`` holds something that is not plain data.
    """
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value
    if kind is float:
        return value
    if kind is np.ndarray:
        if value.dtype.kind == "U":
            if value.ndim != 0:
                raise WireError("only 0-d text arrays can be sent")
            return {"u": str(value)}
        name = value.dtype.name
        if name not in ALLOWED_DTYPES:
            raise WireError(f"arrays of dtype {name} cannot be sent")
        data = np.ascontiguousarray(value).tobytes()
        return {"a": name, "s": list(value.shape), "b": base64.b64encode(data).decode("ascii")}
    if isinstance(value, np.generic) and type(value).__module__ == "numpy":
        name = value.dtype.name
        if name not in ALLOWED_DTYPES:
            raise WireError(f"scalars of dtype {name} cannot be sent")
        return {"n": name, "b": base64.b64encode(value.tobytes()).decode("ascii")}
    if kind is tuple:
        return {"t": [encode(v) for v in value]}
    if kind is list:
        return {"l": [encode(v) for v in value]}
    if kind is dict:
        return {"d": [[encode(k), encode(v)] for k, v in value.items()]}
    raise WireError(f"{kind.__module__}.{kind.__qualname__} is not plain data")


def dumps(message: Any) -> bytes:
    """One message as a JSON line (the message itself must already be JSON-ready)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=True).encode("utf-8") + b"\n"


# ---------------------------------------------------------------------------------------------
# Decoding (strict)


def loads(line: bytes) -> Any:
    """Parse one JSON line.

    Raises:
        WireError: not JSON, too large or nested too deeply.
    """
    if len(line) > MAX_TOTAL_BYTES:
        raise WireError(f"message of {len(line)} bytes exceeds {MAX_TOTAL_BYTES}")
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not a JSON message: {str(exc)[:200]}") from None


def decode(tree: Any, depth: int = 0) -> Any:
    """Turn a JSON-ready tree back into plain data, refusing anything unexpected.

    Raises:
        WireError: the tree is not one :func:`encode` can produce, or exceeds the limits.
    """
    if depth > MAX_DEPTH:
        raise WireError("data nested too deeply")
    kind = type(tree)
    if tree is None or kind in (bool, int):
        return tree
    if kind is float:
        return tree
    if kind is str:
        if len(tree) > MAX_TEXT:
            raise WireError("text too long")
        return tree
    if kind is not dict or len(tree) not in (1, 2, 3):
        raise WireError(f"unexpected {kind.__name__} on the wire")
    keys = frozenset(tree)
    if keys == {"a", "s", "b"}:
        return _array(tree["a"], tree["s"], tree["b"])
    if keys == {"n", "b"}:
        array = _array(tree["n"], [], tree["b"])
        return array[()]
    if keys == {"u"}:
        if type(tree["u"]) is not str or len(tree["u"]) > MAX_TEXT:
            raise WireError("bad text value")
        return np.array(tree["u"])
    if keys in ({"t"}, {"l"}):
        items = tree.get("t", tree.get("l"))
        if type(items) is not list:
            raise WireError("bad sequence")
        seq = [decode(v, depth + 1) for v in items]
        return tuple(seq) if "t" in keys else seq
    if keys == {"d"}:
        pairs = tree["d"]
        if type(pairs) is not list:
            raise WireError("bad mapping")
        out: dict[Any, Any] = {}
        for pair in pairs:
            if type(pair) is not list or len(pair) != 2:
                raise WireError("bad mapping entry")
            key = decode(pair[0], depth + 1)
            if type(key) not in (str, int, bool, float, tuple) and key is not None:
                raise WireError("unhashable mapping key")
            out[key] = decode(pair[1], depth + 1)
        return out
    raise WireError(f"unknown tag {sorted(keys)}")


def _array(dtype: Any, shape: Any, data: Any) -> np.ndarray:
    if type(dtype) is not str or dtype not in ALLOWED_DTYPES:
        raise WireError(f"refused dtype {str(dtype)[:40]!r}")
    if type(shape) is not list or len(shape) > 32 or \
            any(type(n) is not int or n < 0 for n in shape):
        raise WireError("bad array shape")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise WireError(f"array of {count} elements exceeds {MAX_ELEMENTS}")
    if type(data) is not str:
        raise WireError("bad array data")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise WireError("array data is not base64") from None
    want = np.dtype(dtype)
    if len(raw) != count * want.itemsize:
        raise WireError(f"array data has {len(raw)} bytes, shape {tuple(shape)} {dtype} needs "
                        f"{count * want.itemsize}")
    return np.frombuffer(raw, dtype=want).reshape(shape).copy()


def decode_outputs(tree: Any) -> dict[str, np.ndarray]:
    """Decode an exercise's outputs: a dictionary of string keys to plain arrays, nothing else.

    Raises:
        WireError: anything else.
    """
    value = decode(tree)
    if type(value) is not dict or len(value) > 256:
        raise WireError("outputs must be a dictionary of arrays")
    for key, array in value.items():
        if type(key) is not str or len(key) > 200:
            raise WireError("output names must be short strings")
        if type(array) is not np.ndarray:
            raise WireError(f"output {key!r} is not an array")
    return value
