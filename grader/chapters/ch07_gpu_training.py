"""Checks for Chapter 7, training on a GPU: ``GradScaler``, ``amp_train_step``,
``train_accumulated``, ``move_to``, ``benchmark`` and ``estimate_train_memory``.

Everything here runs on a CPU-only machine, as the learner's notebook does:

- ``GradScaler`` runs in lockstep with ``torch.amp.GradScaler(device="cpu")`` on the same scripts:
  float64 models, and float32 models under fp16 / bf16 CPU autocast; gradients poisoned with inf,
  -inf or NaN (or an inf loss) at scheduled steps; two optimizers sharing one scaler; ``unscale_``
  then clipping; accumulation over several backward passes; growth intervals of 1 to 3, a growth
  that would overflow float32, ``update(new_scale=...)``, ``update()`` after ``unscale_()`` alone;
  the errors torch raises (by class); ``state_dict`` round trips and torch's own state dict loaded;
  ``enabled=False`` and ``GradScaler("cuda")`` on a machine without CUDA (torch 2.13 warns and
  disables itself). PyTorch's results are computed by running torch's scaler on the same script
  (in the grader's process: in the sandbox, torch's scaler is off-limits).
- ``amp_train_step`` and ``train_accumulated`` are run with torch's GradScaler and compared with
  the reference (the solution's algorithm, written here on torch's scaler) step by step;
  ``train_accumulated``'s reference is itself checked against the full-batch step in the tests.
- ``move_to`` moves nested structures to the ``meta`` device, which exists on every machine.
- ``benchmark`` times a simulated asynchronous device on a simulated clock: ``fn()`` only enqueues
  work (the host returns at once), the work "completes" when ``sync()`` is called, and the first
  calls are slow, so that a timer without synchronisation, without warmup, or that times the
  warmup's queued work, is off by far more than the 2 % tolerance.
- ``estimate_train_memory`` is compared with the bytes torch really allocates: parameters,
  ``.grad`` and ``optimizer.state`` after one step (``step`` counters excluded), relative 1 %.

Every mistake of the issue's corpus has a model here (a re-implementation with one bug switched
on) and names the facet it costs, so that it is charged once.
"""

from __future__ import annotations

import contextlib
import functools
import time
import timeit
import warnings
from collections import OrderedDict, namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from grader.kit.exercise import (ERROR_KEY, AnswerTypeError, Case, Exercise, Facet, Mistake,
                                 Outputs, compare_outputs, make_check, tensor, to_plain)
from grader.kit.optim import digest

CHAPTER = "07_gpu_training"

F64 = {"rtol": 1e-9, "atol": 1e-12}
F32 = {"rtol": 2e-4, "atol": 1e-6}
# GradScaler on float64 models: torch multiplies by the float32 reciprocal of the scale; dividing
# by the scale instead is as right, and differs by up to half a float32 ulp.
SCALER_F64 = {"rtol": 1e-6, "atol": 1e-9}
SCALE_TOL = {"rtol": 1e-6, "atol": 0.0}  # the scale is float32: compared relatively (issue 14)

FORBIDDEN_SCALER = (
    "torch.amp.GradScaler",
    "torch.amp.grad_scaler.GradScaler",
    "torch.cuda.amp.GradScaler",
    "torch.cpu.amp.GradScaler",
    "torch._amp_foreach_non_finite_check_and_unscale_",
    "torch._amp_update_scale_",
)

# Facet names, as the exercise texts state them.
SCALING, SKIP, ERRORS, STATE, DISABLED = ("scale and unscale_", "skipping and update", "errors",
                                          "state_dict", "disabled and unavailable device")
AUTOCAST, CLIP, SCHED = "autocast and loss scaling", "clipping after unscale_", \
    "scheduler and skipped steps"
WEIGHTED, BOUNDARIES, ACC_SCALER = ("weighted accumulation", "step boundaries",
                                    "scaler and scheduler")
MOVED, KEPT = "tensors moved", "types and non-tensors kept"
SYNCED, WARMUP = "synchronised timing", "warmup and units"
WEIGHTS, OPT_STATE = "weights and gradients", "optimizer state and AMP"


# ---------------------------------------------------------------------------------------------
# Judging shared by the exercises: per-key tolerances, errors diagnosed by class and message

_MEMO: dict[tuple[str, str], Outputs] = {}


def _capture(ex: Exercise, impl: Any, tag: str, case: Case) -> Outputs:
    """Run grader-owned code (the reference or a mistake model) once per case."""
    from grader.kit.exercise import capture

    key = (f"{ex.name}:{tag}", digest(dict(case.args)))
    if key not in _MEMO:
        if len(_MEMO) > 4096:
            _MEMO.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _MEMO[key] = capture(ex, impl, case, forbid=False)
    return _MEMO[key]


class Ch7Exercise(Exercise):
    """What the six exercises share: memoised reference, per-key tolerance, diagnosis."""

    tolerances: dict[str, dict[str, float]] = {}
    diagnose_errors = True  # a mistake's model raises the same exception, message included

    def tol(self, case: Case, key: str) -> dict[str, float]:
        if key in self.tolerances:
            return self.tolerances[key]
        return F32 if case.args.get("dtype") == "float32" else F64

    def reference(self, case: Case) -> Outputs:
        return _capture(self, self.torch_reference(), "reference", case)

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        if ERROR_KEY in expected or ERROR_KEY in got:
            return compare_outputs(got, expected, **F64)
        for key, want in expected.items():
            if want.dtype.kind == "U" and key in got:
                problem = compare_text(key, got[key], want)
            else:
                problem = compare_outputs({key: got[key]} if key in got else {}, {key: want},
                                          **self.tol(case, key))
            if problem is not None:
                return problem
        return None

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        for mistake in self.mistakes:
            try:
                wrong = _capture(self, mistake.impl, mistake.key, case)
            except Exception:
                continue
            if (ERROR_KEY in wrong) != (ERROR_KEY in got):
                continue
            if ERROR_KEY in got:
                if (str(wrong[ERROR_KEY]), str(wrong["__message__"])) == \
                        (str(got[ERROR_KEY]), str(got["__message__"])):
                    return mistake
                continue
            if self.compare(case, got, wrong) is None:
                return mistake
        return None

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        return (not case.public, len(str(case.args)), case.label)


def compare_text(key: str, have: np.ndarray, want: np.ndarray) -> str | None:
    """Observations recorded as text ("op: result, op: result", "path: type | ..."): the first
    item that differs, in words (NumPy's text dtypes differ with the length, which says nothing)."""
    if have.dtype.kind != "U":
        return f"{key}: got {have!r}, expected text"
    got_text, want_text = str(have), str(want)
    if got_text == want_text:
        return None
    sep = ", " if key == "raised" else " | "
    got_items, want_items = got_text.split(sep), want_text.split(sep)
    for i, (g, w) in enumerate(zip(got_items, want_items, strict=False)):
        if g != w:
            return f"{key}, item {i + 1}: got {g!r}, expected {w!r}"
    if len(got_items) < len(want_items):
        return f"{key}: {want_items[len(got_items)]!r} is missing"
    return f"{key}: unexpected {got_items[len(want_items)]!r}"


def own_rng(run: Callable[..., Outputs]) -> Callable[..., Outputs]:
    """Run a script on its own seeded random stream: building ``nn.Linear`` layers draws from
    torch's global generator, and a check must not move the learner's notebook stream."""

    @functools.wraps(run)
    def wrapped(*args: Any, **kwargs: Any) -> Outputs:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return run(*args, **kwargs)

    return wrapped


def plain(value: Any, what: str) -> np.ndarray:
    """A number returned by the answer (int, float or 0-dim tensor) as a float64 array."""
    if type(value) is torch.Tensor and value.numel() == 1:
        return to_plain(value, what).astype(np.float64).reshape(())
    if type(value) in (int, float):
        return np.array(float(value))
    raise AnswerTypeError(f"{what} must be a number, got {type(value).__name__}")


# =============================================================================================
# GradScaler
# =============================================================================================

