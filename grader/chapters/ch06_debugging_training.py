"""Checks for Chapter 6, debugging training.

Twelve exercises, 23 points:

- the clipping trio, against torch 2.13's ``torch.nn.utils`` in float64: ``get_total_norm`` (2),
  ``clip_grad_norm_`` (3, checked on a correct ``get_total_norm``: a mistake there is charged
  once), ``clip_grad_value_`` (2);
- ``gradcheck`` (3): the learner's verdicts must be ``torch.autograd.gradcheck``'s on correct and
  planted-bug ``autograd.Function``s, with several outputs, inputs that do not require grad and
  several ``eps``/``rtol``/``atol``;
- the sanity battery, each against a reference written here from its stated conventions (torch
  has no such functions), on float64 models: ``initial_loss_check`` (1), ``overfit_one_batch``
  (1), ``batch_dependence`` (2), ``grad_stats`` (1);
- the bug zoo ``zoo_1`` .. ``zoo_4`` (2 each): an answer returns ``(Bug member, repaired loop)``;
  the name is one facet, the other runs the repaired loop under the seed and the hyperparameters
  the grader chooses (hidden: others, other data and model sizes) and compares its loss
  trajectory with the reference loop's (``lossopt_helpers.bugzoo``), rtol 1e-4. A "repair" that
  hides the bug (a lower learning rate, clipping, dropout removed, the scheduler removed)
  changes the trajectory and fails.

Every exercise has a table of mistakes (wrong implementations, each charged to one facet) whose
diagnosis the learner reads as "Likely mistake: ...". ``tests/corpus/ch06_debugging_training.py``
holds learner-style versions of them, and the tests check that each loses exactly its facet.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import utils as tnu

from grader.chapters.ch03_sgd import fmt  # hyperparameters as written in a call
from grader.kit.exercise import (Case, Exercise, Facet, ForbiddenCallError, Mistake, Outputs,
                                 make_check)
from grader.kit.threads import one_thread
from lossopt_helpers import bugzoo
from lossopt_helpers.bugzoo import Bug

CHAPTER = "06_debugging_training"
INF = float("inf")


# ---------------------------------------------------------------------------------------------
# Plain data <-> parameters with gradients


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
    out: list[Any] = [rng.normal(size=tuple(rng.integers(1, 5, size=rng.integers(1, 3))))
                      * rng.choice([0.1, 1, 10]) for _ in range(rng.integers(2, 5))]
    if none and rng.random() < 0.5:
        out.insert(int(rng.integers(0, len(out))), None)
    return out


def _given(case: Case, items: list[Any]) -> Any:
    """What the answer is called with: the list, a generator over it, or its single tensor."""
    if case.args.get("single"):
        return items[0]
    return (x for x in items) if case.args.get("gen") else items


def _grads_after(params: list[torch.Tensor]) -> Outputs:
    """Each parameter's gradient after the call (NaN where it has none)."""
    return {f"grad{i}": np.array(np.nan) if p.grad is None else p.grad.detach().numpy().copy()
            for i, p in enumerate(params)}


def _text(value: str) -> np.ndarray:
    """A string output (0-d: the only kind the sandbox wire carries)."""
    return np.array(value)


def _norm_outputs(value: Any) -> Outputs:
    """A returned norm: its value, whether it is a tensor (torch returns a 0-d tensor), its dtype.
    A Python float or None is read, not refused, so that the mistake can be named."""
    if value is None:
        return {"returns a tensor": np.array(False), "dtype": _text("NoneType"),
                "out": np.array(np.nan)}
    if type(value) is torch.Tensor:
        return {"returns a tensor": np.array(True), "dtype": _text(str(value.dtype)),
                "out": np.array(value.detach().cpu().double().numpy(), copy=True)}
    if type(value) in (float, int):
        return {"returns a tensor": np.array(False), "dtype": _text(type(value).__name__),
                "out": np.array(float(value))}
    raise TypeError(f"the total norm must be a 0-d torch.Tensor, got {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# The clipping trio: mistakes as models (correct code with one thing wrong)


def _norm_model(*, summed: bool = False, no_abs: bool = False, twice: bool = False,
                as_float: bool = False, ignore_flag: bool = False) -> Callable[..., Any]:
    def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
        if isinstance(tensors, torch.Tensor):
            tensors = [tensors]
        if twice:
            len(list(tensors))  # a first pass that exhausts a generator
        tensors = [t for t in tensors if t is not None]
        p = float(norm_type)
        if not tensors:
            total = torch.tensor(0.0)
        elif p == INF and no_abs:
            total = torch.stack([t.max() for t in tensors]).max()
        elif summed:
            total = sum(torch.linalg.vector_norm(t, p) for t in tensors)
        else:
            total = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(t, p) for t in tensors]), p)
        if error_if_nonfinite and not ignore_flag and not bool(torch.isfinite(total)):
            raise RuntimeError("non-finite total norm")
        return total.item() if as_float else total
    return get_total_norm


_right_norm = _norm_model()


def _clip_model(*, branch: bool = False, per_param: bool = False, post: bool = False,
                as_float: bool = False, twice: bool = False, no_clamp: bool = False,
                flag_dropped: bool = False, no_return: bool = False) -> Callable[..., Any]:
    def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                        foreach=None):
        if isinstance(parameters, torch.Tensor):
            parameters = [parameters]
        if flag_dropped:
            error_if_nonfinite = False
        if twice:  # the norm from one pass over a generator, the gradients from a second one
            total = _right_norm([p.grad for p in parameters if p.grad is not None], norm_type,
                                error_if_nonfinite)
            grads = [p.grad for p in parameters if p.grad is not None]
        else:
            grads = [p.grad for p in parameters if p.grad is not None]
            total = _right_norm(grads, norm_type, error_if_nonfinite)
        if per_param:
            for g in grads:
                own = _right_norm([g], norm_type)
                g.mul_(torch.clamp(max_norm / (own + 1e-6), max=1.0))
        elif branch:
            if total > max_norm:
                for g in grads:
                    g.mul_(max_norm / total)
        elif grads:
            coef = max_norm / (total + 1e-6)
            coef = coef if no_clamp else torch.clamp(coef, max=1.0)
            for g in grads:
                g.mul_(coef)
        if post:
            total = _right_norm(grads, norm_type) if grads else total
        if no_return:
            return None
        return total.item() if as_float else total
    return clip_grad_norm_


def _value_model(*, one_side: bool = False, returns: bool = False, abs_clip: bool = False
                 ) -> Callable[..., Any]:
    def clip_grad_value_(parameters, clip_value, foreach=None):
        if isinstance(parameters, torch.Tensor):
            parameters = [parameters]
        grads = [p.grad for p in parameters if p.grad is not None]
        for g in grads:
            if one_side:
                g.clamp_(max=clip_value)
            elif abs_clip:
                g.copy_(g.abs().clamp(max=clip_value))
            else:
                g.clamp_(-clip_value, clip_value)
        return grads if returns else None
    return clip_grad_value_


