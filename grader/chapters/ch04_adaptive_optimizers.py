"""Checks for Chapter 4, adaptive optimizers: ``Adagrad``, ``RMSprop``, ``Adam`` and ``AdamW``.

The learner writes each optimizer as a subclass of ``torch.optim.Optimizer`` with PyTorch 2.13's
name, arguments, defaults and validation errors (their class), and its state under
PyTorch's keys, so that a ``state_dict`` loads into ``torch.optim``'s class and back. A check runs
the answer and PyTorch on the same deterministic objective, whose gradient changes at every step
(a quadratic plus a sine that moves with the step number, scaled by a factor that shrinks over
the first steps so that the squared-gradient average rises and then falls), and compares in
float64 (``rtol=1e-9, atol=1e-12``; float32 cases ``rtol=2e-4, atol=1e-6``):

- parameter trajectories over 50-60 steps for every on/off combination of the options, each in
  one of three regimes: ordinary gradients, tiny gradients (~1e-6) and a large ``eps``, where
  ``eps`` inside or outside the square root (or before the bias correction) shows;
- several parameter groups with their own options, gradients that are ``None`` at some steps,
  gradients zeroed in place, closures (also with ``step`` called under ``torch.no_grad()``), a
  learning rate changed mid-run, float32, positional arguments, the defaults;
- the state (keys, dtypes, values) and ``param_groups``, at the end and in a ``state_dict`` saved
  mid-run and loaded into a fresh optimizer of the answer's class (equal to PyTorch's, it loads
  into ``torch.optim``'s class: the tests check that directly, since PyTorch's optimizer cannot
  step inside the sandbox while its functions are wired to raise); and PyTorch's own
  ``state_dict`` loaded into the answer;
- each invalid argument's ``ValueError`` (its class; PyTorch's message is shown as a hint).

Partial credit: each exercise's points split into facets (the update rule, its option
families, the API contract, the state and state_dict), and each case compares only the outputs
its facet is about (:func:`output_kind`). What PyTorch itself accepts costs nothing: a ``step``
counted in an int (:func:`step_value`), state created eagerly or lazily (:func:`stepped`), the
float32-step bias corrections of PyTorch's capturable path (``FLOAT32_STEP_RTOL``). ``AdamW`` is
checked on :class:`ReferenceAdam` in place of the learner's ``Adam``.

:class:`OptimizerExercise` and :func:`train` know nothing about adaptive methods: with Chapter 3's
helpers they could serve any ``torch.optim`` re-implementation. The mistakes tables are made of
*models*, one re-implementation per optimizer with named bugs switched on, so that a failing
answer is matched with the mistake it behaves like.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from grader.kit.exercise import (ERROR_KEY, AnswerTypeError, Case, Exercise, Facet, Mistake,
                                 Outputs, Verdict, compare_outputs,
                                 forbidden_base, make_check, to_plain)
from grader.kit.optim import (activity, build_params, coefficients, judge, memo_capture, param_spec,
                              plain_state_dict, take_step, tensor_state_dict)

CHAPTER = "04_adaptive_optimizers"

F64 = {"rtol": 1e-9, "atol": 1e-12}  # float64: only rounding differs between correct answers
F32 = {"rtol": 2e-4, "atol": 1e-6}  # float32: rounding accumulates over the steps
STEPS = 50
DIAGNOSIS_RTOL = 1e-6
UPDATE_FACET, API_FACET, STATE_FACET = "update rule", "API contract", "state and state_dict"


# ---------------------------------------------------------------------------------------------
# The objective: deterministic in the case's plain data, with gradients that change every step


def objective_term(p: torch.Tensor, c: dict[str, Any], t: int) -> torch.Tensor:
    """``s_t * sum(a (p - c)^2 / 2 + b sin(k p + w t))``, ``s_t = scale (1 + 3 exp(-t / tau))``.

    The sine moves the gradient even where ``p`` stands still; the shrinking ``s_t`` makes the
    squared-gradient average fall after its early peak, which is what AMSGrad's maximum sees.
    """
    s = c["scale"] * (1.0 + 3.0 * math.exp(-t / c["tau"]))
    bowl = 0.5 * c["a"] * (p - c["c"]) ** 2
    return s * (bowl + c["b"] * torch.sin(c["k"] * p + c["w"] * t)).sum()


def draw_objective(rng: np.random.Generator, shape: tuple[int, ...],
                   scale: float) -> dict[str, Any]:
    """Coefficients of one parameter's term (plain data)."""
    return {"a": rng.uniform(0.5, 2.0, shape), "c": rng.normal(0.0, 1.0, shape),
            "b": rng.uniform(0.2, 1.0, shape), "k": rng.uniform(0.5, 2.0, shape),
            "w": float(rng.uniform(0.5, 1.5)), "tau": float(rng.uniform(4.0, 12.0)),
            "scale": float(scale)}


# ---------------------------------------------------------------------------------------------
# Plain outputs of a state_dict


def group_value(group: dict[str, Any], name: str) -> np.ndarray:
    """A hyperparameter of a param group as a comparable array (floats, bools, betas as a pair)."""
    if name not in group:
        return np.array(f"<no {name!r} in the group>")
    value = group[name]
    if isinstance(value, bool):
        return np.array(value)
    if isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
        return np.array([float(v) for v in value])
    if isinstance(value, torch.Tensor | int | float):
        return np.array(float(value))
    return np.array(repr(value))


def step_value(value: Any) -> Any:
    """``state["step"]`` as a float64 number: its storage is not graded.

    PyTorch 2.13 keeps a 0-dim float32 tensor, but its ``load_state_dict`` accepts an int or a
    float (``Adam.__setstate__`` and its siblings convert them), so an answer that counts in a
    Python int, or in a float64 tensor, loses nothing; the count itself is compared.
    """
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        return np.array(float(value.reshape(-1)[0]))
    return value


def stepped(entry: dict[str, Any]) -> bool:
    """False for a state entry that is still the initial one (``step`` 0, never updated).

    PyTorch's Adagrad creates every parameter's state in ``__init__``, its other optimizers at a
    parameter's first step with a gradient; both load into either class and give the same run,
    so state created eagerly or lazily costs nothing: entries never stepped are left out.
    """
    step = step_value(entry.get("step"))
    return not (isinstance(step, np.ndarray) and step.ndim == 0 and float(step) == 0.0)


def state_outputs(sd: dict[str, Any], hyper: Iterable[str], prefix: str = "") -> Outputs:
    """The state and the hyperparameters of a plain ``state_dict`` (from ``plain_state_dict``)."""
    out: Outputs = {}
    state = {idx: {k: (step_value(v) if k == "step" else v) for k, v in entry.items()}
             for idx, entry in sd["state"].items() if stepped(entry)}
    with_state = ",".join(str(i) for i in sorted(state, key=str))
    out[f"{prefix}parameters with state"] = np.array(with_state)
    for idx in sorted(state, key=str):
        entry = state[idx]
        out[f"{prefix}state[{idx}] keys"] = np.array(",".join(sorted(map(str, entry))))
        for key in sorted(entry, key=str):
            value = entry[key]
            out[f"{prefix}state[{idx}][{key!r}]"] = np.array("None") if value is None else value
    for i, group in enumerate(sd["param_groups"]):
        for name in hyper:
            out[f"{prefix}param_groups[{i}][{name!r}]"] = group_value(group, name)
    return out


def trajectory_key(j: int) -> str:
    """The output name of parameter ``j``'s values, stacked over the steps."""
    return f"parameter {j} after each step [step, *index]"


def output_kind(key: str) -> str:
    """What an output shows: the parameters' ``trajectory``, the ``losses`` step(closure)
    returned, what step() did to the ``grads``, the ``groups``' options, or the ``state``."""
    for prefix, kind in (("parameter ", "trajectory"), ("losses", "losses"),
                         ("p.grad", "grads"), ("param_groups[", "groups")):
        if key.startswith(prefix):
            return kind
    return "state"  # parameters with state, state[i][key], state_dict() saved mid-run: ...


# Each case compares the outputs its facet is about, so that one mistake does not fail them all:
# the update rule and the options by the trajectories, the API contract by what a training loop
# sees (trajectories, the closure's loss, p.grad, param_groups), the state facet by the state.
UPDATE = ("trajectory",)
API = ("trajectory", "losses", "grads", "groups")
STATE = ("trajectory", "state")


# ---------------------------------------------------------------------------------------------
# The run: build the parameters, step the optimizer, return trajectories, state and groups