class ScalerModel:
    """The grader's GradScaler, written like the reference answer, with named bugs.

    ``bugs`` (a class attribute) switches mistakes on; with none it equals torch 2.13's scaler on
    every script of the checks (the tests hold it to that).
    """

    bugs: frozenset[str] = frozenset()

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        bugs = self.bugs
        self._enabled = enabled
        if device == "cuda" and enabled and not torch.cuda.is_available() \
                and "unavailable_ignored" not in bugs:
            if "unavailable_silent" not in bugs:
                warnings.warn("GradScaler is enabled, but CUDA is not available.  Disabling.",
                              UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
        self._init_scale = init_scale
        self._growth_factor, self._backoff_factor = growth_factor, backoff_factor
        self._growth_interval = growth_interval
        self._init_tracker = 0
        self._scale: torch.Tensor | None = None
        self._tracker: int | None = None
        self._opt: dict[int, dict[str, Any]] = {}
        self._sticky = False  # found_inf_never_reset
        self._loss_inf = False  # loss_checked_not_grads

    def _state(self, optimizer):
        return self._opt.setdefault(id(optimizer), {"stage": "ready", "found_inf": None})

    def scale(self, outputs):
        if not self._enabled:
            return outputs
        if isinstance(outputs, torch.Tensor):
            if self._scale is None:
                self._scale = torch.full((), self._init_scale, dtype=torch.float32)
                self._tracker = self._init_tracker
            out = outputs * self._scale.to(outputs.device)
            if "loss_checked_not_grads" in self.bugs and not bool(torch.isfinite(out).all()):
                self._loss_inf = True
            return out
        if isinstance(outputs, list | tuple):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def unscale_(self, optimizer):
        if not self._enabled:
            return
        if self._scale is None:
            raise AssertionError("unscale_ before scale")
        bugs = self.bugs
        state = self._state(optimizer)
        if not bugs & {"unscales_twice", "errors_missing"}:
            if state["stage"] == "unscaled":
                raise RuntimeError("unscale_() has already been called on this optimizer since "
                                   "the last update().")
            if state["stage"] == "stepped":
                raise RuntimeError("unscale_() is being called after step().")
        inv = self._scale.double().reciprocal().float()
        found = None
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.dtype == torch.float16:
                        raise ValueError("Attempting to unscale FP16 gradients.")
                    if "isinf_only" in bugs:
                        bad = bool(torch.isinf(p.grad).any())
                    else:
                        bad = not bool(torch.isfinite(p.grad).all())
                    if "loss_checked_not_grads" in bugs:
                        bad = self._loss_inf
                    found = bool(found) or bad
                    p.grad.mul_(inv)
        if "found_inf_never_reset" in bugs and found is not None:
            self._sticky = self._sticky or found
            found = self._sticky
        state["found_inf"] = found
        state["stage"] = "unscaled"

    def step(self, optimizer, *args, **kwargs):
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        bugs = self.bugs
        if "closure" in kwargs and "errors_missing" not in bugs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        if self._scale is None:
            raise AssertionError("step before scale")
        state = self._state(optimizer)
        if state["stage"] == "stepped" and not bugs & {"unscales_twice", "errors_missing"}:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == "ready" or "unscales_twice" in bugs:
            if "unscales_twice" in bugs:
                state["stage"] = "ready"
            self.unscale_(optimizer)
        if state["found_inf"] is None:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = None
        if not state["found_inf"]:
            retval = optimizer.step(*args, **kwargs)
        state["stage"] = "stepped"
        return retval

    def _rule(self, found: bool) -> None:
        bugs = self.bugs
        if found:
            self._scale.fill_(self._scale.item() * self._backoff_factor)
            if "tracker_not_reset_on_backoff" not in bugs:
                self._tracker = 0
            return
        successful = self._tracker + 1
        target = self._growth_interval + (1 if "growth_off_by_one" in bugs else 0)
        if successful >= target:
            grown = torch.tensor(self._scale.item() * self._growth_factor, dtype=torch.float32)
            if bool(torch.isfinite(grown)) or "growth_to_inf" in bugs:
                self._scale.copy_(grown)
            self._tracker = 0
        else:
            self._tracker = successful

    def update(self, new_scale=None):
        if not self._enabled:
            return
        if self._scale is None:
            raise AssertionError("update before scale")
        if new_scale is not None:
            if isinstance(new_scale, float):
                self._scale.fill_(new_scale)
            else:
                self._scale.copy_(new_scale.reshape(()))
        else:
            found = [s["found_inf"] for s in self._opt.values() if s["found_inf"] is not None]
            if not found:
                if "errors_missing" in self.bugs:
                    found = [False]
                else:
                    raise AssertionError("No inf checks were recorded prior to update.")
            if "update_per_optimizer" in self.bugs:
                for f in found:
                    self._rule(f)
            else:
                self._rule(any(found))
        self._opt = {}
        self._loss_inf = False

    def get_scale(self):
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else self._scale.item()

    def state_dict(self):
        if not self._enabled:
            return {}
        tracker = self._init_tracker if self._tracker is None else self._tracker
        sd = {"scale": self.get_scale(), "growth_factor": self._growth_factor,
              "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
              "_growth_tracker": int(tracker)}
        if "tracker_not_saved" in self.bugs:
            del sd["_growth_tracker"]
        return sd

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale.fill_(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        if "tracker_not_saved" not in self.bugs:
            self._init_tracker = state_dict["_growth_tracker"]
            if self._tracker is not None:
                self._tracker = state_dict["_growth_tracker"]

    @classmethod
    def with_bugs(cls, *bugs: str) -> type:
        return type("GradScaler", (cls,), {"bugs": frozenset(bugs)})


SCALER_MISTAKES = (
    ("loss_checked_not_grads", SKIP,
     "the inf/NaN check looks at the (scaled) loss instead of the gradients: a loss can be finite "
     "while a gradient overflows; check every .grad in unscale_"),
    ("isinf_only", SKIP,
     "only infs are detected (torch.isinf): a NaN gradient must skip the step too; use "
     "torch.isfinite, which is False for inf, -inf and NaN"),
    ("tracker_not_reset_on_backoff", SKIP,
     "the growth tracker is not reset to 0 when the scale backs off: growth must wait for "
     "growth_interval clean steps *after* the last inf/NaN"),
    ("growth_off_by_one", SKIP,
     "the scale grows one clean step late: it grows when the tracker + 1 reaches growth_interval "
     "(with growth_interval=1, after every clean step)"),
    ("growth_to_inf", SKIP,
     "the scale grows to inf: a growth whose result overflows float32 must be skipped (the scale "
     "stays, e.g. at 2**127, and the tracker resets)"),
    ("update_per_optimizer", SKIP,
     "update() applies the rule once per optimizer: with two optimizers it backs off (or counts "
     "a clean step) twice; one update per iteration, on whether *any* optimizer found an inf/NaN"),
    ("found_inf_never_reset", SKIP,
     "the inf/NaN flag is never cleared: after one bad step every later step is skipped; update() "
     "must start a new iteration with fresh per-optimizer records"),
    ("unscales_twice", SCALING,
     "step() unscales again after an explicit unscale_(): the gradients are divided by the scale "
     "twice (clipping, then a tiny step); remember per optimizer that it was unscaled this "
     "iteration (and raise RuntimeError on a second unscale_)"),
    ("errors_missing", ERRORS,
     "the state machine's errors are missing: unscale_ twice, unscale_ after step and step twice "
     "raise RuntimeError, update() with no inf checks raises AssertionError, as in torch"),
    ("tracker_not_saved", STATE,
     "state_dict()/load_state_dict() leave out '_growth_tracker': a resumed run grows at another "
     "step than the original"),
    ("unavailable_silent", DISABLED,
     "GradScaler('cuda') without CUDA disables itself silently: torch 2.13 warns "
     "(UserWarning: '...CUDA is not available.  Disabling.') and then disables itself"),
    ("unavailable_ignored", DISABLED,
     "GradScaler('cuda') without CUDA stays enabled: torch 2.13 warns and disables itself "
     "(get_scale() is 1.0, scale() returns its input, step() just steps)"),
)


# The scripts --------------------------------------------------------------------------------

def build_model(a: dict[str, Any]) -> torch.nn.Module:
    """The script's MLP (3 -> 4 -> 2) from plain weights, in the case's dtype."""
    dtype = getattr(torch, a["dtype"])
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for p, w in zip(model.parameters(), a["weights"], strict=True):
            p.copy_(tensor(w))
    return model.to(dtype)


def build_optimizers(model: torch.nn.Module, two: bool) -> list[torch.optim.Optimizer]:
    params = list(model.parameters())
    if two:  # two optimizers sharing one scaler, as in GANs
        return [torch.optim.SGD(params[:2], lr=0.05, momentum=0.9),
                torch.optim.Adam(params[2:], lr=0.01)]
    return [torch.optim.Adam(params, lr=0.01)]


def flat(params: list[torch.Tensor]) -> np.ndarray:
    return np.concatenate([to_plain(p.detach()).reshape(-1).astype(np.float64) for p in params])


def flat_grads(params: list[torch.Tensor]) -> np.ndarray:
    return np.concatenate([(to_plain(p.grad) if p.grad is not None else
                            np.zeros(p.shape)).reshape(-1).astype(np.float64) for p in params])


@own_rng
def scaler_train(cls: Any, a: dict[str, Any], keep: dict[str, Any] | None = None,
                 load: dict[str, Any] | None = None) -> Outputs:
    """Train the script's model with scaler class ``cls``; per-step observations.

    ``load``: a state dict loaded into the scaler right after it is built; ``keep`` receives the
    scaler at the end.
    """
    model = build_model(a)
    params = list(model.parameters())
    opts = build_optimizers(model, a["two_opts"])
    counts = [0] * len(opts)
    for i, opt in enumerate(opts):
        opt.register_step_post_hook(lambda o, args, kw, i=i: counts.__setitem__(i, counts[i] + 1))
    scaler = cls("cpu", **a["options"])
    if load is not None:
        scaler.load_state_dict(load)
    X, Y = tensor(a["X"]).to(model[0].weight.dtype), tensor(a["Y"]).to(model[0].weight.dtype)
    autocast = getattr(torch, a["autocast"]) if a["autocast"] else None
    scales = [float(scaler.get_scale())]
    stepped, trajectory, grads = [], [], []
    for t in range(a["steps"]):
        for opt in opts:
            opt.zero_grad()
        chunks = torch.tensor_split(torch.arange(X.shape[0]), a["accum"])
        for idx in chunks:
            with torch.autocast("cpu", dtype=autocast) if autocast else contextlib.nullcontext():
                out = model(X[idx])
                loss = F.mse_loss(out.float() if autocast else out, Y[idx]) / a["accum"]
            if t in a["loss_inf"]:
                loss = loss * float("inf")
            scaler.scale(loss).backward()
        with torch.no_grad():
            for step, index, value in a["poison"]:
                if step == t:
                    params[index].grad.view(-1)[0] = float(value)
        if t in a["unscale_only"]:
            for opt in opts:
                scaler.unscale_(opt)
        else:
            if a["clip"] is not None:
                for opt in opts:
                    scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, a["clip"])
            for opt in opts:
                scaler.step(opt)
        new = a["new_scale"].get(str(t))
        if new is None:
            scaler.update()
        else:
            scaler.update(new_scale=float(new) if isinstance(new, float) else torch.tensor(
                float(new[0]), dtype=torch.float32))
        scales.append(float(scaler.get_scale()))
        stepped.append(list(counts))
        trajectory.append(flat(params))
        grads.append(flat_grads(params))
    if keep is not None:
        keep["scaler"] = scaler
    return {"scale": np.array(scales), "stepped": np.array(stepped, dtype=np.int64),
            "params": np.stack(trajectory), "grads": np.stack(grads)}


def scaler_values(cls: Any, a: dict[str, Any]) -> Outputs:
    """scale() of tensors, nested lists and tuples, low-precision tensors; get_scale around it."""
    scaler = cls("cpu", **a["options"])
    out: Outputs = {"before": np.array(float(scaler.get_scale()))}
    x = tensor(a["x"])
    first = scaler.scale(x)
    out["tensor"] = to_plain(first, "scale(tensor)")
    out["after"] = np.array(float(scaler.get_scale()))
    nested = scaler.scale([x, (x * 2, [x * 3]), x.to(torch.float16), x.to(torch.bfloat16)])
    if type(nested) is not list or type(nested[1]) is not tuple or type(nested[1][1]) is not list:
        raise AnswerTypeError("scale([...]) must return the same container types (a list stays a "
                              "list, a tuple a tuple)")
    out["nested"] = np.concatenate([to_plain(nested[0]).ravel(), to_plain(nested[1][0]).ravel(),
                                    to_plain(nested[1][1][0]).ravel()])
    leaves = [nested[0], nested[1][0], nested[1][1][0], nested[2], nested[3]]
    if any(type(t) is not torch.Tensor for t in leaves):
        raise AnswerTypeError("scale([...]) must return tensors inside the containers")
    out["dtypes"] = np.array(" ".join(str(t.dtype) for t in leaves))
    out["low precision"] = np.concatenate([to_plain(t.float()).ravel() for t in leaves[3:]])
    return out


class ReturningSGD(torch.optim.SGD):
    """SGD whose step returns a value, to see that scaler.step hands it back."""

    def step(self, closure=None):  # type: ignore[override]
        super().step(closure)
        return 42.0


def scaler_errors(cls: Any, a: dict[str, Any]) -> Outputs:
    """A sequence of calls; each call's exception class (or "ok", or what step returned) and the
    scale after it. ``other`` optimizes a parameter that never gets a gradient."""
    p = torch.nn.Parameter(tensor(a["p"]))
    q = torch.nn.Parameter(tensor(a["p"]))
    opt, other = torch.optim.SGD([p], lr=0.1), torch.optim.SGD([q], lr=0.1)
    returning = ReturningSGD([p], lr=0.1)
    results, scales = [], []
    scaler = None
    for op in a["ops"]:
        try:
            if op.startswith("new "):
                scaler = cls("cpu", **dict(a["options"], **a["ctor"][op[4:]]))
            elif op == "scale":
                scaler.scale((p * p).sum()).backward()
            elif op == "inf gradient":
                with torch.no_grad():
                    p.grad[0] = float("inf")
            elif op == "step returning":
                results.append(f"returned {scaler.step(returning)!r}")
                scales.append(float(scaler.get_scale()))
                continue
            elif op == "unscale_":
                scaler.unscale_(opt)
            elif op == "step":
                scaler.step(opt)
            elif op == "step other":
                scaler.step(other)
            elif op == "step closure":
                scaler.step(opt, closure=lambda: (p * p).sum())
            elif op == "update":
                scaler.update()
            elif op == "zero_grad":
                opt.zero_grad()
                other.zero_grad()
            elif op == "load {}":
                scaler.load_state_dict({})
            results.append("ok")
        except NotImplementedError:
            raise  # a stub, not an answer
        except Exception as exc:  # the class is what counts, as in torch's checks
            results.append(type(exc).__name__)
        scales.append(float(scaler.get_scale()) if scaler is not None else 0.0)
    return {"raised": np.array(", ".join(f"{op}: {r}" for op, r in zip(a["ops"], results,
                                                                       strict=True))),
            "scale": np.array(scales),
            "p": to_plain(p.detach()).astype(np.float64)}


def scaler_state(cls: Any, a: dict[str, Any]) -> Outputs:
    """state_dict before and after training, round trips, torch's state dict loaded."""
    out: Outputs = {}
    fresh = cls("cpu", **a["options"])
    out["fresh"] = state_outputs(fresh.state_dict())
    # Train, save, load into a new scaler, continue: the scale must follow the unbroken run.
    holder: dict[str, Any] = {}
    scaler_train(cls, dict(a, steps=a["save_at"]), keep=holder)
    sd = holder["scaler"].state_dict()
    out["saved"] = state_outputs(sd)
    loaded = cls("cpu", **a["options"])
    loaded.load_state_dict(dict(sd))
    out["loaded"] = state_outputs(loaded.state_dict())
    out["resumed"] = resume(cls, a, dict(sd))
    out["from_torch"] = resume(cls, a, dict(a["torch_state"]))
    return {f"{k}:{key}": v for k, d in out.items() for key, v in d.items()}


def resume(cls: Any, a: dict[str, Any], sd: dict[str, Any]) -> dict[str, np.ndarray]:
    """Load ``sd`` into a fresh scaler (before its first scale()) and train on: scales, steps."""
    run = scaler_train(cls, dict(a, steps=a["steps"] - a["save_at"], poison=[], loss_inf=[]),
                       load=sd)
    return {"scale": run["scale"], "stepped": run["stepped"]}


def state_outputs(sd: Any) -> dict[str, np.ndarray]:
    if not isinstance(sd, dict):
        raise AnswerTypeError(f"state_dict() must return a dict, got {type(sd).__name__}")
    keys = sorted(str(k) for k in sd)
    out = {"keys": np.array(",".join(keys))}
    for key in keys:
        value = sd[key]
        if type(value) is torch.Tensor:
            value = value.item()
        if key == "_growth_tracker" and type(value) is not int:
            raise AnswerTypeError("state_dict()['_growth_tracker'] must be a Python int")
        out[key] = np.array(float(value))
    return out


def scaler_disabled(cls: Any, a: dict[str, Any]) -> Outputs:
    """enabled=False, or GradScaler('cuda') without CUDA: warning, pass-through, no-ops."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = cls(a["device"], **a["options"])
    warned = sorted({w.category.__name__ for w in caught})
    p = torch.nn.Parameter(tensor(a["p"]))
    opt = torch.optim.SGD([p], lr=0.1)
    loss = (p * p).sum()
    scaled = scaler.scale(loss)
    same = scaled is loss
    scaled.backward()
    with torch.no_grad():
        p.grad[0] = float("inf") if a["inf"] else p.grad[0]
    scaler.unscale_(opt)
    grad = to_plain(p.grad).astype(np.float64)
    with torch.no_grad():
        p.grad[0] = 0.5
    scaler.step(opt)
    scaler.update()
    sd = scaler.state_dict()
    try:
        scaler.load_state_dict({})
        load = "ok"
    except Exception as exc:
        load = type(exc).__name__
    return {"warned": np.array(",".join(warned) or "none"), "same object": np.array(same),
            "scale": np.array(float(scaler.get_scale())), "grad": grad,
            "p": to_plain(p.detach()).astype(np.float64), "state_dict keys": np.array(len(sd)),
            "load {}": np.array(load)}


SCRIPTS = {"train": scaler_train, "values": scaler_values, "errors": scaler_errors,
           "state": scaler_state, "disabled": scaler_disabled}


def torch_scaler_outputs(a: dict[str, Any]) -> Outputs:
    """PyTorch's observations of a script (run in the grader's process)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if a["kind"] == "disabled":
            return scaler_disabled(torch.amp.GradScaler, a)
        return SCRIPTS[a["kind"]](torch.amp.GradScaler, a)


