"""Checks for chapter 1, losses for classification.

Exercises: ``log_softmax``, ``nll_loss``, ``cross_entropy``, ``binary_cross_entropy_with_logits``
and ``sigmoid_focal_loss``. Each answer is compared with PyTorch (for the focal loss, with the
formula of Lin et al. 2017 written in torch, as ``torchvision.ops.sigmoid_focal_loss`` computes
it): the value and the gradient with respect to the input, and to the target where PyTorch gives
one. Tolerances: ``rtol=1e-7, atol=1e-10`` in float64, ``rtol=1e-5, atol=1e-6`` in float32.

Known wrong implementations are recognized in two ways. Most are :class:`Mistake` objects whose
``impl`` reproduces the bug exactly, built from one flexible model per loss with a ``bug`` switch.
A numerical blow-up (an overflowing softmax, ``log(sigmoid(x))`` at ``x = -1e4``) produces
``nan`` or ``inf`` in ways that depend on how the answer is written, so those are :class:`Symptom`
objects recognized by what they do to the outputs. The order of ``mistakes`` matters: the first
match is the diagnosis, so the more specific mistakes come first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from grader.kit.exercise import (
    ERROR_KEY,
    AnswerTypeError,
    Case,
    Exercise,
    Facet,
    Mistake,
    Outputs,
    capture,
    compare_outputs,
    make_check,
    tensor,
    to_plain,
)

CHAPTER = "01_classification_losses"

TOLERANCES = {"float64": (1e-7, 1e-10), "float32": (1e-5, 1e-6)}
REDUCTIONS = ("none", "mean", "sum")
EXTREME = 1e4  # logits this large overflow exp() in any floating dtype
# How learners keep log() away from 0: log(p + eps) or log(clamp(p, eps)), with a usual eps.
EPS_VARIANTS = tuple((form, eps) for form in ("add", "clamp")
                     for eps in (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-12, 1e-15))

# ---------------------------------------------------------------------------------------------
# Recognizing mistakes: exact wrong implementations, and symptoms


@dataclasses.dataclass(frozen=True)
class Symptom(Mistake):
    """A mistake recognized by a predicate on the outputs rather than by equal outputs.

    ``matches(exercise, case, got, expected)`` decides; ``impl`` is one example of the mistake
    (used by the tests to show that the symptom is recognized).
    """

    matches: Callable[[Exercise, Case, Outputs, Outputs], bool] = lambda *_: False


def tolerance(case: Case) -> tuple[float, float]:
    """(rtol, atol) for the case, from the dtype of its input."""
    return TOLERANCES[str(main_input(case).dtype)]


def main_input(case: Case) -> np.ndarray:
    """The logits of a case (``inputs`` for the focal loss, ``input`` elsewhere)."""
    return np.asarray(case.args["inputs" if "inputs" in case.args else "input"])


def is_extreme(case: Case) -> bool:
    """Whether the case holds logits large enough to overflow a naive exp()."""
    return float(np.abs(main_input(case)).max(initial=0.0)) >= 50


def same_outputs(ex: Exercise, case: Case, got: Outputs, wrong: Outputs) -> bool:
    """Whether ``got`` equals the outputs of a wrong implementation, at the case's tolerance."""
    if ERROR_KEY in wrong and ERROR_KEY not in got:
        return False
    rtol, atol = tolerance(case)
    return compare_outputs(got, wrong, rtol=rtol, atol=atol) is None


def any_impl(*impls: Callable[..., Any]) -> Callable[[Exercise, Case, Outputs, Outputs], bool]:
    """A predicate true when ``got`` equals the outputs of any of ``impls`` (variants of a bug)."""

    def matches(ex: Exercise, case: Case, got: Outputs, expected: Outputs) -> bool:
        return any(same_outputs(ex, case, got, capture(ex, impl, case, forbid=False))
                   for impl in impls)

    return matches


def comparable_values(got: Outputs, expected: Outputs) -> bool:
    """Both calls returned a value, of the same shape."""
    return (ERROR_KEY not in got and ERROR_KEY not in expected and "out" in got
            and got["out"].shape == expected["out"].shape)


def accepted_bad_reduction(ex: Exercise, case: Case, got: Outputs, expected: Outputs) -> bool:
    """The case passes an unknown reduction string and the answer returned normally."""
    return case.args.get("reduction") not in (None, *REDUCTIONS) and ERROR_KEY not in got


def overflowed(ex: Exercise, case: Case, got: Outputs, expected: Outputs) -> bool:
    """nan or inf (in the value or a gradient) where PyTorch is finite, on large logits."""
    if ERROR_KEY in got or not is_extreme(case):
        return False
    return any(key in got and got[key].shape == want.shape
               and bool((~np.isfinite(got[key]) & np.isfinite(want)).any())
               for key, want in expected.items())