def train(impl: Any, a: dict[str, Any], ex: OptimizerExercise) -> tuple[Outputs, dict[str, Any]]:
    """Run optimizer class ``impl`` on the case ``a``; return outputs and the final plain state."""
    if not (isinstance(impl, type) and issubclass(impl, torch.optim.Optimizer)):
        raise AnswerTypeError(f"{ex.name} must be a class that subclasses torch.optim.Optimizer")
    groups = build_params(a["groups"], a["dtype"])
    flat = [p for g in groups for p in g]
    coeffs = coefficients(a["objective"], a["dtype"])
    optimizer = impl(param_spec(a, groups, options=True), *a["args"], **a["kwargs"])
    if a["load"] is not None:
        optimizer.load_state_dict(tensor_state_dict(a["load"]))
    out: Outputs = {}
    trajectory = [[p.detach().clone()] for p in flat]
    losses, grads_after = [], "left untouched"
    for i in range(a["steps"]):
        t = a["start"] + i
        if a["resume_at"] == i:
            saved = plain_state_dict(optimizer.state_dict())
            out.update(state_outputs(saved, ex.hyper, prefix="state_dict() saved mid-run: "))
            # Built with the defaults only, like a restarted script: load_state_dict brings back
            # every group's options along with the state.
            optimizer = impl(param_spec(a, groups, options=False))
            optimizer.load_state_dict(tensor_state_dict(saved))
        if a["set_lr"] is not None and a["set_lr"][0] == i:
            optimizer.param_groups[a["set_lr"][1]]["lr"] = a["set_lr"][2]
        active = a["active"][i]
        given = take_step(optimizer, flat, coeffs, active, t, a, losses, objective_term)
        if grads_after == "left untouched":
            grads_after = grad_status(given)
        for j, p in enumerate(flat):
            trajectory[j].append(p.detach().clone())
    for j, values in enumerate(trajectory):
        out[trajectory_key(j)] = to_plain(torch.stack(values))
    if a["closure"]:
        out["losses returned by step(closure)"] = np.stack(losses)
    out["p.grad after step()"] = np.array(grads_after)
    final = plain_state_dict(optimizer.state_dict())
    out.update(state_outputs(final, ex.hyper))
    return out, final


def finite_scale(values: np.ndarray) -> float:
    """The largest magnitude among the finite entries of ``values`` (0 when there are none);
    np.nanmax would warn on stderr for an all-NaN array, and stderr zeroes an nbgrader cell."""
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else 0.0


def close_to(got: Outputs, other: Outputs, rtol: float, atol: float) -> bool:
    """``got`` equals ``other`` up to ``rtol`` of each output's own scale: a value crossing
    zero keeps the absolute error of its neighbours (``rtol * max |other[key]|``)."""
    for key, want in other.items():
        scale = finite_scale(want) if want.dtype.kind == "f" else 0.0
        if compare_outputs(got, {key: want}, rtol=rtol, atol=max(atol, rtol * scale)):
            return False
    return got.keys() >= other.keys()


def distance(got: Outputs, other: Outputs) -> float:
    """The largest difference between two outputs' numbers, relative to each output's scale."""
    worst = 0.0
    for key, want in other.items():
        have = got.get(key)
        if have is None or want.dtype.kind != "f" or have.shape != want.shape or not want.size:
            continue
        scale = finite_scale(want) or 1.0
        diff = np.abs(have.astype(np.float64) - want)
        worst = max(worst, float(np.where(np.isnan(diff), 0.0, diff).max()) / scale)
    return worst


def grad_status(given: list[tuple[torch.Tensor, torch.Tensor]]) -> str:
    """What step() did to the gradients it was given: PyTorch leaves them untouched."""
    for p, g in given:
        if p.grad is None:
            return "set to None"
        if not torch.equal(p.grad, g):
            return "changed in place"
    return "left untouched"


def construct(impl: Any, a: dict[str, Any], ex: OptimizerExercise) -> Outputs:
    """Only build the optimizer (defaults, positional arguments, validation errors)."""
    groups = build_params(a["groups"], a["dtype"])
    optimizer = impl(param_spec(a, groups, options=True), *a["args"], **a["kwargs"])
    return state_outputs(plain_state_dict(optimizer.state_dict()), ex.hyper)


# ---------------------------------------------------------------------------------------------
# The exercise base: cases, tolerances, hints, diagnosis

HINTS = (
    ("['step']", "state['step'] counts a parameter's updates: + 1 at every step() in which it "
                 "has a gradient, before it is used"),
    ("] keys", "each parameter's state holds exactly PyTorch's keys (listed in the exercise)"),
    ("parameters with state", "every parameter that has had a gradient has state; one that "
                              "never had a gradient has none, or only its initial state (step 0)"),
    ("param_groups[", "pass every option to Optimizer.__init__ in the defaults dict under its "
                      "PyTorch name and read it from the group in step()"),
    ("p.grad after step()", "step() must leave p.grad as it is: no grad.add_(p, ...) or "
                            "grad.neg_() on it, no p.grad = None or zero_grad()"),
    ("losses returned", "step(closure) calls closure() under torch.enable_grad() and returns "
                        "its loss"),
)


def fmt(options: dict[str, Any]) -> str:
    """Options as they would be written in a call, rounded: ``lr=0.01234, betas=(0.9, 0.999)``."""
    def show(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, tuple):
            return "(" + ", ".join(show(x) for x in v) + ")"
        return repr(v)
    return ", ".join(f"{k}={show(v)}" for k, v in options.items())


def random_shapes(rng: np.random.Generator, n: int) -> list[tuple[int, ...]]:
    """``n`` small shapes among 0-dim, vectors and matrices."""
    pool = [(), (int(rng.integers(1, 5)),), (int(rng.integers(1, 4)), int(rng.integers(1, 4)))]
    return [pool[int(rng.integers(0, 3))] for _ in range(n)]


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A random value spread evenly on a log scale between ``low`` and ``high``."""
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


# With tiny gradients or a large eps, eps is no longer negligible next to sqrt(v): eps inside or
# outside the square root, or added before the bias correction, then changes the trajectory.
REGIMES = ("ordinary gradients", "tiny gradients (~1e-6)", "large eps")


def regime(rng: np.random.Generator, i: int) -> tuple[str, float, dict[str, float]]:
    """The ``i``-th case's regime: its name, the gradient scale and the options it sets."""
    name = REGIMES[i % len(REGIMES)]
    if name == REGIMES[0]:
        return name, float(rng.choice([1.0, 30.0])), {}
    if name == REGIMES[1]:
        return name, 1e-6, {}
    return name, 1.0, {"eps": log_uniform(rng, 1e-2, 1.0)}


