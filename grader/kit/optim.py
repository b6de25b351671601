"""Optimizer checks shared by the chapters: parameter trajectories, state dicts, judging.

An optimizer exercise (chapters 3 and 4, and the later ones that wrap an optimizer) runs the
answer and PyTorch on the same deterministic objective, step by step, and compares the parameter
trajectories, the state and the ``state_dict`` in float64 (``rtol=1e-9, atol=1e-12``; float32
cases ``rtol=2e-4, atol=1e-6``). This module holds what every such exercise needs:

- plain data <-> state dicts (:func:`plain_state_dict`, :func:`tensor_state_dict`);
- building parameters and param groups from a case, and taking one step as the case asks
  (:func:`build_params`, :func:`param_spec`, :func:`take_step`);
- judging: per-case tolerances, grader-owned code captured once per case
  (:func:`memo_capture`), and a diagnosis that also matches an answer that raises
  (:func:`diagnose`, :func:`judge`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from grader.kit.exercise import (ERROR_KEY, AnswerTypeError, Case, Exercise, Mistake, Outputs,
                                 Verdict, capture, compare_outputs, tensor, to_plain)

F64 = {"rtol": 1e-9, "atol": 1e-12}  # float64: only rounding differs between correct answers
F32 = {"rtol": 2e-4, "atol": 1e-6}  # float32: rounding accumulates over the steps

def coefficients(objective: list[dict[str, Any]], dtype: str) -> list[dict[str, Any]]:
    """The objective's arrays as tensors of the case's dtype."""
    return [{k: (tensor(np.asarray(v, dtype=dtype)) if isinstance(v, np.ndarray) else v)
             for k, v in c.items()} for c in objective]

def activity(rng: np.random.Generator, steps: int, n: int, none_grads: bool,
             p: float) -> np.ndarray:
    """Which of ``n`` parameters get a loss term at each step, as a (steps, n) bool array.

    With ``none_grads`` the last parameter never has a gradient and the others have one with
    probability ``p``, at least one of them at every step; otherwise all of them always do.
    """
    active = np.ones((steps, n), dtype=bool)
    if none_grads:
        active[:, :-1] = rng.random((steps, n - 1)) < p
        active[:, -1] = False
        active[np.arange(steps), rng.integers(0, max(n - 1, 1), steps)] = True
    return active


def plain_state_dict(sd: dict[str, Any]) -> dict[str, Any]:
    """A copy of an optimizer ``state_dict`` with every tensor turned into a NumPy array.

    Entries that hold nothing (``None`` values, empty dicts, which ``self.state[p]`` creates on
    a mere lookup) are dropped: PyTorch treats them as absent, so an answer may leave them.
    """
    state = {}
    for idx, entry in sd["state"].items():
        if not isinstance(entry, dict):
            raise AnswerTypeError(f"state_dict()['state'][{idx!r}] must be a dict of state")
        kept = {key: to_plain(v, f"state[{idx}][{key!r}]") for key, v in entry.items()
                if v is not None}
        if kept:
            state[idx] = kept
    groups = [{k: (list(v) if isinstance(v, list | tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return {"state": state, "param_groups": groups}

def tensor_state_dict(plain: dict[str, Any]) -> dict[str, Any]:
    """Rebuild a ``state_dict`` from plain data, as ``torch.load`` would hand it back."""
    state = {idx: {key: (tensor(v) if isinstance(v, np.ndarray) else v) for key, v in e.items()}
             for idx, e in plain["state"].items()}
    groups = [dict(g, params=list(g["params"])) for g in plain["param_groups"]]
    return {"state": state, "param_groups": groups}

def group_value(value: Any) -> np.ndarray:
    """A hyperparameter of a param group as a comparable array (floats; bools stay bools)."""
    if isinstance(value, bool):
        return np.array(value)
    if isinstance(value, torch.Tensor | int | float):
        return np.array(float(value))
    return np.array(repr(value))

def build_params(groups: list[dict[str, Any]], dtype: str) -> list[list[torch.Tensor]]:
    """Fresh leaf tensors, one list per group."""
    return [[tensor(np.asarray(x, dtype=dtype), grad=True) for x in g["params"]] for g in groups]

def param_spec(a: dict[str, Any], groups: list[list[torch.Tensor]], *, options: bool) -> Any:
    """What the optimizer is built with: a list of tensors, or a list of group dicts."""
    if a["flat"]:
        return [p for g in groups for p in g]
    return [dict({"params": g}, **(spec["options"] if options else {}))
            for g, spec in zip(groups, a["groups"], strict=True)]

def take_step(optimizer: Any, flat: list[torch.Tensor], coeffs: list[dict[str, Any]],
              active: list[bool], t: int, a: dict[str, Any], losses: list[np.ndarray],
              objective: Callable[[torch.Tensor, dict[str, Any], int], torch.Tensor],
              ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One optimizer step as the case asks for it (shared by chapters 3 and 4).

    The gradients are zeroed in place or set to None (``a["set_to_none"]``), only the ``active``
    parameters get a loss term (the others keep a None or zero gradient), and the step is taken
    with a closure (possibly under ``torch.no_grad()``) or after a plain backward pass.

    Returns:
        The (parameter, gradient) pairs the optimizer was given, to check it left them alone.
    """
    given: list[tuple[torch.Tensor, torch.Tensor]] = []

    def closure() -> torch.Tensor:
        if not torch.is_grad_enabled():
            raise AnswerTypeError("step(closure) called closure() with gradients disabled: "
                                  "call it inside `with torch.enable_grad():`")
        for p in flat:
            if a["set_to_none"]:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()  # in place, as zero_grad(set_to_none=False) does
        loss = sum(objective(p, c, t)
                   for p, c, on in zip(flat, coeffs, active, strict=True) if on)
        loss.backward()
        given[:] = [(p, p.grad.clone()) for p in flat if p.grad is not None]
        return loss.detach()

    if a["closure"]:
        with torch.no_grad() if a["closure"] == "under no_grad" else contextlib.nullcontext():
            returned = optimizer.step(closure)
        if type(returned) is not torch.Tensor:
            raise AnswerTypeError("step(closure) must return the loss that closure() "
                                  f"returned, got {type(returned).__name__}")
        losses.append(to_plain(returned, "the loss returned by step(closure)"))
    else:
        closure()
        optimizer.step()
    return given