def lost_tiny_probabilities(ex: Exercise, case: Case, got: Outputs, expected: Outputs) -> bool:
    """The log of an underflowed probability: +-inf exactly where the value is huge, or nan only
    in the gradient (log's derivative 1/p at p = 0), and exact everywhere else."""
    if not is_extreme(case) or not comparable_values(got, expected):
        return False
    rtol, atol = tolerance(case)
    have, want = got["out"], expected["out"]
    bad = ~np.isclose(have, want, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        return bool((np.abs(want[bad]) >= 80).all() and np.isinf(have[bad]).all())
    return overflowed(ex, case, got, expected)


def capped(ex: Exercise, case: Case, got: Outputs, expected: Outputs) -> bool:
    """A clamped or eps-shifted probability: the value is finite and too small in size exactly
    on the largest values (the smallest probabilities), elsewhere off by at most about eps.

    On moderate logits, an eps shift is a small relative error; on large ones, a clamp caps the
    loss at -log(eps).
    """
    if not comparable_values(got, expected):
        return False
    rtol, atol = tolerance(case)
    have, want = got["out"], expected["out"]
    if not np.isfinite(have).all():
        return False
    size = np.abs(want)
    bad = ~np.isclose(have, want, rtol=rtol, atol=atol)
    cut = bad & (np.abs(have) < size)
    if not cut.any() or not (np.abs(have - want)[bad & ~cut] <= 1e-5).all():
        return False
    if (~bad).any() and size[cut].min() <= size[~bad].max():
        return False
    return bool(is_extreme(case) or (np.abs(have - want)[cut] <= 1e-2 * size[cut]).all())


def kink_at_zero(ex: Exercise, case: Case, got: Outputs, expected: Outputs) -> bool:
    """Right values, but the input gradient is wrong exactly (and only) where a logit is 0."""
    key = "grad_inputs" if "grad_inputs" in expected else "grad_input"
    if ERROR_KEY in got or key not in got or key not in expected \
            or got[key].shape != expected[key].shape:
        return False
    rtol, atol = tolerance(case)
    if compare_outputs({"out": got["out"]}, {"out": expected["out"]}, rtol=rtol, atol=atol):
        return False
    bad = ~np.isclose(got[key], expected[key], rtol=rtol, atol=atol, equal_nan=True)
    return bool(bad.any() and (main_input(case)[bad] == 0).all())


API = "API contract"  # argument validation: the exception's type, as PyTorch raises it


def invalid_reduction_symptom(impl: Callable[..., Any], facet: str = API) -> Symptom:
    """The mistake of returning something for ``reduction='avg'`` instead of raising."""
    return Symptom(
        "invalid_reduction_accepted",
        "an unknown reduction string must raise ValueError (as PyTorch does), not fall through "
        "to one of the valid reductions: a typo like reduction='avg' would otherwise go unnoticed",
        impl,
        accepted_bad_reduction,
        facet=facet,
    )


def clamped_symptom(message: str, impl: Callable[..., Any], *, model: Callable[..., Any],
                    facet: str | None = None) -> Symptom:
    """A clamped or eps-shifted probability: recognized by :func:`capped`, or exactly when the
    eps is a usual one (the gradient then shows the shift before the value does)."""
    variants = any_impl(*(lambda *a, v=v, **k: model(*a, bug="clamped", variant=v, **k)
                          for v in range(len(EPS_VARIANTS))))
    return Symptom("clamped_probabilities", message, impl,
                   lambda *args: capped(*args) or variants(*args), facet=facet)


M_KINK = ("the values are right but the gradient is wrong where a logit is exactly 0 (as with "
          "a zero-initialized last layer): in max(x, 0) + log1p(exp(-|x|)), autograd takes "
          "d|x|/dx = sign(0) = 0 and d max(x, 0)/dx = 1 or 0 at the kink, and the two do not "
          "cancel. Write it as m + log(exp(-m) + exp(-x - m)) with m = max(-x, 0): the m terms "
          "cancel in the gradient too")


# ---------------------------------------------------------------------------------------------
# Running a case, shared by the exercises


def describe(args: dict[str, Any], note: str, public: bool) -> str:
    """A label a learner can reproduce: shapes and dtypes (values too for small public cases)."""
    parts = []
    for key, value in args.items():
        if key in ("upstream_seed", "grad", "value_only"):
            continue
        if isinstance(value, np.ndarray):
            text = f"{key} {tuple(value.shape)} {value.dtype}"
            if public and value.size <= 12:
                text += " " + np.array2string(value, separator=", ", precision=4,
                                             max_line_width=200).replace("\n", "")
            parts.append(text)
        else:
            parts.append(f"{key}={value!r}")
    return ", ".join(parts) + (f" [{note}]" if note else "")


def make_case(note: str = "", *, public: bool = False, upstream_seed: int = 0,
              grad: Sequence[str] = ("input",), value_only: bool = False, facet: str = "",
              **args: Any) -> Case:
    """A case whose label is built from its arguments.

    ``grad`` names the tensors whose gradient is checked; with ``value_only`` the answer must
    still be differentiable, but only its value is compared. ``facet``: the facet the case
    counts towards ("" for the exercise's first one).
    """
    args = {k: v for k, v in args.items() if v is not None}
    label = describe(args, note + (", value only" if value_only else ""), public)
    meta = {"upstream_seed": upstream_seed, "grad": tuple(grad), "value_only": value_only}
    return Case(label, {**args, **meta}, public, facet)


META = ("upstream_seed", "grad", "value_only")


class LossExercise(Exercise):
    """An exercise on a loss function: tensors in, one tensor out, gradients checked.

    ``positional`` names the arguments passed by position; the rest go by keyword, so a case
    that leaves an option out exercises the answer's default.
    """

    positional: tuple[str, ...] = ("input", "target")

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        args = dict(case.args)
        seed = args.pop("upstream_seed")
        grad_wrt = args.pop("grad")
        value_only = args.pop("value_only")
        tensors = {k: tensor(v, grad=k in grad_wrt) if isinstance(v, np.ndarray) else v
                   for k, v in args.items()}
        leaves = [tensors[name] for name in grad_wrt]
        positional = [tensors.pop(k) for k in self.positional]
        out = impl(*positional, **tensors)
        result: Outputs = {"out": to_plain(out, "the returned value")}
        if type(out) is not torch.Tensor or not out.requires_grad:
            raise AnswerTypeError(
                "the result is not connected to the inputs' autograd graph: use torch "
                "operations on the input tensors (no .item(), .numpy(), .detach() or new "
                "torch.tensor(...) along the way)"
            )
        if value_only:
            return result
        # A random upstream gradient (the same for every implementation of a case) makes the
        # gradient check see each output element separately.
        upstream = np.random.default_rng(seed).normal(size=tuple(out.shape))
        grads = torch.autograd.grad(out, leaves, torch.from_numpy(upstream).to(out.dtype),
                                    allow_unused=True)
        for name, leaf, g in zip(grad_wrt, leaves, grads, strict=True):
            result[f"grad_{name}"] = to_plain(g if g is not None else torch.zeros_like(leaf))
        return result

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        rtol, atol = tolerance(case)
        problem = compare_outputs(got, expected, rtol=rtol, atol=atol)
        if problem is not None and ERROR_KEY in expected and "__message__" in expected:
            # Only the exception's type is graded (PyTorch's own strictness: its messages change
            # between versions); its text is a hint.
            problem += f" (PyTorch says: {str(expected['__message__']).strip()})"
        return problem

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        """The failing case shown first: public, then moderate logits before extreme ones (an
        overflow there says nothing about a mistake a smaller case shows), float64 before
        float32, fewest options, fewest numbers."""
        options = [k for k in case.args if k not in META and k not in self.positional]
        sizes = sum(np.size(v) for v in case.args.values() if isinstance(v, np.ndarray))
        float32 = main_input(case).dtype == np.float32
        return (not case.public, is_extreme(case), float32, len(options), sizes, case.label)

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        expected = self.reference(case)
        for mistake in self.mistakes:
            if isinstance(mistake, Symptom):
                if mistake.matches(self, case, got, expected):
                    return mistake
            elif same_outputs(self, case, got, capture(self, mistake.impl, case, forbid=False)):
                return mistake
        return None


# ---------------------------------------------------------------------------------------------
# Random inputs


def logits(rng: np.random.Generator, shape: Sequence[int], scale: float = 3.0,
           dtype: Any = np.float64) -> np.ndarray:
    """Random logits."""
    return (rng.normal(size=tuple(shape)) * scale).astype(dtype)


def extreme_logits(rng: np.random.Generator, shape: Sequence[int], dtype: Any = np.float64
                   ) -> np.ndarray:
    """Logits of size about 1e4, with some rows entirely near +1e4 or -1e4."""
    x = rng.choice([-EXTREME, 0.0, EXTREME], size=tuple(shape)) + rng.integers(-3, 4, tuple(shape))
    if x.ndim >= 2 and x.shape[0] >= 2:
        x[0] = -EXTREME + rng.integers(-3, 4, x.shape[1:])
        x[1] = EXTREME + rng.integers(-3, 4, x.shape[1:])
    return x.astype(dtype)


def index_target(rng: np.random.Generator, n_classes: int, shape: Sequence[int],
                 ignore_index: int | None = None, ignored: float = 0.0) -> np.ndarray:
    """Class indices, with about a fraction ``ignored`` replaced by ``ignore_index``.

    With two positions or more, the last two are of two different classes, and (when
    ``ignore_index`` is given) the first is ignored and the last kept, the last two when there
    are three or more: a batch of one class, or with nothing kept, would hide the weighting
    mistakes (the weights cancel out of the mean) or give 0/0.
    """
    shape = tuple(shape)
    allowed = [c for c in range(n_classes) if ignore_index is None or c != ignore_index]
    t = rng.choice(allowed, size=shape)  # kept targets never equal ignore_index by chance
    if t.size >= 2 and len(allowed) >= 2:
        t.flat[-2:] = rng.choice(allowed, 2, replace=False)
    if ignore_index is not None and t.size >= 2:
        mask = rng.random(shape) < ignored
        mask.flat[0] = True
        mask.flat[-2 if t.size >= 3 else -1:] = False
        t[mask] = ignore_index
    return np.asarray(t, dtype=np.int64)


def extra_dims(rng: np.random.Generator) -> tuple[int, ...]:
    """d1 (, d2) of a K-dimensional input; d1 >= 2, since with d1 = 1 flattening (N, C, 1)
    without moving C last happens to be right."""
    rest = rng.integers(1, 4, rng.integers(0, 2))
    return (int(rng.integers(2, 4)), *(int(s) for s in rest))


def prob_target(rng: np.random.Generator, shape: Sequence[int], class_dim: int,
                dtype: Any = np.float64) -> np.ndarray:
    """Random class probabilities summing to one along ``class_dim``."""
    p = rng.random(tuple(shape)) + 0.05
    return (p / p.sum(axis=class_dim, keepdims=True)).astype(dtype)


def class_weights(rng: np.random.Generator, n_classes: int, dtype: Any = np.float64
                  ) -> np.ndarray:
    """Positive class weights spread over two orders of magnitude."""
    return np.exp(rng.uniform(-2.3, 2.3, n_classes)).astype(dtype)


# ---------------------------------------------------------------------------------------------
# log_softmax


def safe_log(p: torch.Tensor, variant: int) -> torch.Tensor:
    """log(p + eps) or log(clamp(p, eps)), for the eps-variant ``variant``."""
    form, eps = EPS_VARIANTS[variant]
    return (p + eps).log() if form == "add" else p.clamp(min=eps).log()


def log_softmax_model(input: torch.Tensor, dim: int, *, bug: str = "", variant: int = 0
                      ) -> torch.Tensor:
    """log_softmax, correct or with one named bug."""
    if bug == "global_max":
        shifted = input - input.max()
        return shifted - shifted.exp().sum(dim, keepdim=True).log()
    m = input.amax(dim, keepdim=True)
    if bug == "max_not_added_back":
        # amax shares the gradient between tied maxima, max(dim) gives it to one of them
        m = [m, input.max(dim, keepdim=True).values, m.detach()][variant]
        return input - (input - m).exp().sum(dim, keepdim=True).log()
    if bug == "softmax_returned":
        return (input - m).exp() / (input - m).exp().sum(dim, keepdim=True)
    if bug == "log_of_softmax":
        return ((input - m).exp() / (input - m).exp().sum(dim, keepdim=True)).log()
    if bug == "clamped":
        return safe_log((input - m).exp() / (input - m).exp().sum(dim, keepdim=True), variant)
    if bug == "overflow":
        return (input.exp() / input.exp().sum(dim, keepdim=True)).log()
    return (input - m) - (input - m).exp().sum(dim, keepdim=True).log()


def other_dims(input: torch.Tensor, dim: int) -> list[Callable[..., Any]]:
    """log_softmax over each dimension other than ``dim``."""
    return [lambda x, d, k=k: log_softmax_model(x, k)
            for k in range(input.dim()) if k != dim % max(input.dim(), 1)]


def wrong_dim(ex: Exercise, case: Case, got: Outputs, expected: Outputs) -> bool:
    """``got`` equals log_softmax taken over another dimension."""
    x = torch.from_numpy(case.args["input"])
    return any_impl(*other_dims(x, case.args["dim"]))(ex, case, got, expected)


LSM_CORE, LSM_STABLE = "normalization along dim", "stable at extreme logits"


class LogSoftmax(LossExercise):
    """log_softmax(input, dim): stable at +-1e4, any dim (negative too), dtype kept."""

    name = "log_softmax"
    grade_id = "test_log_softmax"
    points = 2.0
    facets = (
        Facet(LSM_CORE, 1.0, "values and gradients on moderate logits: any shape, any (negative) "
                             "dim, float32 in and out"),
        Facet(LSM_STABLE, 1.0, "logits of +-1e4 and float32 logits of 100: finite and exact"),
    )
    positional = ("input", "dim")
    forbidden = (
        "torch.log_softmax", "torch.nn.functional.log_softmax", "torch.Tensor.log_softmax",
        "torch.special.log_softmax", "torch._log_softmax", "torch.ops.aten.log_softmax",
        "torch.ops.aten._log_softmax", "torch.nn.LogSoftmax",
        "torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax",
        "torch.special.softmax", "torch._softmax", "torch.ops.aten.softmax",
        "torch.ops.aten._softmax", "torch.nn.Softmax",
        "torch.logsumexp", "torch.Tensor.logsumexp", "torch.special.logsumexp",
        "torch.ops.aten.logsumexp",
        "torch.nn.functional.cross_entropy", "torch._C._nn.cross_entropy_loss",
    )
    mistakes = (
        Mistake("global_max",
                "you subtracted the maximum of the whole tensor, not the maximum along dim: a row "
                "whose logits are all far below that maximum underflows to exp() = 0 and log 0 = "
                "-inf. Use input.amax(dim, keepdim=True)",
                lambda input, dim: log_softmax_model(input, dim, bug="global_max"),
                facet=LSM_STABLE),
        Symptom("max_not_added_back",
                "the maximum m was subtracted inside the exponent but not added back: "
                "log sum exp(x) = m + log sum exp(x - m), so "
                "log_softmax = (x - m) - log sum exp(x - m)",
                lambda input, dim: log_softmax_model(input, dim, bug="max_not_added_back"),
                any_impl(*(lambda input, dim, v=v: log_softmax_model(
                    input, dim, bug="max_not_added_back", variant=v) for v in range(3))),
                facet=LSM_CORE),
        Mistake("softmax_returned",
                "this returns the probabilities softmax(x), not their logarithm",
                lambda input, dim: log_softmax_model(input, dim, bug="softmax_returned"),
                facet=LSM_CORE),
        Symptom("wrong_dim",
                "the normalization runs over the wrong dimension: use the dim argument "
                "(it may be negative) for the max, the sum and keepdim",
                lambda input, dim: log_softmax_model(input, -1), wrong_dim, facet=LSM_CORE),
        Symptom("log_of_softmax",
                "log(softmax(x)) loses the tiny probabilities: exp(x - m) underflows to 0 for "
                "logits far below the maximum and log 0 = -inf. Stay in log space: "
                "(x - m) - log sum exp(x - m)",
                lambda input, dim: log_softmax_model(input, dim, bug="log_of_softmax"),
                lost_tiny_probabilities, facet=LSM_STABLE),
        clamped_symptom(
            "the log of a clamped (or eps-shifted) probability is wrong for small probabilities "
            "and caps very negative log-probabilities at log(eps); compute "
            "(x - m) - log sum exp(x - m) instead",
            lambda input, dim: log_softmax_model(input, dim, bug="clamped", variant=6),
            model=log_softmax_model, facet=LSM_STABLE),
        Symptom("overflow",
                "softmax overflowed: exp() of a large logit is inf (and of a very negative one "
                "0), giving nan/inf. Subtract the maximum along dim first: "
                "log_softmax(x) = (x - m) - log sum exp(x - m)",
                lambda input, dim: log_softmax_model(input, dim, bug="overflow"), overflowed,
                facet=LSM_STABLE),
    )

    def torch_reference(self) -> Callable[..., Any]:
        return lambda input, dim: torch.log_softmax(input, dim)

    def public_cases(self) -> list[Case]:
        c = lambda note, **a: make_case(note, public=True, upstream_seed=1, **a)  # noqa: E731
        return [
            c("equal logits: log(1/2)", input=np.zeros(2), dim=0),
            c("", input=np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), dim=1),
            c("normalize down the columns", input=np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]),
              dim=0),
            c("negative dim", input=np.arange(24.0).reshape(2, 3, 4) % 5, dim=-2),
            c("extreme logits +-1e4", dim=1, facet=LSM_STABLE, input=np.array(
                [[1e4, -1e4, 0.0], [-1e4, -1e4 + 1, -1e4 + 2], [1e4, 1e4 - 1, 1e4 + 3]])),
            c("float32 in, float32 out", input=np.array([[0.5, -1.0, 2.0, 0.0]], np.float32),
              dim=1),
            c("float32, exp(100) overflows", dim=-1, facet=LSM_STABLE,
              input=np.array([[100.0, 90.0, -50.0], [-100.0, -120.0, -110.0]], np.float32)),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        for i in range(8):
            shape = rng.integers(1, 6, rng.integers(1, 5))
            dim = int(rng.integers(-len(shape), len(shape)))
            cases.append(make_case(input=logits(rng, shape), dim=dim, upstream_seed=i))
        for i, dim in enumerate((1, 0, -1)):
            cases.append(make_case("extreme logits", input=extreme_logits(rng, (4, 5)), dim=dim,
                                   upstream_seed=10 + i, facet=LSM_STABLE))
        cases.append(make_case("one class", input=logits(rng, (3, 1)), dim=1))
        cases.append(make_case("extreme, 3-d", input=extreme_logits(rng, (3, 4, 2)), dim=-2,
                               facet=LSM_STABLE))
        for i in range(3):
            shape = rng.integers(1, 6, 3)
            cases.append(make_case("float32", input=logits(rng, shape, dtype=np.float32),
                                   dim=int(rng.integers(-3, 3)), upstream_seed=20 + i))
        cases.append(make_case("float32, extreme", dim=1, facet=LSM_STABLE,
                               input=extreme_logits(rng, (4, 3), np.float32)))
        return cases