class OptimizerExercise(Exercise):
    """An exercise whose answer is a ``torch.optim.Optimizer`` subclass, checked by its runs."""

    torch_class: type[torch.optim.Optimizer]
    hyper: tuple[str, ...] = ()  # the constructor's options, in order, as param_groups keys
    keyword_only: tuple[str, ...] = ("maximize", "decoupled_weight_decay")
    default_lr = 1e-3

    def torch_reference(self) -> Callable[..., Any]:
        return self.torch_class

    def run(self, impl: Any, case: Case) -> Outputs:
        a = dict(case.args)
        out = construct(impl, a, self) if a["kind"] == "construct" else train(impl, a, self)[0]
        return {k: v for k, v in out.items() if output_kind(k) in a["outputs"]}

    # -- case building -----------------------------------------------------------------------
    def case(self, label: str, rng: np.random.Generator, *, kwargs: dict[str, Any] | None = None,
             shapes: list[tuple[int, ...]] | None = None,
             groups: list[tuple[list[tuple[int, ...]], dict[str, Any]]] | None = None,
             args: tuple = (), kind: str = "train", steps: int = STEPS, scale: float = 1.0,
             closure: Any = False, none_grads: bool = False, set_to_none: bool = True,
             resume_at: int | None = None, set_lr: tuple[int, int, float] | None = None,
             dtype: str = "float64", public: bool = False, facet: str = "",
             outputs: tuple[str, ...] = UPDATE) -> Case:
        """One case as plain data; ``groups`` is a list of (shapes, options) for several groups.

        ``facet`` names the facet it counts towards ("": by its options, see :meth:`facet_for`);
        ``outputs`` the kinds of outputs it compares (see :func:`output_kind`)."""
        kwargs = dict(kwargs or {})
        groups = groups if groups is not None else [(shapes or [(3,)], {})]
        specs = [{"params": [rng.normal(0.0, 1.0, s) for s in sh], "options": dict(opts)}
                 for sh, opts in groups]
        objective = [draw_objective(rng, np.shape(p), scale) for g in specs for p in g["params"]]
        n = len(objective)
        active = activity(rng, steps, n, none_grads, 0.7)
        a = {"kind": kind, "groups": specs, "kwargs": kwargs, "args": tuple(args),
             "objective": objective, "steps": steps, "start": 0, "active": active,
             "closure": closure, "set_to_none": set_to_none, "resume_at": resume_at,
             "set_lr": set_lr, "dtype": dtype, "outputs": tuple(outputs),
             "flat": len(specs) == 1 and not specs[0]["options"], "load": None}
        shown = ", ".join(str(np.shape(p)) for g in specs for p in g["params"])
        call = ", ".join(["params", *map(repr, args)] + ([fmt(kwargs)] if kwargs else []))
        text = f"{label}: {self.name}({call}); params {shown} {dtype}" + \
               (f", {steps} steps" if kind == "train" else "")
        options = [kwargs, *(g["options"] for g in specs)]
        return Case(text, a, public=public, facet=facet or self.facet_for(options))

    def resumed_from_torch(self, case: Case, at: int) -> Case:
        """The same run from step ``at`` on, started from PyTorch's own params and state_dict."""
        a = dict(case.args)
        head = dict(a, steps=at, resume_at=None, set_lr=None, closure=False,
                    active=a["active"][:at])
        out, sd = train(self.torch_class, head, self)
        values = iter([out[trajectory_key(j)][-1] for j in range(len(a["objective"]))])
        groups = [dict(g, params=[next(values) for _ in g["params"]]) for g in a["groups"]]
        tail = dict(a, groups=groups, start=at, steps=a["steps"] - at, active=a["active"][at:],
                    resume_at=None, set_lr=None, load=sd)
        label = case.label.split(": ", 1)[1]
        return Case(f"torch.optim.{self.name}'s state_dict at step {at} loaded into your "
                    f"{self.name}, then {tail['steps']} more steps: {label}", tail,
                    public=case.public, facet=case.facet)

    def grid_case(self, i: int, rng: np.random.Generator, options: dict[str, Any]) -> Case:
        """One case of the options grid, in the ``i``-th regime."""
        name, scale, extra = regime(rng, i)
        return self.case(name, rng, kwargs={**options, **extra}, scale=scale,
                         shapes=random_shapes(rng, int(rng.integers(1, 3))))

    def structure_cases(self, rng: np.random.Generator, options: dict[str, Any],
                        group_options: list[dict[str, Any]], public: bool = False) -> list[Case]:
        """Groups, None grads, closures, a changed lr, state_dict round trips, float32, defaults."""
        shapes = [(3,), (2, 2)] if public else random_shapes(rng, 2)

        def few(k: int) -> list[tuple[int, ...]]:
            return [(2,)] * k if public else random_shapes(rng, k)

        groups = [(few(1), g) for g in group_options] + [(few(1), {})]
        defaults = inspect.signature(self.torch_class.__init__).parameters
        positional = tuple(options.get(k, defaults[k].default) for k in self.positional(options))
        at = 25 if public else int(rng.integers(10, 40))
        lr = options.get("lr", self.default_lr)
        api = {"public": public, "facet": API_FACET, "outputs": API}
        state = {"public": public, "facet": STATE_FACET, "outputs": STATE}
        resume = self.case(f"groups, None gradients; state_dict() saved at step {at}, loaded into "
                           f"a fresh {self.name}(params) and resumed", rng, kwargs=options,
                           groups=groups, none_grads=True, resume_at=at, **state)
        cases = [
            self.case("the defaults", rng, shapes=shapes, steps=60, **api),
            self.case("positional arguments", rng, shapes=shapes, args=positional, **api),
            self.case("parameter groups with their own options", rng, kwargs=options,
                      groups=groups, **api),
            self.case("some gradients None at some steps, the last parameter never has one", rng,
                      kwargs=options, shapes=few(3), none_grads=True, **api),
            self.case("None gradients, gradients zeroed in place", rng, kwargs=options,
                      shapes=few(3), none_grads=True, set_to_none=False, **api),
            self.case("stepped with a closure", rng, kwargs=options, shapes=shapes, closure=True,
                      **api),
            self.case("closure, step() called under torch.no_grad()", rng, kwargs=options,
                      closure="under no_grad", **api),
            self.case("group 0's lr halved at step 25, as a scheduler does", rng, kwargs=options,
                      groups=groups[:2], set_lr=(25, 0, 0.5 * lr), **api),
            self.case("float32", rng, kwargs=options, shapes=shapes, dtype="float32", steps=30,
                      public=public, facet=UPDATE_FACET),
            self.case("the state after the run (keys, dtypes, values), float32", rng,
                      kwargs=options, groups=groups, none_grads=True, dtype="float32", steps=30,
                      **state),
            resume,
            self.resumed_from_torch(resume, at),
        ]
        return cases

    def positional(self, options: dict[str, Any]) -> list[str]:
        """The constructor's positional parameters after ``params``, up to the last one set."""
        order = [k for k in self.hyper if k not in self.keyword_only]
        last = max(order.index(k) for k in options if k in order)
        return order[: last + 1]

    def validation_cases(self, rng: np.random.Generator, bad: list[dict[str, Any]],
                         good: list[dict[str, Any]]) -> list[Case]:
        """Each invalid argument (PyTorch raises ValueError) and boundary values it accepts."""
        api = {"kind": "construct", "facet": API_FACET, "outputs": ("groups",)}
        return [self.case("must raise ValueError", rng, kwargs=k, **api) for k in bad] \
            + [self.case("is valid", rng, kwargs=k, **api) for k in good]

    # -- facets ------------------------------------------------------------------------------
    # The option families, in order: a case that switches on several counts towards the first.
    option_facets: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def facet_for(self, options: list[dict[str, Any]]) -> str:
        """The facet of a trajectory case, by the options it (or one of its groups) switches on."""
        on = {k for opts in options for k, v in opts.items() if v not in (0, 0.0, False)}
        for facet, names in self.option_facets:
            if on & set(names):
                return facet
        return UPDATE_FACET

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        """The failing case shown first: public, the fewest features and options, the fewest
        parameters and steps (a plain run before groups, closures and state_dicts)."""
        a = case.args
        features = sum([len(a["groups"]) > 1, not np.all(a["active"]), bool(a["closure"]),
                        a["set_lr"] is not None, a["resume_at"] is not None,
                        a["load"] is not None, not a["set_to_none"], bool(a["args"]),
                        a["dtype"] != "float64"])
        options = [k for opts in [a["kwargs"], *(g["options"] for g in a["groups"])]
                   for k in opts if k != "lr"]
        scale = max(float(c["scale"]) for c in a["objective"]) if a["objective"] else 1.0
        regime_rank = 0 if scale >= 1.0 and "eps" not in a["kwargs"] else 1
        return (not case.public, a["kind"] == "construct", features, len(options), regime_rank,
                len(a["objective"]), a["steps"], case.label)

    # -- judging -------------------------------------------------------------------------------
    @staticmethod
    def tolerance(case: Case) -> dict[str, float]:
        """float64 or float32 tolerances, by the case's dtype."""
        return F32 if case.args.get("dtype") == "float32" else F64

    # Other legitimate ways of writing the math that PyTorch itself uses, accepted with their own
    # relative tolerance (see AdamExercise): (tag, model, rtol).
    variants: tuple[tuple[str, type, float], ...] = ()

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        tol = self.tolerance(case)
        problem = compare_outputs(got, expected, **tol)
        if ERROR_KEY in expected:
            # The exception's class is graded, not its text (PyTorch's own is shown as a hint).
            if problem is None:
                return None
            return f"{problem}\n  Hint: PyTorch raises {expected[ERROR_KEY]}" \
                   f"({str(expected['__message__'])!r})"
        if problem is None or ERROR_KEY in got:
            return problem
        # A value that passes near zero keeps the absolute error of its neighbours: rtol of the
        # output's own scale, not of the value itself (the exercise text states it).
        if close_to(got, expected, tol["rtol"], tol["atol"]):
            return None
        for tag, model, rtol in self.variants:
            other = memo_capture(self, model, tag, case)
            if ERROR_KEY not in other and close_to(got, other, max(rtol, tol["rtol"]),
                                                   tol["atol"]):
                return None
        first = next(k for k in expected
                     if compare_outputs(got, {k: expected[k]}, **tol) is not None)
        hints = [hint for pattern, hint in HINTS if pattern in first]
        return problem + (f"\n  Hint: {hints[0]}" if hints else "")

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        """The first mistake that behaves like ``got``; an error must match in class and message.

        A diagnosis is a likelier explanation, not a verdict: it is matched at
        ``DIAGNOSIS_RTOL`` of each output's scale, so that a mistake written with other
        roundings (a centered variance that cancels, a trajectory that turns chaotic) is named.
        The mistakes' outputs are computed once per case (``memo_capture``): a failing answer is
        compared with every model, on every failing case.
        """
        tol = self.tolerance(case)
        behaves: list[tuple[Mistake, Outputs]] = []
        for mistake in self.mistakes:
            try:
                wrong = memo_capture(self, mistake.impl, f"{mistake.key}:{mistake.impl.__name__}",
                                     case)
            except Exception:
                continue
            if (ERROR_KEY in wrong) != (ERROR_KEY in got):
                continue
            if ERROR_KEY in got:
                if (str(wrong[ERROR_KEY]), str(wrong["__message__"])) == \
                        (str(got[ERROR_KEY]), str(got["__message__"])):
                    return mistake
                continue
            behaves.append((mistake, wrong))
        for mistake, wrong in behaves:
            if close_to(got, wrong, tol["rtol"], tol["atol"]):
                return mistake
        # Within the looser tolerance, the closest: a mistake that changes nothing on this case
        # (lr_decay off by one, without lr_decay) is also near a small difference.
        near = [(distance(got, wrong), i) for i, (_, wrong) in enumerate(behaves)
                if close_to(got, wrong, max(DIAGNOSIS_RTOL, tol["rtol"]), tol["atol"])]
        return behaves[min(near)[1]][0] if near else None

    def judge(self, case: Case, got: Outputs, expected: Outputs | None = None) -> Verdict:
        return judge(self, case, got, expected)


