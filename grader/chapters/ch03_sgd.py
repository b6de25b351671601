"""Checks for Chapter 3, gradient descent and SGD: ``sgd_step`` and ``SGD``.

``sgd_step`` is the shape of PyTorch's functional ``torch.optim.sgd.sgd``: lists of parameters,
gradients and momentum buffers, parameters updated in place, buffers created in the list on the
first step. ``SGD`` is a ``torch.optim.Optimizer`` subclass with PyTorch 2.13's arguments,
defaults, validation errors and state (``state[p]["momentum_buffer"]``), so that its
``state_dict`` loads into ``torch.optim.SGD`` and back.

Every check runs the answer and PyTorch on the same deterministic objective, whose gradient
changes at every step (a quadratic plus a sine that also moves with the step number), and
compares in float64 (``rtol=1e-9, atol=1e-12``; float32 cases ``rtol=2e-4, atol=1e-6``):

- parameter trajectories over 50 steps for every combination of ``momentum``, ``dampening``,
  ``weight_decay``, ``nesterov`` and ``maximize`` that PyTorch accepts (maximising a concave
  objective, so that the runs converge);
- the momentum buffers, the returned value, and whether the gradients were left untouched;
- for ``SGD``: several parameter groups with their own options, gradients that are ``None`` at
  some steps, closures, a learning rate changed mid-run (as a scheduler does), gradients zeroed
  in place instead of set to ``None``, positional arguments, the defaults; the state and
  ``param_groups`` themselves, at the end and in a ``state_dict`` saved mid-run, which must equal
  ``torch.optim.SGD``'s (so each loads the other's) and is loaded into a fresh ``SGD`` to finish
  the run; PyTorch's own mid-run ``state_dict`` loaded into the answer; and the ``ValueError``
  messages PyTorch gives for invalid arguments.

Only the answer runs inside ``run`` (the grading core runs it in a sandbox, where PyTorch's SGD is
off-limits): what PyTorch's optimizer contributes to a case, such as its mid-run ``state_dict``, is
computed when the case is built.

The mistakes tables are made of *models*: one re-implementation with named bugs switched on, so
that a failing answer is matched with the mistake it behaves like.

Scoring (``grader/kit/scoring.py``): the points split into facets, stated in the exercise text.

- ``sgd_step`` (4): update rule 1.5, momentum and Nesterov 1 (momentum, dampening, nesterov),
  weight decay 0.5, maximize 0.5, API contract 0.5 (returns None, updates the parameters in
  place, leaves the gradients alone, also when the same gradient tensors are reused).
- ``SGD`` (6): update rule 2, momentum and Nesterov 1, weight decay 0.5, maximize 0.5, API
  contract 1.5 (argument validation, defaults and positional arguments, parameter groups, None
  gradients, closures, a learning rate changed between steps, ``.grad`` left alone),
  state_dict compatibility 0.5 (``state[p]["momentum_buffer"]``, the option names in
  ``param_groups``, a ``state_dict`` round trip, PyTorch's ``state_dict`` loaded into yours).

A case that combines options counts towards the facet of its most intricate option (momentum
family, then maximize, then weight decay): a bug of an unknown kind in the momentum code then
costs the momentum facet only. Each case compares only what its facet is about (trajectories and
buffers for the update facets, the contract's observations for the contract cases, the state and
``param_groups`` for the state_dict cases), and every mistake of the tables names the facet it
costs, so a known mistake is charged once whichever cases show it. Mistakes that leave nothing to
check (an update that raises on every call, parameters that never move) name no facet: they cost
the facets of the cases they fail.

Strictness, PyTorch's and never more:

- invalid arguments must raise PyTorch's exception *class* (``ValueError``); the message is not
  graded (PyTorch's is shown as a hint when the class is wrong), and neither is the order of the
  checks when several arguments are invalid;
- the state may hold entries besides ``"momentum_buffer"`` (``torch.optim.SGD`` loads and keeps
  them), and empty state dicts count as no state; the buffer itself, and no buffer where PyTorch
  keeps none, are checked, since ``torch.optim.SGD`` reads exactly that key;
- ``SGD`` is checked with a correct ``sgd_step`` in place of the learner's (``depends_on``), so a
  mistake in ``sgd_step`` costs its own exercise only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.optim.sgd import sgd as _torch_functional_sgd

from grader.kit.exercise import (ERROR_KEY, AnswerTypeError, Case, Exercise, Facet, Mistake,
                                 Outputs, Verdict, compare_outputs, make_check, tensor, to_plain)
from grader.kit.depends import rebind
from grader.kit.optim import (activity, build_params, coefficients, diagnose, group_value, judge,
                              memo_capture, param_spec, plain_state_dict, take_step,
                              tensor_state_dict, tolerance)

CHAPTER = "03_sgd"

STEPS = 50
HYPER = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
POSITIONAL = ("lr", "momentum", "dampening", "weight_decay", "nesterov")  # maximize: keyword-only

# Facet names, as the exercise text states them.
UPDATE, MOMENTUM = "update rule", "momentum and Nesterov"
DECAY, MAXIMIZE = "weight decay", "maximize"
CONTRACT, STATE = "API contract", "state_dict compatibility"

# What the learner re-implements, under every name it can be reached by. Classes are caught as
# base classes; torch.optim.SGD used inside the answer trips over the functions its step calls.
FORBIDDEN = (
    "torch.optim.SGD",
    "torch.optim.sgd.sgd",
    "torch.optim.sgd._single_tensor_sgd",
    "torch.optim.sgd._multi_tensor_sgd",
    "torch.optim.sgd._fused_sgd",
    "torch.optim._functional.sgd",
    "torch._fused_sgd_",
)


# ---------------------------------------------------------------------------------------------
# The objective: deterministic in the case's plain data, with gradients that change every step


def objective_term(p: torch.Tensor, c: dict[str, Any], t: int) -> torch.Tensor:
    """``sum(sign * a (p - c)^2 / 2 + b sin(k p + w t))`` for one parameter at step ``t``.

    ``sign = -1`` (a concave bowl) in the cases that maximise. The sine moves the gradient even
    where ``p`` stands still, so a buffer that lags one step behind shows.
    """
    bowl = c["sign"] * 0.5 * c["a"] * (p - c["c"]) ** 2
    return (bowl + c["b"] * torch.sin(c["k"] * p + c["w"] * t)).sum()


def draw_objective(rng: np.random.Generator, shape: tuple[int, ...], sign: float) -> dict[str, Any]:
    """Coefficients of one parameter's term (plain data)."""
    return {"a": rng.uniform(0.5, 2.0, shape), "c": rng.normal(0.0, 1.0, shape),
            "b": rng.uniform(0.2, 0.8, shape), "k": rng.uniform(0.5, 2.0, shape),
            "w": float(rng.uniform(0.3, 1.0)), "sign": float(sign)}


