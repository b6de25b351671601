"""Checks for Chapter 5, learning-rate schedules: the learner's ``LRScheduler`` base class, eight
schedulers built on it, and the LR range test (``lr_find``, ``suggest_lr``).

Every scheduler check builds an optimizer (``torch.optim.SGD`` with momentum, ``torch.optim.Adam``,
or chapter 3's ``SGD`` written as a ``torch.optim.Optimizer`` subclass) with one or two param groups
of different lrs, builds the answer on it, and records every group's lr (and momentum or
``betas[0]`` for ``OneCycleLR``) and ``get_last_lr()`` after the constructor and after each
``step()``, with ``optimizer.step()`` first as PyTorch expects. The reference is the torch 2.13
scheduler of the same name on the same case; lrs compare in float64 (``rtol=1e-9, atol=1e-12``).
The cases cover several periods, two groups, an lr changed from outside between steps (the
chainable form must follow it), a torch scheduler of another kind stepping the same optimizer
after the answer, a ``state_dict`` taken mid-run (its keys torch reads must equal torch's, so it
loads into torch's scheduler) and torch's mid-run ``state_dict`` loaded into a fresh answer that
finishes the run, the constructor with ``last_epoch`` (resuming), scripted metric sequences for
``ReduceLROnPlateau`` (the ``eps`` that swallows a reduction, cooldown, negative metrics), and
``total_steps`` where ``pct_start * total_steps`` is not an integer. What torch contributes to a
case (its mid-run ``state_dict``) is computed when the case is built, outside the sandbox.

``LRScheduler`` itself is checked through small subclasses the grader builds on it (a chainable
``get_lr`` that halves the lr at epoch 0 and multiplies by ``gamma`` or ``gamma**2`` after, and
its closed form), against the same subclasses on ``torch.optim.lr_scheduler.LRScheduler``.
The subclasses are checked on a correct base in place of the learner's (``depends_on``,
:mod:`grader.kit.depends`): a bug in the base costs the base exercise only.

``lr_find`` has no torch counterpart: the reference is the exponential-sweep range test stated in
the exercise (smoothed loss, stop at ``diverge_th`` times the best smoothed loss), run on a tiny
float64 MLP with synthetic data; the model's and optimizer's state after the call must equal the
state before exactly. ``suggest_lr`` is the steepest descent of the loss against ``log(lr)``.

Off-limits (``forbidden``): the torch scheduler an exercise re-implements, as a base class or
called (its own functions are wired to raise); for ``LRScheduler`` also torch's base class's
functions and the module's helpers (``_param_groups_val_list``...). The schedulers may subclass
torch's ``LRScheduler`` instead of the learner's (the exercise text allows it), and the chaining
cases step torch's *other* schedulers beside the answer. ``lr_find`` and ``suggest_lr`` have no
torch counterpart: the grader's own references are what they must not call.

Mistakes are *models*: the reference written again with named bugs switched on, each naming the
facet it costs, so that one mistake is charged once whichever cases show it.
"""

from __future__ import annotations

import copy
import math
import types
import warnings
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.optim.lr_scheduler as torch_sched

from grader.kit.depends import rebind
from grader.kit.exercise import (ERROR_KEY, AnswerTypeError, Case, Exercise, Facet,
                                 ForbiddenCallError, Mistake, Outputs, Verdict, compare_outputs,
                                 make_check, to_plain)
from grader.kit.optim import memo_capture

CHAPTER = "05_lr_schedules"

TOL = {"rtol": 1e-9, "atol": 1e-12}
EXACT = {"rtol": 0.0, "atol": 0.0}
PATH = "torch.optim.lr_scheduler"
MISSING = "missing"
# Output names as a learner reads them in a message: row 0 is after the constructor, row t after
# the t-th step(); one column per param group.
LR, LAST = "param_groups' lr [step, group]", "get_last_lr() [step, group]"
MOM = "momentum or betas[0] [step, group]"


def own_methods(name: str) -> tuple[str, ...]:
    """The dotted paths of a torch scheduler class and of the functions it defines itself."""
    cls = getattr(torch_sched, name)
    # Plain functions only: a staticmethod or property put back with setattr would change kind.
    return (f"{PATH}.{name}",) + tuple(f"{PATH}.{name}.{attr}" for attr, v in vars(cls).items()
                                       if isinstance(v, types.FunctionType))


def number(value: Any, what: str) -> float:
    """A learning rate or momentum read from learner code, as a float (strictly)."""
    if type(value) is torch.Tensor and value.numel() == 1:
        return float(to_plain(value, what).reshape(-1)[0])
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise AnswerTypeError(f"{what} must be a number, got {type(value).__name__}")
    return float(value)


def numbers(values: Any, what: str) -> list[float]:
    if not isinstance(values, list | tuple):
        raise AnswerTypeError(f"{what} must be a list, got {type(values).__name__}")
    return [number(v, f"{what}[{i}]") for i, v in enumerate(values)]


# ---------------------------------------------------------------------------------------------
# Optimizers of a case


def make_optimizer(a: dict[str, Any]) -> torch.optim.Optimizer:
    """Fresh parameters in one group per lr of the case, and the case's optimizer."""
    groups = [{"params": [torch.zeros(2, dtype=torch.float64, requires_grad=True)], "lr": lr}
              for lr in a["lrs"]]
    kind = a.get("opt", "SGD")
    if kind == "SGD":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    elif kind == "Adam":
        optimizer = torch.optim.Adam(groups, lr=0.1, betas=(0.9, 0.99))
    elif kind == "Adagrad":
        optimizer = torch.optim.Adagrad(groups, lr=0.1)
    elif kind == "chapter 3 SGD":
        from grader.chapters.ch03_sgd import SGDModel
        optimizer = SGDModel(groups, lr=0.1, momentum=0.9)
    else:
        raise ValueError(kind)
    for group, preset in zip(optimizer.param_groups, a.get("preset") or [], strict=False):
        if preset is not None:
            group["initial_lr"] = preset
    for group, saved in zip(optimizer.param_groups, a.get("group_state") or [], strict=False):
        group.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items()})
    return optimizer


def read_groups(optimizer: Any, key: str) -> list[float]:
    values = []
    for i, group in enumerate(optimizer.param_groups):
        if key == "momentum":
            value = group["betas"][0] if "betas" in group else group.get("momentum", 0.0)
        else:
            value = group[key]
        values.append(number(value, f"param_groups[{i}][{key!r}]"))
    return values


def state_outputs(sd: Any, keys: list[str], prefix: str = "state_dict") -> Outputs:
    """The state_dict entries torch reads, as arrays ("missing" where absent)."""
    if not isinstance(sd, dict):
        raise AnswerTypeError(f"state_dict() must return a dict, got {type(sd).__name__}")
    out: Outputs = {f"{prefix} holds the optimizer": np.array("optimizer" in sd)}
    for key in keys:
        value = sd.get(key, MISSING)
        if isinstance(value, str):
            out[f"{prefix}[{key!r}]"] = np.array(value)
        elif isinstance(value, list | tuple):
            out[f"{prefix}[{key!r}]"] = np.array(numbers(value, f"{prefix}[{key!r}]"))
        else:
            out[f"{prefix}[{key!r}]"] = np.array(number(value, f"{prefix}[{key!r}]"))
    return out