class GradScalerExercise(Ch7Exercise):
    """``class GradScaler``, in lockstep with ``torch.amp.GradScaler(device="cpu")``."""

    name = "GradScaler"
    grade_id = "test_GradScaler"
    points = 5.0
    forbidden = FORBIDDEN_SCALER
    facets = (
        Facet(SCALING, 1.5, "scaled values, unscaled gradients (also before clipping, with "
                            "accumulation, autocast and two optimizers)"),
        Facet(SKIP, 1.5, "skip iff inf/NaN in that optimizer's gradients, backoff, growth after "
                         "growth_interval clean steps, tracker reset, no growth to inf, new_scale"),
        Facet(ERRORS, 1.0, "torch's exception classes for misuse of the state machine"),
        Facet(STATE, 0.5, "state_dict / load_state_dict round trips, torch's state dict loaded"),
        Facet(DISABLED, 0.5, "enabled=False; GradScaler('cuda') without CUDA warns and disables"),
    )
    tolerances = {"scale": SCALE_TOL}

    def torch_reference(self) -> Callable[..., Any]:
        return torch.amp.GradScaler

    def reference(self, case: Case) -> Outputs:
        key = ("GradScaler:reference", digest(dict(case.args)))
        if key not in _MEMO:
            try:
                _MEMO[key] = torch_scaler_outputs(dict(case.args))
            except Exception as exc:  # pragma: no cover - a script torch cannot run is a bug here
                raise RuntimeError(f"the reference failed on {case.label}: {exc!r}") from exc
        return _MEMO[key]

    def run(self, impl: Any, case: Case) -> Outputs:
        if not isinstance(impl, type):
            raise AnswerTypeError("GradScaler must be a class")
        return SCRIPTS[case.args["kind"]](impl, dict(case.args))

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        problem = super().compare(case, got, expected)
        if problem is None or case.args["kind"] not in ("train", "state") or ERROR_KEY in got:
            return problem
        return (problem + "\n  (steps count from 0: scale[0] is the scale before training and "
                "scale[k] the scale after step k-1; params, grads: [step, element], after the "
                "step; stepped: optimizer steps taken so far, per optimizer)")

    def tol(self, case: Case, key: str) -> dict[str, float]:
        if key.endswith("scale") or key in ("before", "after"):
            return SCALE_TOL
        return F32 if case.args.get("dtype", "float32") == "float32" else SCALER_F64

    # -- cases --------------------------------------------------------------------------------
    @staticmethod
    def train_args(rng: np.random.Generator, *, dtype: str = "float64",
                   autocast: str | None = None, steps: int = 8, two_opts: bool = False,
                   accum: int = 1, clip: float | None = None, poison=(), loss_inf=(),
                   unscale_only=(), new_scale=None, **options: Any) -> dict[str, Any]:
        n = 6
        shapes = [(4, 3), (4,), (2, 4), (2,)]
        options = {"init_scale": 2.0**8, "growth_interval": 3, **options}
        return {"kind": "train", "dtype": dtype, "autocast": autocast, "steps": steps,
                "two_opts": two_opts, "accum": accum, "clip": clip,
                "poison": [list(p) for p in poison], "loss_inf": list(loss_inf),
                "unscale_only": list(unscale_only), "new_scale": dict(new_scale or {}),
                "options": options,
                "weights": [rng.normal(0.0, 0.7, s) for s in shapes],
                "X": rng.normal(0.0, 1.0, (n, 3)), "Y": rng.normal(0.0, 1.0, (n, 2))}

    def scaling_cases(self, rng: np.random.Generator, public: bool) -> list[Case]:
        t = self.train_args
        init = float(rng.choice([0.1, 3.0, 2.0**10]))
        values = {"kind": "values", "dtype": "float32", "options": {"init_scale": init},
                  "x": rng.normal(0.0, 1.0, (3,)).astype(np.float32)}
        cases = [
            Case(f"scale() of a tensor, nested lists/tuples, fp16 and bf16 tensors "
                 f"(init_scale={values['options']['init_scale']})", values, public, SCALING),
            Case("unscale_ in step(): Adam on a float64 MLP, 8 steps",
                 t(rng), public, SCALING),
            Case("unscale_() then clip_grad_norm_(max_norm=0.05), then step()",
                 t(rng, clip=0.05), public, SCALING),
            Case("two optimizers (SGD with momentum, Adam) sharing one scaler",
                 t(rng, two_opts=True), public, SCALING),
        ]
        if public:
            return cases
        cases += [
            Case("gradients accumulated over 3 backward passes", t(rng, accum=3), False, SCALING),
            Case("float32 MLP under fp16 CPU autocast", t(rng, dtype="float32",
                                                          autocast="float16"), False, SCALING),
            Case("float32 MLP under bf16 CPU autocast, clipping", t(
                rng, dtype="float32", autocast="bfloat16", clip=0.1), False, SCALING),
            Case("init_scale=0.1 (not a power of two), two optimizers, clipping", t(
                rng, two_opts=True, clip=0.2, init_scale=0.1), False, SCALING),
        ]
        return cases

    def skip_cases(self, rng: np.random.Generator, public: bool) -> list[Case]:
        t = self.train_args
        cases = [
            Case("an inf gradient at step 2, growth_interval=3, 8 steps",
                 t(rng, poison=[(2, 0, "inf")]), public, SKIP),
            Case("a NaN gradient at step 1 and a -inf one at step 5",
                 t(rng, poison=[(1, 1, "nan"), (5, 2, "-inf")]), public, SKIP),
            Case("two optimizers, an inf in the second one's gradients at steps 1 and 4",
                 t(rng, two_opts=True, poison=[(1, 3, "inf"), (4, 2, "inf")]), public, SKIP),
            Case("an inf loss at step 3 (every gradient inf or NaN)",
                 t(rng, loss_inf=[3]), public, SKIP),
            Case("init_scale=2**126, growth_interval=1: growth past float32's max is skipped",
                 t(rng, init_scale=2.0**126, growth_interval=1, steps=4), public, SKIP),
        ]
        if public:
            return cases
        gi = int(rng.integers(1, 4))
        cases += [
            Case(f"growth_interval={gi}, infs at steps 0 and 4, 10 steps",
                 t(rng, steps=10, growth_interval=gi, poison=[(0, 0, "inf"), (4, 1, "inf")]),
                 False, SKIP),
            Case("init_scale=0.1, backoff_factor=0.3, growth_factor=3.0, an inf at step 1",
                 t(rng, init_scale=0.1, backoff_factor=0.3, growth_factor=3.0, growth_interval=2,
                   poison=[(1, 0, "inf")]), False, SKIP),
            Case("update(new_scale=...) at steps 1 (a float) and 4 (a tensor): the tracker is kept",
                 t(rng, steps=8, growth_interval=3, new_scale={"1": 64.0, "4": [512.0]}),
                 False, SKIP),
            Case("unscale_() then update() without step() at step 2 (with a NaN) and 5",
                 t(rng, unscale_only=[2, 5], poison=[(2, 0, "nan")]), False, SKIP),
            Case("fp16 autocast, an inf gradient at step 2, two optimizers, clipping",
                 t(rng, dtype="float32", autocast="float16", two_opts=True, clip=0.1,
                   poison=[(2, 1, "inf")]), False, SKIP),
            Case("accumulation over 2 passes, NaN at step 3, growth_interval=2",
                 t(rng, accum=2, growth_interval=2, poison=[(3, 2, "nan")]), False, SKIP),
        ]
        return cases

    def error_cases(self, rng: np.random.Generator, public: bool) -> list[Case]:
        base = {"kind": "errors", "options": {"init_scale": 4.0, "growth_interval": 2},
                "p": rng.normal(0.0, 1.0, (3,)),
                "ctor": {"default": {}, "growth 1": {"growth_factor": 1.0},
                         "backoff 1": {"backoff_factor": 1.0}}}
        sequences = [
            ("unscale_ twice; then step", ["new default", "scale", "unscale_", "unscale_", "step",
                                           "update"]),
            ("step twice; unscale_ after step", ["new default", "scale", "step", "step",
                                                "unscale_", "update"]),
            ("update() with no inf checks; calls before any scale()",
             ["new default", "update", "unscale_", "step", "scale", "update", "update"]),
        ]
        returns = Case("step() returns what optimizer.step() returned, None when it skips",
                       dict(base, ops=["new default", "scale", "step returning", "update",
                                       "zero_grad", "scale", "inf gradient", "step returning",
                                       "update"]), public, SKIP)
        if not public:
            sequences += [
                ("step on an optimizer without gradients; closure=; empty load_state_dict",
                 ["new default", "zero_grad", "scale", "step closure", "step other",
                  "load {}", "step", "update"]),
                ("growth_factor=1.0, backoff_factor=1.0", ["new growth 1", "new backoff 1"]),
            ]
        return [Case(f"errors: {label}", dict(base, ops=ops), public, ERRORS)
                for label, ops in sequences] + [returns]

    def state_cases(self, rng: np.random.Generator, public: bool) -> list[Case]:
        at = int(rng.integers(2, 5)) if not public else 3
        a = self.train_args(rng, steps=9, growth_interval=3, poison=[(1, 0, "inf")])
        a.update(kind="state", save_at=at,
                 torch_state={"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.25,
                              "growth_interval": 3, "_growth_tracker": 2})
        return [Case(f"state_dict() saved after step {at}, loaded into a new scaler, training "
                     f"resumed; torch's state dict (tracker 2) loaded", a, public, STATE)]

    def disabled_cases(self, rng: np.random.Generator, public: bool) -> list[Case]:
        p = rng.normal(0.0, 1.0, (3,))
        cases = [
            Case("GradScaler('cuda') on a machine without CUDA", {
                "kind": "disabled", "device": "cuda", "options": {}, "p": p, "inf": True},
                public, DISABLED),
            Case("GradScaler('cpu', enabled=False)", {
                "kind": "disabled", "device": "cpu", "options": {"enabled": False}, "p": p,
                "inf": True}, public, DISABLED),
        ]
        if not public:
            cases.append(Case("GradScaler('cuda', init_scale=8.0, growth_factor=1.0) without CUDA",
                              {"kind": "disabled", "device": "cuda", "p": p, "inf": False,
                               "options": {"init_scale": 8.0, "growth_factor": 1.0}},
                              False, DISABLED))
        return cases

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(7)
        return (self.scaling_cases(rng, True) + self.skip_cases(rng, True)
                + self.error_cases(rng, True) + self.state_cases(rng, True)
                + self.disabled_cases(rng, True))

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return (self.scaling_cases(rng, False) + self.skip_cases(rng, False)
                + self.error_cases(rng, False) + self.state_cases(rng, False)
                + self.disabled_cases(rng, False))