def random_shapes(rng: np.random.Generator, n: int) -> list[tuple[int, ...]]:
    """``n`` small shapes among 0-dim, vectors and matrices."""
    pool = [(), (int(rng.integers(1, 5)),), (int(rng.integers(1, 4)), int(rng.integers(1, 4)))]
    return [pool[int(rng.integers(0, 3))] for _ in range(n)]


def fmt(options: dict[str, Any]) -> str:
    """Options as they would be written in a call: ``lr=0.01, nesterov=True``."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}"
                     for k, v in options.items())


def draw_options(rng: np.random.Generator, momentum: bool, dampening: bool, weight_decay: bool,
                 nesterov: bool, maximize: bool) -> dict[str, Any]:
    """Random values for the options switched on; the others are left at their defaults."""
    options: dict[str, Any] = {"lr": float(rng.uniform(0.02, 0.15))}
    if momentum:
        options["momentum"] = float(rng.uniform(0.5, 0.95))
    if dampening:
        options["dampening"] = float(rng.uniform(0.2, 0.9))
    if weight_decay:
        options["weight_decay"] = float(rng.uniform(0.01, 0.2))
    if nesterov:
        options["nesterov"] = True
    if maximize:
        options["maximize"] = True
    return options


def valid_combinations() -> list[dict[str, bool]]:
    """Every on/off combination of the five options that torch.optim.SGD accepts (20 of 32)."""
    names = ("momentum", "dampening", "weight_decay", "nesterov", "maximize")
    combos = [dict(zip(names, bits, strict=True))
              for bits in itertools.product((False, True), repeat=5)]
    return [c for c in combos if not c["nesterov"] or (c["momentum"] and not c["dampening"])]


def option_facet(options: dict[str, Any]) -> str:
    """The facet a run with these options counts towards: its most intricate option's."""
    if options.get("momentum") or options.get("dampening") or options.get("nesterov"):
        return MOMENTUM
    if options.get("maximize"):
        return MAXIMIZE
    if options.get("weight_decay"):
        return DECAY
    return UPDATE


# ---------------------------------------------------------------------------------------------
# Plain data <-> state dicts


def state_outputs(sd: dict[str, Any], prefix: str = "") -> Outputs:
    """The momentum buffers and the hyperparameters of a plain ``state_dict`` as outputs.

    Only what ``torch.optim.SGD`` reads is compared: which parameters have a
    ``"momentum_buffer"`` (none where PyTorch keeps none), its value, that the state is keyed by
    parameter index, and each group's options under their PyTorch names. Other entries of a
    parameter's state are allowed: PyTorch's ``load_state_dict`` keeps them and its ``step``
    ignores them. The description is key-agnostic (a buffer under any other key reads as "no
    momentum_buffer"), so that answers storing it under different wrong keys behave alike.
    """
    out: Outputs = {}
    state = sd["state"]
    n = sum(len(g["params"]) for g in sd["param_groups"])
    out[f"{prefix}which parameters have state['momentum_buffer']"] = np.array(
        [i in state and "momentum_buffer" in state[i] for i in range(n)])
    extra = sorted((k for k in state if not (isinstance(k, int) and 0 <= k < n)), key=str)
    if extra:
        out[f"{prefix}state entries that are not parameter indices"] = np.array(len(extra))
    for idx in range(n):
        if idx in state and "momentum_buffer" in state[idx]:
            out[f"{prefix}state[{idx}]['momentum_buffer']"] = state[idx]["momentum_buffer"]
    for i, group in enumerate(sd["param_groups"]):
        for name in HYPER:
            out[f"{prefix}param_groups[{i}] has {name!r}"] = np.array(name in group)
            if name in group:
                out[f"{prefix}param_groups[{i}][{name!r}]"] = group_value(group[name])
    return out


# ---------------------------------------------------------------------------------------------
# sgd_step: the functional form


def torch_sgd_step(params: list[torch.Tensor], grads: list[torch.Tensor],
                   momentum_buffers: list[torch.Tensor | None], *, lr: float, momentum: float,
                   dampening: float, weight_decay: float, nesterov: bool, maximize: bool) -> None:
    """The reference: PyTorch's functional SGD, under ``no_grad`` as ``SGD.step`` runs it."""
    with torch.no_grad():
        _torch_functional_sgd(params, grads, momentum_buffers, foreach=False, lr=lr,
                              momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                              nesterov=nesterov, maximize=maximize)