# ---------------------------------------------------------------------------------------------
# Models of right and wrong answers: one re-implementation per optimizer, bugs switched on by name


class _Model(torch.optim.Optimizer):
    """Shared step loop of the models; ``bugs`` names the mistakes this model makes."""

    bugs: frozenset[str] = frozenset()
    eager_state = False  # Adagrad creates its state in __init__

    def _setup(self, params: Any, defaults: dict[str, Any]) -> None:
        torch.optim.Optimizer.__init__(self, params, defaults)
        if self.eager_state != ("lazy_state" in self.bugs) or "state_created_eagerly" in self.bugs:
            for group in self.param_groups:
                for p in group["params"]:
                    self._init_state(p, group)

    @classmethod
    def with_bugs(cls, *bugs: str) -> type:
        """A subclass of this model that makes the named mistakes."""
        return type(f"{cls.__name__}_{'_'.join(bugs)}", (cls,), {"bugs": frozenset(bugs)})

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if "step_not_no_grad" in self.bugs:
            return self._step(closure)
        with torch.no_grad():
            return self._step(closure)

    def _step(self, closure: Callable[[], Any] | None) -> Any:
        loss = None
        if closure is not None:
            if "closure_without_enable_grad" in self.bugs:
                loss = closure()
            else:
                with torch.enable_grad():
                    loss = closure()
        for group in self.param_groups:
            hp = group
            if "uses_defaults_not_group" in self.bugs:
                hp = self.defaults
            elif "defaults_numbers" in self.bugs:  # flags from the group, numbers cached
                numbers = {k: v for k, v in self.defaults.items() if not isinstance(v, bool)}
                hp = {**group, **numbers}
            elif "lr_cached" in self.bugs:
                hp = dict(group, lr=self.defaults["lr"])
            for p in group["params"]:
                if p.grad is None and "none_grad_as_zero" not in self.bugs:
                    continue
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                if hp["maximize"] and "maximize_ignored" not in self.bugs:
                    grad = -grad
                if len(self.state[p]) == 0:
                    self._init_state(p, hp)
                used = self._update(p, grad, self.state[p], hp)
                if "grad_modified_in_place" in self.bugs and p.grad is not None:
                    p.grad.copy_(used)
                if "zero_grad_in_step" in self.bugs:
                    p.grad = None
        return None if "closure_loss_dropped" in self.bugs else loss

    def _init_state(self, p: torch.Tensor, hp: dict[str, Any]) -> None:
        raise NotImplementedError

    def _update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                hp: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError


def _l2_or_decoupled(bugs: frozenset[str], p: torch.Tensor, grad: torch.Tensor, lr: float,
                     wd: float) -> torch.Tensor:
    """L2 through the gradient, as Adagrad and RMSprop do (or, wrongly, decoupled)."""
    if wd == 0:
        return grad
    if "decoupled_instead_of_l2" in bugs:
        p.mul_(1 - lr * wd)
        return grad
    return grad.add(p, alpha=wd)


def _adagrad_update(opt: _Model, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                    hp: dict[str, Any]) -> torch.Tensor:
    """One parameter's Adagrad update, in place; returns the gradient it used."""
    bugs, lr, decay = opt.bugs, hp["lr"], hp["lr_decay"]
    before = state["step"].item()
    state["step"] += 1
    t = state["step"].item()
    raw = grad
    grad = _l2_or_decoupled(bugs, p, grad, lr, hp["weight_decay"])
    if "lr_decay_off_by_one" in bugs:
        clr = lr / (1 + t * decay)
    elif "step_incremented_late" in bugs:
        clr = lr / (1 + (before - 1) * decay)
    else:
        clr = lr / (1 + (t - 1) * decay)
    summed = raw if "weight_decay_not_in_sum" in bugs else grad
    state["sum"].addcmul_(summed, summed, value=1)
    if "eps_inside_sqrt" in bugs:
        std = (state["sum"] + hp["eps"]).sqrt()
    else:
        std = state["sum"].sqrt().add_(hp["eps"])
    p.addcdiv_(grad, std, value=-clr)
    return grad


def _rmsprop_update(opt: _Model, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                    hp: dict[str, Any]) -> torch.Tensor:
    """One parameter's RMSprop update, in place; returns the gradient it used."""
    bugs, lr, eps, momentum = opt.bugs, hp["lr"], hp["eps"], hp["momentum"]
    alpha = 1 - hp["alpha"] if "alpha_swapped" in bugs else hp["alpha"]
    state["step"] += 1
    grad = _l2_or_decoupled(bugs, p, grad, lr, hp["weight_decay"])
    square_avg = state["square_avg"]
    square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    var = square_avg
    if hp["centered"] and "centered_ignored" not in bugs:
        grad_avg = state["grad_avg"]
        grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha)
        var = square_avg - (grad_avg if "centered_missing_square" in bugs else grad_avg * grad_avg)
    if "bias_corrected" in bugs:
        var = var / (1 - hp["alpha"] ** state["step"].item())
    avg = (var + eps).sqrt() if "eps_inside_sqrt" in bugs else var.sqrt() + eps
    if momentum > 0:
        buf = state["momentum_buffer"]
        if "lr_in_momentum_buffer" in bugs:
            buf.mul_(momentum).add_(lr * grad / avg)
            p.sub_(buf)
        elif "momentum_dampened" in bugs:
            buf.mul_(momentum).add_((1 - momentum) * grad / avg)
            p.add_(buf, alpha=-lr)
        else:
            buf.mul_(momentum).addcdiv_(grad, avg)
            p.add_(buf, alpha=-lr)
    else:
        p.addcdiv_(grad, avg, value=-lr)
    return grad


def _adam_update(opt: _Model, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                 hp: dict[str, Any]) -> torch.Tensor:
    """One parameter's Adam update (AdamW's with decoupled decay), in place; returns the gradient
    it used."""
    bugs, lr, eps, wd = opt.bugs, hp["lr"], hp["eps"], hp["weight_decay"]
    beta1, beta2 = hp["betas"][::-1] if "betas_swapped" in bugs else hp["betas"]
    before = state["step"].item()
    state["step"] += 1
    late = "step_incremented_late" in bugs or "late_zerodiv" in bugs
    t = before if late else state["step"].item()
    decoupled = hp.get("decoupled_weight_decay", False)
    if "l2_instead_of_decoupled" in bugs:
        decoupled = False
    if "decoupled_instead_of_l2" in bugs:
        decoupled = True
    if wd != 0 and (not decoupled or "decay_twice" in bugs):
        grad = grad.add(p, alpha=wd)
    if wd != 0 and decoupled and "decay_twice_after" in bugs:  # L2 term from the decayed p
        p.mul_(1 - lr * wd)
        grad = grad.add(p, alpha=wd)
    elif wd != 0 and decoupled:
        if "decay_without_lr" in bugs:
            p.mul_(1 - wd)
        elif "decay_wrong_sign" in bugs:
            p.mul_(1 + lr * wd)
        elif "decay_proximal" in bugs:
            p.div_(1 + lr * wd)
        elif "decay_after_update" not in bugs:
            p.mul_(1 - lr * wd)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    if "step_tensor_float32" in bugs:  # 1 - beta ** state["step"]: a float32 tensor
        bc1, bc2 = 1 - beta1 ** state["step"], 1 - beta2 ** state["step"]
    elif "no_bias_correction" in bugs:
        bc1 = bc2 = 1.0
    else:
        bc1 = 1 - beta1 ** t
        bc2 = 1.0 if "bias_correction_first_moment_only" in bugs else 1 - beta2 ** t
    second = exp_avg_sq
    if hp["amsgrad"] and "amsgrad_ignored" not in bugs:
        if "amsgrad_max_of_corrected" in bugs:
            torch.maximum(state["max_exp_avg_sq"], exp_avg_sq / bc2, out=state["max_exp_avg_sq"])
            second, bc2 = state["max_exp_avg_sq"], 1.0
        else:
            torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
    if "eps_inside_sqrt" in bugs:
        denom = (second / bc2 + eps).sqrt()
    elif "eps_before_bias_correction" in bugs:
        denom = (second.sqrt() + eps) / math.sqrt(bc2)
    elif "bias_correction2_not_sqrt" in bugs:
        denom = second.sqrt() / bc2 + eps
    elif isinstance(bc2, torch.Tensor):
        denom = second.sqrt() / bc2.sqrt() + eps
    else:
        denom = second.sqrt() / math.sqrt(bc2) + eps
    if isinstance(bc1, torch.Tensor):
        p.sub_(exp_avg / denom * (lr / bc1))
    elif "late_zerodiv" in bugs:
        p.addcdiv_(exp_avg, denom, value=-lr / bc1)  # bc1 == 0.0: ZeroDivisionError
    else:
        p.addcdiv_(exp_avg / bc1, denom, value=-lr)  # bc1 == 0 (late step): nan, as tensors give
    if wd != 0 and decoupled and "decay_after_update" in bugs:
        p.mul_(1 - lr * wd)
    return grad