# =============================================================================================
# amp_train_step
# =============================================================================================

def model_amp_step(bugs: frozenset[str] = frozenset()) -> Callable[..., Any]:
    """The reference step, with named bugs."""

    def amp_train_step(model, batch, loss_fn, optimizer, scaler, *, device_type, dtype,
                       max_norm=None, scheduler=None):
        inputs, targets = batch
        optimizer.zero_grad()
        if "model_half" in bugs:
            model.half()
            inputs = inputs.half()
        with torch.autocast(device_type=device_type, dtype=dtype):
            output = model(inputs)
            if "loss_outside_autocast" not in bugs:
                loss = loss_fn(output, targets)
        if "loss_outside_autocast" in bugs:
            loss = loss_fn(output, targets)
        scaler.scale(loss).backward()
        if max_norm is not None:
            if "clip_before_unscale" in bugs:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                scaler.unscale_(optimizer)
            else:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        skipped = scaler.get_scale() < before
        if scheduler is not None and (not skipped or "scheduler_on_skip" in bugs):
            scheduler.step()
        return loss.detach()

    return amp_train_step


AMP_MISTAKES = (
    ("model_half", AUTOCAST,
     "the model was converted with model.half(): the parameters (and their gradients) become "
     "float16, which GradScaler refuses to unscale; keep float32 parameters and let autocast "
     "cast inside the forward pass"),
    ("loss_outside_autocast", AUTOCAST,
     "the loss is computed outside the autocast block on float16 outputs: cross-entropy then runs "
     "in float16 (returned loss float16); compute it inside, where autocast runs losses in "
     "float32"),
    ("clip_before_unscale", CLIP,
     "the gradients are clipped before unscale_: the clip sees the *scaled* gradients (norm times "
     "the scale), so the real gradients end up scale times smaller than max_norm; unscale_ first"),
    ("scheduler_on_skip", SCHED,
     "the scheduler steps even when the scaler skipped the optimizer step (an inf/NaN step): "
     "the schedule runs ahead of the updates; step it only if the scale did not go down"),
)


