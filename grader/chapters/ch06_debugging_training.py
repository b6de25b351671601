"""Chapter 6 checks: debugging training. FIRST VERSION: the clipping trio only.

Compared with torch 2.13's ``torch.nn.utils`` in float64. Mistake diagnostics, the dependency
rule (clip_grad_norm_ on get_total_norm), gradcheck, the sanity battery and the bug zoo are not
written yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import utils as tnu

from grader.kit.exercise import Case, Exercise, Facet, Outputs, make_check, to_plain

INF = float("inf")


def _grads(case: Case) -> list[torch.Tensor | None]:
    return [None if g is None else torch.tensor(g, dtype=torch.float64) for g in case.args["grads"]]


def _params(case: Case) -> list[torch.Tensor]:
    ps = []
    for g in _grads(case):
        p = torch.zeros(1 if g is None else g.shape, dtype=torch.float64, requires_grad=True)
        p.grad = g
        ps.append(p)
    return ps


def _random_grads(rng: np.random.Generator, none: bool = True) -> list[Any]:
    out: list[Any] = [rng.normal(size=tuple(rng.integers(1, 5, size=rng.integers(1, 3)))) * rng.choice([0.1, 1, 10])
                      for _ in range(rng.integers(1, 5))]
    if none and rng.random() < 0.5:
        out.append(None)
    return out


def _given(case: Case, items: list[Any]) -> Any:
    """What the answer is called with: the list, a generator over it, or its single tensor."""
    if case.args.get("single"):
        return items[0]
    return iter(items) if case.args.get("gen") else items


def _grads_after(params: list[torch.Tensor]) -> Outputs:
    """Each parameter's gradient after the call (NaN where it has none)."""
    return {f"grad{i}": np.array(np.nan) if p.grad is None else p.grad.detach().numpy().copy()
            for i, p in enumerate(params)}


def _plain(value: Any, what: str) -> Outputs:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor (torch returns a 0-d tensor), got {type(value).__name__}")
    return {"out": to_plain(value, what), "dtype": np.array(str(value.dtype))}


class GetTotalNorm(Exercise):
    name = "get_total_norm"
    grade_id = "test_get_total_norm"
    points = 2.0
    rtol, atol = 1e-6, 1e-12
    forbidden = ("torch.nn.utils.get_total_norm", "torch.nn.utils.clip_grad_norm_", "torch._foreach_norm")
    facets = (Facet("combined norm", 1.0, "2-, 1-, 3-norms of several tensors together"),
              Facet("conventions", 1.0, "inf norm, generator, single tensor, empty, non-finite flag"))

    def public_cases(self) -> list[Case]:
        g = [np.array([3.0]), np.array([4.0])]
        return [Case("[3], [4], 2-norm", {"grads": g, "norm_type": 2.0}, True, "combined norm"),
                Case("[[1,-2],[3,0]], [-5], inf norm", {"grads": [np.array([[1.0, -2.0], [3.0, 0.0]]), np.array([-5.0])],
                                                       "norm_type": INF}, True, "conventions"),
                Case("no tensors", {"grads": [], "norm_type": 2.0}, True, "conventions")]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = [Case(f"random grads, norm_type={nt}", {"grads": _random_grads(rng, False), "norm_type": nt}, False,
                      "combined norm") for nt in (2.0, 1.0, 3.0)]
        cases += [Case("random grads, inf norm", {"grads": _random_grads(rng, False), "norm_type": INF}, False, "conventions"),
                  Case("a generator", {"grads": _random_grads(rng, False), "norm_type": 2.0, "gen": True}, False, "conventions"),
                  Case("a single tensor", {"grads": [rng.normal(size=(2, 3))], "norm_type": 2.0, "single": True}, False, "conventions"),
                  Case("nan, error_if_nonfinite=False", {"grads": [np.array([np.nan, 1.0])], "norm_type": 2.0}, False, "conventions"),
                  Case("inf, error_if_nonfinite=True", {"grads": [np.array([np.inf, 1.0])], "norm_type": 2.0, "err": True}, False, "conventions")]
        return cases

    def run(self, impl: Any, case: Case) -> Outputs:
        return _plain(impl(_given(case, _grads(case)), case.args["norm_type"], error_if_nonfinite=case.args.get("err", False)), "the total norm")

    def torch_reference(self) -> Any:
        return tnu.get_total_norm