# ---------------------------------------------------------------------------------------------
# nll_loss and cross_entropy: one model with switchable bugs


def ce_model(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
             ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0,
             *, from_logits: bool = True, bug: str = "", variant: int = 0) -> torch.Tensor:
    """cross_entropy (or, with ``from_logits=False``, nll_loss), correct or with one bug.

    ``variant`` picks between the usual ways of writing the same bug.
    """
    if reduction not in REDUCTIONS:
        if bug != "invalid_reduction_accepted":
            raise ValueError(f"{reduction} is not a valid value for reduction")
        reduction = "none"
    if bug == "mean_sum_swapped":
        reduction = {"mean": "sum", "sum": "mean"}.get(reduction, reduction)
    cdim = 0 if input.dim() == 1 else 1
    n_classes = input.shape[cdim]
    is_prob = target.shape == input.shape and target.is_floating_point()
    if bug == "kdim_flattened_wrong" and input.dim() > 2 and not is_prob:
        # Variant 0 flattens the logits, variant 1 the log-probabilities (an nll_loss that
        # flattens, called by a cross_entropy that normalized over the right dimension).
        if variant == 1 and from_logits and label_smoothing == 0:
            input, from_logits = log_softmax_model(input, 1), False
        flat = ce_model(input.reshape(-1, n_classes), target.reshape(-1), weight, ignore_index,
                        reduction, label_smoothing, from_logits=from_logits)
        return flat.reshape(target.shape) if reduction == "none" else flat
    logp = input
    if from_logits and bug != "no_log_softmax":
        lsm_bug = bug if bug in ("log_of_softmax", "clamped", "overflow") else ""
        logp = log_softmax_model(input, -1 if bug == "class_dim_last" else cdim, bug=lsm_bug,
                                 variant=variant if lsm_bug else 0)
    w = torch.ones(n_classes, dtype=input.dtype) if weight is None or bug == "weight_ignored" \
        else weight
    w_b = w.view([n_classes if d == cdim else 1 for d in range(input.dim())])
    sign = 1.0 if bug == "no_negation" else -1.0
    eps = label_smoothing

    if is_prob:  # class probabilities
        q = target if bug == "prob_smoothing_ignored" else target * (1 - eps) + eps / n_classes
        per = sign * (logp * q * w_b).sum(cdim)
        if reduction == "none":
            return per
        if reduction == "sum":
            return per.sum()
        denom = {"prob_mean_over_all_elements": input.numel(),
                 "prob_mean_over_weight_sum": (q * w_b).sum()}.get(bug, input.numel() / n_classes)
        return per.sum() / denom

    ignored = target == (-100 if bug == "hard_coded_ignore" else ignore_index)
    keep = ~ignored
    safe = target.masked_fill(ignored, 0)
    picked = logp.gather(cdim, safe.unsqueeze(cdim)).squeeze(cdim)
    w_t = w[safe] * keep
    per = sign * picked * w_t
    count = w_t.sum()
    if bug == "ignored_in_denominator":
        count = w[safe].sum()
    if bug == "weighted_mean_over_n":
        count = torch.tensor(float(keep.sum() if variant else target.numel()), dtype=input.dtype)
    if eps > 0 and from_logits:
        smooth_w = w_b if bug not in ("smoothing_ignores_weights", "smoothing_by_target_weight") \
            else torch.ones_like(w_b)
        smooth = -(logp * smooth_w).sum(cdim)
        if bug == "smoothing_by_target_weight":
            smooth = smooth * w[safe]
        if not (bug == "smoothing_counts_ignored" and variant != 1):
            smooth = smooth * keep
        if bug == "smoothing_over_c_minus_1":
            per = (1 - eps) * per + eps / (n_classes - 1) * (smooth - (-picked * w_t))
            smooth = torch.zeros_like(smooth)
        else:
            per = (1 - eps) * per
        smooth_count = count
        if bug == "smoothing_ignores_weights" and variant == 1:
            smooth_count = keep.sum().to(input.dtype)
        if bug == "smoothing_counts_ignored" and variant >= 1:
            smooth_count = torch.tensor(float(target.numel()), dtype=input.dtype)
        if reduction == "none":
            return per + eps / n_classes * smooth
        if reduction == "sum":
            return per.sum() + eps / n_classes * smooth.sum()
        return per.sum() / count + eps / n_classes * smooth.sum() / smooth_count
    if reduction == "none":
        return per[keep] if bug == "ignored_rows_dropped" else per
    if reduction == "sum":
        return per.sum()
    if bug == "all_ignored_zero" and not keep.any():
        return per.sum() * 0.0
    return per.sum() / count