class AdagradModel(_Model):
    """torch.optim.Adagrad re-implemented (the bugs come with :meth:`_Model.with_bugs`)."""

    eager_state = True

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        for name, value in (("learning rate", lr), ("lr_decay value", lr_decay),
                            ("weight_decay value", weight_decay),
                            ("initial_accumulator_value value", initial_accumulator_value),
                            ("epsilon value", eps)):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name}: {value}")
        self._setup(params, {"lr": lr, "lr_decay": lr_decay, "eps": eps,
                             "weight_decay": weight_decay, "maximize": maximize,
                             "initial_accumulator_value": initial_accumulator_value})

    def _init_state(self, p, hp):
        start = 0.0 if "initial_accumulator_ignored" in self.bugs else \
            self.defaults["initial_accumulator_value"]
        self.state[p].update(step=torch.tensor(0.0), sum=torch.full_like(p, start))

    def _update(self, p, grad, state, hp):
        return _adagrad_update(self, p, grad, state, hp)


class RMSpropModel(_Model):
    """torch.optim.RMSprop re-implemented."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        for name, value in (("learning rate", lr), ("epsilon value", eps),
                            ("momentum value", momentum), ("weight_decay value", weight_decay),
                            ("alpha value", alpha)):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name}: {value}")
        self._setup(params, {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps,
                             "centered": centered, "weight_decay": weight_decay,
                             "maximize": maximize})

    def _init_state(self, p, hp):
        extra = "extra_state_keys" in self.bugs
        state = self.state[p]
        state.update(step=torch.tensor(0.0), square_avg=torch.zeros_like(p))
        if hp["momentum"] > 0 or extra:
            state["momentum_buffer"] = torch.zeros_like(p)
        if (hp["centered"] and "centered_ignored" not in self.bugs) or extra:
            state["grad_avg"] = torch.zeros_like(p)

    def _update(self, p, grad, state, hp):
        return _rmsprop_update(self, p, grad, state, hp)


class AdamModel(_Model):
    """torch.optim.Adam re-implemented, AMSGrad and decoupled weight decay included."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        for name, value, ok in (("learning rate", lr, 0.0 <= lr),
                                ("epsilon value", eps, 0.0 <= eps),
                                ("beta parameter at index 0", betas[0], 0.0 <= betas[0] < 1.0),
                                ("beta parameter at index 1", betas[1], 0.0 <= betas[1] < 1.0),
                                ("weight_decay value", weight_decay, 0.0 <= weight_decay)):
            if not ok:
                raise ValueError(f"Invalid {name}: {value}")
        self._setup(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                             "weight_decay": weight_decay, "amsgrad": amsgrad,
                             "maximize": maximize,
                             "decoupled_weight_decay": decoupled_weight_decay})

    def _init_state(self, p, hp):
        state = self.state[p]
        state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                     exp_avg_sq=torch.zeros_like(p))
        if hp["amsgrad"] and "amsgrad_ignored" not in self.bugs:
            state["max_exp_avg_sq"] = torch.zeros_like(p)

    def _update(self, p, grad, state, hp):
        return _adam_update(self, p, grad, state, hp)


class AdamWModel(AdamModel):
    """torch.optim.AdamW re-implemented: the Adam model with decoupled weight decay."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)


class AdamWModelNoDefaultDecay(AdamWModel):
    """AdamW whose weight_decay defaults to Adam's 0 instead of 1e-2."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


# ---------------------------------------------------------------------------------------------
# The mistakes tables

M = "grader.chapters.ch04_adaptive_optimizers"

GENERIC = {
    "maximize_ignored": "maximize=True is ignored: with maximize the gradient's sign is flipped, "
                        "g = -p.grad, before anything else uses it",
    "none_grad_as_zero": "a parameter whose .grad is None is updated as if its gradient were zero "
                         "(its state and step counter move): PyTorch skips it entirely",
    "grad_modified_in_place": "step() changes p.grad in place (grad.add_(p, alpha=weight_decay) or "
                              "grad.neg_() on p.grad): compute a new tensor, leave .grad alone",
    "uses_defaults_not_group": "the hyperparameters are read from self.defaults (or saved in "
                               "__init__), not from each param group: several groups, a "
                               "scheduler changing group['lr'] and load_state_dict all go "
                               "through param_groups",
    "step_not_no_grad": "step() updates the parameters in place while autograd records: decorate "
                        "step with @torch.no_grad()",
    "closure_without_enable_grad": "closure() is called with gradients disabled (inside "
                                   "@torch.no_grad()): call it inside `with torch.enable_grad():`",
    "lr_cached": "the learning rate saved in __init__ (self.lr) is used instead of group['lr'], "
                 "so per-group learning rates, schedulers and load_state_dict have no effect on it",
    "zero_grad_in_step": "step() clears the gradients (p.grad = None or zero_grad()); that is the "
                         "training loop's job, before the next backward",
    "closure_loss_dropped": "step(closure) must return the loss that closure() returned",
    "decoupled_instead_of_l2": "weight_decay shrinks the weights directly (p *= 1 - lr * "
                               "weight_decay, decoupled, AdamW-style); here it is an L2 penalty "
                               "added to the gradient: g = g + weight_decay * p",
}


# Mistakes that show in what a training loop sees (groups, schedulers, closures, p.grad): charged
# to the API contract once, whichever case shows them. A step() that crashes (no @no_grad) is not
# in this list: it fails every facet.
API_MISTAKES = ("none_grad_as_zero", "grad_modified_in_place", "uses_defaults_not_group",
                "lr_cached", "zero_grad_in_step", "closure_without_enable_grad",
                "closure_loss_dropped")


def table(model: type, entries: list[tuple], facets: dict[str, str]) -> tuple[Mistake, ...]:
    """Mistakes from (key, bugs, message) rows; a message of None takes GENERIC[key].

    ``facets`` maps a key to the facet the mistake is charged to (API_MISTAKES: the API
    contract); a key in neither is charged to the facet of each case that shows it."""
    out = []
    for key, bugs, message in entries:
        bugs = (bugs,) if isinstance(bugs, str) else bugs
        impl = model if not bugs else model.with_bugs(*bugs)
        facet = facets.get(key, API_FACET if key in API_MISTAKES else None)
        out.append(Mistake(key, message or GENERIC[key], impl, facet=facet))
    return tuple(out)


def generic(*keys: str) -> list[tuple]:
    """Table rows for the mistakes every optimizer can make, each its own model bug."""
    return [(key, key, None) for key in keys]


LATE = ("the step counter is incremented after it is used, so the first bias correction is "
        "1 - beta^0 = 0: increment state['step'] first")
DECAY_TWICE = ("the weights are decayed twice: decoupled (p *= 1 - lr * wd) and through the "
               "gradient (g + wd * p); decoupled decay never touches the gradient")
EPS_INSIDE = ("eps is added inside the square root, sqrt(v + eps); PyTorch adds it outside: "
              "sqrt(v) + eps (the difference shows when gradients are tiny or eps is large)")

ADAM_MISTAKES = [
    ("no_bias_correction", "no_bias_correction", "no bias correction: divide m by 1 - beta1^t and "
     "v by 1 - beta2^t (t = 1 at the first step); without it the early steps have the wrong size "
     "(with the default betas, several times too large)"),
    ("bias_correction_first_moment_only", "bias_correction_first_moment_only",
     "only the first moment is bias-corrected: v needs v / (1 - beta2^t) too"),
    ("bias_correction2_not_sqrt", "bias_correction2_not_sqrt", "the second moment's bias "
     "correction is applied to sqrt(v) without its own square root: sqrt(v) / sqrt(1 - beta2^t)"),
    ("eps_inside_sqrt", "eps_inside_sqrt", EPS_INSIDE),
    ("eps_before_bias_correction", "eps_before_bias_correction", "eps is added before the bias "
     "correction, (sqrt(v) + eps) / sqrt(1 - beta2^t); PyTorch adds it after: "
     "sqrt(v) / sqrt(1 - beta2^t) + eps"),
    ("step_incremented_late", "step_incremented_late", LATE),
    ("step_incremented_late", "late_zerodiv", LATE),  # lr / (1 - beta1^0) in Python floats
    ("amsgrad_max_of_corrected", "amsgrad_max_of_corrected", "AMSGrad keeps the maximum of the "
     "bias-corrected v; PyTorch keeps max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq) of the raw "
     "average and bias-corrects that maximum"),
    ("amsgrad_ignored", "amsgrad_ignored", "amsgrad=True is ignored: keep max_exp_avg_sq, the "
     "running maximum of exp_avg_sq, and divide by its square root instead"),
    ("betas_swapped", "betas_swapped", "beta1 and beta2 are swapped: betas = (beta1 for the "
     "gradient's average, beta2 for the squared gradient's)"),
    ("decoupled_instead_of_l2", "decoupled_instead_of_l2", None),
    ("l2_instead_of_decoupled", "l2_instead_of_decoupled", "decoupled_weight_decay=True must "
     "shrink the weights directly, p *= 1 - lr * weight_decay, before the Adam step, not add "
     "weight_decay * p to the gradient"),
    ("decay_after_update", "decay_after_update", "the decoupled decay is applied after the Adam "
     "step; PyTorch multiplies p by (1 - lr * weight_decay) first, then takes the step"),
    ("decay_without_lr", "decay_without_lr", "the decoupled decay is p *= 1 - weight_decay; "
     "PyTorch scales it by the learning rate: p *= 1 - lr * weight_decay"),
    ("decay_wrong_sign", "decay_wrong_sign", "the decoupled decay multiplies by (1 + lr * "
     "weight_decay), which grows the weights: it is p *= 1 - lr * weight_decay"),
    ("decay_proximal", "decay_proximal", "the decoupled decay divides by (1 + lr * weight_decay); "
     "PyTorch multiplies by (1 - lr * weight_decay)"),
    ("decay_twice", "decay_twice", DECAY_TWICE),
    ("decay_twice", "decay_twice_after", DECAY_TWICE),
    *generic("maximize_ignored", "none_grad_as_zero", "grad_modified_in_place",
             "uses_defaults_not_group", "step_not_no_grad", "closure_without_enable_grad",
             "zero_grad_in_step", "closure_loss_dropped", "lr_cached"),
    ("uses_defaults_not_group", "defaults_numbers", None),
]