class LossWithSchedule:
    """Cross-entropy whose value is multiplied by inf at the scheduled calls (an overflow)."""

    def __init__(self, bad_calls: list[int]) -> None:
        self.calls, self.bad = 0, set(bad_calls)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(output, target)
        if self.calls in self.bad:
            loss = loss * float("inf")
        self.calls += 1
        return loss


@own_rng
def amp_run(impl: Callable[..., Any], a: dict[str, Any]) -> Outputs:
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for p, w in zip(model.parameters(), a["weights"], strict=True):
            p.copy_(tensor(w))
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=a["lr"], momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5) \
        if a["scheduler"] else None
    fp16 = a["dtype"] == "float16"
    scaler = torch.amp.GradScaler("cpu", init_scale=a["init_scale"], growth_interval=2,
                                  enabled=fp16)
    loss_fn = LossWithSchedule(a["inf_steps"])
    X, y = tensor(a["X"]).float(), tensor(a["y"])
    losses, trajectory, scales, lrs = [], [], [], []
    for t in range(a["steps"]):
        idx = slice(t * a["batch"], (t + 1) * a["batch"])
        loss = impl(model, (X[idx], y[idx]), loss_fn, optimizer, scaler, device_type="cpu",
                    dtype=getattr(torch, a["dtype"]), max_norm=a["max_norm"], scheduler=scheduler)
        if type(loss) is not torch.Tensor or loss.dim() != 0:
            raise AnswerTypeError("amp_train_step must return the loss as a 0-dim tensor")
        losses.append(to_plain(loss))
        trajectory.append(flat(params))
        scales.append(scaler.get_scale())
        lrs.append(optimizer.param_groups[0]["lr"])
    return {"loss": np.stack(losses), "params": np.stack(trajectory),
            "scale": np.array(scales), "lr": np.array(lrs)}


class AmpTrainStepExercise(Ch7Exercise):
    name = "amp_train_step"
    grade_id = "test_amp_train_step"
    points = 3.0
    facets = (Facet(AUTOCAST, 1.5, "forward and loss under autocast, float32 parameters, scaled "
                                   "backward, step and update"),
              Facet(CLIP, 0.75, "max_norm: unscale_ before clip_grad_norm_"),
              Facet(SCHED, 0.75, "the scheduler steps only after a step that was not skipped"))
    depends_on = ("GradScaler",)
    tolerances = {"loss": F32, "params": F32, "scale": SCALE_TOL, "lr": F64}

    def substitutes(self) -> dict[str, Any]:
        return {"GradScaler": ScalerModel}

    def torch_reference(self) -> Callable[..., Any]:
        return model_amp_step()

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        return amp_run(impl, dict(case.args))

    def make(self, rng: np.random.Generator, label: str, facet: str, public: bool, *,
             dtype: str = "float16", max_norm: float | None = None, scheduler: bool = False,
             inf_steps=(), steps: int = 5) -> Case:
        batch = 6
        shapes = [(8, 4), (8,), (3, 8), (3,)]
        args = {"dtype": dtype, "max_norm": max_norm, "scheduler": scheduler,
                "inf_steps": list(inf_steps), "steps": steps, "batch": batch,
                "init_scale": 2.0**8, "lr": float(rng.uniform(0.05, 0.2)),
                "weights": [rng.normal(0.0, 0.5, s) for s in shapes],
                "X": rng.normal(0.0, 2.0, (steps * batch, 4)),
                "y": rng.integers(0, 3, steps * batch)}
        return Case(label, args, public, facet)

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(3)
        return [
            self.make(rng, "fp16 autocast + GradScaler, 5 steps", AUTOCAST, True),
            self.make(rng, "fp16, max_norm=0.05", CLIP, True, max_norm=0.05),
            self.make(rng, "fp16, StepLR(gamma=0.5), an inf loss at step 2", SCHED, True,
                      scheduler=True, inf_steps=[2]),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        k = int(rng.integers(1, 4))
        return [
            self.make(rng, "fp16 autocast + GradScaler, 6 steps", AUTOCAST, False, steps=6),
            self.make(rng, "bf16 autocast, a disabled GradScaler", AUTOCAST, False,
                      dtype="bfloat16"),
            self.make(rng, f"fp16, an inf loss at step {k} (the step is skipped)", AUTOCAST,
                      False, inf_steps=[k]),
            self.make(rng, "fp16, max_norm=0.02", CLIP, False, max_norm=0.02),
            self.make(rng, "bf16, max_norm=0.1", CLIP, False, dtype="bfloat16", max_norm=0.1),
            self.make(rng, f"fp16, StepLR, infs at steps 0 and {k + 1}", SCHED, False,
                      scheduler=True, inf_steps=[0, k + 1]),
            self.make(rng, "bf16, StepLR (nothing skipped)", SCHED, False, dtype="bfloat16",
                      scheduler=True),
        ]


# =============================================================================================
# train_accumulated
# =============================================================================================

def model_accumulated(bugs: frozenset[str] = frozenset()) -> Callable[..., Any]:
    """The reference accumulation loop, with named bugs."""

    def train_accumulated(model, loss_fn, optimizer, micro_batches, accum_steps, scaler=None,
                          scheduler=None):
        micro_batches = list(micro_batches)
        losses = []
        end = len(micro_batches)
        if "last_group_dropped" in bugs:
            end = len(micro_batches) // accum_steps * accum_steps
        for start in range(0, end, accum_steps):
            group = micro_batches[start:start + accum_steps]
            total = sum(x.shape[0] for x, _ in group)
            optimizer.zero_grad()
            step_loss = 0.0
            for x, y in group:
                if "zero_grad_every_micro_step" in bugs:
                    optimizer.zero_grad()
                weight = x.shape[0] / total
                if "equal_weights" in bugs:
                    weight = 1.0 / accum_steps
                if "loss_not_divided" in bugs:
                    weight = 1.0
                loss = loss_fn(model(x), y) * weight
                (scaler.scale(loss) if scaler is not None else loss).backward()
                step_loss = step_loss + loss.detach()
                if "update_every_micro_step" in bugs and scaler is not None:
                    scaler.update()
            skipped = False
            if scaler is not None:
                before = scaler.get_scale()
                scaler.step(optimizer)
                scaler.update()
                skipped = scaler.get_scale() < before
            else:
                optimizer.step()
            if scheduler is not None and not skipped:
                scheduler.step()
            losses.append(step_loss)
        return losses

    return train_accumulated


ACC_MISTAKES = (
    ("loss_not_divided", WEIGHTED,
     "the micro-batch losses are not divided: the accumulated gradient is the *sum* of the "
     "micro-batch means (accum_steps times too large); weight each by its share of the samples"),
    ("equal_weights", WEIGHTED,
     "each micro-batch loss is divided by accum_steps: with uneven micro-batches (or a shorter "
     "last group) that is not the mean over the step's samples; weight each by its sample count, "
     "x.shape[0] / (samples in the step)"),
    ("zero_grad_every_micro_step", BOUNDARIES,
     "zero_grad() is called before every micro-batch: only the last micro-batch's gradient "
     "survives; zero once per optimizer step"),
    ("last_group_dropped", BOUNDARIES,
     "the last, shorter group of micro-batches is dropped: it must still make an optimizer step"),
    ("update_every_micro_step", ACC_SCALER,
     "scaler.update() is called after every micro-batch: update once per optimizer step, after "
     "scaler.step (torch raises AssertionError: no inf checks were recorded)"),
)


@own_rng
def acc_run(impl: Callable[..., Any], a: dict[str, Any]) -> Outputs:
    dtype = torch.float64
    if a["classify"]:
        model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    else:
        model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    model = model.to(dtype)
    with torch.no_grad():
        for p, w in zip(model.parameters(), a["weights"], strict=True):
            p.copy_(tensor(w))
    params = list(model.parameters())
    optimizer = (torch.optim.Adam(params, lr=0.05) if a["adam"]
                 else torch.optim.SGD(params, lr=0.1, momentum=0.5))
    steps = [0]
    optimizer.register_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.7) if a["scheduler"] \
        else None
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2) \
        if a["scaler"] else None
    loss_fn = F.cross_entropy if a["classify"] else F.mse_loss
    X, Y = tensor(a["X"]), tensor(a["Y"])
    bounds = np.cumsum([0] + list(a["sizes"]))
    micro = [(X[s:e], Y[s:e]) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]
    if a["inf_at"] is not None:  # an overflowing micro-batch: its inputs hold an inf
        x_bad = micro[a["inf_at"]][0].clone()
        x_bad[0, 0] = float("inf")
        micro[a["inf_at"]] = (x_bad, micro[a["inf_at"]][1])
    losses = impl(model, loss_fn, optimizer, micro, a["accum"], scaler=scaler,
                  scheduler=scheduler)
    if not isinstance(losses, list):
        raise AnswerTypeError("train_accumulated must return a list of losses, one per step")
    values = np.array([plain(v, "each returned loss") for v in losses])
    out = {"params": flat(params), "steps": np.array(steps[0]),
           "losses": values, "lr": np.array(optimizer.param_groups[0]["lr"])}
    if scaler is not None:
        out["scale"] = np.array(scaler.get_scale())
    return out