def correct_log_softmax(input: torch.Tensor, dim: int) -> torch.Tensor:
    """log_softmax in place of the learner's, when cross_entropy is checked: written with amax,
    exp, sum and log, which cross_entropy may call."""
    return log_softmax_model(input, dim)


def correct_nll_loss(input: torch.Tensor, target: torch.Tensor,
                     weight: torch.Tensor | None = None, ignore_index: int = -100,
                     reduction: str = "mean") -> torch.Tensor:
    """nll_loss in place of the learner's, when cross_entropy is checked (gather, masks and sums:
    nothing cross_entropy may not call)."""
    if target.is_floating_point():  # as F.nll_loss: class indices only
        raise RuntimeError(f"expected scalar type Long but found {target.dtype}")
    return ce_model(input, target, weight, ignore_index, reduction, from_logits=False)


def ce_mistake(key: str, message: str, *, from_logits: bool, variants: int = 1,
               facet: str | None = None) -> Mistake:
    """A mistake of the nll/cross-entropy model; several variants become a Symptom."""
    impls = [lambda *a, v=v, **k: ce_model(*a, from_logits=from_logits, bug=key, variant=v, **k)
             for v in range(variants)]
    if variants == 1:
        return Mistake(key, message, impls[0], facet=facet)
    return Symptom(key, message, impls[0], any_impl(*impls), facet=facet)


# Facets shared by nll_loss and cross_entropy (their first facet, the core, is named apiece).
NLL_CORE, CE_CORE = "negative log-likelihood", "cross-entropy of logits"
WEIGHTS, IGNORE = "class weights", "ignore_index"
SMOOTHING, PROBS = "label smoothing", "class probabilities"


M_WEIGHT_N = ("the weighted mean must divide by the sum of the weights of the (non-ignored) "
              "targets, sum_n w[y_n], not by the number of samples N")
M_IGNORED_DENOM = ("positions whose target equals ignore_index must not count in the mean: "
                   "divide by the total weight of the targets that are kept only")
M_SWAPPED = "reduction='mean' and reduction='sum' are mixed up (one returns the other)"
M_WEIGHT_IGNORED = "the class weights are not applied: loss_n = -w[y_n] * logp[n, y_n]"
M_HARD_IGNORE = ("use the ignore_index argument: this answer ignores -100 only, whatever "
                 "ignore_index is")
M_ALL_IGNORED = ("when every target is ignored, PyTorch's mean is 0/0 = nan (and the sum 0): "
                 "do not guard the division with max(count, 1) or an eps")
M_KDIM = ("for K-dimensional input (N, C, d1, ...) the classes are along dim 1: "
          "input.reshape(-1, C) without moving the class dimension last pairs scores with the "
          "wrong targets")


def nll_mistakes(from_logits: bool) -> tuple[Mistake, ...]:
    """The mistakes shared by nll_loss and cross_entropy, most specific first."""
    core = CE_CORE if from_logits else NLL_CORE

    def m(key: str, msg: str, facet: str, variants: int = 1) -> Mistake:
        return ce_mistake(key, msg, from_logits=from_logits, variants=variants, facet=facet)

    return (
        m("all_ignored_zero", M_ALL_IGNORED, IGNORE),
        m("ignored_rows_dropped",
          "with reduction='none' the output keeps the target's shape: ignored positions stay, "
          "with loss 0, rather than being dropped", IGNORE),
        m("hard_coded_ignore", M_HARD_IGNORE, IGNORE),
        m("kdim_flattened_wrong", M_KDIM, core, variants=2),
        m("ignored_in_denominator", M_IGNORED_DENOM, IGNORE),
        m("weighted_mean_over_n", M_WEIGHT_N, WEIGHTS, variants=2),
        m("weight_ignored", M_WEIGHT_IGNORED, WEIGHTS),
        m("mean_sum_swapped", M_SWAPPED, core),
        m("no_negation", "the loss is the NEGATIVE log-probability of the target: -logp[n, y_n]",
          core),
        invalid_reduction_symptom(lambda *a, **k: ce_model(
            *a, from_logits=from_logits, bug="invalid_reduction_accepted", **k)),
    )


NLL_FORBIDDEN = (
    "torch.nn.functional.nll_loss", "torch.nn.NLLLoss", "torch.nn.NLLLoss2d",
    "torch._C._nn.nll_loss", "torch._C._nn.nll_loss_nd", "torch._C._nn.nll_loss2d",
    "torch.ops.aten.nll_loss", "torch.ops.aten.nll_loss_nd", "torch.ops.aten.nll_loss_forward",
    "torch.ops.aten.nll_loss2d", "torch.ops.aten.nll_loss2d_forward",
    "torch.nn.functional.cross_entropy", "torch.nn.CrossEntropyLoss",
    "torch._C._nn.cross_entropy_loss", "torch.ops.aten.cross_entropy_loss",
)