ADAGRAD_MISTAKES = [
    ("lr_decay_off_by_one", "lr_decay_off_by_one", "the decayed learning rate is lr / (1 + t * "
     "lr_decay); PyTorch uses lr / (1 + (t - 1) * lr_decay), so the first step takes the full lr"),
    ("step_incremented_late", "step_incremented_late", "the step counter is incremented after "
     "it is used: the first step computes lr / (1 - lr_decay); increment state['step'] first"),
    ("eps_inside_sqrt", "eps_inside_sqrt", EPS_INSIDE),
    ("initial_accumulator_ignored", "initial_accumulator_ignored", "the sum starts at 0 whatever "
     "initial_accumulator_value says: fill it with initial_accumulator_value"),
    ("weight_decay_not_in_sum", "weight_decay_not_in_sum", "the squared-gradient sum uses the "
     "gradient before weight decay is added; PyTorch adds weight_decay * p first and accumulates "
     "the squares of that"),
    ("decoupled_instead_of_l2", "decoupled_instead_of_l2", None),
    *generic("maximize_ignored", "none_grad_as_zero", "grad_modified_in_place",
             "uses_defaults_not_group", "step_not_no_grad", "closure_without_enable_grad",
             "zero_grad_in_step", "closure_loss_dropped", "lr_cached"),
    ("uses_defaults_not_group", "defaults_numbers", None),
]

RMSPROP_MISTAKES = [
    ("centered_missing_square", "centered_missing_square", "the centered variance is "
     "square_avg - grad_avg; it is square_avg - grad_avg ** 2 (E[g^2] - E[g]^2)"),
    ("centered_ignored", "centered_ignored", "centered=True is ignored: keep grad_avg, the moving "
     "average of g, and divide by sqrt(square_avg - grad_avg ** 2) + eps"),
    ("eps_inside_sqrt", "eps_inside_sqrt", EPS_INSIDE),
    ("alpha_swapped", "alpha_swapped", "alpha weighs the past: square_avg = alpha * square_avg + "
     "(1 - alpha) * g^2, not the other way round"),
    ("lr_in_momentum_buffer", "lr_in_momentum_buffer", "the learning rate is folded into the "
     "momentum buffer; PyTorch keeps buf = momentum * buf + g / (sqrt(v) + eps) and steps by "
     "-lr * buf (the state_dict and a changed lr differ)"),
    ("momentum_dampened", "momentum_dampened", "the momentum buffer is dampened by (1 - momentum); "
     "RMSprop's buffer is buf = momentum * buf + g / (sqrt(v) + eps)"),
    ("bias_corrected", "bias_corrected", "square_avg is bias-corrected as in Adam; RMSprop "
     "divides by sqrt(square_avg) + eps with no correction"),
    ("extra_state_keys", "extra_state_keys", "momentum_buffer and grad_avg are created even when "
     "momentum == 0 or centered is False; PyTorch creates only the state it uses"),
    ("decoupled_instead_of_l2", "decoupled_instead_of_l2", None),
    *generic("maximize_ignored", "none_grad_as_zero", "grad_modified_in_place",
             "uses_defaults_not_group", "step_not_no_grad", "closure_without_enable_grad",
             "zero_grad_in_step", "closure_loss_dropped", "lr_cached"),
    ("uses_defaults_not_group", "defaults_numbers", None),
]

ADAMW_MISTAKES = [
    ("l2_instead_of_decoupled", "l2_instead_of_decoupled", "AdamW adds weight_decay * p to the "
     "gradient (that is Adam's L2 penalty); AdamW shrinks the weights directly: "
     "p *= 1 - lr * weight_decay, before the Adam step"),
    *[row for row in ADAM_MISTAKES if row[0] in (
        "decay_after_update", "decay_without_lr", "decay_wrong_sign", "decay_proximal",
        "decay_twice")],
    *[row for row in ADAM_MISTAKES if row[0] not in (
        "decoupled_instead_of_l2", "l2_instead_of_decoupled", "decay_after_update",
        "decay_without_lr", "decay_wrong_sign", "decay_proximal", "decay_twice")],
]

UPDATE_MISTAKES = ("no_bias_correction", "bias_correction_first_moment_only",
                   "bias_correction2_not_sqrt", "eps_inside_sqrt", "eps_before_bias_correction",
                   "step_incremented_late", "betas_swapped")
DECAY_MISTAKES = ("decoupled_instead_of_l2", "l2_instead_of_decoupled", "decay_after_update",
                  "decay_without_lr", "decay_wrong_sign", "decay_proximal", "decay_twice",
                  "default_weight_decay")
AMSGRAD_MISTAKES = ("amsgrad_max_of_corrected", "amsgrad_ignored")


def charged(**groups: Iterable[str]) -> dict[str, str]:
    """Mistake key -> facet, from ``facet=keys`` (underscores in the facet name stand for
    spaces)."""
    return {key: facet.replace("_", " ") for facet, keys in groups.items() for key in keys}


ADAM_FORBIDDEN = (
    "torch.optim.Adam", "torch.optim.AdamW", "torch.optim.adam.adam",
    "torch.optim.adam._single_tensor_adam", "torch.optim.adam._multi_tensor_adam",
    "torch.optim.adam._fused_adam", "torch.optim.adamw.adamw", "torch.optim._functional.adam",
    "torch.optim._functional.adamw", "torch._fused_adam_", "torch._fused_adamw_",
    "torch.optim.SparseAdam", "torch.optim._functional.sparse_adam",
    f"{M}.AdamModel", f"{M}._adam_update",
)


# ---------------------------------------------------------------------------------------------
# The correct Adam that AdamW is checked on