class TrainAccumulatedExercise(Ch7Exercise):
    name = "train_accumulated"
    grade_id = "test_train_accumulated"
    points = 3.0
    facets = (Facet(WEIGHTED, 1.5, "the accumulated gradient equals the full-batch gradient, "
                                   "uneven micro-batches weighted by sample count"),
              Facet(BOUNDARIES, 0.75, "zero_grad once per step, a partial last group still steps, "
                                      "one mean loss returned per step"),
              Facet(ACC_SCALER, 0.75, "with a GradScaler: one step and one update per group; the "
                                      "scheduler is not stepped on a skipped step"))
    tolerances = {"scale": SCALE_TOL, "steps": F64}

    def torch_reference(self) -> Callable[..., Any]:
        return model_accumulated()

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        return acc_run(impl, dict(case.args))

    def make(self, rng: np.random.Generator, label: str, facet: str, public: bool,
             sizes: list[int], accum: int, *, classify: bool = False, adam: bool = False,
             scaler: bool = False, scheduler: bool = False, inf_at: int | None = None) -> Case:
        n = sum(sizes)
        shapes = [(5, 3), (5,), (3, 5), (3,)] if classify else [(2, 3), (2,)]
        args = {"sizes": list(sizes), "accum": accum, "classify": classify, "adam": adam,
                "scaler": scaler, "scheduler": scheduler, "inf_at": inf_at,
                "weights": [rng.normal(0.0, 0.6, s) for s in shapes],
                "X": rng.normal(0.0, 1.0, (n, 3)),
                "Y": rng.integers(0, 3, n) if classify else rng.normal(0.0, 1.0, (n, 2))}
        return Case(f"{label}: micro-batch sizes {sizes}, accum_steps={accum}", args, public,
                    facet)

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(5)
        return [
            self.make(rng, "linear model, MSE, SGD", WEIGHTED, True, [4, 4, 4, 4], 4),
            self.make(rng, "uneven micro-batches", WEIGHTED, True, [5, 2, 3, 6], 4),
            self.make(rng, "a partial last group", BOUNDARIES, True, [3, 3, 3, 3, 3], 2),
            self.make(rng, "GradScaler('cpu') and StepLR", ACC_SCALER, True, [4, 2, 4, 2], 2,
                      scaler=True, scheduler=True),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        def sizes(k: int) -> list[int]:
            return [int(s) for s in rng.integers(1, 7, k)]

        return [
            self.make(rng, "MLP, cross-entropy, Adam", WEIGHTED, False, sizes(6), 3,
                      classify=True, adam=True),
            self.make(rng, "linear model, MSE, SGD, uneven", WEIGHTED, False, sizes(8), 4),
            self.make(rng, "accum_steps=1 (no accumulation)", WEIGHTED, False, sizes(3), 1),
            self.make(rng, "MLP, partial last group", BOUNDARIES, False, sizes(7), 3,
                      classify=True),
            self.make(rng, "linear, one group of 5", BOUNDARIES, False, sizes(5), 5),
            self.make(rng, "GradScaler, an inf in micro-batch 2, StepLR", ACC_SCALER, False,
                      sizes(6), 2, scaler=True, scheduler=True, inf_at=2),
            self.make(rng, "GradScaler, Adam, MLP", ACC_SCALER, False, sizes(6), 3,
                      classify=True, adam=True, scaler=True),
        ]


# =============================================================================================
# move_to
# =============================================================================================

Batch = namedtuple("Batch", ["inputs", "target", "meta"])


class Marker:
    """A non-tensor value the answer must hand back as the same object."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Marker({self.name!r})"


def build(spec: Any, markers: list[Any]) -> Any:
    """A structure from its plain description (tensors, containers, non-tensors)."""
    kind = spec[0]
    if kind == "tensor":
        t = tensor(spec[1])
        return t.requires_grad_(True) if spec[2] else t
    if kind == "int":
        return spec[1]
    if kind == "str":
        return spec[1]
    if kind == "none":
        return None
    if kind == "marker":
        m = Marker(spec[1])
        markers.append(m)
        return m
    items = [build(s, markers) for s in spec[1]]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    if kind == "batch":
        return Batch(*items)
    keys = spec[2]
    if kind == "dict":
        return dict(zip(keys, items, strict=True))
    return OrderedDict(zip(keys, items, strict=True))


def tensors_of(obj: Any) -> list[str]:
    """Every tensor in DFS order, described by device, dtype, shape and requires_grad."""
    if type(obj) is torch.Tensor or isinstance(obj, torch.Tensor):
        return [f"{obj.device.type} {obj.dtype} {tuple(obj.shape)} grad={obj.requires_grad}"]
    if isinstance(obj, dict):
        return [d for v in obj.values() for d in tensors_of(v)]
    if isinstance(obj, list | tuple):
        return [d for v in obj for d in tensors_of(v)]
    return []


def layout(obj: Any, original: Any, path: str = "obj") -> list[str]:
    """Container types and keys, and whether non-tensors are the same objects."""
    if isinstance(original, torch.Tensor):
        return [f"{path}: tensor" if isinstance(obj, torch.Tensor) else f"{path}: not a tensor"]
    if isinstance(original, dict | list | tuple):
        kind = type(obj).__qualname__
        lines = [f"{path}: {kind}"]
        if isinstance(original, dict):
            if not isinstance(obj, dict):
                return lines
            lines.append(f"{path} keys: {list(obj.keys())!r}")
            for k, v in original.items():
                if k in obj:
                    lines += layout(obj[k], v, f"{path}[{k!r}]")
            return lines
        if not isinstance(obj, list | tuple):
            return lines
        lines.append(f"{path} length: {len(obj)}")
        for i, (have, want) in enumerate(zip(obj, original, strict=False)):
            lines += layout(have, want, f"{path}[{i}]")
        return lines
    same = obj is original
    return [f"{path}: {'the same object' if same else 'not the same object'}"]


def move_run(impl: Callable[..., Any], a: dict[str, Any]) -> Outputs:
    markers: list[Any] = []
    obj = build(a["spec"], markers)
    out = impl(obj, torch.device("meta") if a["as_device"] else "meta", **a["kwargs"])
    if a["facet"] == MOVED:
        return {"tensors": np.array(" | ".join(tensors_of(out)))}
    return {"layout": np.array(" | ".join(layout(out, obj)))}


def model_move_to(bugs: frozenset[str] = frozenset()) -> Callable[..., Any]:
    def move_to(obj, device, non_blocking=False):
        if isinstance(obj, torch.Tensor):
            return obj.to(device, non_blocking=non_blocking)
        if isinstance(obj, dict):
            if "dicts_not_recursed" in bugs:
                return obj
            return type(obj)((k, move_to(v, device, non_blocking)) for k, v in obj.items()
                             if "drops_non_tensors" not in bugs or keep(v))
        if isinstance(obj, list | tuple):
            items = [move_to(v, device, non_blocking) for v in obj
                     if "drops_non_tensors" not in bugs or keep(v)]
            if "tuples_to_lists" in bugs:
                return items
            if hasattr(obj, "_fields"):
                return tuple(items) if "namedtuple_to_tuple" in bugs else type(obj)(*items)
            return type(obj)(items)
        return obj

    def keep(v: Any) -> bool:
        return isinstance(v, torch.Tensor | dict | list | tuple)

    return move_to


MOVE_MISTAKES = (
    ("dicts_not_recursed", MOVED,
     "dicts are returned as they are: the tensors inside a dict (at any depth) stay on their "
     "device; recurse into dict values"),
    ("tuples_to_lists", KEPT,
     "tuples (and namedtuples) come back as lists: keep each container's type, "
     "type(obj)(...) for tuples, type(obj)(*items) for namedtuples"),
    ("namedtuple_to_tuple", KEPT,
     "a namedtuple comes back as a plain tuple: rebuild it with type(obj)(*items) so that "
     "batch.inputs still works"),
    ("drops_non_tensors", KEPT,
     "non-tensor values (ints, strings, None, other objects) are dropped: keep them, as the same "
     "objects"),
)


class MoveToExercise(Ch7Exercise):
    name = "move_to"
    grade_id = "test_move_to"
    points = 2.0
    facets = (Facet(MOVED, 1.0, "every tensor at any depth on the device, dtype/shape/"
                                "requires_grad kept"),
              Facet(KEPT, 1.0, "container types (tuple, list, namedtuple, dict, OrderedDict) "
                               "and keys kept, non-tensors the same objects"))

    def torch_reference(self) -> Callable[..., Any]:
        return model_move_to()

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        return move_run(impl, dict(case.args))

    @staticmethod
    def spec(rng: np.random.Generator, depth: int) -> Any:
        def t() -> list[Any]:
            shape = tuple(int(s) for s in rng.integers(1, 4, int(rng.integers(0, 3))))
            dtype = ["float32", "float64", "int64"][int(rng.integers(0, 3))]
            data = rng.normal(0.0, 1.0, shape).astype(dtype)
            return ["tensor", data, dtype != "int64" and bool(rng.integers(0, 2))]

        leaves = [t(), t(), ["int", int(rng.integers(0, 9))], ["str", "label"], ["none"],
                  ["marker", "module"]]
        if depth == 0:
            return leaves[int(rng.integers(0, len(leaves)))]
        sub = [MoveToExercise.spec(rng, depth - 1) for _ in range(3)]
        return [
            ["batch", [t(), sub[0], ["marker", "meta"]]],
            ["dict", [t(), ["list", [sub[1], t(), ["int", 3]]], ["tuple", [sub[2], ["none"]]]],
             ["x", "parts", "pair"]],
        ][int(rng.integers(0, 2))]

    def cases_for(self, facet: str, public: bool, rng: np.random.Generator) -> list[Case]:
        x, y = rng.normal(0.0, 1.0, (2, 3)), np.arange(2)
        fixed = [
            ("a (inputs, target) tuple", ["tuple", [["tensor", x, False], ["tensor", y, False]]]),
            ("a dict with a tensor, an int, a string and None",
             ["dict", [["tensor", x, True], ["int", 7], ["str", "id-1"], ["none"]],
              ["pixels", "step", "name", "mask"]]),
            ("a namedtuple Batch(inputs, target, meta) holding a list and an OrderedDict",
             ["batch", [["tensor", x, False], ["list", [["tensor", y, False], ["int", 2]]],
                        ["odict", [["marker", "module"], ["tensor", x, False]], ["b", "a"]]]]),
        ]
        cases = [Case(f"{label} -> 'meta'", {"spec": spec, "facet": facet, "as_device": False,
                                             "kwargs": {}}, public, facet)
                 for label, spec in fixed]
        if not public:
            for i in range(3):
                cases.append(Case(f"a random nested structure #{i + 1} -> torch.device('meta'), "
                                  "non_blocking=True",
                                  {"spec": self.spec(rng, 2), "facet": facet, "as_device": True,
                                   "kwargs": {"non_blocking": True}}, False, facet))
        return cases

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(1)
        return self.cases_for(MOVED, True, rng) + self.cases_for(KEPT, True, rng)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return self.cases_for(MOVED, False, rng) + self.cases_for(KEPT, False, rng)


# =============================================================================================
# benchmark
# =============================================================================================

CLOCKS = ("perf_counter", "monotonic", "time", "process_time")


class SimulatedDevice:
    """A device whose work completes only at sync(), on a simulated clock (in milliseconds).

    ``fn()`` costs the host ``launch`` ms (plus ``first`` ms for each of the first ``slow``
    calls: compilation, caches) and queues ``work`` ms on the device, which runs one job after
    the other; ``sync()`` advances the host to the moment the queue is empty. With
    ``asynchronous`` False, ``fn()`` waits for its own work (a CPU).
    """

    def __init__(self, a: dict[str, Any]) -> None:
        self.a = a
        self.now = 1000.0  # ms on the host clock
        self.free = self.now  # when the device has finished what is queued
        self.calls = 0
        self.syncs = 0

    def fn(self) -> None:
        a = self.a
        self.calls += 1
        if self.calls <= a["slow"]:
            self.now += a["first"]
        self.now += a["launch"]
        self.free = max(self.free, self.now) + a["work"]
        if not a["asynchronous"]:
            self.now = self.free

    def sync(self) -> None:
        self.syncs += 1
        self.now = max(self.now, self.free)

    # the clocks, in the units Python's functions use
    def seconds(self) -> float:
        return self.now / 1000.0

    def nanoseconds(self) -> int:
        return int(round(self.now * 1e6))


@contextlib.contextmanager
def simulated_clock(device: SimulatedDevice, impl: Any) -> Any:
    """Point time's clocks (and the answer's own imported names of them) at the device's."""
    patched: list[tuple[Any, str, Any]] = []
    originals = {}
    for name in CLOCKS:
        originals[getattr(time, name)] = device.seconds
        ns = getattr(time, f"{name}_ns", None)
        if ns is not None:
            originals[ns] = device.nanoseconds
    originals[timeit.default_timer] = device.seconds

    def patch(owner: Any, attr: str, value: Any) -> None:
        patched.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, value)

    try:
        for name in CLOCKS:
            patch(time, name, device.seconds)
            if hasattr(time, f"{name}_ns"):
                patch(time, f"{name}_ns", device.nanoseconds)
        patch(timeit, "default_timer", device.seconds)
        namespace = getattr(impl, "__globals__", {})
        for key, value in list(namespace.items()):
            try:
                if value in originals:
                    namespace[key] = originals[value]
                    patched.append((namespace, key, value))
            except TypeError:
                continue
        yield
    finally:
        for owner, attr, value in reversed(patched):
            if isinstance(owner, dict):
                owner[attr] = value
            else:
                setattr(owner, attr, value)