def plain_state(sd: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """A torch scheduler's state_dict entries, as plain data for a case."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, torch.Tensor):
            return float(v)
        return v
    return {k: plain(sd[k]) for k in keys if k in sd}


# ---------------------------------------------------------------------------------------------
# Running a schedule: the trace of lrs (and momentums), state_dict round trips


def probe_class(base: type) -> type:
    """A small scheduler on ``base`` (the learner's LRScheduler or torch's) that shows the base's
    mechanics: epoch 0 halves the lr (a missing first step shifts everything), later epochs
    multiply by ``gamma`` or, every ``every`` epochs, by ``gamma**2``; a closed form as well."""

    class Probe(base):  # type: ignore[misc, valid-type]
        def __init__(self, optimizer: Any, gamma: float = 0.9, every: int = 3,
                     last_epoch: int = -1) -> None:
            self.gamma = gamma
            self.every = every
            super().__init__(optimizer, last_epoch)

        def get_lr(self) -> list[float]:
            groups = self.optimizer.param_groups
            if self.last_epoch == 0:
                return [g["lr"] * 0.5 for g in groups]
            power = 2 if self.last_epoch % self.every == 0 else 1
            return [g["lr"] * self.gamma ** power for g in groups]

        def _get_closed_form_lr(self) -> list[float]:
            t = self.last_epoch
            return [b * 0.5 * self.gamma ** (t + t // self.every) for b in self.base_lrs]

    return Probe


def run_trace(cls: Any, a: dict[str, Any]) -> Outputs:
    """Build ``cls`` on the case's optimizer, step it, record lrs; see the module docstring."""
    if a.get("probe"):
        cls = probe_class(cls)
    optimizer = make_optimizer(a)
    if a["kind"] == "construct":
        cls(optimizer, **a["kwargs"])
        return {"constructed": np.array(True)}
    scheduler = cls(optimizer, **a["kwargs"])
    chain = None
    if a.get("chain"):
        name, kwargs = a["chain"]
        chain = getattr(torch_sched, name)(optimizer, **kwargs)
    steps, groups = a["steps"], len(a["lrs"])
    lrs = np.full((steps + 1, groups), np.nan)
    last = np.full((steps + 1, groups), np.nan)
    moms = np.full((steps + 1, groups), np.nan)
    out: Outputs = {}

    def record(t: int) -> None:
        lrs[t] = read_groups(optimizer, "lr")
        last[t] = numbers(scheduler.get_last_lr(), "get_last_lr()")
        if a.get("momentum"):
            moms[t] = read_groups(optimizer, "momentum")

    if a.get("initial"):
        out["initial_lr"] = np.array(read_groups(optimizer, "initial_lr"))
        out["base_lrs"] = np.array(numbers(scheduler.base_lrs, "base_lrs"))
        out["last_epoch"] = np.array(number(scheduler.last_epoch, "last_epoch"))
    record(0)
    raised, raised_at = "nothing", -1
    jumps = {int(t): int(e) for t, e in a.get("jumps", [])}
    for t in range(steps):
        if a.get("order") == "scheduler first" and t == 0:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                scheduler.step()
            out["warned at the first step()"] = np.array(len(caught) > 0)
            optimizer.step()
            record(t + 1)
            continue
        optimizer.step()
        for when, g, factor in a.get("set_lr", []):
            if when == t:
                optimizer.param_groups[g]["lr"] *= factor
        try:
            if a.get("warn") and t == 0:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    scheduler.step()
                out["warned at the first step()"] = np.array(len(caught) > 0)
            elif t in jumps:
                scheduler.step(jumps[t])
            else:
                scheduler.step()
        except (ForbiddenCallError, AnswerTypeError):
            raise
        except Exception as exc:  # noqa: BLE001 (OneCycleLR past total_steps: class and step)
            raised, raised_at = type(exc).__name__, t + 1
            break
        if chain is not None:
            chain.step()
        record(t + 1)
        if a.get("resume") == t + 1:
            sd = scheduler.state_dict()
            out.update(state_outputs(sd, a["state_keys"]))
            saved = optimizer.state_dict()
            optimizer = make_optimizer(a)
            scheduler = cls(optimizer, **a["kwargs"])
            optimizer.load_state_dict(saved)
            scheduler.load_state_dict(copy.deepcopy(a["load"]) if a.get("load") is not None
                                      else sd)
    out.update({LR: lrs, LAST: last})
    if a.get("momentum"):
        out[MOM] = moms
    if a.get("ends"):  # first, so that a message names the exception before the lrs
        out = {"exception raised while stepping": np.array(raised),
               "at step": np.array(raised_at), **out}
    return out


def run_plateau(cls: Any, a: dict[str, Any]) -> Outputs:
    optimizer = make_optimizer(a)
    if a["kind"] == "construct":
        cls(optimizer, **a["kwargs"])
        return {"constructed": np.array(True)}
    scheduler = cls(optimizer, **a["kwargs"])
    n = len(a["metrics"])
    lrs = np.full((n + 1, len(a["lrs"])), np.nan)
    last = np.full((n + 1, len(a["lrs"])), np.nan)
    lrs[0] = read_groups(optimizer, "lr")
    last[0] = numbers(scheduler.get_last_lr(), "get_last_lr()")
    for t, metric in enumerate(a["metrics"]):
        optimizer.step()
        scheduler.step(torch.tensor(metric, dtype=torch.float64) if a.get("tensor") else metric)
        lrs[t + 1] = read_groups(optimizer, "lr")
        last[t + 1] = numbers(scheduler.get_last_lr(), "get_last_lr()")
    out = {LR: lrs, LAST: last}
    if a.get("state_keys"):
        out.update(state_outputs(scheduler.state_dict(), a["state_keys"]))
    return out


def run_sequential(cls: Any, a: dict[str, Any]) -> Outputs:
    optimizer = make_optimizer(a)

    def inner(opt: Any) -> list[Any]:
        return [getattr(torch_sched, name)(opt, **kwargs) for name, kwargs in a["schedulers"]]

    if a["kind"] == "construct":
        bad = a["bad"]
        schedulers: list[Any] = inner(optimizer)
        if bad == "no schedulers":
            schedulers = []
        elif bad == "a scheduler of another optimizer":
            schedulers[-1] = inner(make_optimizer(a))[-1]
        elif bad == "an object without an optimizer":
            schedulers[-1] = object()
        cls(optimizer, schedulers, milestones=list(a["milestones"]))
        return {"constructed": np.array(True)}
    scheduler = cls(optimizer, inner(optimizer), milestones=list(a["milestones"]))
    steps, groups = a["steps"], len(a["lrs"])
    lrs = np.full((steps + 1, groups), np.nan)
    last = np.full((steps + 1, groups), np.nan)
    lrs[0] = read_groups(optimizer, "lr")
    last[0] = numbers(scheduler.get_last_lr(), "get_last_lr()")
    out: Outputs = {}
    for t in range(steps):
        optimizer.step()
        scheduler.step()
        lrs[t + 1] = read_groups(optimizer, "lr")
        last[t + 1] = numbers(scheduler.get_last_lr(), "get_last_lr()")
        if a.get("resume") == t + 1:
            sd = scheduler.state_dict()
            out.update(state_outputs(sd, ["last_epoch", "_milestones", "_last_lr"]))
            subs = sd.get("_schedulers") if isinstance(sd, dict) else None
            if not isinstance(subs, list) or len(subs) != len(a["schedulers"]):
                raise AnswerTypeError("state_dict()['_schedulers'] must be the list of the "
                                      "schedulers' state_dicts")
            for i, sub in enumerate(subs):
                out.update(state_outputs(sub, ["last_epoch"], f"state_dict['_schedulers'][{i}]"))
            saved = optimizer.state_dict()
            optimizer = make_optimizer(a)
            scheduler = cls(optimizer, inner(optimizer), milestones=list(a["milestones"]))
            optimizer.load_state_dict(saved)
            scheduler.load_state_dict(copy.deepcopy(a["load"]))
    out.update({LR: lrs, LAST: last})
    return out


# ---------------------------------------------------------------------------------------------
# The exercises


class ScheduleExercise(Exercise):
    """A scheduler compared with torch's class of the same name."""

    runner: Callable[[Any, dict[str, Any]], Outputs] = staticmethod(run_trace)
    state_keys: tuple[str, ...] = ("last_epoch", "base_lrs", "_last_lr", "_step_count")
    depends_on = ("LRScheduler",)

    def __init__(self) -> None:
        self.forbidden = own_methods(self.name)
        self._public: list[Case] | None = None

    def substitutes(self) -> dict[str, Any]:
        return {"LRScheduler": LRSchedulerModel}

    def prepare(self, impl: Any) -> Any:
        """The answer rebuilt on a correct base. The learner's subclasses may call helpers of
        their own base (``self._lrs()``): the substitute keeps those, behind the correct
        methods (the correct base first in the MRO, the learner's after it)."""
        if not self.depends_on or not isinstance(impl, type):
            return impl
        theirs = next((c for c in impl.__mro__[1:] if c.__name__ == "LRScheduler"
                       and c.__module__.split(".")[0] not in ("torch", "grader")), None)
        substitute: type = LRSchedulerModel
        if theirs is not None:
            substitute = type("LRScheduler", (LRSchedulerModel, theirs),
                              {"__module__": __name__, "__qualname__": "LRScheduler"})
        return rebind(impl, {"LRScheduler": substitute})

    def torch_reference(self) -> Callable[..., Any]:
        return getattr(torch_sched, self.name)

    def run(self, impl: Any, case: Case) -> Outputs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return type(self).runner(impl, dict(case.args))

    # -- cases ---------------------------------------------------------------------------------
    def case(self, label: str, facet: str, kwargs: dict[str, Any], *, lrs: tuple = (0.1,),
             steps: int = 30, public: bool = False, **extra: Any) -> Case:
        a = {"kind": "trace", "lrs": list(lrs), "kwargs": dict(kwargs), "steps": steps}
        a.update(extra)
        if a.get("resume") and "state_keys" not in a:
            a["state_keys"] = list(self.state_keys)
        opt = a.get("opt", "SGD")
        call = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        groups = "lr " + ", ".join(f"{lr:g}" for lr in lrs)
        text = f"{label}: {self.name}(optimizer, {call}); {opt} with {len(lrs)} group(s), {groups}"
        if a["kind"] == "trace":
            text += f", {steps} steps"
        return Case(text, a, public=public, facet=facet)

    def with_torch_state(self, case: Case) -> Case:
        """The case, with torch's state_dict at the resume step added (computed here)."""
        a = dict(case.args)
        cls = getattr(torch_sched, self.name)
        if a.get("probe"):
            cls = probe_class(torch_sched.LRScheduler)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer = make_optimizer(a)
            scheduler = cls(optimizer, **a["kwargs"])
            for t in range(a["resume"]):
                optimizer.step()
                for when, g, factor in a.get("set_lr", []):
                    if when == t:
                        optimizer.param_groups[g]["lr"] *= factor
                scheduler.step()
        a["load"] = plain_state(scheduler.state_dict(), list(self.state_keys))
        return Case(case.label + f"; state_dict() at step {a['resume']} compared with torch's, "
                    "and torch's loaded into a fresh one to finish the run", a, public=case.public,
                    facet=case.facet)

    def public_cases(self) -> list[Case]:
        if self._public is None:
            self._public = self.build_public()
        return list(self._public)

    def build_public(self) -> list[Case]:
        raise NotImplementedError

    def chain_cases(self, rng: np.random.Generator | None, kwargs: dict[str, Any], facet: str,
                    steps: int = 30, public: bool = False) -> list[Case]:
        """An lr changed from outside, a torch scheduler on the same optimizer, a round trip."""
        r = rng if rng is not None else np.random.default_rng(55)
        at = int(r.integers(3, steps - 3))
        other = ("StepLR", {"step_size": 4, "gamma": 0.7}) if self.name in (
            "ExponentialLR", "CosineAnnealingLR") else ("ExponentialLR", {"gamma": 0.95})
        return [
            self.case(f"group 0's lr halved from outside before step {at + 1}", facet, kwargs,
                      lrs=(0.1, 0.05), steps=steps, set_lr=[[at, 0, 0.5]], public=public),
            self.case(f"torch's {other[0]}({other[1]}) on the same optimizer, stepped after "
                      "yours", facet, kwargs, lrs=(0.2,), steps=steps, chain=list(other),
                      public=public),
            self.with_torch_state(self.case("round trip", facet, kwargs, lrs=(0.1, 0.03),
                                            steps=steps, resume=at, public=public)),
        ]

    # -- judging -------------------------------------------------------------------------------
    def reference(self, case: Case) -> Outputs:
        return memo_capture(self, self.torch_reference(), "reference", case)

    def tolerance(self, case: Case) -> dict[str, float]:
        return TOL

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        return compare_outputs(got, expected, **self.tolerance(case))

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        for mistake in self.mistakes:
            wrong = memo_capture(self, mistake.impl, mistake.key, case)
            if (ERROR_KEY in wrong) != (ERROR_KEY in got):
                continue
            if ERROR_KEY in got:  # an exception: the class names the mistake, not the words
                if str(wrong[ERROR_KEY]) == str(got[ERROR_KEY]):
                    return mistake
                continue
            if compare_outputs(got, wrong, **self.tolerance(case)) is None:
                return mistake
        return None

    def judge(self, case: Case, got: Outputs, expected: Outputs | None = None) -> Verdict:
        if expected is None:
            expected = self.reference(case)
        problem = self.compare(case, got, expected)
        if problem is None:
            return Verdict(True)
        where = f"{self.name} failed on {case.label}:\n  {problem}"
        if ERROR_KEY in expected and ERROR_KEY not in got:
            message = str(expected.get("__message__", ""))
            where += f"\n  Hint: PyTorch raises {expected[ERROR_KEY]}({message!r}) here"
        mistake = self.diagnose(case, got)
        if mistake is not None:
            return Verdict(False, f"{where}\n  Likely mistake: {mistake.message}", mistake.key)
        return Verdict(False, where)

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        a = case.args
        extras = sum(bool(a.get(k)) for k in ("set_lr", "chain", "resume", "preset", "jumps"))
        return (not case.public, extras, len(a.get("lrs", ())), a.get("steps", 0), case.label)


# ---------------------------------------------------------------------------------------------
# Models: the reference written again, with named bugs switched on


class LRSchedulerModel:
    """torch's LRScheduler, re-implemented (the substitute for the learner's base)."""

    bugs: frozenset[str] = frozenset()

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        groups = optimizer.param_groups
        if last_epoch == -1:
            for group in groups:
                if "overwrite_initial_lr" in self.bugs:
                    group["initial_lr"] = group["lr"]
                else:
                    group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}]")
        if "one_base_lr" in self.bugs:
            self.base_lrs = [groups[0]["initial_lr"]] * len(groups)
        else:
            self.base_lrs = [group["initial_lr"] for group in groups]
        self.last_epoch = last_epoch
        if not getattr(optimizer.step, "_wrapped_by_lr_sched", False):
            step = optimizer.step

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                optimizer._opt_called = True
                return step(*args, **kwargs)

            wrapper._wrapped_by_lr_sched = True  # type: ignore[attr-defined]
            optimizer.step = wrapper
        if "no_initial_step" in self.bugs:
            self._step_count = 0
            self._is_initial = False
            self._last_lr = [group["lr"] for group in groups]
            return
        self._initial_step()

    @classmethod
    def with_bugs(cls, *bugs: str) -> type:
        return type(cls.__name__, (cls,), {"bugs": frozenset(bugs)})

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        if self._step_count == 1 and "no_warning" not in self.bugs and \
                not getattr(self.optimizer, "_opt_called", False):
            warnings.warn("Detected call of `lr_scheduler.step()` before `optimizer.step()`",
                          UserWarning, stacklevel=2)
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        before = [group["lr"] for group in self.optimizer.param_groups]
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None and "no_closed_form_jump" not in self.bugs \
                else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = before if "last_lr_stale" in self.bugs else \
            [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        if "state_dict_keeps_optimizer" in self.bugs:
            return dict(self.__dict__)
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


def groups_lr(s: Any) -> list[float]:
    return [group["lr"] for group in s.optimizer.param_groups]


class StepLRModel(LRSchedulerModel):
    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        if "closed_form_only" in self.bugs:
            return self._get_closed_form_lr()
        if "decay_at_zero" in self.bugs:
            decay = t % self.step_size == 0
        elif "decay_one_early" in self.bugs:
            decay = (t + 1) % self.step_size == 0
        else:
            decay = t != 0 and t % self.step_size == 0
        return [lr * self.gamma for lr in groups_lr(self)] if decay else groups_lr(self)

    def _get_closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class MultiStepLRModel(LRSchedulerModel):
    def __init__(self, optimizer: Any, milestones: Any, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.milestones = Counter(set(milestones) if "milestone_set" in self.bugs
                                  else milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if "closed_form_only" in self.bugs:
            return self._get_closed_form_lr()
        if self.last_epoch not in self.milestones:
            return groups_lr(self)
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in groups_lr(self)]

    def _get_closed_form_lr(self) -> list[float]:
        milestones = sorted(self.milestones.elements())
        return [b * self.gamma ** bisect_right(milestones, self.last_epoch)
                for b in self.base_lrs]


class ExponentialLRModel(LRSchedulerModel):
    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if "closed_form_only" in self.bugs:
            return self._get_closed_form_lr()
        # Older torch kept the lr at last_epoch == 0, which decays a resuming constructor.
        keep = self.last_epoch == 0 if "decays_in_constructor" in self.bugs else self._is_initial
        if keep:
            return groups_lr(self)
        return [lr * self.gamma for lr in groups_lr(self)]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** self.last_epoch for b in self.base_lrs]


class LinearLRModel(LRSchedulerModel):
    def __init__(self, optimizer: Any, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be in (0, 1].")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, \
            total_iters
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int) -> float:
        """The factor of epoch t as the buggy closed form has it."""
        n = self.total_iters
        span = self.end_factor - self.start_factor
        if "divide_by_total_iters_minus_1" in self.bugs:
            return self.start_factor + span * min(t, n - 1) / (n - 1)
        if "past_total_iters" in self.bugs:
            return self.start_factor + span * t / n
        return self.start_factor + span * min(t, n) / n

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        if "closed_form_only" in self.bugs:
            return self._get_closed_form_lr()
        if t == 0:
            return [lr * self.start_factor for lr in groups_lr(self)]
        if self.bugs & {"divide_by_total_iters_minus_1", "past_total_iters"}:
            # chainable, as torch: the ratio of this epoch's factor to the last one
            if self._is_initial:
                return groups_lr(self)
            ratio = self.factor(t) / self.factor(t - 1)
            return [lr * ratio for lr in groups_lr(self)]
        if self._is_initial or t > self.total_iters:
            return groups_lr(self)
        span = self.end_factor - self.start_factor
        ratio = 1.0 + span / (self.total_iters * self.start_factor + (t - 1) * span)
        return [lr * ratio for lr in groups_lr(self)]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * self.factor(self.last_epoch) for b in self.base_lrs]