def nll_cases(rng: np.random.Generator | None) -> list[Case]:
    """Index-target cases shared by nll_loss and cross_entropy.

    Ordered so that each mistake shows first on a case with one feature only: reductions, then
    weights, then ignore_index, then K-dimensional input, then combinations.
    """
    public = rng is None
    r = rng if rng is not None else np.random.default_rng(101)
    cases: list[Case] = []
    add = lambda note="", **a: cases.append(make_case(  # noqa: E731
        note, public=public, upstream_seed=len(cases), **a))

    if public:
        x = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, -2.0]])
        t = np.array([0, 3, 1])
        w = np.array([1.0, 2.0, 0.5, 4.0])
        for reduction in (None, "sum", "none"):
            add(input=x, target=t, reduction=reduction)
        add(input=x, target=t, weight=w, facet=WEIGHTS)
        add(input=x, target=t, weight=w, reduction="none", facet=WEIGHTS)
        add(input=x, target=np.array([0, -100, 1]), facet=IGNORE)
        add(input=x, target=np.array([0, -100, 1]), reduction="none", facet=IGNORE)
        add("ignore_index=1", input=x, target=np.array([0, 3, 1]), ignore_index=1, facet=IGNORE)
        add(input=x, target=np.array([2, -100, 2]), weight=w, facet=IGNORE)
        xk = np.arange(24.0).reshape(2, 3, 4) % 7 - 3
        tk = np.array([[0, 1, 2, 2], [1, 0, -100, 2]])
        add("K-dimensional: (N, C, d1)", input=xk, target=tk)
        add("K-dimensional: (N, C, d1)", input=xk, target=tk, weight=w[:3], reduction="none")
        add("one sample: input (C,), target ()", input=x[1], target=np.array(2))
        add("extreme values", reduction="none", target=np.array([1, 2, 2, 2]), input=np.array(
            [[1e4, -1e4, 0.0, 5.0], [-1e4, -1e4 + 1, -1e4 + 2, -1e4 + 3],
             [1e4, 1e4 - 1, 1e4 + 3, 1e4], [0.0, 0.0, 1e4, 0.0]]))
        add("all targets ignored", input=x, target=np.full(3, -100), value_only=True,
            facet=IGNORE)
        add("all targets ignored", input=x, target=np.full(3, -100), reduction="sum",
            facet=IGNORE)
        add("float32", input=x.astype(np.float32), target=t, weight=w.astype(np.float32))
        add("invalid reduction", input=x, target=t, reduction="avg", facet=API)
        return cases

    def shape() -> tuple[int, int]:
        # N >= 2: with one sample, "divide by N" and "divide by its weight" cannot be told apart
        return int(r.integers(2, 9)), int(r.integers(2, 7))

    for reduction in (None, "sum", "none"):
        n, c = shape()
        add(input=logits(r, (n, c)), target=index_target(r, c, (n,)), reduction=reduction)
    for reduction in REDUCTIONS:
        n, c = shape()
        add(input=logits(r, (n, c)), target=index_target(r, c, (n,)),
            weight=class_weights(r, c), reduction=reduction, facet=WEIGHTS)
    for reduction, ii in (("mean", -100), ("none", -100), ("mean", 2), ("sum", 0)):
        n, c = shape()
        add(input=logits(r, (n + 1, 3 + c)), ignore_index=ii if ii != -100 else None,
            target=index_target(r, 3 + c, (n + 1,), ii, 0.3), reduction=reduction, facet=IGNORE)
    for reduction in REDUCTIONS:
        n, c = shape()
        extra = extra_dims(r)
        add("K-dimensional", input=logits(r, (n, c, *extra)), reduction=reduction,
            target=index_target(r, c, (n, *extra)))
    c = int(r.integers(2, 7))
    add("one sample: input (C,), target ()", input=logits(r, (c,)),
        target=np.array(r.integers(0, c)))
    for reduction in REDUCTIONS:
        n, c = shape()
        extra = extra_dims(r)[:int(r.integers(0, 3))]
        add("weight and ignore_index", input=logits(r, (n + 1, c, *extra)),
            target=index_target(r, c, (n + 1, *extra), -100, 0.3),
            weight=class_weights(r, c), reduction=reduction, facet=IGNORE)
    n, c = shape()
    t, w = index_target(r, c, (n,)), class_weights(r, c) * (r.random(c) < 0.7)
    w[t[0]] = max(w[t[0]], 0.5)  # a total weight of 0 would be the all-ignored case
    add("zero weight for some classes", input=logits(r, (n, c)), reduction="mean", target=t,
        weight=w, facet=WEIGHTS)
    add("one class", input=logits(r, (5, 1)), target=np.zeros(5, np.int64))
    for reduction in REDUCTIONS:
        n, c = shape()
        add("all targets ignored", input=logits(r, (n, c)), target=np.full(n, 3, np.int64),
            ignore_index=3, weight=class_weights(r, c) if reduction == "mean" else None,
            reduction=reduction, value_only=reduction == "mean", facet=IGNORE)
    add("extreme values", input=extreme_logits(r, (6, 4)), target=index_target(r, 4, (6,)),
        reduction="none")
    n, c = shape()  # n + 1 targets: one of them ignored still leaves two to weigh
    add("float32", input=logits(r, (n + 1, c), dtype=np.float32),
        target=index_target(r, c, (n + 1,), -100, 0.2), weight=class_weights(r, c, np.float32))
    add("invalid reduction", input=logits(r, (3, 4)), target=index_target(r, 4, (3,)),
        reduction="average", facet=API)
    return cases


class NLLLoss(LossExercise):
    """nll_loss(input, target, weight=None, ignore_index=-100, reduction='mean')."""

    name = "nll_loss"
    grade_id = "test_nll_loss"
    points = 3.0
    facets = (
        Facet(NLL_CORE, 1.0, "picking and negating -input[n, y_n], the three reductions, "
                             "K-dimensional and one-sample inputs, float32"),
        Facet(WEIGHTS, 0.75, "class weights, and the weighted mean divided by the sum of the "
                             "targets' weights"),
        Facet(IGNORE, 0.75, "ignored targets: 0 in 'none', out of the sum and of the mean's "
                            "denominator, every target ignored"),
        Facet(API, 0.5, "an unknown reduction raises ValueError"),
    )
    forbidden = NLL_FORBIDDEN
    mistakes = nll_mistakes(from_logits=False)

    def torch_reference(self) -> Callable[..., Any]:
        return F.nll_loss

    def public_cases(self) -> list[Case]:
        return nll_cases(None)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return nll_cases(rng)


# ---------------------------------------------------------------------------------------------
# cross_entropy: everything nll_loss does, plus log_softmax, label smoothing, soft targets

M_SMOOTH_C1 = ("label smoothing spreads eps over ALL C classes, the target included: "
               "loss = (1 - eps) * CE + eps * mean over the C classes of -log p_c; this answer "
               "spreads eps over the C - 1 other classes")
M_SMOOTH_W = ("with class weights, PyTorch weights the smoothing term class by class: "
              "eps/C * sum_c w_c * (-log p_c), divided (for 'mean') by the same sum of target "
              "weights as the NLL part")
M_SMOOTH_BY_TARGET = ("the smoothing term is weighted by each class's own weight w_c, not by the "
                      "weight of the target class: eps/C * sum_c w_c * (-log p_c)")
M_SMOOTH_IGNORED = ("ignored positions must drop out of the smoothing term too, and the mean "
                    "divides both terms by the weight of the kept targets")


def ce_mistakes() -> tuple[Mistake, ...]:
    """cross_entropy's mistakes: nll_loss's, plus log_softmax, smoothing and soft targets."""
    def m(key: str, msg: str, facet: str, variants: int = 1) -> Mistake:
        return ce_mistake(key, msg, from_logits=True, variants=variants, facet=facet)

    shared = nll_mistakes(from_logits=True)
    return (
        *shared[:-2],
        m("no_log_softmax", "cross_entropy takes raw logits: apply log_softmax over the "
          "class dimension before taking the negative log-likelihood", CE_CORE),
        shared[-2],
        m("class_dim_last", "the classes are along dim 1 for input (N, C, d1, ...): "
          "log_softmax(input, 1), not over the last dimension", CE_CORE),
        m("smoothing_over_c_minus_1", M_SMOOTH_C1, SMOOTHING),
        m("smoothing_ignores_weights", M_SMOOTH_W, SMOOTHING, variants=2),
        m("smoothing_by_target_weight", M_SMOOTH_BY_TARGET, SMOOTHING),
        m("smoothing_counts_ignored", M_SMOOTH_IGNORED, SMOOTHING, variants=3),
        m("prob_mean_over_all_elements",
          "with class-probability targets the mean divides by the number of samples "
          "N (x d1 x ...), not by the number of elements N x C", PROBS),
        m("prob_mean_over_weight_sum",
          "with class-probability targets PyTorch's mean divides by the number of samples, "
          "even with class weights (the sum-of-target-weights rule is for class indices)", PROBS),
        m("prob_smoothing_ignored",
          "label smoothing applies to probability targets too: target * (1 - eps) + eps / C",
          PROBS),
        Symptom("log_of_softmax",
                "log(softmax(x)) loses tiny probabilities: exp(x - m) underflows to 0 and "
                "log 0 = -inf, so the loss is inf where PyTorch's is large but finite. "
                "Use a log_softmax that stays in log space",
                lambda *a, **k: ce_model(*a, **k, bug="log_of_softmax"),
                lost_tiny_probabilities, facet=CE_CORE),
        clamped_symptom(
            "the log of a clamped (or eps-shifted) probability is wrong for small probabilities "
            "and caps the loss at -log(eps); use a log_softmax that stays in log space",
            lambda *a, **k: ce_model(*a, **k, bug="clamped", variant=6), model=ce_model,
            facet=CE_CORE),
        Symptom("overflow",
                "softmax overflowed at large logits (nan/inf): subtract the maximum along the "
                "class dimension first (use your stable log_softmax)",
                lambda *a, **k: ce_model(*a, **k, bug="overflow"), overflowed, facet=CE_CORE),
        shared[-1],
    )