class SgdStepExercise(Exercise):
    """``sgd_step(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
    nesterov, maximize)``, called once per step on gradients of the objective."""

    name = "sgd_step"
    grade_id = "test_sgd_step"
    points = 4.0
    forbidden = FORBIDDEN
    facets = (
        Facet(UPDATE, 1.5, "plain steps w <- w - lr * g, in place, float32 kept, lr = 0"),
        Facet(MOMENTUM, 1.0, "the buffer (b_1 = g_1, then momentum * b + (1 - dampening) * g), "
                             "Nesterov's g + momentum * b, buffers written into the list"),
        Facet(DECAY, 0.5, "weight_decay * w added to the gradient"),
        Facet(MAXIMIZE, 0.5, "maximize negates the gradient first"),
        Facet(CONTRACT, 0.5, "returns None, parameters updated in place, gradients left "
                             "untouched (also when the caller reuses its gradient tensors)"),
    )

    def torch_reference(self) -> Callable[..., Any]:
        return torch_sgd_step

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        a = case.args
        params = [tensor(np.asarray(x, dtype=a["dtype"]), grad=True) for x in a["params"]]
        coeffs = coefficients(a["objective"], a["dtype"])
        buffers: list[torch.Tensor | None] = [None] * len(params)
        trajectory = [[p.detach().clone()] for p in params]
        shared: list[torch.Tensor] | None = None
        untouched, returned_none = True, True
        for t in range(a["steps"]):
            loss = sum(objective_term(p, c, t) for p, c in zip(params, coeffs, strict=True))
            grads = list(torch.autograd.grad(loss, params))
            if a["reuse_grads"]:  # the same gradient tensors every step, as p.grad is
                if shared is None:
                    shared = [g.clone() for g in grads]
                else:
                    for s, g in zip(shared, grads, strict=True):
                        s.copy_(g)
                grads = list(shared)
            before = [g.clone() for g in grads]
            passed = list(buffers)
            returned = impl(list(params), list(grads), passed, **a["options"])
            returned_none &= returned is None
            untouched &= all(torch.equal(g, b) for g, b in zip(grads, before, strict=True))
            if type(passed) is not list or len(passed) != len(params):
                raise AnswerTypeError("sgd_step must leave momentum_buffers a list of the same "
                                      "length (fill its None entries in place)")
            buffers = passed
            for j, p in enumerate(params):
                trajectory[j].append(p.detach().clone())
        out: Outputs = {}
        if a["checks"] == "contract":  # what the caller relies on, whatever the arithmetic
            out["sgd_step returned None"] = np.array(returned_none)
            out["the parameters moved (updated in place)"] = np.array(
                any(not torch.equal(v[0], v[-1]) for v in trajectory))
            out["grads left untouched by sgd_step"] = np.array(untouched)
            return out
        for j, values in enumerate(trajectory):
            out[f"trajectory of parameter {j}"] = to_plain(torch.stack(values))
        out["which momentum_buffers are tensors after the last step"] = np.array(
            [b is not None for b in buffers])
        for j, b in enumerate(buffers):
            if b is not None:
                out[f"momentum_buffers[{j}] after the last step"] = to_plain(b)
        return out

    def case(self, label: str, rng: np.random.Generator, options: dict[str, Any], *,
             shapes: list[tuple[int, ...]] | None = None, dtype: str = "float64",
             reuse_grads: bool = False, public: bool = False) -> Case:
        """A case of the update facets, or of the API contract when the gradients are reused."""
        full = {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                "nesterov": False, "maximize": False, **options}
        shapes = shapes if shapes is not None else random_shapes(rng, 2)
        sign = -1.0 if full["maximize"] else 1.0
        args = {"params": [rng.normal(0.0, 1.0, s) for s in shapes],
                "objective": [draw_objective(rng, s, sign) for s in shapes],
                "options": full, "steps": STEPS, "dtype": dtype, "reuse_grads": reuse_grads,
                "checks": "contract" if reuse_grads else "math"}
        shown = ", ".join(str(s) for s in shapes)
        return Case(f"{label}: sgd_step(..., {fmt(full)}) for {STEPS} steps on params {shown} "
                    f"{dtype}", args, public=public,
                    facet=CONTRACT if reuse_grads else option_facet(full))

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(3)
        return [
            self.case("plain gradient descent", rng, {"lr": 0.1}, shapes=[(3,)], public=True),
            self.case("momentum", rng, {"lr": 0.05, "momentum": 0.9}, public=True),
            self.case("momentum with dampening", rng,
                      {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}, public=True),
            self.case("Nesterov momentum and weight decay", rng,
                      {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
                      public=True),
            self.case("weight decay", rng, {"lr": 0.1, "weight_decay": 0.1}, public=True),
            self.case("maximize (a concave objective)", rng, {"lr": 0.1, "maximize": True},
                      public=True),
            self.case("maximize with weight decay", rng,
                      {"lr": 0.1, "weight_decay": 0.05, "maximize": True}, public=True),
            self.case("the same gradient tensors reused every step", rng,
                      {"lr": 0.05, "momentum": 0.8}, reuse_grads=True, public=True),
            self.case("the same gradient tensors reused, with weight decay and maximize", rng,
                      {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.05, "maximize": True},
                      reuse_grads=True, public=True),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = [self.case("combination", rng, draw_options(rng, **combo))
                 for combo in valid_combinations()]
        cases += [
            self.case("gradient tensors reused, momentum, weight decay, maximize", rng,
                      draw_options(rng, True, False, True, False, True), reuse_grads=True),
            self.case("gradient tensors reused, Nesterov", rng,
                      draw_options(rng, True, False, False, True, False), reuse_grads=True),
            self.case("float32", rng, draw_options(rng, False, False, False, False, False),
                      dtype="float32"),
            self.case("float32", rng, draw_options(rng, True, True, True, False, False),
                      dtype="float32"),
            self.case("momentum 1 (accepted by PyTorch)", rng, {"lr": 0.01, "momentum": 1.0}),
            self.case("lr 0 (nothing moves)", rng, {"lr": 0.0}),
            self.case("lr 0 (nothing moves)", rng, {"lr": 0.0, "momentum": 0.9,
                                                     "weight_decay": 0.1}),
        ]
        return cases

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        """Public first, then the fewest options switched on, then the smallest parameters."""
        a = case.args
        on = sum(bool(v) for k, v in a["options"].items() if k != "lr")
        size = sum(np.size(x) for x in a["params"])
        return (not case.public, on + a["reuse_grads"], a["dtype"] != "float64", size, case.label)

    def reference(self, case: Case) -> Outputs:
        return memo_capture(self, self.torch_reference(), "reference", case)

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        problem = compare_outputs(got, expected, **tolerance(case))
        return with_hint(problem, got, expected, case)

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        return diagnose(self, case, got)

    def judge(self, case: Case, got: Outputs, expected: Outputs | None = None) -> Verdict:
        return judge(self, case, got, expected)


# ---------------------------------------------------------------------------------------------
# SGD: the optimizer class


def train(impl: Any, a: dict[str, Any]) -> tuple[Outputs, dict[str, Any]]:
    """Run optimizer class ``impl`` on the case ``a``; return outputs and the final plain state."""
    if not (isinstance(impl, type) and issubclass(impl, torch.optim.Optimizer)):
        raise AnswerTypeError("SGD must be a class that subclasses torch.optim.Optimizer")
    groups = build_params(a["groups"], a["dtype"])
    flat = [p for g in groups for p in g]
    coeffs = coefficients(a["objective"], a["dtype"])
    optimizer = impl(param_spec(a, groups, options=True), *a["args"], **a["kwargs"])
    if a["load"] is not None:
        optimizer.load_state_dict(tensor_state_dict(a["load"]))
    out: Outputs = {}
    trajectory = [[p.detach().clone()] for p in flat]
    losses, kept, untouched = [], True, True
    for i in range(a["steps"]):
        t = a["start"] + i
        if a["resume_at"] == i:
            saved = plain_state_dict(optimizer.state_dict())
            if a["checks"] == "state":
                out.update(state_outputs(saved, prefix="state_dict() saved mid-run: "))
            # Built with the defaults only, like a restarted script: load_state_dict brings back
            # every group's options along with the state.
            optimizer = impl(param_spec(a, groups, options=False))
            optimizer.load_state_dict(tensor_state_dict(saved))
        for step, index, lr in a["set_lr"]:
            if step == i:
                optimizer.param_groups[index]["lr"] = lr
        active = a["active"][i]
        given = take_step(optimizer, flat, coeffs, active, t, a, losses, objective_term)
        kept &= all(p.grad is not None for p, _ in given)
        untouched &= all(p.grad is None or torch.equal(p.grad, g) for p, g in given)
        for j, p in enumerate(flat):
            trajectory[j].append(p.detach().clone())
    for j, values in enumerate(trajectory):
        out[f"trajectory of parameter {j}"] = to_plain(torch.stack(values))
    if a["closure"]:
        out["losses returned by step(closure)"] = np.stack(losses)
    out["p.grad still set after step()"] = np.array(kept)
    out["p.grad values left untouched by step()"] = np.array(untouched)
    final = plain_state_dict(optimizer.state_dict())
    if a["checks"] == "state":  # the state and param_groups: the state_dict facet's cases only
        out.update(state_outputs(final))
    return out, final


RAISED = "exception raised when SGD is built"
MESSAGE = "__message_for_the_hint__"  # shown, never compared (see SGDExercise.compare)


def construct(impl: Any, a: dict[str, Any]) -> Outputs:
    """Only build the optimizer: which exception class it raises, if any (its message is kept
    for the hint only). A stub's NotImplementedError propagates, so that the check says "not
    implemented yet" instead of grading it."""
    if not (isinstance(impl, type) and issubclass(impl, torch.optim.Optimizer)):
        raise AnswerTypeError("SGD must be a class that subclasses torch.optim.Optimizer")
    groups = build_params(a["groups"], a["dtype"])
    try:
        impl(param_spec(a, groups, options=True), *a["args"], **a["kwargs"])
    except NotImplementedError:
        raise
    except Exception as exc:
        return {RAISED: np.array(type(exc).__name__), MESSAGE: np.array(str(exc)[:300])}
    return {RAISED: np.array("nothing")}


HINTS = (
    ("parameters have state", "keep each parameter's buffer in self.state[p]['momentum_buffer'] "
                              "(a tensor), created at its first step with a gradient, and only "
                              "when its group's momentum is not 0"),
    ("['momentum_buffer']", "keep each parameter's buffer in self.state[p]['momentum_buffer'] (a "
                            "tensor), created at its first step with a gradient"),
    ("not parameter indices", "key self.state by the parameter tensors themselves"),
    ("param_groups[", "pass every option to Optimizer.__init__ in the defaults dict under its "
                      "PyTorch name and read it from the group in step()"),
    ("p.grad still set", "step() cleared the gradients (p.grad = None or zero_grad()): that is "
                         "the training loop's job, before the next backward"),
    ("p.grad values left untouched", "step() changed p.grad in place (grad.add_(...), "
                                     "grad.neg_(), or a buffer that is p.grad itself); PyTorch "
                                     "leaves .grad as it is"),
    ("grads left untouched", "sgd_step changed a gradient in place (grad.add_(...), "
                             "grad.neg_(), or a buffer that is the gradient itself)"),
    ("losses returned", "step(closure) calls closure() under torch.enable_grad() and returns "
                        "its loss"),
    ("returned None", "sgd_step returns None: its results are the in-place updates"),
    ("parameters moved", "update each params[i] in place (param.add_(d_p, alpha=-lr)) under "
                         "torch.no_grad(); assigning params[i] = ... leaves the caller's tensor "
                         "where it was"),
    ("momentum_buffers are tensors", "with momentum != 0, put a new tensor into "
                                     "momentum_buffers[i] at the first step; with momentum == 0 "
                                     "leave the list alone"),
)


def with_hint(problem: str | None, got: Outputs, expected: Outputs, case: Case) -> str | None:
    """``problem`` with a hint on its first differing output, or PyTorch's own error message.

    Only the exception *class* is graded where PyTorch raises (its message is not: the learner's
    words are theirs); PyTorch's message is shown when the class is wrong or nothing was raised.
    """
    if problem is None:
        return None
    if ERROR_KEY in expected:
        return (f"{problem}\n  Hint: PyTorch raises {expected[ERROR_KEY]}"
                f"({str(expected['__message__'])!r}) here")
    if ERROR_KEY in got:
        return problem
    first = next((k for k in expected
                  if compare_outputs(got, {k: expected[k]}, **tolerance(case)) is not None), "")
    hints = [hint for pattern, hint in HINTS if pattern in first]
    return problem + (f"\n  Hint: {hints[0]}" if hints else "")


class SGDExercise(Exercise):
    """``class SGD(torch.optim.Optimizer)``, equal to ``torch.optim.SGD`` in behaviour."""

    name = "SGD"
    grade_id = "test_SGD"
    points = 6.0
    forbidden = FORBIDDEN
    facets = (
        Facet(UPDATE, 2.0, "plain steps through the class, over 50 steps"),
        Facet(MOMENTUM, 1.0, "momentum, dampening and Nesterov through the class"),
        Facet(DECAY, 0.5, "weight decay through the class"),
        Facet(MAXIMIZE, 0.5, "maximize through the class"),
        Facet(CONTRACT, 1.5, "ValueError for invalid arguments, defaults and positional "
                             "arguments, parameter groups, None gradients skipped, closures, "
                             "group['lr'] changed between steps, .grad left alone"),
        Facet(STATE, 0.5, "state[p]['momentum_buffer'] and the option names in param_groups, "
                          "as torch.optim.SGD's; a state_dict round trip, both ways"),
    )
    # The learner's SGD may call their sgd_step: it is checked with a correct one in its place.
    depends_on = ("sgd_step",)

    def substitutes(self) -> dict[str, Any]:
        return {"sgd_step": flawed_sgd_step()}  # the model with no bug: tensor primitives only

    def prepare(self, impl: Any) -> Any:
        return rebind(impl, self.substitutes())

    def torch_reference(self) -> Callable[..., Any]:
        return torch.optim.SGD

    def run(self, impl: Any, case: Case) -> Outputs:
        a = dict(case.args)
        if a["kind"] == "construct":
            return construct(impl, a)
        return train(impl, a)[0]

    # -- case building -----------------------------------------------------------------------
    def case(self, label: str, rng: np.random.Generator, *, kwargs: dict[str, Any] | None = None,
             shapes: list[tuple[int, ...]] | None = None,
             groups: list[tuple[list[tuple[int, ...]], dict[str, Any]]] | None = None,
             args: tuple = (), kind: str = "train", steps: int = STEPS, closure: Any = False,
             none_grads: bool = False, set_to_none: bool = True, resume_at: int | None = None,
             set_lr: list[tuple[int, int, float]] | None = None,
             dtype: str = "float64", public: bool = False, facet: str | None = None) -> Case:
        """One case as plain data; ``groups`` is a list of (shapes, options) for several groups.

        ``facet``: the case's facet, by default that of its options (:func:`option_facet`).
        """
        facet = facet or option_facet(kwargs or {})
        kwargs = dict(kwargs or {})
        groups = groups if groups is not None else [(shapes or random_shapes(rng, 2), {})]
        specs = [{"params": [rng.normal(0.0, 1.0, s) for s in sh], "options": dict(opts)}
                 for sh, opts in groups]
        # Maximising runs climb a concave bowl (sign -1), so that they converge too.
        signs = [-1.0 if g["options"].get("maximize", kwargs.get("maximize", False)) else 1.0
                 for g in specs]
        objective = [draw_objective(rng, np.shape(p), sign)
                     for g, sign in zip(specs, signs, strict=True) for p in g["params"]]
        n = len(objective)
        active = activity(rng, steps, n, none_grads, 0.6)
        a = {"kind": kind, "groups": specs, "kwargs": kwargs, "args": tuple(args),
             "objective": objective, "steps": steps, "start": 0, "active": active,
             "closure": closure, "set_to_none": set_to_none, "resume_at": resume_at,
             "set_lr": list(set_lr or []), "dtype": dtype,
             "flat": len(specs) == 1 and not specs[0]["options"], "load": None,
             "checks": "state" if facet == STATE else "math"}
        shown = ", ".join(str(np.shape(p)) for g in specs for p in g["params"])
        if not a["flat"]:
            shown = "; ".join(f"group {i} {{{fmt(g['options'])}}} with "
                              + ", ".join(str(np.shape(p)) for p in g["params"])
                              for i, g in enumerate(specs))
        call = f"SGD(params{', ' if args else ''}{', '.join(map(repr, args))}" \
               f"{', ' if kwargs else ''}{fmt(kwargs)})"
        text = f"{label}: {call}; params {shown} {dtype}" + \
               (f", {steps} steps" if kind == "train" else "")
        return Case(text, a, public=public, facet=facet)

    def resumed_from_torch(self, case: Case, at: int) -> Case:
        """The same run from step ``at`` on, started from torch.optim.SGD's params and state."""
        a = dict(case.args)
        head = dict(a, steps=at, resume_at=None, set_lr=[], closure=False, active=a["active"][:at])
        out, sd = train(torch.optim.SGD, head)
        values = iter([out[f"trajectory of parameter {j}"][-1] for j in range(len(a["objective"]))])
        groups = [dict(g, params=[next(values) for _ in g["params"]]) for g in a["groups"]]
        tail = dict(a, groups=groups, start=at, steps=a["steps"] - at, active=a["active"][at:],
                    resume_at=None, set_lr=[], load=sd)
        label = case.label.split(":", 1)[1].strip()
        return Case(f"torch.optim.SGD's state_dict at step {at} loaded into your SGD, then "
                    f"{tail['steps']} more steps: {label}", tail, public=case.public,
                    facet=STATE)

    def public_cases(self) -> list[Case]:
        if self._public is None:  # fixed, and building them runs PyTorch's SGD: build them once
            self._public = self._build_public_cases()
        return list(self._public)

    _public: list[Case] | None = None

    def _build_public_cases(self) -> list[Case]:
        rng = np.random.default_rng(30)
        mom = {"lr": 0.05, "momentum": 0.9}
        groups = [([(3,)], {"lr": 0.1, "momentum": 0.9}),
                  ([(2, 2)], {"momentum": 0.0, "weight_decay": 0.1}),
                  ([()], {})]
        resume = self.case("momentum and weight decay, a second group without momentum; "
                           "state_dict() saved at step 25 (it must equal torch.optim.SGD's, so "
                           "that each loads the other's), loaded into a fresh SGD(params) and "
                           "resumed", rng, kwargs={**mom, "weight_decay": 0.05},
                           groups=[([(3,), (2,)], {}), ([(2,)], {"momentum": 0.0})],
                           resume_at=25, public=True, facet=STATE)
        cases = [
            self.case("plain gradient descent", rng, kwargs={"lr": 0.1}, shapes=[(3,)],
                      public=True),
            self.case("momentum with dampening", rng, kwargs={**mom, "dampening": 0.5},
                      public=True),
            self.case("Nesterov momentum and weight decay", rng,
                      kwargs={**mom, "nesterov": True, "weight_decay": 0.05}, public=True),
            self.case("weight decay", rng, kwargs={"lr": 0.1, "weight_decay": 0.1}, public=True),
            self.case("maximize (a concave objective) with weight decay", rng,
                      kwargs={"lr": 0.1, "weight_decay": 0.05, "maximize": True}, public=True),
            self.case("the defaults (lr=1e-3, no momentum)", rng, public=True, facet=CONTRACT),
            self.case("three parameter groups with their own options", rng,
                      kwargs={"lr": 0.05, "momentum": 0.5}, groups=groups, public=True,
                      facet=CONTRACT),
            self.case("some gradients None at some steps, the last parameter never has one", rng,
                      kwargs={**mom, "weight_decay": 0.05}, shapes=[(3,), (2,), (2,)],
                      none_grads=True, public=True, facet=CONTRACT),
            self.case("stepped with a closure; lr halved at step 25, as a scheduler does", rng,
                      kwargs=mom, closure=True, set_lr=[(25, 0, 0.025)], public=True,
                      facet=CONTRACT),
            self.case("gradients zeroed in place (zero_grad(set_to_none=False))", rng, kwargs=mom,
                      set_to_none=False, public=True, facet=CONTRACT),
            resume,
            self.resumed_from_torch(resume, 25),
        ]
        cases += self.validation_cases(rng, public=True)
        return cases

    def validation_cases(self, rng: np.random.Generator, public: bool = False) -> list[Case]:
        """Each invalid argument (PyTorch raises ValueError) and values it accepts."""
        def neg(low: float, high: float) -> float:
            return -float(round(rng.uniform(low, high), 3)) if not public else -low

        bad = [{"lr": neg(0.1, 1.0)}, {"momentum": neg(0.1, 0.9)},
               {"weight_decay": neg(1e-3, 0.1)},
               {"lr": 0.1, "nesterov": True},
               {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
               {"lr": neg(0.1, 1.0), "momentum": neg(0.1, 0.9)}]
        good = [{"lr": 0.0}, {"lr": 0.1, "dampening": 0.5}, {"lr": 0.1, "momentum": 1.5},
                {"lr": 0.1, "dampening": -0.5, "momentum": 0.9}]
        cases = [self.case("must raise ValueError", rng, kwargs=k, kind="construct",
                           public=public, facet=CONTRACT)
                 for k in (bad if not public else bad[:5])]
        cases += [self.case("is valid in PyTorch", rng, kwargs=k, kind="construct",
                            public=public, facet=CONTRACT)
                  for k in (good if not public else good[2:3])]
        return cases

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = [self.case("combination", rng, kwargs=draw_options(rng, **combo),
                           shapes=random_shapes(rng, int(rng.integers(1, 4))))
                 for combo in valid_combinations()]
        options = draw_options(rng, True, False, True, bool(rng.integers(0, 2)), False)
        group_options = [{"lr": float(rng.uniform(0.05, 0.15)), "momentum": 0.0},
                         {"momentum": float(rng.uniform(0.5, 0.9)), "dampening": 0.3,
                          "nesterov": False},
                         {"weight_decay": float(rng.uniform(0.05, 0.2)), "maximize": False},
                         {}]
        groups = [(random_shapes(rng, 1), g) for g in group_options]
        at = int(rng.integers(10, 40))
        positional = tuple(options.get(k, 0.0 if k != "nesterov" else False) for k in POSITIONAL)
        resume = self.case(f"groups, None gradients; state_dict() saved at step {at} (compared "
                           "with torch.optim.SGD's), loaded into a fresh SGD(params) and resumed",
                           rng, kwargs=options, groups=groups, none_grads=True, resume_at=at,
                           facet=STATE)
        api = [
            self.case("positional arguments", rng, args=positional),
            self.case("parameter groups with their own options", rng, kwargs=options,
                      groups=groups),
            self.case("some gradients None at some steps", rng, kwargs=options,
                      shapes=random_shapes(rng, 3), none_grads=True),
            self.case("None gradients, gradients zeroed in place", rng, kwargs=options,
                      shapes=random_shapes(rng, 3), none_grads=True, set_to_none=False),
            self.case("gradients zeroed in place, momentum without weight decay", rng,
                      kwargs=draw_options(rng, True, bool(rng.integers(0, 2)), False, False, False),
                      set_to_none=False),
            self.case("closure, step() called under torch.no_grad()", rng, kwargs=options,
                      closure="under no_grad"),
            self.case("closure with maximize", rng, closure=True,
                      kwargs=draw_options(rng, True, True, False, False, True)),
            self.case("lr changed in two groups mid-run", rng, kwargs=options,
                      groups=groups[:2], set_lr=[(int(rng.integers(5, 25)), 0, 0.02),
                                                 (int(rng.integers(25, 45)), 1, 0.2)]),
        ]
        cases += [dataclasses.replace(c, facet=CONTRACT) for c in api]
        cases += [
            self.case("float32", rng, kwargs=draw_options(rng, True, True, True, False, False),
                      dtype="float32"),
            resume,
            self.resumed_from_torch(resume, at),
        ]
        cases += self.validation_cases(rng)
        return cases

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        """Public first, then the fewest options and features, then the smallest parameters."""
        a = case.args
        options = [g["options"] for g in a["groups"]] + [a["kwargs"]]
        on = sum(bool(v) for o in options for k, v in o.items() if k != "lr") + len(a["args"])
        features = (len(a["groups"]) > 1, bool(a["closure"]), bool(a["set_lr"]),
                    a["resume_at"] is not None, a["load"] is not None, not a["set_to_none"],
                    bool(not a["active"].all()), a["dtype"] != "float64")
        size = sum(np.size(x) for g in a["groups"] for x in g["params"])
        return (not case.public, a["kind"] != "train", on + sum(features), size, case.label)

    # -- judging -------------------------------------------------------------------------------
    def reference(self, case: Case) -> Outputs:
        return memo_capture(self, self.torch_reference(), "reference", case)

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        # Where PyTorch raises, the exception class is what counts; the message is the learner's
        # to word (PyTorch's is given as a hint), and so is the order of the checks.
        if case.args["kind"] == "construct":
            want, have = str(expected[RAISED]), str(got.get(RAISED, "no answer"))
            if want == have:
                return None
            said = f" ({str(got[MESSAGE])!r})" if MESSAGE in got else ""
            if want == "nothing":
                problem = f"raised {have}{said}, but PyTorch accepts these arguments"
            elif have == "nothing":
                problem = f"expected a {want} to be raised, but SGD was built without one"
            else:
                problem = f"expected a {want}, got {have}{said}"
            if MESSAGE in expected:
                problem += (f"\n  Hint: PyTorch raises {expected[RAISED]}"
                            f"({str(expected[MESSAGE])!r}) here")
            return problem
        problem = compare_outputs(got, expected, **tolerance(case))
        return with_hint(problem, got, expected, case)

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        if case.args["kind"] != "construct":
            return diagnose(self, case, got)
        # Building the optimizer: a mistake is named by the exception class raised (or none),
        # never by the message's words.
        for mistake in self.mistakes:
            wrong = memo_capture(self, mistake.impl, mistake.key, case)
            if RAISED in wrong and RAISED in got and str(wrong[RAISED]) == str(got[RAISED]):
                return mistake
        return None

    def judge(self, case: Case, got: Outputs, expected: Outputs | None = None) -> Verdict:
        return judge(self, case, got, expected)


# ---------------------------------------------------------------------------------------------
# Judging shared by both exercises: per-case tolerances, errors diagnosed by their message


# ---------------------------------------------------------------------------------------------
# Models of wrong answers: one re-implementation, bugs switched on by name


def model_update(p: torch.Tensor, grad: torch.Tensor, buf: torch.Tensor | None,
                 hp: dict[str, Any], bugs: frozenset[str]) -> torch.Tensor | None:
    """One parameter's SGD step, in place on ``p`` (under ``no_grad``); returns its buffer."""
    lr, momentum, dampening, wd = hp["lr"], hp["momentum"], hp["dampening"], hp["weight_decay"]
    in_place = "grad_modified_in_place" in bugs
    d = grad
    if hp["maximize"] and not bugs & {"maximize_ignored", "maximize_after_decay"}:
        d = d.neg_() if in_place else -d
    if wd != 0 and "decay_after_momentum" not in bugs:
        d = d.add_(p, alpha=wd) if in_place else d.add(p, alpha=wd)
    if hp["maximize"] and "maximize_after_decay" in bugs:
        d = -d
    scale = lr if "lr_in_buffer" in bugs else 1.0  # Sutskever's form keeps lr in the buffer
    has_lr = False
    new_buf = None
    update = d
    if momentum != 0 or "buffer_without_momentum" in bugs:
        if buf is None:
            first = (1 - dampening) if "dampening_first_step" in bugs else 1.0
            if "buffer_aliases_grad" in bugs:
                new_buf = d
            else:
                new_buf = d.detach().clone().mul_(first * scale)
        else:
            if "dampening_ignored" in bugs:
                damp = 1.0
            elif "dampening_inverted" in bugs:
                damp = dampening
            elif "momentum_as_average" in bugs:
                damp = 1 - momentum
            else:
                damp = 1 - dampening
            new_buf = buf.mul_(momentum).add_(d, alpha=damp * scale)
        if hp["nesterov"] and "nesterov_ignored" not in bugs:
            if "nesterov_lookahead" in bugs:
                update = new_buf + momentum * d
            else:
                update = d * scale + momentum * new_buf
        else:
            update = new_buf
        has_lr = scale != 1.0
    if wd != 0 and "decay_after_momentum" in bugs:
        update = update + wd * p
    p.add_(update, alpha=-1.0 if has_lr else -lr)
    return new_buf


def flawed_sgd_step(*bugs: str) -> Callable[..., None]:
    """An ``sgd_step`` that makes the named mistakes."""
    flaws = frozenset(bugs)

    def sgd_step(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                 nesterov, maximize):
        hp = {"lr": lr, "momentum": momentum, "dampening": dampening,
              "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        context = contextlib.nullcontext() if "step_without_no_grad" in flaws else torch.no_grad()
        with context:
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                if "params_not_in_place" in flaws:
                    target = p.detach().clone()
                    buf = model_update(target, g, momentum_buffers[i], hp, flaws)
                    params[i] = target
                else:
                    buf = model_update(p, g, momentum_buffers[i], hp, flaws)
                if "buffers_not_stored" not in flaws:
                    momentum_buffers[i] = buf
        return params if "returns_params" in flaws else None

    return sgd_step


class SGDModel(torch.optim.Optimizer):
    """torch.optim.SGD re-implemented, with named bugs (none in this class itself)."""

    bugs: frozenset[str] = frozenset()

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0) and \
                "nesterov_check_missing" not in self.bugs:
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if "validation_too_strict" in self.bugs and \
                (lr == 0 or not momentum < 1 or dampening < 0):
            raise ValueError(f"Invalid hyperparameters: lr={lr}, momentum={momentum}, "
                             f"dampening={dampening}")
        self._lr = lr
        self._buffers: dict[torch.Tensor, torch.Tensor] = {}
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "maximize": maximize})

    @classmethod
    def with_bugs(cls, *bugs: str) -> type:
        """A subclass of this model that makes the named mistakes."""
        return type(f"SGD_{'_'.join(bugs)}", (cls,), {"bugs": frozenset(bugs)})

    def step(self, closure=None):
        if "step_without_no_grad" in self.bugs or "closure_without_enable_grad" in self.bugs:
            if "closure_without_enable_grad" in self.bugs:
                with torch.no_grad():
                    return self._step(closure)
            return self._step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self._step(None)
        return None if "closure_loss_dropped" in self.bugs else loss

    def _step(self, closure):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            hp = dict(self.defaults) if "group_options_ignored" in self.bugs else dict(group)
            if "lr_cached" in self.bugs:
                hp["lr"] = self._lr
            for p in group["params"]:
                if p.grad is None and "none_grad_as_zero" not in self.bugs:
                    continue
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                buf = self._get_buffer(p)
                new_buf = model_update(p, grad, buf, hp, self.bugs)
                if new_buf is not None:
                    self._set_buffer(p, new_buf)
                if "zero_grad_in_step" in self.bugs:
                    p.grad = None
        return None if "closure_loss_dropped" in self.bugs else loss

    def _get_buffer(self, p):
        if "buffer_outside_state" in self.bugs:
            return self._buffers.get(p)
        key = "buf" if "state_key_name" in self.bugs else "momentum_buffer"
        return self.state[p].get(key)

    def _set_buffer(self, p, buf):
        if "buffer_outside_state" in self.bugs:
            self._buffers[p] = buf
        else:
            self.state[p]["buf" if "state_key_name" in self.bugs else "momentum_buffer"] = buf


# ---------------------------------------------------------------------------------------------
# The mistakes tables

UPDATE_MISTAKES = (
    ("dampening_first_step", "dampening was applied on the first step (or the buffer started "
     "at zero): PyTorch initialises the buffer to the first gradient itself, b_1 = g_1, and uses "
     "(1 - dampening) only from the second step on"),
    ("dampening_ignored", "dampening is ignored: from the second step, b_t = momentum * b_{t-1} "
     "+ (1 - dampening) * g_t"),
    ("dampening_inverted", "the gradient is scaled by dampening instead of (1 - dampening)"),
    ("momentum_as_average", "the buffer is an average, b = momentum * b + (1 - momentum) * g; "
     "PyTorch's is a sum, b = momentum * b + (1 - dampening) * g"),
    ("nesterov_ignored", "nesterov=True behaves like plain momentum (a look-ahead computed with "
     "the buffer *before* this step's update, g_t + momentum * b_{t-1}, is the same thing): the "
     "step must be g_t + momentum * b_t, with the updated buffer"),
    ("nesterov_lookahead", "Nesterov's look-ahead is wrong: the step is g_t + momentum * b_t "
     "(gradient plus momentum times the *updated* buffer), not b_t + momentum * g_t"),
    ("decay_after_momentum", "weight decay bypassed the momentum buffer (added to the step "
     "after the buffer, or applied to p directly as p *= 1 - lr * wd, AdamW-style): PyTorch "
     "adds weight_decay * p to the gradient *before* it enters the buffer"),
    ("maximize_ignored", "maximize=True is ignored: negate the gradient first, g = -grad"),
    ("maximize_after_decay", "maximize negated the gradient after the weight decay was added: "
     "PyTorch negates the raw gradient first, then adds weight_decay * p"),
    ("lr_in_buffer", "the learning rate went into the buffer (b = momentum * b + lr * g, p -= b, "
     "Sutskever's form): PyTorch keeps lr out of the buffer, b = momentum * b + g, p -= lr * b, "
     "which differs in the stored state and as soon as lr changes"),
    ("buffer_aliases_grad", "the first buffer is the gradient tensor itself, not a copy: when "
     "gradients are zeroed or accumulated in place the buffer changes with them; use "
     "grad.clone() (torch.clone(grad).detach())"),
    ("grad_modified_in_place", "the gradient was modified in place (grad.add_(p, ...) or "
     "grad.neg_()); PyTorch leaves it untouched: use out-of-place operations"),
    ("buffer_without_momentum", "a momentum buffer was created with momentum=0; PyTorch keeps no "
     "buffer (and no state) then"),
    ("step_without_no_grad", "the in-place update ran with autograd recording: wrap the update "
     "in `with torch.no_grad():` (or decorate step with @torch.no_grad())"),
)

SGD_STEP_MISTAKES = UPDATE_MISTAKES + (
    ("buffers_not_stored", "the new buffers were not written back into momentum_buffers "
     "(momentum_buffers[i] = buf), so momentum restarts at every step"),
    ("params_not_in_place", "the parameters were replaced (params[i] = p - lr * d) instead of "
     "updated in place (p.add_(d, alpha=-lr)): the caller's tensors never move"),
    ("returns_params", "sgd_step returns None, like torch.optim.sgd.sgd"),
)

SGD_CLASS_MISTAKES = UPDATE_MISTAKES + (
    ("state_key_name", "the buffer is stored under another key: PyTorch's is "
     "self.state[p]['momentum_buffer'], which is what makes state_dicts interchangeable with "
     "torch.optim.SGD"),
    ("buffer_outside_state", "the buffers are kept outside self.state (e.g. in a dict of your "
     "own), so state_dict() does not save them and a resumed optimizer loses its momentum"),
    ("group_options_ignored", "the options come from self.defaults instead of each group in "
     "self.param_groups, so per-group options are ignored"),
    ("lr_cached", "the learning rate saved in __init__ (self.lr) is used instead of "
     "group['lr'], so per-group learning rates and schedulers that change group['lr'] have no "
     "effect"),
    ("none_grad_as_zero", "parameters whose .grad is None were updated as if their gradient "
     "were zero (so weight decay and momentum still moved them): skip them, as PyTorch does"),
    ("zero_grad_in_step", "step() cleared the gradients (p.grad = None or zero_grad()); that is "
     "the training loop's job, before the next backward"),
    ("closure_loss_dropped", "step(closure) must return the loss that closure() returned"),
    ("closure_without_enable_grad", "closure() was called with gradients disabled (inside "
     "@torch.no_grad()): call it inside `with torch.enable_grad():`"),
    ("nesterov_check_missing", "nesterov=True is accepted without a momentum or with a "
     "dampening: raise ValueError when nesterov and (momentum <= 0 or dampening != 0)"),
    ("validation_too_strict", "a value PyTorch accepts was rejected: lr=0, momentum >= 1 and a "
     "negative dampening are all valid; raise ValueError only for lr < 0, momentum < 0, "
     "weight_decay < 0 and Nesterov without momentum or with dampening"),
)

# The facet each mistake costs, whichever case shows it (see the module docstring). Mistakes not
# listed (an update that raises on every call, parameters that never move) leave nothing else to
# check, and cost the facets of the cases they fail.
MISTAKE_FACETS = {
    **dict.fromkeys(("dampening_first_step", "dampening_ignored", "dampening_inverted",
                     "momentum_as_average", "nesterov_ignored", "nesterov_lookahead",
                     "lr_in_buffer", "buffer_without_momentum", "buffers_not_stored"), MOMENTUM),
    "decay_after_momentum": DECAY,
    "maximize_ignored": MAXIMIZE, "maximize_after_decay": MAXIMIZE,
    **dict.fromkeys(("buffer_aliases_grad", "grad_modified_in_place", "returns_params",
                     "group_options_ignored", "lr_cached", "none_grad_as_zero",
                     "zero_grad_in_step", "closure_loss_dropped", "closure_without_enable_grad",
                     "nesterov_check_missing", "validation_too_strict"), CONTRACT),
    "state_key_name": STATE, "buffer_outside_state": STATE,
}


def _sgd_step_table() -> tuple[Mistake, ...]:
    return tuple(Mistake(key, message, flawed_sgd_step(key), facet=MISTAKE_FACETS.get(key))
                 for key, message in SGD_STEP_MISTAKES)


def _sgd_class_table() -> tuple[Mistake, ...]:
    # A closure called under no_grad fails the same way whether or not the update itself is
    # under no_grad: name the closure first, since the other mistake also fails without one.
    order = sorted(SGD_CLASS_MISTAKES, key=lambda m: m[0] != "closure_without_enable_grad")
    return tuple(Mistake(key, message, SGDModel.with_bugs(key), facet=MISTAKE_FACETS.get(key))
                 for key, message in order)


SgdStepExercise.mistakes = _sgd_step_table()
SGDExercise.mistakes = _sgd_class_table()

EXERCISES: dict[str, Exercise] = {"sgd_step": SgdStepExercise(), "SGD": SGDExercise()}
check = make_check(EXERCISES)

__all__ = ["CHAPTER", "EXERCISES", "FORBIDDEN", "SGDExercise", "SGDModel", "SgdStepExercise",
           "check", "flawed_sgd_step", "torch_sgd_step"]