class GetTotalNorm(Exercise):
    name = "get_total_norm"
    grade_id = "test_get_total_norm"
    points = 2.0
    rtol, atol = 1e-6, 1e-12
    forbidden = ("torch.nn.utils.get_total_norm", "torch.nn.utils.clip_grad_norm_",
                 "torch.nn.utils.clip_grad._get_total_norm", "torch._foreach_norm")
    facets = (Facet("combined norm", 1.0, "2-, 1-, 3-norms of several tensors together"),
              Facet("conventions", 1.0, "inf norm, generator, single tensor, no tensors, "
                                        "non-finite totals with both flag values, a 0-d tensor"))
    mistakes = (
        Mistake("summed_norms", "the per-tensor norms are added up: the total of p-norms is the "
                "p-norm of the per-tensor norms, (sum_i ||g_i||_p^p)^(1/p), not their sum",
                _norm_model(summed=True), facet="combined norm"),
        Mistake("inf_norm_without_abs", "the inf-norm is max |g|: without abs a large negative "
                "entry is missed", _norm_model(no_abs=True), facet="conventions"),
        Mistake("generator_consumed_twice", "the tensors are read twice: a generator is empty "
                "the second time, so read `tensors` into a list once", _norm_model(twice=True),
                facet="conventions"),
        Mistake("python_float", "the total is returned as a Python float (.item()): torch "
                "returns a 0-d tensor", _norm_model(as_float=True), facet="conventions"),
        Mistake("nonfinite_flag_ignored", "error_if_nonfinite=True must raise RuntimeError for a "
                "nan or inf total", _norm_model(ignore_flag=True), facet="conventions"),
    )

    def public_cases(self) -> list[Case]:
        g = [np.array([3.0]), np.array([4.0])]
        return [Case("[3], [4], 2-norm", {"grads": g, "norm_type": 2.0}, True, "combined norm"),
                Case("[[1,-2],[3,0]], [-5], inf norm",
                     {"grads": [np.array([[1.0, -2.0], [3.0, 0.0]]), np.array([-5.0])],
                      "norm_type": INF}, True, "conventions"),
                Case("no tensors", {"grads": [], "norm_type": 2.0}, True, "conventions")]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = [Case(f"random grads, norm_type={nt}", {"grads": _random_grads(rng, False),
                                                         "norm_type": nt}, False, "combined norm")
                 for nt in (2.0, 1.0, 3.0)]
        cases += [
            Case("random grads, inf norm", {"grads": _random_grads(rng, False),
                                            "norm_type": INF}, False, "conventions"),
            Case("a generator", {"grads": _random_grads(rng, False), "norm_type": 2.0,
                                 "gen": True}, False, "conventions"),
            Case("a single tensor", {"grads": [rng.normal(size=(2, 3))], "norm_type": 2.0,
                                     "single": True}, False, "conventions"),
            Case("a 0-d tensor and a vector", {"grads": [np.array(rng.normal()),
                                                         rng.normal(size=3)],
                                               "norm_type": 2.0}, False, "conventions"),
            Case("nan, error_if_nonfinite=False", {"grads": [np.array([np.nan, 1.0])],
                                                   "norm_type": 2.0}, False, "conventions"),
            Case("inf, error_if_nonfinite=True", {"grads": [np.array([np.inf, 1.0])],
                                                  "norm_type": 2.0, "err": True}, False,
                 "conventions")]
        return cases

    def run(self, impl: Any, case: Case) -> Outputs:
        return _norm_outputs(impl(_given(case, _grads(case)), case.args["norm_type"],
                                  error_if_nonfinite=case.args.get("err", False)))

    def torch_reference(self) -> Any:
        return tnu.get_total_norm


class ClipGradNorm(Exercise):
    name = "clip_grad_norm_"
    grade_id = "test_clip_grad_norm_"
    points = 3.0
    rtol, atol = 1e-6, 1e-12
    forbidden = ("torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grads_with_norm_",
                 "torch.nn.utils.get_total_norm", "torch.nn.utils.clip_grad.clip_grad_norm_",
                 "torch.nn.utils.clip_grad._clip_grads_with_norm_", "torch._foreach_mul_")
    facets = (Facet("scaled gradients", 2.0, "every gradient scaled by "
                    "min(1, max_norm/(total+1e-6)), also at equality, 2-, 1- and inf-norms"),
              Facet("returned norm", 1.0, "the pre-clip total as a tensor; generator, single "
                                          "tensor, no gradients, non-finite totals with both "
                                          "flag values"))
    depends_on = ("get_total_norm",)
    mistakes = (
        Mistake("branch_without_eps", "clipping only `if total > max_norm`, by max_norm/total: "
                "torch always multiplies by min(1, max_norm/(total + 1e-6)), so gradients are "
                "scaled at equality too", _clip_model(branch=True), facet="scaled gradients"),
        Mistake("per_parameter_clipping", "each gradient is clipped by its own norm: the total "
                "is the norm of all gradients together, and one coefficient scales them all",
                _clip_model(per_param=True), facet="scaled gradients"),
        Mistake("coefficient_not_clamped", "the coefficient is not clamped at 1: gradients "
                "whose total is below max_norm are scaled up", _clip_model(no_clamp=True),
                facet="scaled gradients"),
        Mistake("post_clip_norm", "the norm after clipping is returned: return the total from "
                "before", _clip_model(post=True), facet="returned norm"),
        Mistake("python_float", "the total is returned as a Python float (.item()): torch "
                "returns a 0-d tensor", _clip_model(as_float=True), facet="returned norm"),
        Mistake("returns_nothing", "nothing is returned: clip_grad_norm_ returns the total "
                "norm from before clipping (a 0-d tensor), which training loops log",
                _clip_model(no_return=True), facet="returned norm"),
        Mistake("generator_consumed_twice", "the parameters are read twice: a generator is "
                "empty the second time, so read `parameters` into a list once",
                _clip_model(twice=True), facet="returned norm"),
        Mistake("nonfinite_flag_not_passed", "error_if_nonfinite is not passed on to "
                "get_total_norm: with True, a nan or inf total must raise RuntimeError",
                _clip_model(flag_dropped=True), facet="returned norm"),
    )

    def public_cases(self) -> list[Case]:
        return [
            Case("grads [3,4], max_norm=1", {"grads": [np.array([3.0, 4.0])], "max_norm": 1.0},
                 True, "scaled gradients"),
            Case("grads [3,4], max_norm=5 (equality: still scaled)",
                 {"grads": [np.array([3.0, 4.0])], "max_norm": 5.0}, True, "scaled gradients"),
            Case("grads [0.003,0.004], max_norm=0.005 (equality: scaled by 0.005/(0.005+1e-6))",
                 {"grads": [np.array([0.003, 0.004])], "max_norm": 0.005}, True,
                 "scaled gradients"),
            Case("no grads", {"grads": [None], "max_norm": 1.0}, True, "returned norm")]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = [Case(f"random grads, max_norm={m}, norm_type={nt}",
                      {"grads": _random_grads(rng), "max_norm": m, "norm_type": nt},
                      False, "scaled gradients")
                 for m, nt in ((0.5, 2.0), (100.0, 2.0), (1.0, 1.0), (0.3, INF))]
        cases += [Case("two grads [0.003], [0.004], max_norm=0.005",
                       {"grads": [np.array([0.003]), np.array([0.004])], "max_norm": 0.005},
                       False, "scaled gradients"),
                  Case("a generator", {"grads": [rng.normal(size=3), None, rng.normal(size=2)],
                                       "max_norm": 0.5, "gen": True}, False, "returned norm"),
                  Case("a single tensor", {"grads": [rng.normal(size=4)], "max_norm": 0.5,
                                           "single": True}, False, "returned norm"),
                  Case("an empty list", {"grads": [], "max_norm": 1.0}, False, "returned norm"),
                  Case("a nan gradient, error_if_nonfinite=False (every gradient becomes nan)",
                       {"grads": [np.array([np.nan, 1.0]), rng.normal(size=2)], "max_norm": 1.0},
                       False, "returned norm"),
                  Case("an inf gradient, error_if_nonfinite=True",
                       {"grads": [np.array([np.inf, 1.0])], "max_norm": 1.0, "err": True}, False,
                       "returned norm")]
        return cases

    def run(self, impl: Any, case: Case) -> Outputs:
        ps = _params(case)
        ret = impl(_given(case, ps), case.args["max_norm"], case.args.get("norm_type", 2.0),
                   error_if_nonfinite=case.args.get("err", False))
        if case.facet == "scaled gradients":  # what it returns is the other facet's business
            return _grads_after(ps)
        return {**_norm_outputs(ret), **_grads_after(ps)}

    def torch_reference(self) -> Any:
        return tnu.clip_grad_norm_

    def substitutes(self) -> dict[str, Any]:
        return {"get_total_norm": _right_norm}