class CrossEntropy(LossExercise):
    """cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)."""

    name = "cross_entropy"
    grade_id = "test_cross_entropy"
    points = 5.0
    forbidden = NLL_FORBIDDEN + LogSoftmax.forbidden[:8]
    facets = (
        Facet(CE_CORE, 1.5, "log_softmax over the class dimension then the NLL: reductions, "
                            "K-dimensional and one-sample inputs, logits of +-1e4, float32"),
        Facet(WEIGHTS, 0.5, "class weights with class-index targets"),
        Facet(IGNORE, 0.5, "ignored targets with class-index targets"),
        Facet(SMOOTHING, 1.0, "label smoothing over the C classes, with weights and ignored "
                              "targets"),
        Facet(PROBS, 1.0, "class-probability targets: weights, smoothing, the mean over "
                          "positions, the gradient to the target"),
        Facet(API, 0.5, "an unknown reduction raises ValueError"),
    )
    # Checked with correct log_softmax and nll_loss in place of the learner's: a mistake there
    # is charged to its own exercise (the note in the report names it).
    depends_on = ("log_softmax", "nll_loss")

    def substitutes(self) -> dict[str, Any]:
        return {"log_softmax": correct_log_softmax, "nll_loss": correct_nll_loss}

    def torch_reference(self) -> Callable[..., Any]:
        return F.cross_entropy

    mistakes = ce_mistakes()

    def public_cases(self) -> list[Case]:
        cases = nll_cases(None)
        return cases[:-1] + self._extra(np.random.default_rng(202), public=True) + cases[-1:]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = nll_cases(rng)
        return cases[:-1] + self._extra(rng, public=False) + cases[-1:]

    def _extra(self, r: np.random.Generator, *, public: bool) -> list[Case]:
        """Label smoothing and class-probability targets, one feature at a time first."""
        cases: list[Case] = []
        add = lambda note="", **a: cases.append(make_case(  # noqa: E731
            note, public=public, upstream_seed=100 + len(cases), **a))
        # N >= 3: with one kept target and one ignored, class weights cancel out of the mean
        n, c = (4, 3) if public else (int(r.integers(3, 9)), int(r.integers(3, 7)))
        x, t, w = logits(r, (n, c)), index_target(r, c, (n,)), class_weights(r, c)
        t_ign = index_target(r, c, (n,), -100, 0.3)
        extra = (2,) if public else extra_dims(r)
        xk = logits(r, (n, c, *extra))
        for reduction in (None, "sum", "none"):
            add("label smoothing", input=x, target=t, label_smoothing=0.1, reduction=reduction,
                facet=SMOOTHING)
        add("label smoothing", facet=SMOOTHING, input=x, target=t, weight=w, label_smoothing=0.2)
        add("label smoothing", input=x, target=t, weight=w, label_smoothing=0.2, reduction="none",
            facet=SMOOTHING)
        add("label smoothing", facet=SMOOTHING, input=x, target=t_ign, label_smoothing=0.3)
        add("label smoothing", input=x, target=t_ign, label_smoothing=0.3, reduction="none",
            facet=SMOOTHING)
        for reduction in REDUCTIONS:
            add("label smoothing", input=x, target=t_ign, weight=w, label_smoothing=0.25,
                facet=SMOOTHING,
                reduction=reduction)
        add("label smoothing, K-dimensional", input=xk, weight=w, label_smoothing=0.15,
            facet=SMOOTHING,
            target=index_target(r, c, (n, *extra), 1, 0.3), ignore_index=1)
        add("label smoothing = 1", facet=SMOOTHING, input=x, target=t, label_smoothing=1.0)
        g = ("input", "target")
        q, qk = prob_target(r, (n, c), 1), prob_target(r, (n, c, *extra), 1)
        for reduction in (None, "sum", "none"):
            add("class probabilities", facet=PROBS, input=x, target=q, reduction=reduction, grad=g)
        add("class probabilities", facet=PROBS, input=x, target=q, weight=w, grad=g)
        add("class probabilities", input=x, target=q, weight=w, reduction="none", grad=g,
            facet=PROBS)
        add("class probabilities", facet=PROBS, input=x, target=q, label_smoothing=0.2, grad=g)
        for reduction in REDUCTIONS:
            add("class probabilities", input=x, target=q, weight=w, label_smoothing=0.3,
                facet=PROBS,
                reduction=reduction, grad=g)
        add("class probabilities, K-dimensional", facet=PROBS, input=xk, target=qk, grad=g)
        add("class probabilities, K-dimensional", facet=PROBS, input=xk, target=qk, weight=w,
            label_smoothing=0.1, reduction="none", grad=g)
        add("class probabilities, one sample (C,)", input=x[0], target=q[0], weight=w, grad=g,
            facet=PROBS)
        xe = extreme_logits(r, (6, 4))
        add("extreme logits", input=xe, target=np.array([0, 1, 2, 3, 0, 1]), reduction="none")
        add("label smoothing, extreme logits", facet=SMOOTHING, input=xe,
            target=np.array([0, 1, 2, 3, 0, 1]), label_smoothing=0.1)
        add("class probabilities, extreme logits", facet=PROBS, input=extreme_logits(r, (6, 4)),
            target=prob_target(r, (6, 4), 1), reduction="sum", grad=g)
        add("all targets ignored, label smoothing", input=x, target=np.full(n, -100),
            facet=SMOOTHING,
            label_smoothing=0.1, weight=w, value_only=True)
        add("float32, label smoothing", facet=SMOOTHING, input=x.astype(np.float32), target=t_ign,
            weight=w.astype(np.float32), label_smoothing=0.1)
        add("float32, class probabilities", facet=PROBS, input=x.astype(np.float32), grad=g,
            target=q.astype(np.float32), label_smoothing=0.1)
        return cases


# ---------------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits


def softplus_neg(x: torch.Tensor, kink: bool = False) -> torch.Tensor:
    """-log sigmoid(x) = log(1 + exp(-x)), stably (as PyTorch writes it, exact gradient at 0).

    With ``kink``, the textbook max(-x, 0) + log1p(exp(-|x|)), whose autograd gradient at
    x = 0 is wrong.
    """
    m = (-x).clamp_min(0)
    if kink:
        return m + torch.log1p(torch.exp(-x.abs()))
    return m + torch.log(torch.exp(-m) + torch.exp(-x - m))


def bce_model(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
              reduction: str = "mean", pos_weight: torch.Tensor | None = None, *,
              bug: str = "", variant: int = 0) -> torch.Tensor:
    """binary_cross_entropy_with_logits, correct or with one named bug."""
    if target.shape != input.shape and bug != "no_size_check":
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    if reduction not in REDUCTIONS:
        if bug != "invalid_reduction_accepted":
            raise ValueError(f"{reduction} is not a valid value for reduction")
        reduction = "none"
    if bug == "mean_sum_swapped":
        reduction = {"mean": "sum", "sum": "mean"}.get(reduction, reduction)
    pos = softplus_neg(input, kink=bug == "abs_kink_gradient")  # -log sigmoid(x)
    neg = input + pos  # -log(1 - sigmoid(x))
    if bug == "soft_target_where":
        hard = [target == 1, target > 0.5, target >= 0.5][variant]
        target = hard.to(input.dtype)
    if bug == "unstable":
        pos, neg = -torch.sigmoid(input).log(), -(1 - torch.sigmoid(input)).log()
    if bug == "clamped":
        form, eps = EPS_VARIANTS[variant]
        p = torch.sigmoid(input)
        if form == "add":
            pos, neg = -(p + eps).log(), -(1 - p + eps).log()
        else:
            pos, neg = -p.clamp(eps, 1 - eps).log(), -(1 - p.clamp(eps, 1 - eps)).log()
    pw = pos_weight if pos_weight is not None and bug != "pos_weight_ignored" else None
    pos_term, neg_term = target * pos, (1 - target) * neg
    if pw is not None:
        if bug == "pos_weight_on_negative":
            neg_term = neg_term * pw
        elif bug == "pos_weight_on_both":
            pos_term, neg_term = pos_term * pw, neg_term * pw
        else:
            pos_term = pos_term * pw
    loss = pos_term + neg_term
    if weight is not None and bug != "weight_ignored":
        loss = loss * weight
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


def bce_mistake(key: str, message: str, facet: str, variants: int = 1) -> Mistake:
    """A mistake of the BCE model; several variants become a Symptom."""
    impls = [lambda *a, v=v, **k: bce_model(*a, bug=key, variant=v, **k) for v in range(variants)]
    if variants == 1:
        return Mistake(key, message, impls[0], facet=facet)
    return Symptom(key, message, impls[0], any_impl(*impls), facet=facet)