def bench_run(impl: Callable[..., Any], a: dict[str, Any]) -> Outputs:
    device = SimulatedDevice(a)
    kwargs = dict(a["kwargs"])
    if a["asynchronous"]:
        kwargs["sync"] = device.sync
    with simulated_clock(device, impl):
        ms = impl(device.fn, **kwargs)
    return {"ms": plain(ms, "benchmark's result"), "calls": np.array(device.calls)}


def model_benchmark(bugs: frozenset[str] = frozenset()) -> Callable[..., Any]:
    def benchmark(fn, *, warmup=3, iters=20, sync=None):
        if "no_sync" in bugs:
            sync = None
        if "no_warmup" in bugs:
            warmup = 0
        for _ in range(warmup):
            fn()
        if sync is not None and "warmup_work_timed" not in bugs:
            sync()
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        if sync is not None:
            sync()
        elapsed = time.perf_counter() - start
        if "seconds_not_ms" in bugs:
            return elapsed / iters
        if "total_not_mean" in bugs:
            return elapsed * 1000.0
        return elapsed * 1000.0 / iters

    return benchmark


BENCH_MISTAKES = (
    ("no_sync", SYNCED,
     "the clock is read without synchronising: an asynchronous device returns from fn() before "
     "its work is done, so this times the launches only; call sync() before reading the clock"),
    ("warmup_work_timed", SYNCED,
     "no sync() between the warmup and the start of the clock: the warmup's queued work is "
     "still running and gets timed; synchronise before starting the clock too"),
    ("no_warmup", WARMUP,
     "no warmup (or the warmup calls are timed): the first calls pay for compilation and caches; "
     "run warmup untimed calls first, then time iters calls"),
    ("seconds_not_ms", WARMUP,
     "the result is in seconds: return milliseconds per call"),
    ("total_not_mean", WARMUP,
     "the result is the total time of all iters calls: return the mean per call"),
)