class ClipGradValue(Exercise):
    name = "clip_grad_value_"
    grade_id = "test_clip_grad_value_"
    points = 2.0
    rtol, atol = 0.0, 0.0
    forbidden = ("torch.nn.utils.clip_grad_value_", "torch.nn.utils.clip_grad.clip_grad_value_",
                 "torch._foreach_clamp_min_", "torch._foreach_clamp_max_")
    facets = (Facet("clamped gradients", 1.0, "every gradient clamped to "
                                              "[-clip_value, clip_value]"),
              Facet("conventions", 1.0, "None grads, generator, single tensor, returns None"))
    mistakes = (
        Mistake("clamped_one_side", "only the upper bound is applied: clamp to "
                "[-clip_value, clip_value]", _value_model(one_side=True),
                facet="clamped gradients"),
        Mistake("clipped_magnitudes", "the magnitudes are clamped and the signs lost: clamp the "
                "gradient itself", _value_model(abs_clip=True), facet="clamped gradients"),
        Mistake("returns_gradients", "clip_grad_value_ works in place and returns None",
                _value_model(returns=True), facet="conventions"),
    )

    def public_cases(self) -> list[Case]:
        return [Case("grads [-3, 0.5], clip_value=1", {"grads": [np.array([-3.0, 0.5])],
                                                       "clip": 1.0}, True, "clamped gradients"),
                Case("grads [-3, 0.5] and None", {"grads": [np.array([-3.0, 0.5]), None],
                                                  "clip": 1.0}, True, "conventions")]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return [Case("random grads, clip_value=0.7",
                     {"grads": [g for g in _random_grads(rng) if g is not None], "clip": 0.7},
                     False, "clamped gradients"),
                Case("a generator", {"grads": [rng.normal(size=5), None], "clip": 0.4,
                                     "gen": True}, False, "conventions"),
                Case("a single tensor", {"grads": [rng.normal(size=5)], "clip": 0.4,
                                         "single": True}, False, "conventions")]

    def run(self, impl: Any, case: Case) -> Outputs:
        ps = _params(case)
        ret = impl(_given(case, ps), case.args["clip"])
        if case.facet == "clamped gradients":
            return _grads_after(ps)
        return {"returns None": np.array(ret is None), **_grads_after(ps)}

    def torch_reference(self) -> Any:
        return tnu.clip_grad_value_


# ---------------------------------------------------------------------------------------------
# gradcheck: correct and planted-bug autograd.Functions, by name (cases are plain data)


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class SquareMissing2(Square):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g  # the factor 2 is missing


class MatVec(torch.autograd.Function):
    """W (m, n) @ v (n,)."""

    @staticmethod
    def forward(ctx, W, v):
        ctx.save_for_backward(W, v)
        return W @ v

    @staticmethod
    def backward(ctx, g):
        W, v = ctx.saved_tensors
        return torch.outer(g, v), W.t() @ g


class MatMulTransposed(torch.autograd.Function):
    """A (m, m) @ B (m, m): the gradient of A uses B where B.T belongs (square, so that the
    wrong gradient still has the right shape)."""

    @staticmethod
    def forward(ctx, A, B):
        ctx.save_for_backward(A, B)
        return A @ B

    @staticmethod
    def backward(ctx, g):
        A, B = ctx.saved_tensors
        return g @ B, A.t() @ g  # g @ B.t() is right for A


class MatMul(MatMulTransposed):
    @staticmethod
    def backward(ctx, g):
        A, B = ctx.saved_tensors
        return g @ B.t(), A.t() @ g


class BroadcastAdd(torch.autograd.Function):
    """a (m, n) + b (n,): the gradient of b is returned unreduced, (m, n); autograd sums it."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


class BroadcastAddMean(BroadcastAdd):
    @staticmethod
    def backward(ctx, g):
        return g, g.mean(0)  # the broadcast dimension is averaged, not summed


class Mul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, g * a


class MulSignFlip(Mul):
    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, -g * a


class MulSecondIgnored(Mul):
    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, None  # b's gradient is forgotten


class SinCos(torch.autograd.Function):
    """Two outputs: sin(x) * y and cos(x)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return torch.sin(x) * y, torch.cos(x)

    @staticmethod
    def backward(ctx, g1, g2):
        x, y = ctx.saved_tensors
        return g1 * torch.cos(x) * y - g2 * torch.sin(x), g1 * torch.sin(x)


class SinCosBug(SinCos):
    @staticmethod
    def backward(ctx, g1, g2):
        x, y = ctx.saved_tensors
        return g1 * torch.cos(x) * y + g2 * torch.sin(x), g1 * torch.sin(x)  # cos' = -sin


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "square": Square.apply, "square (factor 2 missing)": SquareMissing2.apply,
    "W @ v": MatVec.apply, "A @ B": MatMul.apply,
    "A @ B (transposed gradient)": MatMulTransposed.apply,
    "a + b broadcast (unreduced gradient)": BroadcastAdd.apply,
    "a + b broadcast (gradient averaged)": BroadcastAddMean.apply,
    "a * b": Mul.apply, "a * b (sign flipped)": MulSignFlip.apply,
    "a * b (b ignored)": MulSecondIgnored.apply,
    "(sin x * y, cos x)": SinCos.apply, "(sin x * y, cos x) (cos' wrong)": SinCosBug.apply,
    "x ** 3": lambda x: x ** 3,
    "1e4 * x ** 3": lambda x: 1e4 * x ** 3,
    "exp(3 x) + x * z": lambda x, z: torch.exp(3 * x) + x * z,
}


def _gc_model(*, forward: bool = False, keep: bool = False, copy: bool = False,
              atol_only: bool = False, single: bool = False) -> Callable[..., Any]:
    """gradcheck with one thing wrong: forward differences, the perturbation not restored (left
    at x - eps), perturbing a copy, an absolute tolerance only, float32 numerics."""
    def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
        inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
        checked = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
        if single:
            work = tuple(x.detach().float().requires_grad_(x.requires_grad) for x in inputs)
            checked_w = [w for w, x in zip(work, inputs) if x.requires_grad]
        else:
            work, checked_w = inputs, checked

        def outs():
            o = func(*work)
            return (o,) if isinstance(o, torch.Tensor) else tuple(o)

        analytical = []
        for o in outs():
            flat = o.reshape(-1)
            rows = [torch.zeros(flat.numel(), x.numel(), dtype=x.dtype) for x in checked_w]
            for j in range(flat.numel()):
                gs = torch.autograd.grad(flat[j], checked_w, retain_graph=True, allow_unused=True)
                for J, g in zip(rows, gs):
                    if g is not None:
                        J[j] = g.reshape(-1)
            analytical.append(rows)
        ok = True
        for k, x in enumerate(checked_w):
            data = x.detach().clone().view(-1) if copy else x.detach().view(-1)
            num = [torch.zeros_like(a[k]) for a in analytical]
            for i in range(data.numel()):
                orig = data[i].item()
                with torch.no_grad():
                    data[i] = orig + eps
                    plus = [o.detach().reshape(-1).clone() for o in outs()]
                    if forward:
                        data[i] = orig
                        minus = [o.detach().reshape(-1).clone() for o in outs()]
                    else:
                        data[i] = orig - eps
                        minus = [o.detach().reshape(-1).clone() for o in outs()]
                        if not keep:
                            data[i] = orig
                for N, p, m in zip(num, plus, minus):
                    N[:, i] = (p - m) / (eps if forward else 2 * eps)
            for a, N in zip(analytical, num):
                close = ((a[k] - N).abs() <= atol).all() if atol_only else \
                    torch.allclose(a[k], N, rtol=rtol, atol=atol)
                ok = ok and bool(close)
        if not ok and raise_exception:
            raise RuntimeError("Jacobian mismatch")
        return ok
    return gradcheck


def _torch_gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    return torch.autograd.gradcheck(func, inputs, eps=eps, atol=atol, rtol=rtol,
                                    raise_exception=raise_exception)