def correct_bce(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                reduction: str = "mean", pos_weight: torch.Tensor | None = None
                ) -> torch.Tensor:
    """binary_cross_entropy_with_logits in place of the learner's, when sigmoid_focal_loss is
    checked (written with exp and log, which the focal loss may call)."""
    return bce_model(input, target, weight, reduction, pos_weight)


BCE_CORE, BCE_STABLE, BCE_WEIGHTS = ("loss value and gradient", "stable and exact",
                                     "weight and pos_weight")


def skipped_size_check(ex: Exercise, case: Case, got: Outputs, expected: Outputs) -> bool:
    """The target's shape differs from the input's and the answer returned normally."""
    shapes_differ = np.shape(case.args["target"]) != np.shape(case.args["input"])
    return shapes_differ and ERROR_KEY not in got and ERROR_KEY in expected


M_UNSTABLE_BCE = ("log(sigmoid(x)) is -inf at x = -1e4 (sigmoid underflows to 0) and "
                  "log(1 - sigmoid(x)) at x = +1e4, and 0 * inf = nan. Use the stable form "
                  "-log sigmoid(x) = max(-x, 0) + log1p(exp(-|x|))")
M_CLAMPED_BCE = ("clamping the probability (or adding eps) shifts the loss of small "
                 "probabilities and caps it at -log(eps) instead of the true value (1e4 at a "
                 "logit of -1e4 for a positive): write -log sigmoid(x) = log(1 + exp(-x)) stably")
BCE_FORBIDDEN = (
    "torch.nn.functional.binary_cross_entropy_with_logits",
    "torch.binary_cross_entropy_with_logits",
    "torch.nn.BCEWithLogitsLoss", "torch.ops.aten.binary_cross_entropy_with_logits",
    "torch.nn.functional.binary_cross_entropy", "torch._C._nn.binary_cross_entropy",
    "torch.nn.BCELoss", "torch.ops.aten.binary_cross_entropy",
)


class BCEWithLogits(LossExercise):
    """binary_cross_entropy_with_logits(input, target, weight, reduction, pos_weight)."""

    name = "binary_cross_entropy_with_logits"
    grade_id = "test_binary_cross_entropy_with_logits"
    points = 3.0
    forbidden = BCE_FORBIDDEN
    facets = (
        Facet(BCE_CORE, 1.0, "the loss linear in the target (soft targets too), its gradients "
                             "to input and target, the three reductions, float32"),
        Facet(BCE_STABLE, 0.5, "finite and exact at logits of +-1e4, exact gradient at 0"),
        Facet(BCE_WEIGHTS, 1.0, "weight (broadcast) and pos_weight (per class, on the positive "
                                "term)"),
        Facet(API, 0.5, "ValueError for a target of another shape and for an unknown "
                        "reduction"),
    )
    mistakes = (
        bce_mistake("soft_target_where",
                    "targets may be probabilities in [0, 1], not only 0 or 1: use the formula "
                    "linear in t, -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], not a "
                    "where() on the target", BCE_CORE, variants=3),
        bce_mistake("weight_ignored", "the weight argument (a rescaling of each element's loss, "
                    "broadcast to the input's shape) is not applied", BCE_WEIGHTS),
        bce_mistake("pos_weight_ignored", "pos_weight is not applied: it multiplies the positive "
                    "term, -pos_weight * t * log sigmoid(x)", BCE_WEIGHTS),
        bce_mistake("pos_weight_on_negative", "pos_weight multiplies the positive term "
                    "(t * log sigmoid(x)), not the negative one", BCE_WEIGHTS),
        bce_mistake("pos_weight_on_both", "pos_weight multiplies the positive term only; here it "
                    "scales the whole loss", BCE_WEIGHTS),
        Symptom("no_size_check", "PyTorch raises ValueError when target.shape != input.shape: "
                "without the check, input (N, 1) and target (N,) broadcast silently to (N, N)",
                lambda *a, **k: bce_model(*a, bug="no_size_check", **k), skipped_size_check,
                facet=API),
        clamped_symptom(M_CLAMPED_BCE,
                        lambda *a, **k: bce_model(*a, bug="clamped", variant=10, **k),
                        model=bce_model, facet=BCE_STABLE),
        Symptom("unstable_log_sigmoid", M_UNSTABLE_BCE,
                lambda *a, **k: bce_model(*a, bug="unstable", **k), overflowed,
                facet=BCE_STABLE),
        bce_mistake("mean_sum_swapped", M_SWAPPED, BCE_CORE),
        Symptom("abs_kink_gradient", M_KINK,
                lambda *a, **k: bce_model(*a, bug="abs_kink_gradient", **k), kink_at_zero,
                facet=BCE_STABLE),
        invalid_reduction_symptom(
            lambda *a, **k: bce_model(*a, bug="invalid_reduction_accepted", **k)),
    )

    def torch_reference(self) -> Callable[..., Any]:
        return F.binary_cross_entropy_with_logits

    def public_cases(self) -> list[Case]:
        x = np.array([0.0, 2.0, -1.0, 3.0])
        t = np.array([1.0, 0.0, 0.0, 1.0])
        x2 = np.array([[0.5, -1.0, 2.0], [0.0, 1.5, -0.5]])
        t2 = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
        return self._cases(np.random.default_rng(303), (x, t), (x2, t2), public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        shape = tuple(int(s) for s in rng.integers(2, 7, 2))
        x = logits(rng, (int(rng.integers(3, 9)),))
        x2 = logits(rng, shape)
        x[0] = x2.flat[-1] = 0.0  # the kink of max(x, 0) + log1p(exp(-|x|))
        t2 = (rng.random(shape) < 0.4).astype(np.float64)
        t2.flat[:2] = 1.0, 0.0
        t = (rng.random(x.shape) < 0.5) * 1.0
        t[:2] = 1.0, 0.0
        return self._cases(rng, (x, t), (x2, t2), public=False)

    def _cases(self, r: np.random.Generator, simple: tuple[np.ndarray, np.ndarray],
               matrix: tuple[np.ndarray, np.ndarray], *, public: bool) -> list[Case]:
        cases: list[Case] = []
        add = lambda note="", **a: cases.append(make_case(  # noqa: E731
            note, public=public, upstream_seed=len(cases), grad=("input", "target"), **a))
        (x, t), (x2, t2) = simple, matrix
        c = x2.shape[-1]
        soft = np.round(r.random(x2.shape) * 4) / 4
        soft.flat[0] = 0.25
        pw = np.exp(r.uniform(-1.5, 2.0, c))
        w = r.random(x2.shape) + 0.1
        for reduction in (None, "sum", "none"):
            add(input=x, target=t, reduction=reduction)
        add("soft targets", input=x2, target=soft, reduction="none")
        add("soft targets", input=x2, target=soft)
        add("weight", input=x2, target=t2, weight=w, facet=BCE_WEIGHTS)
        add("weight broadcast along the last dim", input=x2, target=t2, weight=w[0],
            reduction="none", facet=BCE_WEIGHTS)
        add("pos_weight", input=x2, target=t2, pos_weight=pw, facet=BCE_WEIGHTS)
        add("pos_weight", input=x2, target=t2, pos_weight=pw, reduction="none",
            facet=BCE_WEIGHTS)
        add("pos_weight, soft targets", input=x2, target=soft, pos_weight=pw, reduction="sum",
            facet=BCE_WEIGHTS)
        add("weight and pos_weight", input=x2, target=soft, weight=w, pos_weight=pw,
            reduction="none", facet=BCE_WEIGHTS)
        k = (2, 3, c) if public else (int(r.integers(1, 4)), int(r.integers(1, 4)), c)
        add("3-d input, pos_weight per class", input=logits(r, k), pos_weight=pw,
            facet=BCE_WEIGHTS,
            target=(r.random(k) < 0.5) * 1.0)
        xe = np.array([[EXTREME, -EXTREME, EXTREME, -EXTREME, 30.0, -30.0]])
        te = np.array([[1.0, 1.0, 0.0, 0.0, 0.0, 1.0]])
        if not public:
            xe = np.concatenate([xe, extreme_logits(r, (3, 6))])
            te = np.concatenate([te, (r.random((3, 6)) < 0.5) * 1.0])
        add("extreme logits", input=xe, target=te, reduction="none", facet=BCE_STABLE)
        add("extreme logits, soft targets", input=xe, target=np.full(xe.shape, 0.75),
            facet=BCE_STABLE,
            pos_weight=np.full(xe.shape[-1], 3.0))
        add("float32", input=x2.astype(np.float32), target=soft.astype(np.float32),
            pos_weight=pw.astype(np.float32), weight=w.astype(np.float32))
        add("float32, extreme logits", input=xe.astype(np.float32),
            target=te.astype(np.float32), reduction="sum", facet=BCE_STABLE)
        add("target (N,) for input (N, 1)", input=x[:, None], target=t, facet=API)
        add("invalid reduction", input=x, target=t, reduction="elementwise", facet=API)
        return cases


# ---------------------------------------------------------------------------------------------
# sigmoid_focal_loss (Lin et al. 2017), as torchvision.ops computes it


def focal_model(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                gamma: float = 2, reduction: str = "none", *, bug: str = "",
                variant: int = 0) -> torch.Tensor:
    """sigmoid_focal_loss, correct or with one named bug."""
    if bug == "mean_default" and reduction == "none":
        reduction = "mean"
    p = torch.sigmoid(inputs)
    unstable = bug if bug in ("unstable", "clamped", "abs_kink_gradient") else ""
    ce = bce_model(inputs, targets, reduction="none", bug=unstable, variant=variant)
    p_t = p * targets + (1 - p) * (1 - targets)
    factor = {0: 1 - p, 1: p, 2: p_t}[variant] if bug == "modulating_wrong" else 1 - p_t
    loss = ce if bug == "no_modulating_factor" else ce * factor ** gamma
    weighted = alpha > 0 if bug == "alpha_zero_skipped" else alpha >= 0
    if weighted or bug == "alpha_negative_not_handled":
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        if bug == "alpha_both_terms":
            alpha_t = torch.full_like(targets, alpha)
        elif bug == "alpha_swapped":
            alpha_t = (1 - alpha) * targets + alpha * (1 - targets)
        loss = alpha_t * loss
    if bug == "mean_sum_swapped":
        reduction = {"mean": "sum", "sum": "mean"}.get(reduction, reduction)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none" or bug == "invalid_reduction_accepted":
        return loss
    raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n Supported reduction "
                     "modes: 'none', 'mean', 'sum'")