def tolerance(case: Case) -> dict[str, float]:
    return F32 if case.args.get("dtype") == "float32" else F64

def digest(value: Any, h: Any = None) -> str:
    """A fingerprint of a case's plain data (arrays by dtype, shape and bytes)."""
    h = h if h is not None else hashlib.sha256()
    if isinstance(value, np.ndarray):
        h.update(f"a{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(b"d")
        for key in sorted(value, key=repr):
            h.update(repr(key).encode())
            digest(value[key], h)
    elif isinstance(value, list | tuple):
        h.update(f"l{len(value)}".encode())
        for item in value:
            digest(item, h)
    else:
        h.update(f"{type(value).__name__}:{value!r}".encode())
    return h.hexdigest()

_MEMO: dict[tuple[str, str], Outputs] = {}

def memo_capture(ex: Exercise, impl: Any, tag: str, case: Case) -> Outputs:
    """``capture`` of grader-owned code (the reference, the mistake models), remembered per case.

    Both are deterministic functions of the case's plain data; a failing answer is compared with
    up to two dozen models, and the tests diagnose the same cases many times.
    """
    key = (f"{ex.name}:{tag}", digest(dict(case.args)))
    if key not in _MEMO:
        if len(_MEMO) > 4096:
            _MEMO.clear()
        _MEMO[key] = capture(ex, impl, case, forbid=False)
    return _MEMO[key]

def diagnose(ex: Exercise, case: Case, got: Outputs) -> Mistake | None:
    """The first mistake that behaves like ``got``; an error must match in class and message."""
    for mistake in ex.mistakes:
        try:
            wrong = memo_capture(ex, mistake.impl, mistake.key, case)
        except Exception:
            continue
        if (ERROR_KEY in wrong) != (ERROR_KEY in got):
            continue
        if ERROR_KEY in got:
            if (str(wrong[ERROR_KEY]), str(wrong["__message__"])) == \
                    (str(got[ERROR_KEY]), str(got["__message__"])):
                return mistake
            continue
        if compare_outputs(got, wrong, **tolerance(case)) is None:
            return mistake
    return None

def judge(ex: Exercise, case: Case, got: Outputs, expected: Outputs | None) -> Verdict:
    """Like :meth:`Exercise.judge`, but an answer that raises can be diagnosed too."""
    if expected is None:
        expected = memo_capture(ex, ex.torch_reference(), "reference", case)
    problem = ex.compare(case, got, expected)
    if problem is None:
        return Verdict(True)
    where = f"{ex.name} failed on {case.label}:\n  {problem}"
    if ERROR_KEY in expected:
        return Verdict(False, where)
    mistake = ex.diagnose(case, got)
    if mistake is not None:
        return Verdict(False, f"{where}\n  Likely mistake: {mistake.message}", mistake.key)
    return Verdict(False, where)