class Gradcheck(Exercise):
    name = "gradcheck"
    grade_id = "test_gradcheck"
    points = 3.0
    rtol, atol = 0.0, 0.0
    # Functions, not the module: GradcheckError, which answers raise, lives there too. In the
    # notebook torch.autograd.gradcheck(...) (the same function under another name) trips over
    # the internals it calls; the grading core wires every name of the same object.
    forbidden = ("torch.autograd.gradcheck.gradcheck", "torch.autograd.gradcheck.gradgradcheck",
                 "torch.autograd.gradcheck._gradcheck_helper",
                 "torch.autograd.gradcheck._gradcheck_real_imag",
                 "torch.autograd.gradcheck._get_numerical_jacobian",
                 "torch.autograd.gradcheck.get_numerical_jacobian",
                 "torch.autograd.gradcheck.get_analytical_jacobian",
                 "torch.autograd.gradcheck._get_analytical_jacobian",
                 "torch.autograd.gradgradcheck",
                 "grader.chapters.ch06_debugging_training._torch_gradcheck")
    facets = (Facet("verdicts", 2.0, "True and False where torch.autograd.gradcheck says so "
                                     "(raise_exception=False), planted bugs, several outputs, "
                                     "several eps/rtol/atol"),
              Facet("contract", 1.0, "raise_exception=True raises on a mismatch and returns True "
                                     "otherwise; the inputs are left bitwise unchanged"))
    mistakes = (
        Mistake("forward_differences", "forward differences (f(x+eps) - f(x)) / eps have an error "
                "of order eps * f''; use central differences (f(x+eps) - f(x-eps)) / (2 eps)",
                _gc_model(forward=True), facet="verdicts"),
        Mistake("perturbation_not_restored", "an input is left perturbed after its differences "
                "are taken: restore each element to its original value",
                _gc_model(keep=True), facet="contract"),
        Mistake("perturbed_a_copy", "the perturbation is applied to a copy that func never sees: "
                "the numerical Jacobian comes out all zeros", _gc_model(copy=True),
                facet="verdicts"),
        Mistake("absolute_tolerance_only", "only atol is used: the test is |a - n| <= atol + "
                "rtol * |n|, and large derivatives need the relative part",
                _gc_model(atol_only=True), facet="verdicts"),
        Mistake("float32_check", "the check runs in float32: with eps=1e-6, float32 differences "
                "are mostly rounding noise; keep the inputs' float64", _gc_model(single=True),
                facet="verdicts"),
    )

    # A verdicts case checks a group of functions at once, one output per function, so that a
    # wrong answer is told apart from the other mistakes by its whole pattern of verdicts.
    def public_cases(self) -> list[Case]:
        x = np.array([0.5, -1.0, 2.0])
        return [Case("square and square with the factor 2 missing at x = [0.5, -1, 2]",
                     {"items": [("square", "square", [x], [True], {}),
                                ("square (factor 2 missing)", "square (factor 2 missing)", [x],
                                 [True], {}),
                                ("square, eps=1e-2, rtol=1e-2", "square", [x], [True],
                                 {"eps": 1e-2, "rtol": 1e-2})]}, True, "verdicts"),
                self._contract("square, raise_exception=True", "square", [x], [True]),
                self._contract("factor 2 missing, raise_exception=True",
                               "square (factor 2 missing)", [x], [True])]

    @staticmethod
    def _contract(label: str, fn: str, inputs: list[np.ndarray], grad: list[bool],
                  public: bool = True, **tol: float) -> Case:
        return Case(label, {"items": [(label, fn, inputs, grad, tol)], "raise_exception": True},
                    public, "contract")

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        def r(*shape: int) -> np.ndarray:
            return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)

        m, n = int(rng.integers(2, 4)), int(rng.integers(2, 4))
        k = m + 1  # A (m, k) @ B (k, m); the transposed-gradient bug needs square ones to run
        items = [(fn, fn, ins, [True] * len(ins), {}) for fn, ins in (
            ("W @ v", [r(m, n), r(n)]),
            ("A @ B", [r(m, k), r(k, m)]),
            ("A @ B (transposed gradient)", [r(m, m), r(m, m)]),
            ("a + b broadcast (unreduced gradient)", [r(m, n), r(n)]),
            ("a + b broadcast (gradient averaged)", [r(m, n), r(n)]),
            ("a * b", [r(n), r(n)]),
            ("a * b (sign flipped)", [r(n), r(n)]),
            ("a * b (b ignored)", [r(n), r(n)]),
            ("(sin x * y, cos x)", [r(n), r(n)]),
            ("(sin x * y, cos x) (cos' wrong)", [r(n), r(n)]))]
        items += [
            ("a * b (b ignored), b does not require grad", "a * b (b ignored)", [r(n), r(n)],
             [True, False], {}),
            ("a * b, eps=1e-2, rtol=1e-2", "a * b", [r(n), r(n)], [True, True],
             {"eps": 1e-2, "rtol": 1e-2}),
            ("x ** 3 at x ~ 3, eps=1e-3", "x ** 3", [rng.uniform(2.5, 3.5, n)], [True],
             {"eps": 1e-3}),
            ("1e4 * x ** 3 at x ~ 10", "1e4 * x ** 3", [rng.uniform(8.0, 12.0, n)], [True], {}),
            ("exp(3 x) + x * z, z constant, eps=1e-4, atol=1e-7, rtol=1e-6", "exp(3 x) + x * z",
             [r(n), r(n)], [True, False], {"eps": 1e-4, "atol": 1e-7, "rtol": 1e-6})]
        return [Case("every planted bug, several outputs, eps/rtol/atol",
                     {"items": items}, False, "verdicts"),
                self._contract("(sin x * y, cos x), raise_exception=True", "(sin x * y, cos x)",
                               [r(n), r(n)], [True, True], public=False),
                self._contract("a * b (sign flipped), raise_exception=True",
                               "a * b (sign flipped)", [r(n), r(n)], [True, True], public=False),
                self._contract("x ** 3 at x ~ 3, eps=1e-3: inputs unchanged", "x ** 3",
                               [rng.uniform(2.5, 3.5, n)], [True], public=False, eps=1e-3)]

    def run(self, impl: Any, case: Case) -> Outputs:
        raise_exception = case.args.get("raise_exception", False)
        out: Outputs = {}
        unchanged = True
        for label, fn, arrays, grad, tol in case.args["items"]:
            inputs = tuple(torch.tensor(x, dtype=torch.float64).requires_grad_(g)
                           for x, g in zip(arrays, grad))
            before = [x.detach().clone() for x in inputs]
            try:
                with one_thread():
                    result = impl(FUNCTIONS[fn], inputs, raise_exception=raise_exception, **tol)
                verdict = repr(result) if type(result) is bool else \
                    f"returned a {type(result).__name__}, not a bool"
            except NotImplementedError:  # a stub (NotImplementedError is a RuntimeError too)
                raise
            except RuntimeError:  # GradcheckError is a RuntimeError
                verdict = "raised RuntimeError"
            out[f"verdict on {label}"] = _text(verdict)
            unchanged = unchanged and all(torch.equal(x.detach(), b)
                                          for x, b in zip(inputs, before))
        if case.facet == "contract":
            out["inputs unchanged"] = np.array(unchanged)
        return out

    def torch_reference(self) -> Any:
        return _torch_gradcheck


# ---------------------------------------------------------------------------------------------
# The sanity battery: small float64 models, built from a name and a seed


class TimeMajor(nn.Module):
    """(N, T, F) -> (N, H): a per-time-step linear layer applied in time-major layout. With
    ``bug``, the batch is made time-major with ``view`` where ``permute`` belongs, which mixes
    samples."""

    def __init__(self, features: int, hidden: int, bug: bool) -> None:
        super().__init__()
        self.linear, self.bug = nn.Linear(features, hidden), bug

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, f = x.shape
        h = x.view(t, n, f) if self.bug else x.permute(1, 0, 2)  # (T, N, F)
        h = torch.tanh(self.linear(h))  # (T, N, H)
        return (h.view(n, t, -1) if self.bug else h.permute(1, 0, 2)).sum(1)  # (N, H)