class CosineAnnealingLRModel(LRSchedulerModel):
    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, low = self.last_epoch, self.eta_min
        T = self.T_max - 1 if "period_minus_1" in self.bugs else self.T_max
        if "closed_form_only" in self.bugs:
            return self._get_closed_form_lr()
        if self._is_initial or ("clamped" in self.bugs and t > self.T_max):
            return groups_lr(self)
        if self._step_count == 1 and t > 0:
            return self._get_closed_form_lr()
        if (t - 1 - T) % (2 * T) == 0:
            return [lr + (b - low) * (1 - math.cos(math.pi / T)) / 2
                    for b, lr in zip(self.base_lrs, groups_lr(self), strict=True)]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (lr - low) + low for lr in groups_lr(self)]

    def _get_closed_form_lr(self) -> list[float]:
        t = min(self.last_epoch, self.T_max) if "clamped" in self.bugs else self.last_epoch
        T = self.T_max - 1 if "period_minus_1" in self.bugs else self.T_max
        return [self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * t / T)) / 2
                for b in self.base_lrs]


class OneCycleLRModel(LRSchedulerModel):
    def __init__(self, optimizer: Any, max_lr: Any, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: Any = 0.85,
                 max_momentum: Any = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        groups = optimizer.param_groups

        def per_group(name: str, value: Any) -> list[Any]:
            if isinstance(value, list | tuple):
                if len(value) != len(groups):
                    raise ValueError(f"{name} must have one value per param group")
                return list(value)
            return [value] * len(groups)

        self.optimizer = optimizer
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, got "
                                 f"{steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        n = self.total_steps
        minus = 0 if "phase_end_without_minus_1" in self.bugs else 1
        up = ("max_momentum", "base_momentum")
        down = ("base_momentum", "max_momentum")
        if "momentum_same_way" in self.bugs:
            up, down = down, up
        if three_phase:
            self._phases = [(float(pct_start * n) - minus, "initial_lr", "max_lr", *up),
                            (float(2 * pct_start * n) - 2 * minus, "max_lr", "initial_lr", *down),
                            (n - minus, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self._phases = [(float(pct_start * n) - minus, "initial_lr", "max_lr", *up),
                            (n - minus, "max_lr", "min_lr", *down)]
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got "
                             f"{anneal_strategy}")
        self.anneal_strategy = anneal_strategy
        if last_epoch == -1:
            for group, top in zip(groups, per_group("max_lr", max_lr), strict=True):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = (top if "min_lr_from_max_lr" in self.bugs
                                   else group["initial_lr"]) / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or beta1 with "
                                 "`cycle_momentum` option enabled")
            self.use_beta1 = "betas" in optimizer.defaults
            highs = per_group("max_momentum", max_momentum)
            lows = per_group("base_momentum", base_momentum)
            if last_epoch == -1:
                for high, low, group in zip(highs, lows, groups, strict=True):
                    if self.use_beta1:
                        group["betas"] = (high, *group["betas"][1:])
                    else:
                        group["momentum"] = high
                    group["max_momentum"] = high
                    group["base_momentum"] = low
        super().__init__(optimizer, last_epoch)

    def anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        limit = t >= self.total_steps if "raises_at_total_steps" in self.bugs \
            else t > self.total_steps
        if limit:
            raise ValueError(f"Tried to step {t} times. The specified number of total steps is "
                             f"{self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(self._phases):
                if t <= end or i == len(self._phases) - 1:
                    pct = (t - start) / (end - start)
                    lrs.append(self.anneal(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum and "momentum_not_cycled" not in self.bugs:
                        m = self.anneal(group[m_from], group[m_to], pct)
                        if self.use_beta1:
                            group["betas"] = (m, *group["betas"][1:])
                        else:
                            group["momentum"] = m
                    break
                start = end
        return lrs


class ReduceLROnPlateauModel(LRSchedulerModel):
    def __init__(self, optimizer: Any, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: Any = 0, eps: float = 1e-8) -> None:
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        self.factor = factor
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        if isinstance(min_lr, list | tuple):
            if len(min_lr) != n:
                raise ValueError(f"expected {n} min_lrs, got {len(min_lr)}")
            self.min_lrs = list(min_lr)
        else:
            self.min_lrs = [min_lr] * n
        self.patience, self.cooldown, self.eps = patience, cooldown, eps
        self.last_epoch = 0
        self._last_lr = groups_lr(self)
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown!")
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self.best = math.inf if mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def is_better(self, a: float, best: float) -> bool:
        rel = self.threshold_mode == "rel" and "rel_as_abs" not in self.bugs
        if self.mode == "min":
            bar = best * (1.0 - self.threshold) if rel else best - self.threshold
            return a <= bar if "non_strict" in self.bugs else a < bar
        bar = best * (1.0 + self.threshold) if rel else best + self.threshold
        return a >= bar if "non_strict" in self.bugs else a > bar

    def step(self, metrics: Any, epoch: Any = None) -> None:  # type: ignore[override]
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0 and "cooldown_ignored" not in self.bugs:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        limit = self.num_bad_epochs >= self.patience if "patience_ge" in self.bugs \
            else self.num_bad_epochs > self.patience
        if limit:
            for group, low in zip(self.optimizer.param_groups, self.min_lrs, strict=True):
                old = float(group["lr"])
                new = max(old * self.factor, low)
                if old - new > self.eps or ("no_eps" in self.bugs and new < old):
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            if "bad_epochs_not_reset" not in self.bugs:
                self.num_bad_epochs = 0
        self._last_lr = groups_lr(self)


class SequentialLRModel(LRSchedulerModel):
    def __init__(self, optimizer: Any, schedulers: list[Any], milestones: list[int],
                 last_epoch: int = -1) -> None:
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler")
        for i, s in enumerate(schedulers):
            if not hasattr(s, "optimizer"):
                raise TypeError(f"scheduler {i} has no optimizer")
            if s.optimizer is not optimizer:
                raise ValueError(f"scheduler {i} belongs to another optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("expected one milestone fewer than schedulers")
        self._schedulers, self._milestones = list(schedulers), list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        if "no_lr_reset" not in self.bugs:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"]
        if "no_undo" not in self.bugs:
            for s in self._schedulers:
                s.last_epoch -= 1
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:  # type: ignore[override]
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        s = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch and \
                "step_at_milestone" not in self.bugs:
            s._update_lr(0)
        else:
            s.step()
        self._last_lr = s.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        inner = state.pop("_schedulers")
        self.__dict__.update(state)
        for s, sd in zip(self._schedulers, inner, strict=True):
            s.load_state_dict(sd)


def model(cls: type, *bugs: str) -> type:
    """``cls`` with ``bugs`` switched on (a fresh class per call)."""
    return type(cls.__name__.replace("Model", ""), (cls,), {"bugs": frozenset(bugs)})


# ---------------------------------------------------------------------------------------------
# LRScheduler


CONSTRUCTOR, STEP, STATE, WARNING = "constructor", "step", "state_dict", "order warning"


class LRSchedulerExercise(ScheduleExercise):
    """``class LRScheduler``: the base, through small subclasses built on it."""

    name = "LRScheduler"
    grade_id = "test_LRScheduler"
    points = 2.0
    depends_on = ()
    facets = (
        Facet(CONSTRUCTOR, 0.75, "initial_lr (kept when a group has one), base_lrs per group, "
                                 "the constructor's first step, last_epoch, KeyError when "
                                 "resuming without initial_lr, get_last_lr()"),
        Facet(STEP, 0.5, "the chainable lrs over many steps, two groups, an lr changed from "
                         "outside, two schedulers on one optimizer, step(epoch) with the closed "
                         "form"),
        Facet(STATE, 0.5, "state_dict() without the optimizer, its keys equal torch's mid-run; "
                          "torch's state_dict loaded into yours finishes the run"),
        Facet(WARNING, 0.25, "a UserWarning when step() comes before optimizer.step(), none in "
                             "the right order"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.forbidden = own_methods("LRScheduler") + (
            f"{PATH}._param_groups_val_list", f"{PATH}._update_param_group_val",
            f"{PATH}._format_param")

    def substitutes(self) -> dict[str, Any]:
        return {}

    def prepare(self, impl: Any) -> Any:
        return impl

    def torch_reference(self) -> Callable[..., Any]:
        return torch_sched.LRScheduler

    def case(self, label: str, facet: str, kwargs: dict[str, Any], **extra: Any) -> Case:
        c = super().case(label, facet, kwargs, probe=True, **extra)
        text = c.label.replace("LRScheduler(optimizer, ", "a subclass of your LRScheduler(")
        return Case(text, c.args, public=c.public, facet=c.facet)

    def build_public(self) -> list[Case]:
        return self.cases_from(None, public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.cases_from(rng, public=False)

    def cases_from(self, rng: np.random.Generator | None, public: bool) -> list[Case]:
        def draw(low: float, high: float, fixed: float) -> float:
            return fixed if rng is None else float(round(rng.uniform(low, high), 4))

        def pick(low: int, high: int, fixed: int) -> int:
            return fixed if rng is None else int(rng.integers(low, high))

        probe = {"gamma": draw(0.7, 0.95, 0.9), "every": pick(2, 5, 3)}
        lrs = (draw(0.05, 0.5, 0.1), draw(0.005, 0.05, 0.02))
        steps = pick(15, 30, 20)
        at = pick(3, steps - 3, 7)
        c = self.case
        cases = [
            c("the constructor's first step, then steps", CONSTRUCTOR, probe, lrs=lrs[:1],
              steps=steps, initial=True, public=public),
            c("two groups", CONSTRUCTOR, probe, lrs=lrs, steps=steps, initial=True,
              public=public),
            c("the groups already have an initial_lr (another scheduler set it)", CONSTRUCTOR,
              probe, lrs=lrs, preset=[lrs[0] * 2, lrs[1] * 3], steps=steps, initial=True,
              public=public),
            c("resuming: last_epoch=4 with initial_lr in the groups", CONSTRUCTOR,
              dict(probe, last_epoch=4), lrs=lrs, preset=[lrs[0] * 2, lrs[1] * 3], steps=steps,
              initial=True, public=public),
            c("resuming: last_epoch=4 without initial_lr (KeyError)", CONSTRUCTOR,
              dict(probe, last_epoch=4), lrs=lrs, kind="construct", public=public),
            c(f"group 1's lr tripled from outside before step {at + 1}", STEP, probe, lrs=lrs,
              steps=steps, set_lr=[[at, 1, 3.0]], public=public),
            c("chapter 3's SGD as the optimizer, step(epoch) jumps to the closed form", STEP,
              probe, lrs=lrs, steps=steps, opt="chapter 3 SGD",
              jumps=[[at, at + 5], [at + 2, 2]], public=public),
            self.with_torch_state(c("round trip", STATE, probe, lrs=lrs, steps=steps,
                                    resume=at, public=public)),
            c("optimizer.step() before scheduler.step(): no warning", WARNING, probe, lrs=lrs[:1],
              steps=3, warn=True, public=public),
            c("scheduler.step() before optimizer.step() on the first step: a UserWarning",
              WARNING, probe, lrs=lrs[:1], steps=3, order="scheduler first", public=public),
        ]
        if not public:
            cases.append(c("Adam, two groups, lr changed from outside twice", STEP, probe,
                           lrs=lrs, steps=steps, opt="Adam",
                           set_lr=[[2, 0, 0.5], [at, 1, 2.0]]))
        return cases


# ---------------------------------------------------------------------------------------------
# StepLR, MultiStepLR, ExponentialLR


SCHEDULE, CHAIN = "schedule", "chainable"
CHAIN_COVERS = ("an lr changed from outside mid-run, a torch scheduler stepping the same "
                "optimizer, state_dict round trip with torch's")


class SimpleExercise(ScheduleExercise):
    points = 1.0
    facets = (Facet(SCHEDULE, 0.5, "traces over several periods, two groups, the constructor "
                                   "with last_epoch, chapter 3's optimizer"),
              Facet(CHAIN, 0.5, CHAIN_COVERS))

    def draw_kwargs(self, rng: np.random.Generator | None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def build_public(self) -> list[Case]:
        return self.cases_from(None, public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.cases_from(rng, public=False)

    def cases_from(self, rng: np.random.Generator | None, public: bool) -> list[Case]:
        kws = self.draw_kwargs(rng)
        lrs = (0.1, 0.03) if rng is None else (float(round(rng.uniform(0.05, 1.0), 4)),
                                               float(round(rng.uniform(0.001, 0.05), 5)))
        opts = ["SGD"] * len(kws) if rng is None else \
            [str(rng.choice(["SGD", "Adam", "chapter 3 SGD"])) for _ in kws]
        cases = [self.case("schedule", SCHEDULE, kw, lrs=lrs[:1 + i % 2], steps=30, opt=opt,
                           public=public) for i, (kw, opt) in enumerate(zip(kws, opts))]
        cases.append(self.case("chapter 3's SGD as the optimizer", SCHEDULE, kws[0], lrs=lrs,
                               opt="chapter 3 SGD", steps=20, public=public))
        cases.append(self.case("resuming: last_epoch=2, initial_lr in the groups", SCHEDULE,
                               dict(kws[0], last_epoch=2), lrs=lrs,
                               preset=[lrs[0] * 2, lrs[1] * 4], steps=12, public=public))
        cases += self.chain_cases(rng, kws[-1], CHAIN, public=public)
        return cases


class StepLRExercise(SimpleExercise):
    name = "StepLR"
    grade_id = "test_StepLR"

    def draw_kwargs(self, rng: np.random.Generator | None) -> list[dict[str, Any]]:
        if rng is None:
            return [{"step_size": 3}, {"step_size": 5, "gamma": 0.5}]
        return [{"step_size": int(rng.integers(2, 8)), "gamma": float(round(rng.uniform(0.2, 0.9), 3))}
                for _ in range(3)] + [{"step_size": 1, "gamma": 0.8}]


class MultiStepLRExercise(SimpleExercise):
    name = "MultiStepLR"
    grade_id = "test_MultiStepLR"

    def draw_kwargs(self, rng: np.random.Generator | None) -> list[dict[str, Any]]:
        if rng is None:
            return [{"milestones": [3, 8, 8, 15]}, {"milestones": [0, 4], "gamma": 0.5}]
        out = []
        for _ in range(3):
            ms = sorted(int(m) for m in rng.integers(1, 25, size=int(rng.integers(2, 5))))
            ms.append(ms[int(rng.integers(0, len(ms)))])  # a milestone listed twice
            out.append({"milestones": sorted(ms), "gamma": float(round(rng.uniform(0.2, 0.9), 3))})
        return out + [{"milestones": [0, 3, 3]}]


class ExponentialLRExercise(SimpleExercise):
    name = "ExponentialLR"
    grade_id = "test_ExponentialLR"

    def draw_kwargs(self, rng: np.random.Generator | None) -> list[dict[str, Any]]:
        if rng is None:
            return [{"gamma": 0.9}, {"gamma": 0.5}]
        return [{"gamma": float(round(rng.uniform(0.5, 0.99), 4))} for _ in range(3)]


# ---------------------------------------------------------------------------------------------
# LinearLR, CosineAnnealingLR


WARMUP, AFTER = "warmup", "after total_iters"


class LinearLRExercise(ScheduleExercise):
    name = "LinearLR"
    grade_id = "test_LinearLR"
    points = 2.0
    facets = (Facet(WARMUP, 1.0, "the factor from start_factor to end_factor over total_iters, "
                                 "two groups, defaults, the constructor with last_epoch, "
                                 "ValueError for invalid factors"),
              Facet(AFTER, 0.5, "after total_iters the lr stays at end_factor * base_lr"),
              Facet(CHAIN, 0.5, CHAIN_COVERS))

    def build_public(self) -> list[Case]:
        return self.cases_from(None, public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.cases_from(rng, public=False)

    def cases_from(self, rng: np.random.Generator | None, public: bool) -> list[Case]:
        if rng is None:
            kws = [{"start_factor": 0.1, "total_iters": 5}, {},
                   {"start_factor": 1.0, "end_factor": 0.2, "total_iters": 8}]
        else:
            kws = [{"start_factor": float(round(rng.uniform(0.01, 1.0), 4)),
                    "end_factor": float(round(rng.uniform(0.0, 1.0), 4)) if i else 1.0,
                    "total_iters": int(rng.integers(2, 15))} for i in range(3)]
        lrs = (0.1, 0.03) if rng is None else (float(round(rng.uniform(0.05, 1.0), 4)),
                                               float(round(rng.uniform(0.001, 0.05), 5)))
        c = self.case
        cases = [c("up to total_iters", WARMUP, kw, lrs=lrs[:1 + i % 2],
                   steps=kw.get("total_iters", 5), public=public) for i, kw in enumerate(kws)]
        cases += [c("past total_iters", AFTER, kw, lrs=lrs[:1 + i % 2],
                    steps=kw.get("total_iters", 5) + 10, public=public)
                  for i, kw in enumerate(kws)]
        cases.append(c("resuming: last_epoch=2, initial_lr in the groups", WARMUP,
                       dict(kws[0], last_epoch=2), lrs=lrs, preset=[lrs[0] * 2, lrs[1] * 4],
                       steps=3, public=public))
        cases += [c("invalid factor (ValueError)", WARMUP, kw, kind="construct", public=public)
                  for kw in ({"start_factor": 0.0}, {"start_factor": 1.5}, {"end_factor": -0.1},
                             {"end_factor": 1.2})]
        cases.append(c("start_factor 1 and end_factor 0 (valid)", WARMUP,
                       {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 4}, steps=4,
                       public=public))
        total = kws[0]["total_iters"]
        cases += self.chain_cases(rng, kws[0], CHAIN, steps=total + 6 if total > 5 else 12,
                                  public=public)
        return cases


PERIOD, PAST = "one period", "past T_max"


class CosineAnnealingLRExercise(ScheduleExercise):
    name = "CosineAnnealingLR"
    grade_id = "test_CosineAnnealingLR"
    points = 2.0
    facets = (Facet(PERIOD, 1.0, "steps 0 .. T_max, eta_min, two groups, the constructor with "
                                 "last_epoch"),
              Facet(PAST, 0.5, "after T_max the lr rises again (period 2 T_max), several "
                               "periods"),
              Facet(CHAIN, 0.5, CHAIN_COVERS))

    def build_public(self) -> list[Case]:
        return self.cases_from(None, public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.cases_from(rng, public=False)

    def cases_from(self, rng: np.random.Generator | None, public: bool) -> list[Case]:
        if rng is None:
            kws = [{"T_max": 10}, {"T_max": 7, "eta_min": 0.01}]
        else:
            kws = [{"T_max": int(rng.integers(2, 20)),
                    "eta_min": float(round(rng.uniform(0.0, 0.01), 5)) * (i > 0)}
                   for i in range(3)]
        lrs = (0.1, 0.03) if rng is None else (float(round(rng.uniform(0.05, 1.0), 4)),
                                               float(round(rng.uniform(0.02, 0.05), 5)))
        c = self.case
        cases = [c("one period", PERIOD, kw, lrs=lrs[:1 + i % 2], steps=kw["T_max"],
                   public=public) for i, kw in enumerate(kws)]
        cases += [c("several periods", PAST, kw, lrs=lrs[:1 + i % 2], steps=4 * kw["T_max"] + 3,
                    public=public) for i, kw in enumerate(kws)]
        cases.append(c("resuming: last_epoch=2, initial_lr in the groups", PERIOD,
                       dict(kws[0], last_epoch=2), lrs=lrs, preset=[lrs[0] * 2, lrs[1] * 4],
                       steps=max(kws[0]["T_max"] - 3, 1), public=public))
        big = {"T_max": 20, "eta_min": 0.001}
        cases += self.chain_cases(rng, big, CHAIN, steps=20, public=public)
        return cases


# ---------------------------------------------------------------------------------------------
# OneCycleLR


CYCLE, MOMENTUM, THREE, END = "lr cycle", "momentum", "three phases", "end and arguments"


class OneCycleLRExercise(ScheduleExercise):
    name = "OneCycleLR"
    grade_id = "test_OneCycleLR"
    points = 3.0
    facets = (Facet(CYCLE, 1.0, "two phases, cos and linear, pct_start * total_steps not an "
                                "integer, epochs x steps_per_epoch, div factors, two groups"),
              Facet(MOMENTUM, 0.75, "momentum (SGD) and betas[0] (Adam) cycled the other way "
                                    "from the lr; cycle_momentum=False"),
              Facet(THREE, 0.5, "three_phase=True"),
              Facet(END, 0.75, "the step that reaches total_steps extrapolates, the next raises "
                               "ValueError; ValueError for invalid arguments"))

    def case(self, label: str, facet: str, kwargs: dict[str, Any], **extra: Any) -> Case:
        extra.setdefault("momentum", True)
        extra.setdefault("ends", True)
        return super().case(label, facet, kwargs, **extra)

    def build_public(self) -> list[Case]:
        return self.cases_from(None, public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.cases_from(rng, public=False)

    def cases_from(self, rng: np.random.Generator | None, public: bool) -> list[Case]:
        def draw(low: float, high: float, fixed: float, digits: int = 3) -> float:
            return fixed if rng is None else float(round(rng.uniform(low, high), digits))

        def pick(low: int, high: int, fixed: int) -> int:
            return fixed if rng is None else int(rng.integers(low, high))

        n = pick(15, 60, 37)
        pct = draw(0.15, 0.45, 0.25)
        top = draw(0.1, 2.0, 1.0)
        c = self.case
        base = {"max_lr": top, "total_steps": n, "pct_start": pct}
        cases = [
            c("cos", CYCLE, base, steps=n, momentum=False, public=public),
            c("linear, two groups, own div factors", CYCLE,
              dict(base, max_lr=[top, top / 3], anneal_strategy="linear",
                   div_factor=draw(5, 50, 10.0, 1), final_div_factor=draw(10, 1e4, 100.0, 0)),
              lrs=(0.1, 0.02), steps=n, momentum=False, public=public),
            c("epochs x steps_per_epoch, cycle_momentum=False", CYCLE,
              {"max_lr": top, "epochs": pick(2, 5, 3), "steps_per_epoch": pick(3, 9, 7),
               "cycle_momentum": False}, steps=pick(6, 15, 21), public=public),
            c("SGD momentum", MOMENTUM, base, steps=n, public=public),
            c("Adam's betas[0], per-group momentums", MOMENTUM,
              dict(base, base_momentum=[0.8, 0.7], max_momentum=draw(0.9, 0.99, 0.95)),
              lrs=(0.1, 0.02), opt="Adam", steps=n, public=public),
            c("three phases", THREE, dict(base, three_phase=True), steps=n, public=public),
            c("three phases, linear, Adam", THREE,
              dict(base, three_phase=True, anneal_strategy="linear"), opt="Adam", steps=n,
              public=public),
            c("linear: the step to total_steps extrapolates, the next raises", END,
              dict(base, anneal_strategy="linear"), steps=n + 2, public=public),
            c("cos: stepped past total_steps", END, base, steps=n + 2, public=public),
        ]
        cases.append(self.resumed(c("resuming with last_epoch: the groups hold what the first "
                                    "run wrote", END, base, lrs=(0.1, 0.02), opt="Adam",
                                    steps=n // 2, public=public), n // 2))
        bad = [{"max_lr": 1.0}, {"max_lr": 1.0, "total_steps": 0},
               {"max_lr": 1.0, "total_steps": 10, "pct_start": 1.2},
               {"max_lr": 1.0, "total_steps": 10, "anneal_strategy": "step"},
               {"max_lr": 1.0, "epochs": 0, "steps_per_epoch": 5},
               {"max_lr": [1.0, 2.0], "total_steps": 10}]
        cases += [c("invalid arguments (ValueError)", END, kw, kind="construct", public=public)
                  for kw in bad]
        cases.append(c("Adagrad has neither momentum nor betas (ValueError)", END,
                       {"max_lr": 1.0, "total_steps": 10}, opt="Adagrad", kind="construct",
                       public=public))
        cases.append(c("Adagrad with cycle_momentum=False (valid)", CYCLE,
                       {"max_lr": 1.0, "total_steps": 10, "cycle_momentum": False},
                       opt="Adagrad", steps=10, momentum=False, public=public))
        return cases

    def resumed(self, case: Case, at: int) -> Case:
        """The case restarted at step ``at``: the groups as torch's run left them there (its
        optimizer's param_groups, as a checkpoint holds them), ``last_epoch=at - 1``."""
        a = dict(case.args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer = make_optimizer(a)
            scheduler = torch_sched.OneCycleLR(optimizer, **a["kwargs"])
            for _ in range(at - 1):
                optimizer.step()
                scheduler.step()
        keys = ("lr", "initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum",
                "momentum", "betas")
        a["group_state"] = [{k: (list(g[k]) if k == "betas" else float(g[k])) for k in keys
                             if k in g} for g in optimizer.param_groups]
        a["kwargs"] = dict(a["kwargs"], last_epoch=at - 1)
        return Case(case.label.replace("OneCycleLR(optimizer, ",
                                       f"OneCycleLR(optimizer, last_epoch={at - 1}, "), a,
                    public=case.public, facet=case.facet)


# ---------------------------------------------------------------------------------------------
# ReduceLROnPlateau


PATIENCE, THRESHOLD, COOLDOWN, FLOOR, ARGS = ("patience", "threshold", "cooldown",
                                              "min_lr and eps", "arguments and state")
PLATEAU_KEYS = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "_last_lr",
                "min_lrs")


class ReduceLROnPlateauExercise(ScheduleExercise):
    name = "ReduceLROnPlateau"
    grade_id = "test_ReduceLROnPlateau"
    points = 3.0
    runner = staticmethod(run_plateau)
    facets = (Facet(PATIENCE, 1.0, "scripted metrics: patience (strictly more bad epochs), "
                                   "factor, counters reset after a reduction, max mode"),
              Facet(THRESHOLD, 0.5, "rel and abs thresholds, strict comparisons, negative "
                                    "metrics"),
              Facet(COOLDOWN, 0.5, "bad epochs during cooldown do not count"),
              Facet(FLOOR, 0.5, "min_lr (one or per group), eps swallowing a too small "
                                "reduction"),
              Facet(ARGS, 0.5, "ValueErrors, a 0-dim tensor metric, state_dict entries"))

    def case(self, label: str, facet: str, kwargs: dict[str, Any], *,  # type: ignore[override]
             metrics: list[float] | None = None, lrs: tuple = (0.1,), public: bool = False,
             **extra: Any) -> Case:
        a = {"kind": extra.pop("kind", "trace"), "lrs": list(lrs), "kwargs": dict(kwargs),
             "metrics": [float(m) for m in (metrics or [])]}
        a.update(extra)
        call = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        shown = ", ".join(f"{m:.4g}" for m in a["metrics"][:12]) + \
            (", ..." if len(a["metrics"]) > 12 else "")
        text = f"{label}: ReduceLROnPlateau(optimizer, {call}), lrs {list(lrs)}"
        if a["kind"] == "trace":
            text += f", metrics [{shown}]"
        return Case(text, a, public=public, facet=facet)

    def build_public(self) -> list[Case]:
        return self.cases_from(None, public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.cases_from(rng, public=False)

    def cases_from(self, rng: np.random.Generator | None, public: bool) -> list[Case]:
        r = rng if rng is not None else np.random.default_rng(5)
        c = self.case
        flat = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
        walk = list(np.round(np.cumsum(r.normal(0.0, 1.0, 40)) + 20.0, 3))
        noisy = list(np.round(np.exp(-np.arange(40) / 10.0) + r.normal(0.0, 0.05, 40), 4))
        p = 2 if rng is None else int(r.integers(1, 4))
        cases = [
            c("a plateau", PATIENCE, {"patience": p}, metrics=flat, public=public),
            c("patience 0, factor 0.5, two groups", PATIENCE,
              {"patience": 0, "factor": 0.5}, metrics=flat, lrs=(0.1, 0.02), public=public),
            c("a noisy descent", PATIENCE, {"patience": p, "factor": 0.5}, metrics=noisy,
              public=public),
            c("max mode", PATIENCE, {"mode": "max", "patience": p, "factor": 0.3},
              metrics=[-x for x in noisy], public=public),
            c("repeated equal metrics are not better (threshold 0)", THRESHOLD,
              {"patience": 1, "threshold": 0.0}, metrics=[2.0] * 9, public=public),
            c("rel threshold (10 %), metrics on the bar", THRESHOLD,
              {"patience": 1, "threshold": 0.1},
              metrics=[10.0, 9.0, 8.1, 8.0, 7.9, 7.29, 7.0, 6.9, 6.8, 6.7], public=public),
            c("abs threshold, metrics on the bar", THRESHOLD,
              {"patience": 1, "threshold": 0.5, "threshold_mode": "abs"},
              metrics=[10.0, 9.5, 9.4, 8.0, 7.5, 7.4, 7.1, 6.0, 5.8], public=public),
            c("max mode, abs threshold, metrics on the bar", THRESHOLD,
              {"mode": "max", "patience": 1, "threshold": 0.5, "threshold_mode": "abs"},
              metrics=[1.0, 1.5, 1.9, 2.5, 2.6, 2.7, 3.5, 3.6, 3.7], public=public),
            c("negative metrics getting worse, rel 10 % (torch counts them as better)",
              THRESHOLD, {"patience": 1, "threshold": 0.1},
              metrics=[-10.0, -9.5, -9.2, -9.0, -8.5, -8.0], public=public),
            c("negative metrics getting worse, rel (default threshold)", THRESHOLD,
              {"patience": 1}, metrics=[-10.0, -9.5, -9.2, -9.0, -8.5, -8.0], public=public),
            c("negative metrics getting worse, abs", THRESHOLD,
              {"patience": 1, "threshold_mode": "abs"},
              metrics=[-10.0, -9.5, -9.2, -9.0, -8.5, -8.0], public=public),
            c("cooldown 2", COOLDOWN, {"patience": 0, "cooldown": 2, "factor": 0.5},
              metrics=flat, public=public),
            c("cooldown on a random walk", COOLDOWN,
              {"patience": 1, "cooldown": 3, "factor": 0.5}, metrics=walk, public=public),
            c("min_lr", FLOOR, {"patience": 0, "min_lr": 0.004}, metrics=flat, public=public),
            c("min_lr per group", FLOOR, {"patience": 0, "factor": 0.5, "min_lr": [0.01, 0.0]},
              metrics=flat, lrs=(0.1, 0.02), public=public),
            c("eps swallows reductions smaller than it", FLOOR,
              {"patience": 0, "factor": 0.5, "eps": 0.01}, metrics=flat, lrs=(0.1, 0.05),
              public=public),
            c("0-dim tensor metrics; state_dict entries", ARGS, {"patience": 1, "cooldown": 1},
              metrics=walk[:15], tensor=True, state_keys=list(PLATEAU_KEYS), public=public),
        ]
        cases += [c("invalid arguments (ValueError)", ARGS, kw, kind="construct", lrs=(0.1, 0.02),
                    public=public)
                  for kw in ({"factor": 1.0}, {"mode": "maximum"}, {"threshold_mode": "relative"},
                             {"min_lr": [0.0]})]
        if rng is not None:
            for _ in range(3):
                kw = {"patience": int(r.integers(0, 4)), "factor": float(round(r.uniform(0.1, 0.9), 3)),
                      "cooldown": int(r.integers(0, 3)),
                      "threshold": float(round(r.uniform(0.0, 0.05), 4))}
                cases.append(c("random walk", PATIENCE, kw,
                               metrics=list(np.round(np.cumsum(r.normal(0, 1, 30)) + 30, 3))))
        return cases

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        a = case.args
        return (not case.public, len(a["kwargs"]), len(a["lrs"]), len(a["metrics"]), case.label)


# ---------------------------------------------------------------------------------------------
# SequentialLR


SEQUENCE = "sequence"
WARMUP_COSINE = [["LinearLR", {"start_factor": 0.1, "total_iters": 5}],
                 ["CosineAnnealingLR", {"T_max": 20}]]


class SequentialLRExercise(ScheduleExercise):
    name = "SequentialLR"
    grade_id = "test_SequentialLR"
    points = 2.0
    runner = staticmethod(run_sequential)
    facets = (Facet(SEQUENCE, 1.25, "warmup then decay: the switch at each milestone, two "
                                    "groups, three schedulers"),
              Facet(ARGS, 0.75, "ValueError/TypeError for invalid arguments, state_dict round "
                                "trip mid-run (with torch's)"))

    def case(self, label: str, facet: str, schedulers: list[Any],  # type: ignore[override]
             milestones: list[int], *, lrs: tuple = (0.1,), steps: int = 30,
             public: bool = False, **extra: Any) -> Case:
        a = {"kind": extra.pop("kind", "trace"), "lrs": list(lrs),
             "schedulers": copy.deepcopy(schedulers), "milestones": list(milestones),
             "steps": steps}
        a.update(extra)
        inner = ", ".join(f"{n}({', '.join(f'{k}={v!r}' for k, v in kw.items())})"
                          for n, kw in schedulers)
        text = (f"{label}: SequentialLR(optimizer, [{inner}], milestones={list(milestones)}), "
                f"lrs {list(lrs)}, {steps} steps")
        return Case(text, a, public=public, facet=facet)

    def with_torch_sequence_state(self, case: Case) -> Case:
        a = dict(case.args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer = make_optimizer(a)
            inner = [getattr(torch_sched, n)(optimizer, **kw) for n, kw in a["schedulers"]]
            s = torch_sched.SequentialLR(optimizer, inner, milestones=list(a["milestones"]))
            for _ in range(a["resume"]):
                optimizer.step()
                s.step()
            sd = s.state_dict()
        a["load"] = plain_state(sd, list(sd))
        return Case(case.label + f"; state_dict() at step {a['resume']} compared with torch's, "
                    "and torch's loaded into a fresh one to finish the run", a,
                    public=case.public, facet=case.facet)

    def build_public(self) -> list[Case]:
        return self.cases_from(None, public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.cases_from(rng, public=False)

    def cases_from(self, rng: np.random.Generator | None, public: bool) -> list[Case]:
        def pick(low: int, high: int, fixed: int) -> int:
            return fixed if rng is None else int(rng.integers(low, high))

        warm = pick(2, 8, 5)
        t_max = pick(5, 25, 20)
        wc = [["LinearLR", {"start_factor": 0.1, "total_iters": warm}],
              ["CosineAnnealingLR", {"T_max": t_max}]]
        three = [["ConstantLR", {"factor": 0.5, "total_iters": 3}],
                 ["StepLR", {"step_size": pick(2, 5, 3), "gamma": 0.5}],
                 ["ExponentialLR", {"gamma": 0.9}]]
        m1, m2 = pick(2, 6, 4), pick(7, 12, 9)
        c = self.case
        cases = [
            c("warmup then cosine", SEQUENCE, wc, [warm], steps=warm + t_max, public=public),
            c("two groups", SEQUENCE, wc, [warm], lrs=(0.1, 0.02), steps=warm + t_max,
              public=public),
            c("three schedulers", SEQUENCE, three, [m1, m2], steps=20, public=public),
            c("one scheduler", SEQUENCE, three[2:], [], steps=8, public=public),
            self.with_torch_sequence_state(c("round trip", ARGS, wc, [warm], lrs=(0.1, 0.02),
                                             steps=warm + t_max, resume=warm + 2,
                                             public=public)),
        ]
        for bad in ("no schedulers", "a scheduler of another optimizer",
                    "an object without an optimizer"):
            cases.append(c(bad, ARGS, wc, [warm], kind="construct", bad=bad, public=public))
        cases.append(c("two milestones for two schedulers", ARGS, wc, [warm, warm + 3],
                       kind="construct", bad="", public=public))
        return cases

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        a = case.args
        return (not case.public, len(a["schedulers"]), len(a["lrs"]), a["steps"], case.label)


# ---------------------------------------------------------------------------------------------
# lr_find and suggest_lr


SWEEP, RESTORE = "sweep", "restore"


def lr_find_model(*bugs: str) -> Callable[..., Any]:
    """The LR range test of the exercise text, with named bugs."""

    def lr_find(model: Any, loss_fn: Any, optimizer: Any, loader: Any, start_lr: float = 1e-7,
                end_lr: float = 10, num_iter: int = 100, smooth_f: float = 0.05,
                diverge_th: float = 5) -> tuple[list[float], list[float]]:
        model_state = copy.deepcopy(model.state_dict())
        optimizer_state = copy.deepcopy(optimizer.state_dict())
        lrs: list[float] = []
        losses: list[float] = []
        batches = iter(loader)
        best = math.inf
        best_raw = math.inf

        def lr_at(i: int) -> float:
            if "linear_sweep" in bugs:
                return start_lr + (end_lr - start_lr) * i / (num_iter - 1)
            return start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))

        for i in range(num_iter):
            lr = lr_at(i)
            groups = optimizer.param_groups[:1] if "first_group_only" in bugs \
                else optimizer.param_groups
            for group in groups:
                group["lr"] = lr
            try:
                inputs, targets = next(batches)
            except StopIteration:
                batches = iter(loader)
                inputs, targets = next(batches)
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            raw = loss.item()
            smoothed = raw if i == 0 else smooth_f * raw + (1 - smooth_f) * losses[-1]
            lrs.append(lr_at(i + 1) if "lr_after_step" in bugs else lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            best_raw = min(best_raw, raw)
            if "raw_loss_stop" in bugs:
                if raw > diverge_th * best_raw:
                    break
            elif smoothed > diverge_th * best:
                break
        model.load_state_dict(model_state)
        if "optimizer_not_restored" not in bugs:
            optimizer.load_state_dict(optimizer_state)
        else:
            for group, saved in zip(optimizer.param_groups, optimizer_state["param_groups"],
                                    strict=True):
                group["lr"] = saved["lr"]
        return lrs, losses

    return lr_find


def make_mlp(a: dict[str, Any]) -> torch.nn.Module:
    layers: list[torch.nn.Module] = [torch.nn.Linear(a["d"], a["h"])]
    if a.get("batchnorm"):
        layers.append(torch.nn.BatchNorm1d(a["h"]))
    layers += [torch.nn.Tanh(), torch.nn.Linear(a["h"], 1)]
    net = torch.nn.Sequential(*layers).double()
    with torch.no_grad():
        for p, w in zip(net.parameters(), a["weights"], strict=True):
            p.copy_(torch.from_numpy(np.array(w, copy=True)))
    return net


def model_and_optimizer_state(net: torch.nn.Module, optimizer: Any) -> Outputs:
    out: Outputs = {}
    for key, value in net.state_dict().items():
        out[f"model {key}"] = to_plain(value)
    sd = optimizer.state_dict()
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            out[f"optimizer state[{idx}][{key!r}]"] = to_plain(value) \
                if type(value) is torch.Tensor else np.array(number(value, key))
    for i, group in enumerate(sd["param_groups"]):
        out[f"optimizer param_groups[{i}]['lr']"] = np.array(number(group["lr"], "lr"))
    return out


def run_lr_find(impl: Any, a: dict[str, Any]) -> Outputs:
    net = make_mlp(a)
    params: Any = net.parameters()
    if a.get("two_groups"):  # the first layer in a group of its own, with its own lr
        first = list(net[0].parameters())
        rest = [p for p in net.parameters() if all(p is not q for q in first)]
        params = [{"params": first, "lr": 3e-3}, {"params": rest}]
    if a["opt"] == "Adam":
        optimizer: Any = torch.optim.Adam(params, lr=1e-3)
    else:
        optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    loader = [(torch.from_numpy(np.array(x, copy=True)), torch.from_numpy(np.array(y, copy=True)))
              for x, y in a["batches"]]
    loss_fn = torch.nn.MSELoss()
    for x, y in loader[: a["warm"]]:  # a few steps first: the optimizer has state to restore
        optimizer.zero_grad()
        loss_fn(net(x), y).backward()
        optimizer.step()
    net.train()
    before = model_and_optimizer_state(net, optimizer)
    result = impl(net, loss_fn, optimizer, loader, **a["kwargs"])
    if a["facet"] == RESTORE:
        # What changed, measured in this process: the sandbox may round differently from the
        # grader's process (another thread count), a restored state is equal to its own past.
        after = model_and_optimizer_state(net, optimizer)
        changed: Outputs = {}
        for key, value in before.items():
            if key not in after or after[key].shape != value.shape:
                raise AnswerTypeError(f"lr_find changed the shape or presence of {key}")
            changed[f"{key}: after minus before"] = np.asarray(after[key] - value)
        for key in after.keys() - before.keys():
            changed[f"{key}: not there before"] = np.array(True)
        return changed
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise AnswerTypeError("lr_find must return a tuple (lrs, losses)")
    lrs, losses = result
    return {"lrs": np.array(numbers(list(lrs), "lrs")),
            "losses": np.array(numbers(list(losses), "losses"))}


class FunctionExercise(ScheduleExercise):
    """An exercise on a plain function, not a scheduler: no base class to substitute, and the
    answer runs as given."""

    depends_on = ()

    def substitutes(self) -> dict[str, Any]:
        return {}

    def prepare(self, impl: Any) -> Any:
        return impl


class LrFindExercise(FunctionExercise):
    name = "lr_find"
    grade_id = "test_lr_find"
    points = 2.0
    facets = (Facet(SWEEP, 1.0, "the exponential sweep, the lr each step used, smoothed losses, "
                                "the stop at diverge_th x the best smoothed loss"),
              Facet(RESTORE, 1.0, "the model's parameters and buffers and the optimizer's state "
                                  "and lrs restored exactly"))

    def __init__(self) -> None:
        # torch has no LR range test; the grader's own reference is what must not be called.
        self.forbidden = (f"{__name__}.lr_find_model",)
        self._public = None

    def torch_reference(self) -> Callable[..., Any]:
        return lr_find_model()

    def run(self, impl: Any, case: Case) -> Outputs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run_lr_find(impl, dict(case.args))

    def tolerance(self, case: Case) -> dict[str, float]:
        return EXACT if case.facet == RESTORE else TOL

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        # How much an unrestored state moved depends on rounding: name the mistake loosely.
        for mistake in self.mistakes:
            wrong = memo_capture(self, mistake.impl, mistake.key, case)
            if ERROR_KEY in wrong or ERROR_KEY in got:
                continue
            loose = {"rtol": 1e-6, "atol": 1e-9} if case.facet == RESTORE else TOL
            if compare_outputs(got, wrong, **loose) is None:
                return mistake
        return None

    def case(self, label: str, facet: str, kwargs: dict[str, Any],  # type: ignore[override]
             rng: np.random.Generator, *, opt: str = "SGD", n_batches: int = 6,
             batchnorm: bool = False, two_groups: bool = False, public: bool = False) -> Case:
        d, h, size = 3, 4, 8
        dims = [(h, d), (h,)] + ([(h,), (h,)] if batchnorm else []) + [(1, h), (1,)]
        weights = [rng.normal(0.0, 0.5, s) for s in dims]
        w_true = rng.normal(0.0, 1.0, (d, 1))
        batches = []
        for _ in range(n_batches):
            x = rng.normal(0.0, 1.0, (size, d))
            batches.append((x, np.tanh(x @ w_true) + rng.normal(0.0, 0.1, (size, 1))))
        a = {"d": d, "h": h, "weights": weights, "batches": batches, "opt": opt, "warm": 2,
             "batchnorm": batchnorm, "two_groups": two_groups, "kwargs": dict(kwargs),
             "facet": facet}
        call = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        opt = f"{opt} with 2 param groups" if two_groups else opt
        text = (f"{label}: lr_find(model, MSELoss(), {opt}, loader of {n_batches} batches"
                f"{', ' if call else ''}{call}); MLP 3-4-1{' with BatchNorm' if batchnorm else ''}"
                " in float64")
        return Case(text, a, public=public, facet=facet)

    def build_public(self) -> list[Case]:
        return self.cases_from(np.random.default_rng(50), public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.cases_from(rng, public=False)

    def cases_from(self, rng: np.random.Generator, public: bool) -> list[Case]:
        c = self.case
        num = 30 if public else int(rng.integers(20, 60))
        cases = [
            c("defaults but 30 iterations", SWEEP, {"num_iter": 30}, rng, public=public),
            c("a sweep to divergence", SWEEP,
              {"start_lr": 1e-3, "end_lr": 100.0, "num_iter": num}, rng, public=public),
            c("smooth_f and diverge_th", SWEEP,
              {"start_lr": 1e-4, "end_lr": 50.0, "num_iter": num, "smooth_f": 0.3,
               "diverge_th": 2}, rng, opt="Adam", public=public),
            c("two param groups: every group gets the sweep's lr", SWEEP,
              {"start_lr": 1e-3, "end_lr": 30.0, "num_iter": num}, rng, two_groups=True,
              public=public),
            c("SGD with momentum", RESTORE, {"start_lr": 1e-3, "end_lr": 10.0, "num_iter": 20},
              rng, public=public),
            c("Adam (moments and step counts)", RESTORE,
              {"start_lr": 1e-3, "end_lr": 10.0, "num_iter": 20}, rng, opt="Adam",
              public=public),
            c("BatchNorm's running statistics", RESTORE, {"num_iter": 15}, rng, batchnorm=True,
              opt="Adam", public=public),
            c("two param groups with their own lrs", RESTORE, {"num_iter": 10}, rng,
              two_groups=True, public=public),
        ]
        return cases

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        return (not case.public, len(case.args["kwargs"]), case.label)


def suggest_lr_reference(lrs: Any, losses: Any) -> float:
    slopes = np.gradient(np.asarray(losses, dtype=float), np.log(np.asarray(lrs, dtype=float)))
    return float(lrs[int(np.argmin(slopes))])


STEEPEST, ENDS = "steepest descent", "end points and ties"


class SuggestLrExercise(FunctionExercise):
    name = "suggest_lr"
    grade_id = "test_suggest_lr"
    points = 1.0
    facets = (Facet(STEEPEST, 0.5, "the lr of the most negative slope of the loss against "
                                   "log(lr), on range-test curves"),
              Facet(ENDS, 0.5, "one-sided slopes at the first and last points, the first index "
                               "on ties"))

    def __init__(self) -> None:
        self.forbidden = (f"{__name__}.suggest_lr_reference",)
        self._public = None

    def torch_reference(self) -> Callable[..., Any]:
        return suggest_lr_reference

    def run(self, impl: Any, case: Case) -> Outputs:
        lrs = [float(x) for x in case.args["lrs"]]
        losses = [float(x) for x in case.args["losses"]]
        return {"out": np.array(number(impl(lrs, losses), "the suggested lr"))}

    def case(self, label: str, rng: np.random.Generator, n: int,  # type: ignore[override]
             public: bool = False) -> Case:
        lrs = 1e-5 * (10.0 / 1e-5) ** (np.arange(n) / (n - 1))
        x = np.log10(lrs)
        centre = rng.uniform(-3.0, 0.0)
        losses = 1.0 / (1.0 + np.exp(-(x - centre) * rng.uniform(1.0, 3.0)))
        losses = 2.0 - losses + 0.2 * np.exp(2.0 * (x - 0.5)) + rng.normal(0.0, 0.01, n)
        return Case(f"{label}: {n} points from lr 1e-05 to 10", {"lrs": lrs, "losses": losses},
                    public=public, facet=STEEPEST)

    def end_cases(self, rng: np.random.Generator | None, public: bool) -> list[Case]:
        n = 6 if rng is None else int(rng.integers(4, 12))
        lrs = 1e-3 * 10.0 ** (np.arange(n) * (0.45 if rng is None else rng.uniform(0.3, 0.8)))
        drop = np.array([2.0] + [1.0 - 0.01 * i for i in range(n - 1)])  # steepest at the start
        rise = np.array([1.0 - 0.01 * i for i in range(n - 1)] + [0.0])  # steepest at the end
        cases = [Case(f"{label}: {n} points, lrs {lrs[0]:.3g} .. {lrs[-1]:.3g}",
                      {"lrs": lrs, "losses": losses}, public=public, facet=ENDS)
                 for label, losses in (("the steepest drop at the first point", drop),
                                       ("the steepest drop at the last point", rise))]
        # Two points: both slopes are the same one-sided difference, an exact tie.
        pair = np.array([1.0, 0.5 if rng is None else float(rng.uniform(0.1, 0.9))])
        cases.append(Case("two points (a tie: the first)", {"lrs": lrs[:2], "losses": pair},
                          public=public, facet=ENDS))
        return cases

    def build_public(self) -> list[Case]:
        rng = np.random.default_rng(51)
        return [self.case("an S-shaped drop, then divergence", rng, n, public=True)
                for n in (20, 50)] + \
            [Case("four points", {"lrs": np.array([0.01, 0.1, 1.0, 10.0]),
                                  "losses": np.array([1.0, 0.9, 0.3, 0.25])}, public=True,
                  facet=STEEPEST)] + self.end_cases(None, public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return [self.case("random curve", rng, int(rng.integers(10, 100))) for _ in range(5)] + \
            self.end_cases(rng, public=False)

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        return (not case.public, len(case.args["lrs"]), case.label)


# ---------------------------------------------------------------------------------------------
# The mistakes tables


def _m(key: str, message: str, impl: Any, facet: str) -> Mistake:
    return Mistake(key, message, impl, facet=facet)


LR_SCHEDULER_MISTAKES = (
    _m("no_initial_step", "the constructor does not take the first step (last_epoch -1 -> 0): "
       "the whole trace is shifted by one epoch, and epoch 0's lrs are never written",
       model(LRSchedulerModel, "no_initial_step"), CONSTRUCTOR),
    _m("one_base_lr", "base_lrs repeats group 0's initial_lr for every group: keep one per group",
       model(LRSchedulerModel, "one_base_lr"), CONSTRUCTOR),
    _m("overwrite_initial_lr", "an existing group['initial_lr'] is overwritten: use "
       "group.setdefault('initial_lr', group['lr']), another scheduler may have set it",
       model(LRSchedulerModel, "overwrite_initial_lr"), CONSTRUCTOR),
    _m("no_closed_form_jump", "step(epoch) uses the chainable get_lr() instead of "
       "_get_closed_form_lr() when the subclass has one", model(LRSchedulerModel,
                                                                "no_closed_form_jump"), STEP),
    _m("last_lr_stale", "get_last_lr() returns the lrs from before the step: set _last_lr after "
       "writing the new lrs into the groups", model(LRSchedulerModel, "last_lr_stale"), STEP),
    _m("state_dict_keeps_optimizer", "state_dict() includes the optimizer: leave it out (it is "
       "saved by the optimizer's own state_dict)",
       model(LRSchedulerModel, "state_dict_keeps_optimizer"), STATE),
    _m("no_warning", "no UserWarning when scheduler.step() is called before optimizer.step(): "
       "wrap optimizer.step so that it records the call, and warn on the first step()",
       model(LRSchedulerModel, "no_warning"), WARNING),
)

CLOSED_FORM_ONLY = ("get_lr() computes the lr from base_lrs (the closed form) instead of from the "
                    "groups' current lrs: an lr changed from outside, or another scheduler on "
                    "the same optimizer, is ignored")


def _closed(cls: type) -> Mistake:
    return _m("closed_form_only", CLOSED_FORM_ONLY, model(cls, "closed_form_only"), CHAIN)


STEP_LR_MISTAKES = (
    _m("decay_at_zero", "the lr is decayed at epoch 0 too: last_epoch % step_size == 0 holds at "
       "0, decay only at non-zero multiples", model(StepLRModel, "decay_at_zero"), SCHEDULE),
    _m("decay_one_early", "the decay comes one epoch early: (last_epoch + 1) % step_size instead "
       "of last_epoch % step_size", model(StepLRModel, "decay_one_early"), SCHEDULE),
    _closed(StepLRModel),
)
MULTI_STEP_LR_MISTAKES = (
    _m("milestone_set", "the milestones are kept in a set: a milestone listed twice must decay "
       "twice (collections.Counter and gamma ** count)", model(MultiStepLRModel, "milestone_set"),
       SCHEDULE),
    _closed(MultiStepLRModel),
)
EXPONENTIAL_LR_MISTAKES = (
    _m("decays_in_constructor", "the constructor's first step decays when resuming "
       "(last_epoch >= 0): keep the lrs while self._is_initial",
       model(ExponentialLRModel, "decays_in_constructor"), SCHEDULE),
    _closed(ExponentialLRModel),
)
LINEAR_LR_MISTAKES = (
    _m("divide_by_total_iters_minus_1", "the factor reaches end_factor one epoch early: it "
       "moves by (end_factor - start_factor) / total_iters per epoch, not / (total_iters - 1)",
       model(LinearLRModel, "divide_by_total_iters_minus_1"), WARMUP),
    _m("past_total_iters", "the factor keeps changing after total_iters: it stays at end_factor",
       model(LinearLRModel, "past_total_iters"), AFTER),
    _closed(LinearLRModel),
)
COSINE_MISTAKES = (
    _m("clamped", "the lr is clamped at eta_min after T_max: torch's cosine is not clamped, it "
       "rises again (period 2 T_max)", model(CosineAnnealingLRModel, "clamped"), PAST),
    _m("period_minus_1", "the cosine uses T_max - 1: the lr is eta_min at epoch T_max, "
       "cos(pi * last_epoch / T_max)", model(CosineAnnealingLRModel, "period_minus_1"), PERIOD),
    _closed(CosineAnnealingLRModel),
)
ONE_CYCLE_MISTAKES = (
    _m("phase_end_without_minus_1", "the phases end at pct_start * total_steps and total_steps: "
       "torch ends them one step earlier (pct_start * total_steps - 1, total_steps - 1)",
       model(OneCycleLRModel, "phase_end_without_minus_1"), CYCLE),
    _m("min_lr_from_max_lr", "min_lr is max_lr / final_div_factor: it is initial_lr / "
       "final_div_factor = max_lr / (div_factor * final_div_factor)",
       model(OneCycleLRModel, "min_lr_from_max_lr"), CYCLE),
    _m("momentum_not_cycled", "the momentum (or betas[0]) is not cycled: it must go from "
       "max_momentum down to base_momentum while the lr rises, and back",
       model(OneCycleLRModel, "momentum_not_cycled"), MOMENTUM),
    _m("momentum_same_way", "the momentum moves the same way as the lr: it goes down while the "
       "lr goes up (max_momentum -> base_momentum in the first phase)",
       model(OneCycleLRModel, "momentum_same_way"), MOMENTUM),
    _m("raises_at_total_steps", "the error comes one step early: torch allows the step that "
       "reaches last_epoch == total_steps and raises only when last_epoch > total_steps",
       model(OneCycleLRModel, "raises_at_total_steps"), END),
)
PLATEAU_MISTAKES = (
    _m("patience_ge", "the lr is reduced when num_bad_epochs >= patience: torch waits for "
       "strictly more than patience bad epochs", model(ReduceLROnPlateauModel, "patience_ge"),
       PATIENCE),
    _m("bad_epochs_not_reset", "num_bad_epochs is not reset to 0 after a reduction",
       model(ReduceLROnPlateauModel, "bad_epochs_not_reset"), PATIENCE),
    _m("non_strict", "a metric equal to the threshold counts as better: the comparison is "
       "strict (a < best * (1 - threshold))", model(ReduceLROnPlateauModel, "non_strict"),
       THRESHOLD),
    _m("rel_as_abs", "the 'rel' threshold is applied as an absolute one: rel compares with "
       "best * (1 - threshold) (min) or best * (1 + threshold) (max)",
       model(ReduceLROnPlateauModel, "rel_as_abs"), THRESHOLD),
    _m("cooldown_ignored", "cooldown is not honoured: during cooldown_counter > 0, count it "
       "down and reset num_bad_epochs", model(ReduceLROnPlateauModel, "cooldown_ignored"),
       COOLDOWN),
    _m("no_eps", "no eps check: a reduction smaller than eps (old lr - new lr <= eps) must be "
       "skipped", model(ReduceLROnPlateauModel, "no_eps"), FLOOR),
)
SEQUENTIAL_MISTAKES = (
    _m("step_at_milestone", "at a milestone the next scheduler is stepped with step(): it must "
       "start at its epoch 0 with scheduler._update_lr(0) (its closed form)",
       model(SequentialLRModel, "step_at_milestone"), SEQUENCE),
    _m("no_undo", "the schedulers' constructor steps are not undone (last_epoch -= 1 for each)",
       model(SequentialLRModel, "no_undo"), SEQUENCE),
    _m("no_lr_reset", "the groups' lrs are not reset to initial_lr before the first scheduler's "
       "initial step: the warmup factor is applied twice", model(SequentialLRModel,
                                                                  "no_lr_reset"), SEQUENCE),
)
LR_FIND_MISTAKES = (
    _m("linear_sweep", "the lrs are swept linearly: the range test sweeps exponentially, "
       "start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))", lr_find_model("linear_sweep"),
       SWEEP),
    _m("lr_after_step", "the recorded lr is the next one, not the lr the step used",
       lr_find_model("lr_after_step"), SWEEP),
    _m("raw_loss_stop", "the stop test uses the raw loss: compare the smoothed loss with "
       "diverge_th times the best smoothed loss", lr_find_model("raw_loss_stop"), SWEEP),
    _m("first_group_only", "only the first param group gets the sweep's lr: set it in every "
       "group", lr_find_model("first_group_only"), SWEEP),
    _m("optimizer_not_restored", "the optimizer's state (momentum buffers, Adam's moments and "
       "step counts) is not restored: save optimizer.state_dict() and load it back",
       lr_find_model("optimizer_not_restored"), RESTORE),
)


def _argmin_loss(lrs: Any, losses: Any) -> float:
    return float(lrs[int(np.argmin(losses))])


def _argmin_loss_tenth(lrs: Any, losses: Any) -> float:
    return float(lrs[int(np.argmin(losses))]) / 10


def _interior_only(lrs: Any, losses: Any) -> float:
    x, y = np.log(np.asarray(lrs, dtype=float)), np.asarray(losses, dtype=float)
    slopes = (y[2:] - y[:-2]) / (x[2:] - x[:-2])
    return float(lrs[1 + int(np.argmin(slopes))])


SUGGEST_MISTAKES = (
    _m("min_loss", "this is the lr of the smallest loss: the suggestion is where the loss "
       "falls fastest (the most negative slope against log(lr))", _argmin_loss, STEEPEST),
    _m("min_loss_tenth", "this is the lr of the smallest loss / 10 (fastai's 'minimum'): "
       "the exercise asks for the steepest descent", _argmin_loss_tenth, STEEPEST),
    _m("interior_only", "only the interior points get a slope: numpy.gradient also gives the "
       "first and last points one (one-sided differences)", _interior_only, ENDS),
)


def _build() -> dict[str, Exercise]:
    table: list[tuple[type, tuple[Mistake, ...]]] = [
        (LRSchedulerExercise, LR_SCHEDULER_MISTAKES), (StepLRExercise, STEP_LR_MISTAKES),
        (MultiStepLRExercise, MULTI_STEP_LR_MISTAKES),
        (ExponentialLRExercise, EXPONENTIAL_LR_MISTAKES), (LinearLRExercise, LINEAR_LR_MISTAKES),
        (CosineAnnealingLRExercise, COSINE_MISTAKES), (OneCycleLRExercise, ONE_CYCLE_MISTAKES),
        (ReduceLROnPlateauExercise, PLATEAU_MISTAKES), (SequentialLRExercise, SEQUENTIAL_MISTAKES),
        (LrFindExercise, LR_FIND_MISTAKES), (SuggestLrExercise, SUGGEST_MISTAKES)]
    out: dict[str, Exercise] = {}
    for cls, mistakes in table:
        ex = cls()
        ex.mistakes = mistakes
        out[ex.name] = ex
    return out


EXERCISES: dict[str, Exercise] = _build()
check = make_check(EXERCISES)

MODELS = {"LRScheduler": LRSchedulerModel, "StepLR": StepLRModel, "MultiStepLR": MultiStepLRModel,
          "ExponentialLR": ExponentialLRModel, "LinearLR": LinearLRModel,
          "CosineAnnealingLR": CosineAnnealingLRModel, "OneCycleLR": OneCycleLRModel,
          "ReduceLROnPlateau": ReduceLROnPlateauModel, "SequentialLR": SequentialLRModel,
          "lr_find": lr_find_model(), "suggest_lr": suggest_lr_reference}

__all__ = ["CHAPTER", "EXERCISES", "MODELS", "check", "lr_find_model", "make_optimizer",
           "model", "probe_class"]