def focal_reference(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                    gamma: float = 2, reduction: str = "none") -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss, line for line (torchvision is not installed here)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "none":
        pass
    elif reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    else:
        raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n Supported reduction "
                         "modes: 'none', 'mean', 'sum'")
    return loss


def focal_mistake(key: str, message: str, facet: str, variants: int = 1) -> Mistake:
    """A mistake of the focal model; several variants become a Symptom."""
    impls = [lambda *a, v=v, **k: focal_model(*a, bug=key, variant=v, **k)
             for v in range(variants)]
    if variants == 1:
        return Mistake(key, message, impls[0], facet=facet)
    return Symptom(key, message, impls[0], any_impl(*impls), facet=facet)


FOCAL_CORE, ALPHA, FOCAL_REDUCTIONS = "focal formula", "alpha weighting", "reductions"


class SigmoidFocalLoss(LossExercise):
    """sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction='none')."""

    name = "sigmoid_focal_loss"
    grade_id = "test_sigmoid_focal_loss"
    points = 2.0
    positional = ("inputs", "targets")
    forbidden = BCE_FORBIDDEN
    facets = (
        Facet(FOCAL_CORE, 1.0, "ce * (1 - p_t)^gamma with p_t the probability of the true "
                               "label: values and gradients, logits of +-1e4 and 0, float32"),
        Facet(ALPHA, 0.5, "alpha_t on positives and negatives, alpha = 0 and alpha < 0"),
        Facet(FOCAL_REDUCTIONS, 0.5, "the default 'none', 'mean', 'sum', and ValueError for an "
                                     "unknown reduction"),
    )
    # Checked with a correct binary_cross_entropy_with_logits in place of the learner's.
    depends_on = ("binary_cross_entropy_with_logits",)

    def substitutes(self) -> dict[str, Any]:
        return {"binary_cross_entropy_with_logits": correct_bce}

    mistakes = (
        focal_mistake("alpha_zero_skipped", "alpha = 0 is a valid weight (positives get weight 0): "
                      "torchvision weights whenever alpha >= 0, not only when alpha > 0", ALPHA),
        focal_mistake("alpha_negative_not_handled", "alpha < 0 means no alpha weighting at all "
                      "(torchvision: `if alpha >= 0: loss = alpha_t * loss`)", ALPHA),
        focal_mistake("mean_default", "the default reduction of torchvision's sigmoid_focal_loss "
                      "is 'none': one loss per element", FOCAL_REDUCTIONS),
        focal_mistake("no_modulating_factor", "the modulating factor (1 - p_t)^gamma is missing: "
                      "loss = alpha_t * (1 - p_t)^gamma * CE", FOCAL_CORE),
        focal_mistake("modulating_wrong", "the modulating factor is (1 - p_t)^gamma with "
                      "p_t = p*t + (1-p)*(1-t), the probability of the TRUE class, not "
                      "(1 - p)^gamma or p^gamma", FOCAL_CORE, variants=3),
        focal_mistake("alpha_both_terms", "alpha_t = alpha for positives and 1 - alpha for "
                      "negatives; here alpha multiplies every element the same way", ALPHA),
        focal_mistake("alpha_swapped", "alpha weights the positives (t = 1) and 1 - alpha the "
                      "negatives; they are swapped", ALPHA),
        clamped_symptom(M_CLAMPED_BCE,
                        lambda *a, **k: focal_model(*a, bug="clamped", variant=10, **k),
                        model=focal_model, facet=FOCAL_CORE),
        Symptom("unstable_log_sigmoid", M_UNSTABLE_BCE,
                lambda *a, **k: focal_model(*a, bug="unstable", **k), overflowed,
                facet=FOCAL_CORE),
        focal_mistake("mean_sum_swapped", M_SWAPPED, FOCAL_REDUCTIONS),
        Symptom("abs_kink_gradient", M_KINK,
                lambda *a, **k: focal_model(*a, bug="abs_kink_gradient", **k), kink_at_zero,
                facet=FOCAL_CORE),
        invalid_reduction_symptom(
            lambda *a, **k: focal_model(*a, bug="invalid_reduction_accepted", **k),
            facet=FOCAL_REDUCTIONS),
    )

    def torch_reference(self) -> Callable[..., Any]:
        return focal_reference

    def public_cases(self) -> list[Case]:
        x = np.array([0.0, 2.0, -1.0, 3.0, -2.0])
        t = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
        return self._cases(np.random.default_rng(404), x, t, public=True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        x = logits(rng, (int(rng.integers(5, 12)),))
        x[0] = 0.0  # the kink of max(x, 0) + log1p(exp(-|x|))
        x[1:4] = rng.uniform(-2, -0.5), rng.uniform(0.5, 2), rng.uniform(-2, 2)
        t = (rng.random(x.shape) < 0.4) * 1.0
        t[:4] = (0.0, 1.0, 0.0, 1.0)  # a wrong positive, a wrong negative
        return self._cases(rng, x, t, public=False)

    def _cases(self, r: np.random.Generator, x: np.ndarray, t: np.ndarray, *, public: bool
               ) -> list[Case]:
        cases: list[Case] = []
        add = lambda note="", **a: cases.append(make_case(  # noqa: E731
            note, public=public, upstream_seed=len(cases), grad=("inputs",), **a))
        add("defaults: alpha=0.25, gamma=2, reduction='none'", inputs=x, targets=t)
        add(inputs=x, targets=t, reduction="mean", facet=FOCAL_REDUCTIONS)
        add(inputs=x, targets=t, reduction="sum", facet=FOCAL_REDUCTIONS)
        add("no modulation", inputs=x, targets=t, gamma=0, alpha=0.5)
        add("no alpha weighting", inputs=x, targets=t, alpha=-1, facet=ALPHA)
        add("alpha=0: positives weigh nothing", inputs=x, targets=t, alpha=0.0, facet=ALPHA)
        add(inputs=x, targets=t, alpha=0.75, gamma=1.5, reduction="none")
        k = (2, 3, 4) if public else tuple(int(s) for s in r.integers(1, 5, 3))
        add("3-d", inputs=logits(r, k), targets=(r.random(k) < 0.3) * 1.0, gamma=3.0,
            reduction="mean")
        xe = np.array([EXTREME, -EXTREME, EXTREME, -EXTREME, 40.0, -40.0])
        te = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
        add("extreme logits", inputs=xe, targets=te)
        add("extreme logits", inputs=xe, targets=te, gamma=1.0, alpha=-1, reduction="sum")
        add("float32", inputs=x.astype(np.float32), targets=t.astype(np.float32), gamma=2.5)
        add("invalid reduction", inputs=x, targets=t, reduction="batchmean",
            facet=FOCAL_REDUCTIONS)
        return cases


EXERCISES: dict[str, Exercise] = {
    ex.name: ex for ex in (LogSoftmax(), NLLLoss(), CrossEntropy(), BCEWithLogits(),
                           SigmoidFocalLoss())
}
check = make_check(EXERCISES)