class Centered(nn.Module):
    """Subtracts the batch mean before a linear layer: every output depends on every sample."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x - x.mean(0, keepdim=True))


def build_model(kind: str, seed: int, features: int, classes: int, hidden: int = 16) -> nn.Module:
    """A float64 model by name (the cases' plain data), initialised from ``seed``."""
    torch.manual_seed(seed)
    models: dict[str, Callable[[], nn.Module]] = {
        "mlp": lambda: nn.Sequential(nn.Linear(features, hidden), nn.ReLU(),
                                     nn.Linear(hidden, classes)),
        "mlp with dropout": lambda: nn.Sequential(nn.Linear(features, hidden), nn.ReLU(),
                                                  nn.Dropout(0.5), nn.Linear(hidden, classes)),
        "mlp with BatchNorm": lambda: nn.Sequential(nn.Linear(features, hidden),
                                                    nn.BatchNorm1d(hidden), nn.ReLU(),
                                                    nn.Linear(hidden, classes)),
        "mlp with BatchNorm and dropout": lambda: nn.Sequential(
            nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(hidden, classes)),
        "batch-centred linear": lambda: Centered(features, classes),
        "time-major, permute": lambda: TimeMajor(features, hidden, bug=False),
        "time-major, view for permute": lambda: TimeMajor(features, hidden, bug=True),
    }
    model = models[kind]().double()
    if kind == "mlp" and hidden == 17:  # the "last layer too large" variant
        with torch.no_grad():
            model[-1].weight.mul_(20.0)
    return model


def _state(model: nn.Module) -> list[torch.Tensor]:
    return [v.detach().clone() for v in model.state_dict().values()]


def _same_state(model: nn.Module, before: list[torch.Tensor]) -> bool:
    return all(torch.equal(v.detach(), b) for v, b in zip(model.state_dict().values(), before))


def _float(value: Any, what: str) -> float:
    """A returned number: a Python float/int or a 0-d tensor (read, never trusted further)."""
    if type(value) in (float, int):
        return float(value)
    if type(value) is torch.Tensor and value.numel() == 1:
        return float(value.detach().cpu().double().reshape(()).numpy())
    raise TypeError(f"{what} must be a Python float, got {type(value).__name__}")


def _bool(value: Any, what: str) -> bool:
    if type(value) in (bool, np.bool_):
        return bool(value)
    if type(value) is torch.Tensor and value.numel() == 1 and value.dtype == torch.bool:
        return bool(value.item())
    raise TypeError(f"{what} must be a bool, got {type(value).__name__}")


def _batch(rng: np.random.Generator, n: int, features: int, classes: int,
           scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(0.0, scale, (n, features)), rng.integers(0, classes, n)


# The battery's exercises, and their mistakes as models


def _ilc_model(*, train_mode: bool = False, log2: bool = False, not_restored: bool = False
               ) -> Callable[..., Any]:
    def initial_loss_check(model, loss_fn, batch, num_classes):
        X, y = batch
        was_training = model.training
        if not train_mode:
            model.eval()
        with torch.no_grad():
            loss = loss_fn(model(X), y).item()
        if not not_restored:
            model.train(was_training)
        return loss, math.log2(num_classes) if log2 else math.log(num_classes)
    return initial_loss_check


def _overfit_model(*, train_mode: bool = False, no_zero: bool = False, first: bool = False,
                   after: bool = False, not_restored: bool = False) -> Callable[..., Any]:
    def overfit_one_batch(model, loss_fn, optimizer, batch, steps):
        X, y = batch
        was_training = model.training
        if not train_mode:
            model.eval()
        losses = []
        for _ in range(steps):
            if not no_zero:
                optimizer.zero_grad()
            loss = loss_fn(model(X), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if after:
            with torch.no_grad():
                losses.append(loss_fn(model(X), y).item())
        if not not_restored:
            model.train(was_training)
        return losses[0] if first else losses[-1]
    return overfit_one_batch


def _dependence_model(*, summed: bool = False, eval_mode: bool = False, in_place: bool = False
                      ) -> Callable[..., Any]:
    def batch_dependence(model, x, i):
        was_training = model.training
        if eval_mode:
            model.eval()
        x = x.requires_grad_(True) if in_place else x.detach().clone().requires_grad_(True)
        out = model(x)
        (grad,) = torch.autograd.grad(out.sum() if summed else out[i].sum(), x)
        model.train(was_training)
        others = torch.cat([grad[:i], grad[i + 1:]])
        return bool((others != 0).any())
    return batch_dependence


def _stats_model(*, none_as_zero: bool = False, mean_abs: bool = False, squared: bool = False,
                 max_signed: bool = False) -> Callable[..., Any]:
    def grad_stats(model):
        stats = {}
        for name, p in model.named_parameters():
            if p.grad is None and not none_as_zero:
                continue
            g = torch.zeros_like(p) if p.grad is None else p.grad.detach()
            norm = (g ** 2).sum() if squared else g.norm()
            stats[name] = {"grad_norm": norm.item(),
                           "grad_mean": (g.abs() if mean_abs else g).mean().item(),
                           "grad_abs_max": (g.max() if max_signed else g.abs().max()).item(),
                           "param_norm": p.detach().norm().item()}
        return stats
    return grad_stats


# The references of the battery: the models above with no mistake switched on, written from
# the exercise text's conventions (module names: they are what an answer may not call).
ref_initial_loss_check = _ilc_model()
ref_overfit_one_batch = _overfit_model()
ref_batch_dependence = _dependence_model()
ref_grad_stats = _stats_model()


class Battery(Exercise):
    """Shared: float64 models, checked against this module's references in float64."""

    rtol, atol = 1e-9, 1e-12

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.draw(rng, public=False)

    def public_cases(self) -> list[Case]:
        return self.draw(np.random.default_rng(6), public=True)

    def draw(self, rng: np.random.Generator, public: bool) -> list[Case]:
        raise NotImplementedError


class InitialLossCheck(Battery):
    name = "initial_loss_check"
    grade_id = "test_initial_loss_check"
    # The grader's own reference is importable from the notebook (it imports check from here).
    forbidden = ("grader.chapters.ch06_debugging_training.ref_initial_loss_check",)
    points = 1.0
    rtol = 1e-6  # log(C) computed with torch.log on a float32 tensor is a right answer too
    facets = (Facet("loss at init", 0.5, "the loss in eval mode and log(C)"),
              Facet("contract", 0.5, "the model back in its mode, parameters and BatchNorm's "
                                     "running statistics unchanged"))
    mistakes = (
        Mistake("batchnorm_left_in_train_mode", "the loss is measured in train mode: BatchNorm "
                "normalises with the batch's statistics (and updates its running ones), dropout "
                "drops units; measure in eval mode under torch.no_grad()",
                _ilc_model(train_mode=True), facet="loss at init"),
        Mistake("log2", "the expected loss of C balanced classes is the natural log, log(C), not "
                "log2(C)", _ilc_model(log2=True), facet="loss at init"),
        Mistake("mode_not_restored", "the model is left in eval mode: put it back in the mode it "
                "was in (model.train(was_training))", _ilc_model(not_restored=True),
                facet="contract"),
    )

    def draw(self, rng: np.random.Generator, public: bool) -> list[Case]:
        cases = []
        kinds = [("mlp", 16, True), ("mlp with BatchNorm and dropout", 16, True),
                 ("mlp", 17, False)] if public else \
            [("mlp with BatchNorm", 16, True), ("mlp with dropout", 12, True),
             ("mlp with BatchNorm", 20, False), ("mlp", 17, True)]
        for kind, hidden, train in kinds:
            c = int(rng.integers(3, 11))
            X, y = _batch(rng, int(rng.integers(8, 33)), 6, c)
            big = " (last layer x20)" if hidden == 17 else ""
            cases.append(Case(f"{kind}{big}, {c} classes, {len(X)} samples, model in "
                              f"{'train' if train else 'eval'} mode",
                              {"kind": kind, "hidden": hidden, "seed": int(rng.integers(1000)),
                               "X": X, "y": y, "classes": c, "train": train}, public,
                              "loss at init"))
        X, y = _batch(rng, 12, 6, 5)
        cases.append(Case("mlp with BatchNorm and dropout in train mode: its mode and state after",
                          {"kind": "mlp with BatchNorm and dropout", "hidden": 16,
                           "seed": int(rng.integers(1000)), "X": X, "y": y, "classes": 5,
                           "train": True}, public, "contract"))
        return cases

    def run(self, impl: Any, case: Case) -> Outputs:
        a = case.args
        model = build_model(a["kind"], a["seed"], 6, a["classes"], a["hidden"])
        model.train(a["train"])
        before = _state(model)
        torch.manual_seed(a["seed"] + 1)
        result = impl(model, F.cross_entropy, (torch.tensor(a["X"]), torch.tensor(a["y"])),
                      a["classes"])
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError("initial_loss_check must return a pair (loss, expected)")
        if case.facet == "contract":
            return {"model in the mode it was in": np.array(model.training == a["train"]),
                    "parameters and buffers unchanged": np.array(_same_state(model, before))}
        return {"loss": np.array(_float(result[0], "the loss")),
                "expected": np.array(_float(result[1], "the expected loss"))}

    def torch_reference(self) -> Any:
        return ref_initial_loss_check


class OverfitOneBatch(Battery):
    name = "overfit_one_batch"
    grade_id = "test_overfit_one_batch"
    # The grader's own reference is importable from the notebook (it imports check from here).
    forbidden = ("grader.chapters.ch06_debugging_training.ref_overfit_one_batch",)
    points = 1.0
    facets = (Facet("training run", 0.5, "the last step's loss and the parameters after "
                                         "`steps` steps in eval mode"),
              Facet("contract", 0.5, "the model back in the mode it was in"))
    mistakes = (
        Mistake("dropout_on_while_overfitting", "the batch is overfitted in train mode: dropout "
                "keeps dropping units (and BatchNorm uses batch statistics), so the loss cannot "
                "go to 0; switch the model to eval mode for the run",
                _overfit_model(train_mode=True), facet="training run"),
        Mistake("missing_zero_grad", "gradients are not zeroed before each backward: they "
                "accumulate over the steps", _overfit_model(no_zero=True), facet="training run"),
        Mistake("first_loss_returned", "the first step's loss is returned: return the last "
                "step's", _overfit_model(first=True), facet="training run"),
        Mistake("loss_after_the_last_update", "the loss is evaluated again after the last update:"
                " return the loss computed in the last step, before its update",
                _overfit_model(after=True), facet="training run"),
        Mistake("mode_not_restored", "the model is left in eval mode: put it back in the mode it "
                "was in", _overfit_model(not_restored=True), facet="contract"),
    )

    def draw(self, rng: np.random.Generator, public: bool) -> list[Case]:
        kinds = [("mlp", "SGD", True), ("mlp with dropout", "Adam", True)] if public else \
            [("mlp with dropout", "SGD", True), ("mlp with BatchNorm and dropout", "Adam", True),
             ("mlp with BatchNorm", "SGD", False)]
        cases = []
        for kind, opt, train in kinds:
            c = int(rng.integers(3, 8))
            X, y = _batch(rng, int(rng.integers(6, 17)), 6, c)
            steps = int(rng.integers(5, 30))
            lr = 0.1 if opt == "SGD" else 0.01
            cases.append(Case(f"{kind}, {opt}(lr={lr}), {steps} steps, {len(X)} samples, "
                              f"model in {'train' if train else 'eval'} mode",
                              {"kind": kind, "seed": int(rng.integers(1000)), "X": X, "y": y,
                               "classes": c, "steps": steps, "opt": opt, "lr": lr,
                               "train": train}, public, "training run"))
        X, y = _batch(rng, 8, 6, 3)
        cases.append(Case("mlp with dropout in train mode, SGD(lr=0.1), 3 steps: its mode after",
                          {"kind": "mlp with dropout", "seed": int(rng.integers(1000)), "X": X,
                           "y": y, "classes": 3, "steps": 3, "opt": "SGD", "lr": 0.1,
                           "train": True}, public, "contract"))
        return cases

    def run(self, impl: Any, case: Case) -> Outputs:
        a = case.args
        model = build_model(a["kind"], a["seed"], 6, a["classes"])
        model.train(a["train"])
        optimizer = getattr(torch.optim, a["opt"])(model.parameters(), lr=a["lr"])
        torch.manual_seed(a["seed"] + 1)  # dropout masks, if the model is (wrongly) in train mode
        with one_thread():
            loss = impl(model, F.cross_entropy, optimizer, (torch.tensor(a["X"]),
                                                             torch.tensor(a["y"])), a["steps"])
        if case.facet == "contract":
            return {"model in the mode it was in": np.array(model.training == a["train"])}
        params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        return {"final loss": np.array(_float(loss, "the final loss")),
                "parameters after": params.numpy().copy()}

    def torch_reference(self) -> Any:
        return ref_overfit_one_batch


class BatchDependence(Battery):
    name = "batch_dependence"
    grade_id = "test_batch_dependence"
    # The grader's own reference is importable from the notebook (it imports check from here).
    forbidden = ("grader.chapters.ch06_debugging_training.ref_batch_dependence",)
    points = 2.0
    facets = (Facet("leak detection", 1.0, "True exactly when the gradient of output i reaches "
                                           "another sample: BatchNorm in train mode, a batch "
                                           "mean, view used for permute"),
              Facet("contract", 1.0, "the caller's x is left alone (no requires_grad, no .grad) "
                                     "and the model stays in its mode"))
    mistakes = (
        Mistake("summed_every_output", "the gradient of the SUM of all outputs reaches every "
                "sample whatever the model: back-propagate output i alone (out[i].sum())",
                _dependence_model(summed=True), facet="leak detection"),
        Mistake("checked_in_eval_mode", "the check runs in eval mode, where BatchNorm uses its "
                "running statistics and leaks nothing: check the model in the mode it trains in",
                _dependence_model(eval_mode=True), facet="leak detection"),
        Mistake("caller_x_requires_grad", "requires_grad_ is switched on for the caller's own x: "
                "work on x.detach().clone()", _dependence_model(in_place=True), facet="contract"),
    )

    def draw(self, rng: np.random.Generator, public: bool) -> list[Case]:
        kinds = ["mlp", "mlp with BatchNorm", "time-major, view for permute"] if public else \
            ["mlp with BatchNorm", "mlp", "batch-centred linear", "time-major, permute",
             "time-major, view for permute"]
        cases = []
        for kind in kinds:
            n = int(rng.integers(3, 9))
            shape = (n, int(rng.integers(2, 5)), 5) if kind.startswith("time") else (n, 5)
            cases.append(Case(f"{kind}, x {shape}, train mode", {
                "kind": kind, "seed": int(rng.integers(1000)), "x": rng.normal(size=shape),
                "i": int(rng.integers(0, n)), "train": True}, public, "leak detection"))
        cases.append(Case("mlp with BatchNorm in eval mode: the caller's x and mode", {
            "kind": "mlp with BatchNorm", "seed": int(rng.integers(1000)),
            "x": rng.normal(size=(4, 5)), "i": 1, "train": False}, public, "contract"))
        return cases

    def run(self, impl: Any, case: Case) -> Outputs:
        a = case.args
        model = build_model(a["kind"], a["seed"], 5, 3)
        model.train(a["train"])
        x = torch.tensor(a["x"])
        leaks = _bool(impl(model, x, a["i"]), "batch_dependence's answer")
        if case.facet == "leak detection":
            return {"leaks": np.array(leaks)}
        return {"leaks": np.array(leaks),
                "x left alone": np.array(not x.requires_grad and x.grad is None
                                         and np.array_equal(x.numpy(), a["x"])),
                "model in the mode it was in": np.array(model.training == a["train"])}

    def torch_reference(self) -> Any:
        return ref_batch_dependence


STATS = ("grad_norm", "grad_mean", "grad_abs_max", "param_norm")


class GradStats(Battery):
    name = "grad_stats"
    grade_id = "test_grad_stats"
    # The grader's own reference is importable from the notebook (it imports check from here).
    forbidden = ("grader.chapters.ch06_debugging_training.ref_grad_stats",
                 "lossopt_helpers.diagnostics.grad_norms")
    points = 1.0
    facets = (Facet("statistics", 0.5, "grad_norm, grad_mean, grad_abs_max, param_norm per "
                                       "parameter"),
              Facet("which parameters", 0.5, "one entry per parameter with a gradient, by its "
                                             "named_parameters() name; frozen ones left out"))
    mistakes = (
        Mistake("none_grads_as_zero", "parameters without a gradient (frozen, or not reached) "
                "are listed with zeros: leave them out", _stats_model(none_as_zero=True),
                facet="which parameters"),
        Mistake("mean_of_abs", "grad_mean is the mean of the gradient itself, signs included",
                _stats_model(mean_abs=True), facet="statistics"),
        Mistake("squared_norm", "grad_norm is the 2-norm, sqrt(sum g^2): the square root is "
                "missing", _stats_model(squared=True), facet="statistics"),
        Mistake("max_without_abs", "grad_abs_max is max |g|: without abs a large negative entry "
                "is missed", _stats_model(max_signed=True), facet="statistics"),
    )

    def draw(self, rng: np.random.Generator, public: bool) -> list[Case]:
        kinds = [("mlp", ()), ("mlp with BatchNorm", ("0.weight", "0.bias"))] if public else \
            [("mlp", ("2.bias",)), ("mlp with BatchNorm", ("1.weight",)),
             ("mlp with dropout", ()), ("mlp with BatchNorm", ())]
        cases = []
        for kind, frozen in kinds:
            X, y = _batch(rng, int(rng.integers(4, 17)), 6, 4)
            note = f", frozen {', '.join(frozen)}" if frozen else ""
            cases.append(Case(f"{kind} after one backward{note}", {
                "kind": kind, "seed": int(rng.integers(1000)), "X": X, "y": y,
                "frozen": list(frozen)}, public, "which parameters" if frozen else "statistics"))
        return cases

    def run(self, impl: Any, case: Case) -> Outputs:
        a = case.args
        model = build_model(a["kind"], a["seed"], 6, 4)
        for name, p in model.named_parameters():
            p.requires_grad_(name not in a["frozen"])
        F.cross_entropy(model(torch.tensor(a["X"])), torch.tensor(a["y"])).backward()
        stats = impl(model)
        if not isinstance(stats, dict):
            raise TypeError(f"grad_stats must return a dict, got {type(stats).__name__}")
        names = sorted(str(k) for k in stats)
        out: Outputs = {"parameter names": _text(", ".join(names))}
        if case.facet == "which parameters":
            return out
        for stat in STATS:
            out[stat] = np.array([_float(stats[n][stat], f"{n}'s {stat}") for n in names])
        return out

    def torch_reference(self) -> Any:
        return ref_grad_stats


# ---------------------------------------------------------------------------------------------
# The bug zoo


NAMED, REPAIRED = "bug named", "repaired loop"
# What each bug does to a loop's loss: the words of a wrong name's diagnosis.
SYMPTOMS = {
    Bug.MISSING_ZERO_GRAD: "the steps grow as gradients pile up: the loss falls, then climbs "
                           "and explodes",
    Bug.SOFTMAX_BEFORE_CROSS_ENTROPY: "the loss stalls on a floor far above 0 (log(1 + 9/e) "
                                      "~ 1.46 for 10 classes) while accuracy can be fine",
    Bug.WRONG_SOFTMAX_DIM: "each class is normalised across the batch: the loss depends on the "
                           "other samples and the predictions are meaningless",
    Bug.BROADCAST_MSE_SHAPES: "a regression loss compares every prediction with every target "
                              "(PyTorch warns about the shapes)",
    Bug.LABELS_SHUFFLED_APART: "the labels no longer belong to their inputs: the loss stays "
                               "near log(10) ~ 2.3",
    Bug.NO_SHUFFLE_SORTED_DATA: "each batch holds one class: the loss swings from batch to "
                                "batch and the model forgets earlier classes",
    Bug.EVAL_MODE_WHILE_TRAINING: "dropout is off during training after the first "
                                  "evaluation: the training loss drops faster than it should",
    Bug.TRAIN_MODE_IN_EVAL: "the validation loss is noisy and too high: dropout is on while "
                            "evaluating",
    Bug.LOSS_ACCUMULATED_WITHOUT_ITEM: "the numbers are right but memory grows with every "
                                       "step, each loss keeping its graph",
    Bug.SCHEDULER_STEPPED_PER_BATCH: "the learning rate decays within the first epoch and "
                                     "the loss freezes on a plateau",
    Bug.LR_TOO_HIGH: "the loss jumps around or diverges from the very first steps",
}


def _wrapped(reference: Callable[..., Any]) -> Callable[..., Any]:
    """A reference loop as the grader itself calls it (answers may not return it as theirs)."""
    def loop(*args: Any, **kwargs: Any) -> Any:
        return reference(*args, **kwargs)
    return loop


def _zoo_answer(bug: Any, loop: Callable[..., Any]) -> Callable[[], Any]:
    def answer():
        return bug, loop
    return answer


def _lower_lr(loop: Callable[..., Any], factor: float) -> Callable[..., Any]:
    def lowered(X, y, *, lr, epochs, batch_size, hidden, seed):
        return loop(X, y, lr=lr * factor, epochs=epochs, batch_size=batch_size, hidden=hidden,
                    seed=seed)
    return lowered


def _repair(X, y, *, lr, epochs, batch_size, hidden, seed, adam: bool = False,
            zero_grad: str = "per batch", clip: bool = False,
            head: Callable[..., Any] = lambda z: z, loss_fn: Callable[..., Any] = F.cross_entropy,
            dropout: float | None = None, eval_for_validation: bool = True,
            scheduler_steps: int = 0) -> Any:
    """The zoo's loop with a wrong repair switched on: the models of the hiding repairs.

    ``zero_grad``: "per batch", "per epoch" or "never"; ``dropout`` (not None): zoo 3's
    validated loop, train mode at every epoch's start; ``scheduler_steps``: zoo 4's StepLR
    stepped this many times after each epoch."""
    torch.manual_seed(seed)
    if dropout is not None:
        n_val = len(X) // 5
        X_val, y_val, X, y = X[:n_val], y[:n_val], X[n_val:], y[n_val:]
        model = bugzoo.mlp(hidden, dropout=dropout)
    else:
        model = bugzoo.mlp(hidden)
    optimizer = (torch.optim.Adam(model.parameters(), lr=lr) if adam else
                 torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
                 if scheduler_steps else None)
    order = torch.Generator().manual_seed(seed)
    history: list[Any] = []
    for epoch in range(epochs):
        if dropout is not None:
            model.train()
        total = 0.0
        if zero_grad == "per epoch":
            optimizer.zero_grad()
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            if zero_grad == "per batch":
                optimizer.zero_grad()
            loss = loss_fn(head(model(X[idx])), y[idx])
            loss.backward()
            if clip:
                tnu.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item() * len(idx)
        for _ in range(scheduler_steps):
            scheduler.step()  # type: ignore[union-attr]
        if dropout is None:
            history.append(total / len(X))
            continue
        if eval_for_validation:
            model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(X_val), y_val).item()
        history.append([total / len(X), val_loss])
    return history


zoo1_clipped = functools.partial(_repair, zero_grad="never", clip=True)
zoo1_zero_per_epoch = functools.partial(_repair, zero_grad="per epoch")
zoo2_softmax_dim0 = functools.partial(_repair, adam=True, head=lambda z: F.softmax(z, dim=0))
zoo2_nll_on_logits = functools.partial(_repair, adam=True, loss_fn=F.nll_loss)
zoo3_dropout_removed = functools.partial(_repair, dropout=0.0)
zoo3_never_eval = functools.partial(_repair, dropout=0.3, eval_for_validation=False)
zoo4_scheduler_removed = functools.partial(_repair, scheduler_steps=0)
zoo4_stepped_twice = functools.partial(_repair, scheduler_steps=2)


HIDING: dict[str, list[tuple[str, str, Callable[..., Any]]]] = {
    "zoo_1": [
        ("lr_lowered_instead", "the learning rate is lowered, and the gradients still "
         "accumulate: the grader runs your loop with ITS lr, so keep lr and zero the gradients "
         "before every backward", _lower_lr(bugzoo.buggy_1, 0.1)),
        ("clipping_hides_it", "clipping keeps the accumulated gradients finite, but they still "
         "accumulate: zero them before every backward instead", zoo1_clipped),
        ("zero_grad_once_per_epoch", "zero_grad runs once per epoch: gradients still accumulate "
         "over the epoch's steps; call it before every backward", zoo1_zero_per_epoch),
    ],
    "zoo_2": [
        ("lr_raised_instead", "a larger learning rate does not remove the softmax: the loss "
         "still sees probabilities; give cross_entropy the logits", _lower_lr(bugzoo.buggy_2,
                                                                             10.0)),
        ("softmax_over_the_batch", "softmax over dim 0 normalises across the batch: give "
         "cross_entropy the raw logits", zoo2_softmax_dim0),
        ("nll_loss_on_logits", "nll_loss expects log-probabilities: with the softmax removed, "
         "use cross_entropy on the logits (or nll_loss on log_softmax)", zoo2_nll_on_logits),
    ],
    "zoo_3": [
        ("dropout_removed", "removing dropout changes the model: switch back to train mode at "
         "the start of every epoch instead", zoo3_dropout_removed),
        ("never_evaluated_in_eval_mode", "the evaluation now runs in train mode, with dropout "
         "on: keep model.eval() for validation and call model.train() before each epoch's "
         "training", zoo3_never_eval),
    ],
    "zoo_4": [
        ("scheduler_removed", "removing the scheduler removes the schedule: step it once per "
         "epoch instead", zoo4_scheduler_removed),
        ("lr_raised_instead", "a larger learning rate does not undo a schedule stepped per "
         "batch: step the scheduler once per epoch, after the epoch's batches",
         _lower_lr(bugzoo.buggy_4, 4.0)),
        ("stepped_twice_per_epoch", "the scheduler is stepped twice per epoch: once, after the "
         "epoch's batches", zoo4_stepped_twice),
    ],
}


def _wrong_name_message(named: Bug) -> str:
    return (f"this loop's bug is not {named.name}, which would show as: {SYMPTOMS[named]}. "
            f"Run the buggy loop, look at its losses, and reread it line by line")


class Zoo(Exercise):
    """``zoo_k() -> (Bug member, repaired loop)``; the loop is run with the grader's
    hyperparameters and compared with the reference loop's trajectory."""

    points = 2.0
    rtol, atol = 1e-4, 1e-6
    facets = (Facet(NAMED, 1.0, "the Bug member planted in the loop"),
              Facet(REPAIRED, 1.0, "your loop's loss trajectory equals the reference loop's "
                                   "(rtol 1e-4) with the grader's hyperparameters and seeds"))

    def __init__(self, number: int, public_hyper: dict[str, Any]) -> None:
        self.name = f"zoo_{number}"
        self.grade_id = f"test_zoo_{number}"
        self.planted = bugzoo.PLANTED[self.name]
        self.public_hyper = public_hyper
        self.forbidden = tuple(f"lossopt_helpers.bugzoo.reference_{k}" for k in
                               sorted(range(1, 5), key=lambda k: k != number))  # its own first
        reference = _wrapped(bugzoo.REFERENCE[self.name])
        names = [Mistake(f"named_{bug.name.lower()}", _wrong_name_message(bug),
                         _zoo_answer(bug, reference), facet=NAMED)
                 for bug in Bug if bug is not self.planted]
        repairs = [Mistake("loop_not_repaired", "the loop still has its bug: the trajectory is "
                           "the buggy loop's", _zoo_answer(self.planted,
                                                           bugzoo.BUGGY[self.name]),
                           facet=REPAIRED)]
        repairs += [Mistake(key, message, _zoo_answer(self.planted, loop), facet=REPAIRED)
                    for key, message, loop in HIDING[self.name]]
        self.mistakes = tuple(names + repairs)

    def candidate_mistakes(self, case: Case) -> tuple[Mistake, ...]:
        """Only the mistakes of the case's facet: a wrong name says nothing about a trajectory
        (and running every named mistake's loop would cost seconds)."""
        return tuple(m for m in self.mistakes if m.facet == case.facet)

    def _data_case(self, label: str, n: int, data_seed: int, hyper: dict[str, Any],
                   public: bool) -> Case:
        X, y = bugzoo.digits(n, data_seed)
        return Case(label, {"X": X.numpy(), "y": y.numpy(), "hyper": hyper}, public, REPAIRED)

    def public_cases(self) -> list[Case]:
        hyper = self.public_hyper
        return [Case("the bug's name", {}, True, NAMED),
                self._data_case(f"384 digits, {fmt(hyper)}", 384, 0, hyper, True)]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        for _ in range(2):
            n = int(rng.choice([256, 320, 448]))
            hyper = {"lr": float(self.public_hyper["lr"] * rng.uniform(0.6, 1.5)),
                     "epochs": int(rng.integers(3, 6)),
                     "batch_size": int(rng.choice([16, 24, 48])),
                     "hidden": int(rng.choice([16, 24, 48])),
                     "seed": int(rng.integers(1, 10_000))}
            data_seed = int(rng.integers(1, 10_000))
            cases.append(self._data_case(f"{n} digits drawn with seed {data_seed}, "
                                         f"{fmt(hyper)}", n, data_seed, hyper, False))
        return cases

    def run(self, impl: Any, case: Case) -> Outputs:
        answer = impl()
        if not isinstance(answer, tuple) or len(answer) != 2:
            raise TypeError(f"{self.name}() must return a pair (Bug member, repaired loop)")
        bug, loop = answer
        if case.facet == NAMED:
            if not isinstance(bug, Bug):
                raise TypeError(f"name the bug with a member of Bug (e.g. Bug.LR_TOO_HIGH), "
                                f"not a {type(bug).__name__}")
            return {"bug": _text(bug.name)}
        if not callable(loop):
            raise TypeError("the second item must be the repaired loop, a function")
        code = getattr(loop, "__code__", None)
        if any(code is ref.__code__ for ref in bugzoo.REFERENCE.values()):
            raise ForbiddenCallError("lossopt_helpers.bugzoo's reference loops are off-limits: "
                                     "repair the loop yourself")
        a = case.args
        with one_thread():
            losses = loop(torch.tensor(a["X"]), torch.tensor(a["y"]), **a["hyper"])
        return {"losses": np.array([_float(v, "each loss") for v in np.ravel(
            np.array(losses, dtype=object))])}

    def torch_reference(self) -> Any:
        return _zoo_answer(self.planted, _wrapped(bugzoo.REFERENCE[self.name]))


_HYPER = {"epochs": 4, "batch_size": 32, "hidden": 32, "seed": 0}
EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in (
    GetTotalNorm(), ClipGradNorm(), ClipGradValue(), Gradcheck(), InitialLossCheck(),
    OverfitOneBatch(), BatchDependence(), GradStats(),
    Zoo(1, {"lr": 0.05, **_HYPER}), Zoo(2, {"lr": 0.01, **_HYPER}),
    Zoo(3, {"lr": 0.05, **_HYPER}), Zoo(4, {"lr": 0.05, **_HYPER}))}
check = make_check(EXERCISES)