class ReferenceAdam(torch.optim.Optimizer):
    """``torch.optim.Adam`` written out, put in place of the learner's ``Adam`` when ``AdamW``
    is checked (``class AdamW(Adam)`` is rebuilt on it): a mistake in ``Adam``, even a crash,
    a timeout or ``os._exit`` in its ``step``, is charged to the ``Adam`` exercise only.

    Self-contained and made of tensor operations only: it runs inside AdamW's check, where
    AdamW's off-limits functions (the grader's models included) raise. Off-limits to ``Adam``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        for name, value, ok in (("learning rate", lr, 0.0 <= lr),
                                ("epsilon value", eps, 0.0 <= eps),
                                ("beta parameter at index 0", betas[0], 0.0 <= betas[0] < 1.0),
                                ("beta parameter at index 1", betas[1], 0.0 <= betas[1] < 1.0),
                                ("weight_decay value", weight_decay, 0.0 <= weight_decay)):
            if not ok:
                raise ValueError(f"Invalid {name}: {value}")
        torch.optim.Optimizer.__init__(self, params, {
            "lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
            "amsgrad": amsgrad, "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                if wd != 0 and group.get("decoupled_weight_decay", False):
                    p.mul_(1 - lr * wd)
                elif wd != 0:
                    grad = grad.add(p, alpha=wd)
                state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                second = state["exp_avg_sq"]
                if group["amsgrad"]:
                    torch.maximum(state["max_exp_avg_sq"], second, out=state["max_exp_avg_sq"])
                    second = state["max_exp_avg_sq"]
                denom = second.sqrt() / math.sqrt(1 - beta2 ** t) + group["eps"]
                p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1 ** t))
        return loss


def uses_base_internals(cls: type, base_name: str, substitute: type) -> bool:
    """Whether ``cls`` overrides or calls a method of its base ``base_name`` (the learner's own)
    that ``substitute`` does not have: rebuilt on the substitute, it would lose that method.

    ``class AdamW(Adam)`` with only ``__init__`` (or its own ``step``) is rebuilt on the correct
    Adam; one that overrides a helper its Adam's ``step`` calls (a template method) is checked
    as written, since the correct Adam would never call its override.
    """
    base = next((k for k in cls.__mro__[1:] if k.__name__ == base_name), None)
    if base is None:
        return False
    own = {name for k in base.__mro__ if k not in torch.optim.Optimizer.__mro__
           for name in vars(k) if not name.startswith("__")}
    known = set(dir(substitute))
    names: set[str] = set()
    for name, value in vars(cls).items():
        if name in ("__init__", "step"):
            pass
        elif not name.startswith("__"):
            names.add(name)  # an override of one of the base's methods, or a new one
        codes = [getattr(value, "__func__", value)]
        codes = [c.__code__ for c in codes if hasattr(c, "__code__")]
        while codes:
            code = codes.pop()
            names.update(code.co_names)
            codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return bool((own - known - {"__init__", "step"}) & names)


# ---------------------------------------------------------------------------------------------
# The four exercises


def on_off(n: int) -> Iterator[tuple[bool, ...]]:
    """Every on/off combination of ``n`` options."""
    return itertools.product((False, True), repeat=n)


API_COVERS = ("the defaults, positional arguments, parameter groups, None gradients, closures, "
              "an lr changed mid-run, p.grad left alone, every ValueError (its class)")
STATE_COVERS = ("the state PyTorch keeps (keys, dtypes, values), a state_dict saved mid-run "
                "and resumed, PyTorch's own state_dict loaded into yours")


class AdagradExercise(OptimizerExercise):
    """``class Adagrad(torch.optim.Optimizer)``, equal to ``torch.optim.Adagrad``."""

    name, grade_id, points = "Adagrad", "test_Adagrad", 3.0
    torch_class = torch.optim.Adagrad
    hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize")
    default_lr = 1e-2
    forbidden = (
        "torch.optim.Adagrad", "torch.optim.adagrad.adagrad",
        "torch.optim.adagrad._single_tensor_adagrad", "torch.optim.adagrad._multi_tensor_adagrad",
        "torch.optim.adagrad._fused_adagrad", "torch.optim._functional.adagrad",
        "torch._fused_adagrad_", f"{M}.AdagradModel", f"{M}._adagrad_update",
    )
    facets = (
        Facet(UPDATE_FACET, 1.5, "sum of squared gradients, lr / (sqrt(sum) + eps), float32"),
        Facet("options", 0.5, "lr_decay, weight_decay, initial_accumulator_value, maximize"),
        Facet(API_FACET, 0.5, API_COVERS),
        Facet(STATE_FACET, 0.5, STATE_COVERS),
    )
    option_facets = (("options", ("lr_decay", "weight_decay", "initial_accumulator_value",
                                  "maximize")),)
    mistakes = table(AdagradModel, ADAGRAD_MISTAKES, charged(
        update_rule=["eps_inside_sqrt"],
        options=["lr_decay_off_by_one", "step_incremented_late", "initial_accumulator_ignored",
                 "weight_decay_not_in_sum", "decoupled_instead_of_l2", "maximize_ignored"]))

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(4)
        options = {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1,
                   "initial_accumulator_value": 0.1}
        return [
            self.case("plain Adagrad", rng, kwargs={"lr": 0.1}, public=True),
            self.case("every option", rng, kwargs=options, public=True),
            self.case("maximize", rng, kwargs={"lr": 0.1, "maximize": True}, public=True),
            self.case("tiny gradients (~1e-6), where eps matters", rng, kwargs={"lr": 0.1},
                      scale=1e-6, public=True),
            *self.structure_cases(rng, options, [{"lr_decay": 0.3}, {"maximize": True}],
                                  public=True),
            self.case("must raise ValueError", rng, kind="construct", kwargs={"lr": -0.01},
                      public=True, facet=API_FACET, outputs=("groups",)),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        for i, (decay, wd, maximize, acc) in enumerate(on_off(4)):
            options: dict[str, Any] = {"lr": log_uniform(rng, 0.01, 0.5)}
            if decay:
                options["lr_decay"] = float(rng.uniform(0.01, 0.3))
            if wd:
                options["weight_decay"] = float(rng.uniform(0.05, 0.5))
            if acc:
                options["initial_accumulator_value"] = float(rng.uniform(0.01, 0.5))
            if maximize:
                options["maximize"] = True
            cases.append(self.grid_case(i, rng, options))
        options = {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.2,
                   "initial_accumulator_value": 0.05}
        groups = [{"lr_decay": 0.3}, {"weight_decay": 0.1, "maximize": True}, {"lr": 0.3}]
        cases += self.structure_cases(rng, options, groups)
        cases += self.validation_cases(
            rng, [{"lr": -0.1}, {"lr_decay": -0.1}, {"weight_decay": -0.1},
                  {"initial_accumulator_value": -0.1}, {"eps": -1e-10}],
            [{"lr": 0.0, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0,
              "eps": 0.0}])
        return cases


class RMSpropExercise(OptimizerExercise):
    """``class RMSprop(torch.optim.Optimizer)``, equal to ``torch.optim.RMSprop``."""

    name, grade_id, points = "RMSprop", "test_RMSprop", 4.0
    torch_class = torch.optim.RMSprop
    hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")
    default_lr = 1e-2
    forbidden = (
        "torch.optim.RMSprop", "torch.optim.rmsprop.rmsprop",
        "torch.optim.rmsprop._single_tensor_rmsprop", "torch.optim.rmsprop._multi_tensor_rmsprop",
        "torch.optim._functional.rmsprop", f"{M}.RMSpropModel", f"{M}._rmsprop_update",
    )
    facets = (
        Facet(UPDATE_FACET, 1.5, "the moving average of g^2 (alpha), lr / (sqrt(v) + eps), "
                                 "float32"),
        Facet("centered", 0.5, "centered=True: divide by sqrt(v - grad_avg^2) + eps"),
        Facet("momentum", 0.5, "the momentum buffer of normalised steps"),
        Facet("weight decay and maximize", 0.5, "L2 weight decay through the gradient, "
                                                "maximize"),
        Facet(API_FACET, 0.5, API_COVERS),
        Facet(STATE_FACET, 0.5, STATE_COVERS),
    )
    option_facets = (("centered", ("centered",)), ("momentum", ("momentum",)),
                     ("weight decay and maximize", ("weight_decay", "maximize")))
    mistakes = table(RMSpropModel, RMSPROP_MISTAKES, {**charged(
        update_rule=["eps_inside_sqrt", "alpha_swapped", "bias_corrected"],
        centered=["centered_missing_square", "centered_ignored"],
        momentum=["lr_in_momentum_buffer", "momentum_dampened"],
        weight_decay_and_maximize=["decoupled_instead_of_l2", "maximize_ignored"]),
        "extra_state_keys": STATE_FACET})

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(5)
        options = {"lr": 0.01, "alpha": 0.9, "weight_decay": 0.1, "momentum": 0.9,
                   "centered": True}
        return [
            self.case("plain RMSprop", rng, kwargs={"lr": 0.01}, public=True),
            self.case("centered", rng, kwargs={"lr": 0.01, "centered": True}, public=True),
            self.case("momentum", rng, kwargs={"lr": 0.01, "momentum": 0.9}, public=True),
            self.case("centered, with momentum and weight decay", rng, kwargs=options,
                      public=True),
            self.case("maximize", rng, kwargs={"lr": 0.01, "maximize": True}, public=True),
            self.case("tiny gradients (~1e-6), where eps matters", rng, scale=1e-6,
                      kwargs={"lr": 0.01, "alpha": 0.9}, public=True),
            *self.structure_cases(rng, options, [{"centered": False}, {"momentum": 0.0}],
                                  public=True),
            self.case("must raise ValueError", rng, kind="construct", kwargs={"alpha": -0.5},
                      public=True, facet=API_FACET, outputs=("groups",)),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        for i, (centered, momentum, maximize, wd) in enumerate(on_off(4)):
            options: dict[str, Any] = {"lr": log_uniform(rng, 1e-3, 0.05),
                                       "alpha": float(rng.uniform(0.8, 0.99))}
            if centered:
                options["centered"] = True
            if momentum:
                options["momentum"] = float(rng.uniform(0.5, 0.95))
            if wd:
                options["weight_decay"] = float(rng.uniform(0.05, 0.5))
            if maximize:
                options["maximize"] = True
            cases.append(self.grid_case(i, rng, options))
        options = {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1, "momentum": 0.8,
                   "centered": True}
        groups = [{"centered": False}, {"momentum": 0.0, "maximize": True}, {"lr": 0.003}]
        cases += self.structure_cases(rng, options, groups)
        cases += self.validation_cases(
            rng, [{"lr": -0.01}, {"eps": -1e-8}, {"weight_decay": -0.1}, {"momentum": -0.9},
                  {"alpha": -0.5}],
            [{"lr": 0.0, "alpha": 1.0, "eps": 0.0, "weight_decay": 0.0, "momentum": 0.0}])
        return cases


ADAM_BAD = [{"lr": -1e-3}, {"eps": -1e-8}, {"betas": (1.0, 0.999)}, {"betas": (-0.1, 0.999)},
            {"betas": (0.9, 1.0)}, {"weight_decay": -0.1}]
ADAM_GOOD = [{"lr": 0.0, "betas": (0.0, 0.0), "eps": 0.0, "weight_decay": 0.0}]


def draw_adam(rng: np.random.Generator, amsgrad: bool, maximize: bool) -> dict[str, Any]:
    """Random lr and betas, and the flags switched on."""
    options: dict[str, Any] = {
        "lr": log_uniform(rng, 1e-3, 0.1),
        "betas": (float(rng.uniform(0.5, 0.95)), float(rng.uniform(0.8, 0.999)))}
    if amsgrad:
        options["amsgrad"] = True
    if maximize:
        options["maximize"] = True
    return options


# A float32 step in the bias corrections: ``1 - beta1 ** state["step"]`` computed from the 0-dim
# float32 tensor rounds beta^t to float32 (up to ~1e-5 relative in 1 - beta2^t, carried into
# every step). That is not a mistake: it is how PyTorch's own Adam computes the corrections with
# ``capturable=True`` or ``differentiable=True`` (``bias_correction1 = 1 - beta1 ** step`` on the
# step tensor), so an answer written that way passes. It is compared with that computation (the
# model with "step_tensor_float32"), at rtol=1e-4: float32 roundings differ with the order of
# the operations, and every other known mistake is off by far more. The exercise text says so.
FLOAT32_STEP_RTOL = 1e-4


class AdamExercise(OptimizerExercise):
    """``class Adam(torch.optim.Optimizer)``, equal to ``torch.optim.Adam``."""

    name, grade_id, points = "Adam", "test_Adam", 5.0
    torch_class = torch.optim.Adam
    hyper = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")
    forbidden = (*ADAM_FORBIDDEN, f"{M}.ReferenceAdam")
    facets = (
        Facet(UPDATE_FACET, 2.0, "the two moving averages, the bias corrections (t from 1), "
                                 "eps outside the square root, betas=(0, 0), float32"),
        Facet("AMSGrad", 0.75, "the running maximum of the raw exp_avg_sq, bias-corrected"),
        Facet("weight decay", 0.75, "L2 through the gradient; decoupled_weight_decay=True: "
                                    "p *= 1 - lr * weight_decay first"),
        Facet("maximize", 0.5, "maximize=True: g = -p.grad"),
        Facet(API_FACET, 0.5, API_COVERS),
        Facet(STATE_FACET, 0.5, STATE_COVERS),
    )
    option_facets = (("AMSGrad", ("amsgrad",)),
                     ("weight decay", ("weight_decay", "decoupled_weight_decay")),
                     ("maximize", ("maximize",)))
    mistakes = table(AdamModel, ADAM_MISTAKES, charged(
        update_rule=UPDATE_MISTAKES, AMSGrad=AMSGRAD_MISTAKES, weight_decay=DECAY_MISTAKES,
        maximize=["maximize_ignored"]))
    variants = (("float32 step", AdamModel.with_bugs("step_tensor_float32"), FLOAT32_STEP_RTOL),)

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(6)
        options = {"lr": 0.05, "betas": (0.8, 0.9), "weight_decay": 0.1, "amsgrad": True}
        return [
            self.case("plain Adam", rng, kwargs={"lr": 0.05}, public=True),
            self.case("AMSGrad with a large eps", rng, public=True,
                      kwargs={"lr": 0.05, "betas": (0.8, 0.9), "eps": 0.1, "amsgrad": True}),
            self.case("L2 weight decay, tiny gradients (~1e-6)", rng, scale=1e-6, public=True,
                      kwargs={"lr": 0.01, "weight_decay": 0.1}),
            self.case("decoupled weight decay", rng, public=True,
                      kwargs={"lr": 0.05, "weight_decay": 0.2, "decoupled_weight_decay": True}),
            self.case("maximize", rng, kwargs={"lr": 0.05, "maximize": True}, public=True),
            *self.structure_cases(rng, options, [{"amsgrad": False, "lr": 0.02},
                                                 {"decoupled_weight_decay": True,
                                                  "weight_decay": 0.3}], public=True),
            self.case("must raise ValueError", rng, kind="construct",
                      kwargs={"betas": (1.0, 0.999)}, public=True, facet=API_FACET,
                      outputs=("groups",)),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        for i, (amsgrad, maximize, wd, decoupled) in enumerate(on_off(4)):
            options = draw_adam(rng, amsgrad, maximize)
            if wd:
                options["weight_decay"] = float(rng.uniform(0.05, 0.5))
            if decoupled:
                options["decoupled_weight_decay"] = True
            cases.append(self.grid_case(i, rng, options))
        cases.append(self.case("betas (0, 0): no averaging at all", rng,
                               kwargs={"lr": 0.01, "betas": (0.0, 0.0)}))
        options = {"lr": 0.02, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1,
                   "amsgrad": True}
        groups = [{"amsgrad": False, "lr": 0.05}, {"betas": (0.5, 0.9), "maximize": True},
                  {"weight_decay": 0.3, "decoupled_weight_decay": True}]
        cases += self.structure_cases(rng, options, groups)
        cases += self.validation_cases(rng, ADAM_BAD, ADAM_GOOD)
        return cases


class AdamWExercise(OptimizerExercise):
    """``class AdamW(...)``, equal to ``torch.optim.AdamW``; a ``class AdamW(Adam)`` is checked
    on :class:`ReferenceAdam` in place of the learner's ``Adam``."""

    name, grade_id, points = "AdamW", "test_AdamW", 3.0
    torch_class = torch.optim.AdamW
    hyper = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
    forbidden = ADAM_FORBIDDEN
    depends_on = ("Adam",)
    facets = (
        Facet(UPDATE_FACET, 1.5, "decoupled decay p *= 1 - lr * weight_decay, then the Adam "
                                 "step; the default weight_decay=1e-2"),
        Facet("AMSGrad and maximize", 0.5, "amsgrad=True, maximize=True"),
        Facet(API_FACET, 0.5, API_COVERS),
        Facet(STATE_FACET, 0.5, STATE_COVERS),
    )
    option_facets = (("AMSGrad and maximize", ("amsgrad", "maximize")),)
    mistakes = (Mistake("default_weight_decay", "AdamW's weight_decay defaults to 1e-2 (Adam's "
                        "is 0)", AdamWModelNoDefaultDecay, facet=UPDATE_FACET),
                *table(AdamWModel, ADAMW_MISTAKES, charged(
                    update_rule=(*UPDATE_MISTAKES, *DECAY_MISTAKES),
                    AMSGrad_and_maximize=(*AMSGRAD_MISTAKES, "maximize_ignored"))))
    variants = (("float32 step", AdamWModel.with_bugs("step_tensor_float32"), FLOAT32_STEP_RTOL),)

    def substitutes(self) -> dict[str, Any]:
        return {"Adam": ReferenceAdam}

    def prepare(self, impl: Any) -> Any:
        """``class AdamW(Adam)`` rebuilt on :class:`ReferenceAdam`; as written when it relies on
        its Adam's own helpers, or when its "Adam" is off-limits (``torch.optim.Adam``: that is
        refused, never repaired)."""
        if isinstance(impl, type) and (forbidden_base(impl, self.forbidden) is not None or
                                       uses_base_internals(impl, "Adam", ReferenceAdam)):
            return impl
        return super().prepare(impl)

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(7)
        options = {"lr": 0.05, "betas": (0.8, 0.9), "weight_decay": 0.3, "amsgrad": True}
        return [
            self.case("the default weight_decay=1e-2", rng, kwargs={"lr": 0.05}, public=True),
            self.case("strong decoupled weight decay", rng, public=True,
                      kwargs={"lr": 0.1, "weight_decay": 0.5}),
            self.case("maximize", rng, public=True,
                      kwargs={"lr": 0.1, "weight_decay": 0.5, "maximize": True}),
            self.case("large eps", rng, kwargs={"lr": 0.05, "eps": 0.1}, public=True),
            *self.structure_cases(rng, options, [{"amsgrad": False, "lr": 0.02},
                                                 {"weight_decay": 0.0, "maximize": True}],
                                  public=True),
            self.case("must raise ValueError", rng, kind="construct",
                      kwargs={"weight_decay": -0.1}, public=True, facet=API_FACET,
                      outputs=("groups",)),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        grid = itertools.product((False, True), (False, True), ("default", "random", "zero"))
        for i, (amsgrad, maximize, wd) in enumerate(grid):
            options = draw_adam(rng, amsgrad, maximize)
            if wd != "default":
                options["weight_decay"] = 0.0 if wd == "zero" else float(rng.uniform(0.05, 0.5))
            cases.append(self.grid_case(i, rng, options))
        options = {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.2,
                   "amsgrad": True}
        groups = [{"amsgrad": False, "lr": 0.1}, {"betas": (0.5, 0.9), "maximize": True},
                  {"weight_decay": 0.5}]
        cases += self.structure_cases(rng, options, groups)
        cases += self.validation_cases(rng, ADAM_BAD, ADAM_GOOD)
        return cases


EXERCISES: dict[str, OptimizerExercise] = {
    ex.name: ex for ex in (AdagradExercise(), RMSpropExercise(), AdamExercise(), AdamWExercise())
}

check = make_check(EXERCISES)