class ClipGradNorm(Exercise):
    name = "clip_grad_norm_"
    grade_id = "test_clip_grad_norm_"
    points = 3.0
    rtol, atol = 1e-6, 1e-12
    forbidden = ("torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grads_with_norm_", "torch._foreach_mul_")
    facets = (Facet("scaled gradients", 2.0, "every gradient scaled by min(1, max_norm/(total+1e-6)), also at equality"),
              Facet("returned norm", 1.0, "the pre-clip total as a tensor; generator, single tensor, no grads"))

    def public_cases(self) -> list[Case]:
        return [Case("grads [3,4], max_norm=1", {"grads": [np.array([3.0, 4.0])], "max_norm": 1.0}, True, "scaled gradients"),
                Case("grads [3,4], max_norm=5 (equality: still scaled)", {"grads": [np.array([3.0, 4.0])], "max_norm": 5.0}, True, "scaled gradients"),
                Case("grads [0.003,0.004], max_norm=0.005 (equality: scaled by 0.005/(0.005+1e-6))",
                     {"grads": [np.array([0.003, 0.004])], "max_norm": 0.005}, True, "scaled gradients"),
                Case("no grads", {"grads": [None], "max_norm": 1.0}, True, "returned norm")]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = [Case(f"random grads, max_norm={m}, norm_type={nt}", {"grads": _random_grads(rng), "max_norm": m, "norm_type": nt},
                      False, "scaled gradients") for m, nt in ((0.5, 2.0), (100.0, 2.0), (1.0, 1.0), (0.3, INF))]
        cases += [Case("a generator", {"grads": _random_grads(rng), "max_norm": 0.5, "gen": True}, False, "returned norm"),
                  Case("a single tensor", {"grads": [rng.normal(size=4)], "max_norm": 0.5, "single": True}, False, "returned norm")]
        return cases

    def run(self, impl: Any, case: Case) -> Outputs:
        ps = _params(case)
        out = _plain(impl(_given(case, ps), case.args["max_norm"], case.args.get("norm_type", 2.0)),
                     "the returned norm")
        return {**out, **_grads_after(ps)}

    def torch_reference(self) -> Any:
        return tnu.clip_grad_norm_


class ClipGradValue(Exercise):
    name = "clip_grad_value_"
    grade_id = "test_clip_grad_value_"
    points = 2.0
    rtol, atol = 0.0, 0.0
    forbidden = ("torch.nn.utils.clip_grad_value_", "torch._foreach_clamp_min_", "torch._foreach_clamp_max_")
    facets = (Facet("clamped gradients", 1.0, "every gradient clamped to [-clip_value, clip_value]"),
              Facet("conventions", 1.0, "None grads, generator, single tensor, returns None"))

    def public_cases(self) -> list[Case]:
        return [Case("grads [-3, 0.5], clip_value=1", {"grads": [np.array([-3.0, 0.5])], "clip": 1.0}, True, "clamped gradients"),
                Case("grads [-3, 0.5] and None", {"grads": [np.array([-3.0, 0.5]), None], "clip": 1.0}, True, "conventions")]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return [Case("random grads, clip_value=0.7", {"grads": [g for g in _random_grads(rng) if g is not None], "clip": 0.7}, False, "clamped gradients"),
                Case("a generator", {"grads": [rng.normal(size=5), None], "clip": 0.4, "gen": True}, False, "conventions"),
                Case("a single tensor", {"grads": [rng.normal(size=5)], "clip": 0.4, "single": True}, False, "conventions")]

    def run(self, impl: Any, case: Case) -> Outputs:
        ps = _params(case)
        ret = impl(_given(case, ps), case.args["clip"])
        return {"returns None": np.array(ret is None), **_grads_after(ps)}

    def torch_reference(self) -> Any:
        return tnu.clip_grad_value_


EXERCISES = {ex.name: ex for ex in (GetTotalNorm(), ClipGradNorm(), ClipGradValue())}
check = make_check(EXERCISES)