class BenchmarkExercise(Ch7Exercise):
    name = "benchmark"
    grade_id = "test_benchmark"
    points = 1.0
    facets = (Facet(SYNCED, 0.5, "on a simulated asynchronous device: sync before and after the "
                                 "timed calls"),
              Facet(WARMUP, 0.5, "warmup calls untimed, warmup + iters calls in all, "
                                 "milliseconds per call"))
    tolerances = {"ms": {"rtol": 0.02, "atol": 0.0}, "calls": F64}

    def torch_reference(self) -> Callable[..., Any]:
        return model_benchmark()

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        return bench_run(impl, dict(case.args))

    @staticmethod
    def make(rng: np.random.Generator, facet: str, public: bool, asynchronous: bool,
             kwargs: dict[str, int]) -> Case:
        work = float(rng.uniform(0.5, 5.0))
        a = {"work": work, "launch": work * float(rng.uniform(0.003, 0.008)),
             "first": work * float(rng.uniform(8.0, 30.0)), "slow": int(rng.integers(1, 3)),
             "asynchronous": asynchronous, "kwargs": dict(kwargs)}
        where = "an asynchronous device, sync given" if asynchronous else "a synchronous device"
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"
        return Case(f"{where}: {work:.3g} ms of work per call, first {a['slow']} call(s) "
                    f"{a['first']:.3g} ms slower; {args}", a, public, facet)

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(2)
        return [self.make(rng, SYNCED, True, True, {}),
                self.make(rng, SYNCED, True, True, {"warmup": 2, "iters": 10}),
                self.make(rng, WARMUP, True, False, {}),
                self.make(rng, WARMUP, True, False, {"warmup": 5, "iters": 8})]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        for facet, asynchronous in ((SYNCED, True), (WARMUP, False)):
            for _ in range(3):
                kwargs = {"warmup": int(rng.integers(2, 6)), "iters": int(rng.integers(5, 40))}
                cases.append(self.make(rng, facet, False, asynchronous, kwargs))
        return cases


# =============================================================================================
# estimate_train_memory
# =============================================================================================

OPTIMIZERS: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01),
    "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=0.01),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01),
}


def memory_model(a: dict[str, Any]) -> torch.nn.Module:
    """Linear layers without random initialisation (the values do not matter here)."""
    layers = []
    for fan_in, fan_out, bias, frozen, dtype in a["layers"]:
        layer = torch.nn.utils.skip_init(torch.nn.Linear, fan_in, fan_out, bias=bias,
                                         dtype=getattr(torch, dtype))
        with torch.no_grad():
            for p in layer.parameters():
                p.zero_()
        layer.requires_grad_(not frozen)
        layers.append(layer)
    return torch.nn.Sequential(*layers)


def measured_memory(model: torch.nn.Module, optimizer: str = "adam", amp: bool = False) -> int:
    """What torch really allocates: weights, .grad, optimizer.state after one step (no 'step')."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    for p in trainable:
        p.grad = torch.zeros_like(p)
    opt = OPTIMIZERS[optimizer](trainable)
    opt.step()
    total = sum(p.nbytes for p in params) + sum(p.grad.nbytes for p in trainable)
    total += sum(v.nbytes for state in opt.state.values() for k, v in state.items()
                 if k != "step" and isinstance(v, torch.Tensor))
    if amp:
        total += sum(2 * p.numel() for p in trainable if p.dtype == torch.float32)
    return total


def memory_run(impl: Callable[..., Any], a: dict[str, Any]) -> Outputs:
    model = memory_model(a)
    result = impl(model, optimizer=a["optimizer"], amp=a["amp"])
    return {"bytes": plain(result, "the estimate")}


def model_memory(bugs: frozenset[str] = frozenset()) -> Callable[..., Any]:
    def estimate_train_memory(model, optimizer="adam", amp=False):
        buffers = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adagrad": 1, "adam": 2, "adamw": 2}
        if optimizer not in buffers:
            raise ValueError(f"unknown optimizer {optimizer!r}")
        total = 0
        for p in model.parameters():
            size = p.numel() * p.element_size()
            total += size
            if p.requires_grad or "frozen_counted" in bugs:
                state = 0 if "no_optimizer_state" in bugs else buffers[optimizer]
                total += size * (1 + state)
                if amp and p.dtype == torch.float32 and "amp_ignored" not in bugs:
                    total += p.numel() * 2
        return total

    return estimate_train_memory


MEMORY_MISTAKES = (
    ("frozen_counted", WEIGHTS,
     "frozen parameters (requires_grad=False) are counted with gradients and optimizer state: "
     "they have neither; count only their weights"),
    ("no_optimizer_state", OPT_STATE,
     "the optimizer's state is missing: Adam keeps two buffers per parameter (exp_avg, "
     "exp_avg_sq), momentum and RMSprop one; see chapter 4's table"),
    ("amp_ignored", OPT_STATE,
     "amp=True adds nothing: autocast keeps a 2-byte copy of every trainable float32 weight"),
)


class EstimateMemoryExercise(Ch7Exercise):
    name = "estimate_train_memory"
    grade_id = "test_estimate_train_memory"
    points = 1.0
    facets = (Facet(WEIGHTS, 0.5, "weights of every parameter, gradients of the trainable ones "
                                  "(optimizer='sgd')"),
              Facet(OPT_STATE, 0.5, "state buffers per optimizer, amp=True"))
    tolerances = {"bytes": {"rtol": 0.01, "atol": 0.0}}

    def torch_reference(self) -> Callable[..., Any]:
        return measured_memory

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        return memory_run(impl, dict(case.args))

    @staticmethod
    def make(rng: np.random.Generator, facet: str, public: bool, optimizer: str, amp: bool,
             dtype: str = "float32") -> Case:
        width = int(rng.integers(16, 48))
        layers = [[width, width, True, True, dtype], [width, width, True, False, dtype],
                  [width, int(rng.integers(2, 10)), bool(rng.integers(0, 2)), False, dtype]]
        a = {"layers": layers, "optimizer": optimizer, "amp": amp}
        return Case(f"3 {dtype} Linear layers of width {width}, the first frozen; "
                    f"optimizer={optimizer!r}, amp={amp}", a, public, facet)

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(4)
        return [self.make(rng, WEIGHTS, True, "sgd", False),
                self.make(rng, OPT_STATE, True, "adam", False),
                self.make(rng, OPT_STATE, True, "momentum", True)]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = [self.make(rng, WEIGHTS, False, "sgd", False, "float64")]
        for name in ("adamw", "rmsprop", "adagrad"):
            cases.append(self.make(rng, OPT_STATE, False, name, bool(rng.integers(0, 2))))
        cases.append(self.make(rng, OPT_STATE, False, "adam", True))
        cases.append(self.make(rng, OPT_STATE, False, "adam", True, "float64"))
        return cases


# =============================================================================================
# The tables and the chapter's check
# =============================================================================================

GradScalerExercise.mistakes = tuple(
    Mistake(key, message, ScalerModel.with_bugs(key), facet=facet)
    for key, facet, message in SCALER_MISTAKES)
AmpTrainStepExercise.mistakes = tuple(
    Mistake(key, message, model_amp_step(frozenset({key})), facet=facet)
    for key, facet, message in AMP_MISTAKES)
TrainAccumulatedExercise.mistakes = tuple(
    Mistake(key, message, model_accumulated(frozenset({key})), facet=facet)
    for key, facet, message in ACC_MISTAKES)
MoveToExercise.mistakes = tuple(
    Mistake(key, message, model_move_to(frozenset({key})), facet=facet)
    for key, facet, message in MOVE_MISTAKES)
BenchmarkExercise.mistakes = tuple(
    Mistake(key, message, model_benchmark(frozenset({key})), facet=facet)
    for key, facet, message in BENCH_MISTAKES)
EstimateMemoryExercise.mistakes = tuple(
    Mistake(key, message, model_memory(frozenset({key})), facet=facet)
    for key, facet, message in MEMORY_MISTAKES)

EXERCISES: dict[str, Exercise] = {
    "GradScaler": GradScalerExercise(),
    "amp_train_step": AmpTrainStepExercise(),
    "train_accumulated": TrainAccumulatedExercise(),
    "move_to": MoveToExercise(),
    "benchmark": BenchmarkExercise(),
    "estimate_train_memory": EstimateMemoryExercise(),
}
check = make_check(EXERCISES)

__all__ = ["CHAPTER", "EXERCISES", "FORBIDDEN_SCALER", "ScalerModel", "SimulatedDevice", "check",
           "measured_memory", "model_accumulated", "model_amp_step", "model_benchmark",
           "model_memory", "model_move_to"]
