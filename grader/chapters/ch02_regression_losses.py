"""Chapter 2 checks: MSE, L1, Smooth L1, Huber, KL divergence and the GIoU box loss.

Each answer is compared with PyTorch: ``torch.nn.functional`` for the five pointwise losses, and
for ``generalized_box_iou_loss`` (torchvision is not a dependency) torchvision's function
transcribed below from its source, eps placement included. Values and gradients with respect to
every tensor argument are compared under a random upstream gradient, in float64 with
``rtol=1e-7, atol=1e-10`` and in float32 with ``rtol=1e-5, atol=1e-6``.

Gradients are compared where the loss is differentiable, and at the kinks whose convention the
exercise text states (``sign(0) = 0`` at a zero residual for L1 and ``beta=0``). Where nothing
states one, they are not: in cases with zero targets KL's gradient with respect to the target
(``-inf`` mathematically, ``nan`` in torch) is left out, and GIoU cases with tied coordinates,
touching or zero-area boxes compare values only.

The public cases come in a fixed order, and so do the first hidden ones: the case that reveals a
mistake comes before any case on which a different mistake would look the same, so that the
first failure names the right one (``tests/test_ch02_regression_losses.py`` proves it for the
wrong implementations in ``tests/corpus/ch02_regression_losses.py``).

Partial credit (``grader/kit/scoring.py``). Each exercise splits its points over facets stated in
its text: the core formula first (value and gradients), then option families (``beta = 0``,
``log_target``, zero targets, ``eps`` placement, dtypes), the reductions, and the API contract
(the exceptions PyTorch raises, by type only: their text is shown as a hint, never compared).
Mistakes of the core formula are charged to it once, whichever case shows them; a case whose
reference raises is diagnosed only as a contract mistake (an unknown reduction that does not
raise ``ValueError`` is named as such, never as "the reduction is ignored").

Dependencies: ``smooth_l1_loss`` may be written on the learner's ``l1_loss`` (for ``beta=0``) and
``huber_loss`` on their ``smooth_l1_loss`` (Huber = delta * Smooth L1 with beta = delta); each is
checked with a correct version of the earlier function in place of theirs
(:meth:`~grader.kit.exercise.Exercise.substitutes`), so a mistake costs points once.

Strictness: PyTorch's own. Exception types as torch raises them (``ValueError`` for a reduction,
``RuntimeError`` for a bad ``beta``/``delta`` or shapes that do not broadcast); warnings are
optional; float32 answers are compared at ``rtol=1e-5``, which any legitimate order of float32
operations meets (the reference itself differs from a float64 computation by about 1e-7).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
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
    Verdict,
    compare_outputs,
    make_check,
    tensor,
    to_plain,
)
from grader.kit.optim import memo_capture  # the kit's per-case memo (not optimizer-specific)

CHAPTER = "02_regression_losses"
FLOAT32_TOL = (1e-5, 1e-6)  # rtol, atol for float32 cases
CONTRACT = "API contract"  # the exceptions PyTorch raises (their type)
REDUCTIONS = "reductions"  # 'sum' (and 'batchmean'), and the reductions of empty tensors

# ---------------------------------------------------------------------------------------------
# Running an answer: value and gradients under a random upstream gradient


def _call(impl: Callable[..., Any], case: Case) -> Outputs:
    """Call ``impl(*tensors, **kwargs)`` and return its value and the requested gradients.

    The upstream gradient is random (from the case's seed) and shaped like the answer's own
    output, so that a wrongly shaped output is reported as a shape mismatch of ``out`` rather
    than as an autograd error, and a sign or scale slip in one element cannot hide in a sum.
    """
    args = case.args
    grad_wrt: Sequence[str] = args["grad"]
    leaves = {name: tensor(value, grad=name in grad_wrt) for name, value in args["tensors"].items()}
    with warnings.catch_warnings():
        # torch warns about broadcast shapes and about kl_div's 'mean'; the check is about values.
        warnings.simplefilter("ignore")
        out = impl(*leaves.values(), **args["kwargs"])
    result: Outputs = {"out": to_plain(out, "the returned value")}
    if not grad_wrt:
        return result
    if type(out) is not torch.Tensor or not out.requires_grad:
        raise AnswerTypeError(
            "the result is not connected to the inputs' autograd graph: use torch operations "
            "on the input tensors (no .item(), .numpy() or .detach() along the way)"
        )
    rng = np.random.default_rng(args["seed"])
    upstream = torch.from_numpy(rng.uniform(0.5, 1.5, size=tuple(out.shape))).to(out.dtype)
    targets = [leaves[name] for name in grad_wrt]
    grads = torch.autograd.grad(out, targets, upstream, allow_unused=True)
    for name, leaf, grad in zip(grad_wrt, targets, grads, strict=True):
        result[f"grad_{name}"] = to_plain(grad if grad is not None else torch.zeros_like(leaf))
    return result


def _case(label: str, tensors: Mapping[str, np.ndarray], kwargs: Mapping[str, Any] | None = None,
          grad: Sequence[str] = (), seed: int = 0, public: bool = False, facet: str = "") -> Case:
    """A case with its tensors (in positional order), options, the gradients to compare and the
    facet it counts towards ("" for the exercise's core facet)."""
    return Case(label, {"tensors": dict(tensors), "kwargs": dict(kwargs or {}),
                        "grad": tuple(grad), "seed": seed}, public, facet)


def _describe(tensors: Mapping[str, np.ndarray], kwargs: Mapping[str, Any], note: str = "") -> str:
    """A label a learner can rebuild the case from: shapes, dtype, options, what is special."""
    first = next(iter(tensors.values())).dtype
    parts = [f"{name} {tuple(value.shape)}" + (f" {value.dtype}" if i == 0 or value.dtype != first
                                               else "")
             for i, (name, value) in enumerate(tensors.items())]
    parts += [f"{key}={value!r}" for key, value in kwargs.items()]
    if "reduction" not in kwargs:
        parts.append("reduction left at its default")
    return ", ".join(parts) + (f" ({note})" if note else "")


class _Chapter2Exercise(Exercise):
    """Shared behaviour: float32 tolerances, memoized references and mistake models, the
    contract diagnosis, and the simplest-case order."""

    rtol = 1e-7
    atol = 1e-10
    reductions: tuple[str, ...] = ("none", "mean", "sum")
    # The option PyTorch validates ("beta", "delta") and the key of the mistake that skips it.
    option: str | None = None
    option_mistake: str | None = None

    def _tolerances(self, outputs: Outputs) -> tuple[float, float]:
        out = outputs.get("out")
        if out is not None and out.dtype == np.float32:
            return FLOAT32_TOL
        return self.rtol, self.atol

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        return _call(impl, case)

    def reference(self, case: Case) -> Outputs:
        return memo_capture(self, self.torch_reference(), "reference", case)

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        rtol, atol = self._tolerances(expected)
        return compare_outputs(got, expected, rtol=rtol, atol=atol)

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        """Public first, then fewest options, then fewest elements."""
        size = sum(v.size for v in case.args["tensors"].values())
        return (not case.public, len(case.args["kwargs"]), size, case.label)

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        """The first value mistake whose model gives ``got`` on ``case`` (contract mistakes are
        named by :meth:`judge` from the case itself)."""
        rtol, atol = self._tolerances(got)
        for index, mistake in enumerate(self.mistakes):
            if mistake.facet == CONTRACT:
                continue
            try:
                wrong = memo_capture(self, mistake.impl, f"{index}:{mistake.key}", case)
            except Exception:  # a mistake that cannot run on this case says nothing about it
                continue
            if (ERROR_KEY in wrong) != (ERROR_KEY in got):
                continue
            # An answer that raises where torch does not is named by a model that raises the
            # same exception class there ('mean' over input.shape[0] on a 0-d tensor).
            if compare_outputs(got, wrong, rtol=rtol, atol=atol) is None:
                return mistake
        return None

    def contract_mistake(self, case: Case) -> Mistake | None:
        """The contract a case whose reference raises is about: an unknown reduction, or a bad
        ``beta``/``delta`` (shapes that do not broadcast have no named mistake)."""
        kwargs = case.args["kwargs"]
        key = None
        if "reduction" in kwargs and kwargs["reduction"] not in self.reductions:
            key = "invalid_reduction_accepted"
        elif self.option is not None and self.option in kwargs:
            key = self.option_mistake
        return next((m for m in self.mistakes if m.key == key), None)

    def judge(self, case: Case, got: Outputs, expected: Outputs | None = None) -> Verdict:
        """Compare with PyTorch. Where PyTorch raises, the exception's type is checked (its text
        is shown as a hint) and the diagnosis is the contract the case is about, whatever the
        answer returned instead; elsewhere the value mistakes are tried."""
        if expected is None:
            expected = self.reference(case)
        problem = self.compare(case, got, expected)
        if problem is None:
            return Verdict(True)
        where = f"{self.name} failed on {case.label}:\n  {problem}"
        if ERROR_KEY in expected:
            hint = (f"PyTorch raises {expected[ERROR_KEY]}: {expected.get('__message__', '')} "
                    "(only the exception's type is checked, not its text)")
            mistake = self.contract_mistake(case)
            if mistake is None:
                return Verdict(False, f"{where}\n  {hint}")
            return Verdict(False, f"{where}\n  {hint}\n  Likely mistake: {mistake.message}",
                           mistake.key)
        mistake = self.diagnose(case, got)
        if mistake is not None:
            return Verdict(False, f"{where}\n  Likely mistake: {mistake.message}", mistake.key)
        return Verdict(False, where)


# ---------------------------------------------------------------------------------------------
# Reductions, right and wrong (used by the mistakes)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduce_swapped(loss: torch.Tensor, reduction: str, input: torch.Tensor) -> torch.Tensor:
    return _reduce(loss, {"mean": "sum", "sum": "mean"}.get(reduction, reduction))


def _reduce_always_mean(loss: torch.Tensor, reduction: str, input: torch.Tensor) -> torch.Tensor:
    return loss.mean()


def _per_row(divide: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """'mean' as the sum over the batch size, as learners write it: ``loss.shape[0]``,
    ``input.size(0)``, ``len(input)``, or per-example sums averaged. They raise on 0-d tensors
    (each its own exception) and differ where the input broadcasts."""
    def reducer(loss: torch.Tensor, reduction: str, input: torch.Tensor) -> torch.Tensor:
        return divide(loss, input) if reduction == "mean" else _reduce(loss, reduction)
    return reducer


_PER_ROW = (
    _per_row(lambda loss, input: loss.sum() / loss.shape[0]),
    _per_row(lambda loss, input: loss.sum() / input.size(0)),
    _per_row(lambda loss, input: loss.sum() / len(input)),
    _per_row(lambda loss, input: loss.flatten(1).sum(dim=1).mean()),
)


def _reduce_lenient(loss: torch.Tensor, reduction: str, input: torch.Tensor) -> torch.Tensor:
    """Right for 'none' and 'sum', and the mean for anything else: no ValueError."""
    return _reduce(loss, reduction if reduction in ("none", "sum") else "mean")


def _invalid_reduction(impl: Callable[..., Any], valid: str) -> Mistake:
    """The contract mistake: an unknown reduction returns a value (or raises another type)."""
    return Mistake("invalid_reduction_accepted",
                   f"an unknown reduction (anything but {valid}; None and 'MEAN' included) must "
                   "raise ValueError, as torch does; the valid ones are right. Only the type is "
                   "checked: end with raise ValueError(...) after the valid cases.",
                   impl, facet=CONTRACT)


def _reduction_mistakes(pointwise: Callable[..., torch.Tensor], loss: str,
                        validate: Callable[..., None] = lambda **options: None
                        ) -> tuple[Mistake, ...]:
    """The reduction slips every pointwise loss invites, around a correct elementwise loss."""

    def wrap(reducer: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def impl(input, target, reduction="mean", **options):
            validate(**options)
            return reducer(pointwise(input, target, **options), reduction, input)
        return impl

    return (
        Mistake("mean_sum_swapped",
                f"'mean' and 'sum' are swapped: {loss} with reduction='mean' averages the "
                "elementwise losses, 'sum' adds them up.", wrap(_reduce_swapped),
                facet=REDUCTIONS),
        Mistake("reduction_ignored",
                "the reduction argument is ignored and the mean is always returned: "
                "reduction='none' must return one loss per element, 'sum' their sum.",
                wrap(_reduce_always_mean), facet=REDUCTIONS),
        *(Mistake("mean_over_batch",
                  "reduction='mean' divides the sum by the batch size input.shape[0]; it must "
                  "divide by the number of elements, input.numel() (all dimensions count, and a "
                  "0-d tensor has no batch dimension).", wrap(reducer), facet=REDUCTIONS)
          for reducer in _PER_ROW),
        _invalid_reduction(wrap(_reduce_lenient), "'none', 'mean' and 'sum'"),
    )


# ---------------------------------------------------------------------------------------------
# Data for the pointwise losses


def _residual_data(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0,
                   planted: Sequence[float] = (), dtype: str = "float64"
                   ) -> dict[str, np.ndarray]:
    """``input`` and ``target`` whose residuals ``input - target`` include the planted values.

    Where a residual is planted the target is 0, so that ``input - target`` is exactly the
    planted value: switch points such as ``|x - y| == beta`` and zero residuals are hit exactly.
    """
    target = rng.normal(0.0, scale, shape)
    residual = rng.normal(0.0, scale, shape) * rng.choice([0.3, 1.0, 3.0], size=shape)
    flat, flat_target = residual.reshape(-1), target.reshape(-1)
    spots = rng.permutation(flat.size)[: len(planted)]
    flat[spots] = np.asarray(planted, dtype=np.float64)[: len(spots)]
    flat_target[spots] = 0.0
    inputs = target + residual
    assert np.array_equal((inputs - target).reshape(-1)[spots], flat[spots]), "inexact plant"
    return {"input": inputs.astype(dtype), "target": target.astype(dtype)}


def _random_shape(rng: np.random.Generator, min_dims: int = 1, max_dims: int = 3
                  ) -> tuple[int, ...]:
    return tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(min_dims, max_dims + 1)))


# Several wrong formulas scale every term by a constant (doubled: 2, Huber as Smooth L1: 1/delta,
# a missing 1/2...), and the reduction slips scale the result by the number of elements n or the
# row size n / shape[0]. Where the two factors are equal, one answer would be diagnosed as the
# other's mistake and charged to the wrong facet; the option values and these sizes keep them
# apart (a factor from a uniform delta almost surely equals no integer).
_SCALE_FACTORS = (2, 3, 4)


def _reduced_shape(rng: np.random.Generator, reduction: str, min_dims: int = 1,
                   max_dims: int = 3) -> tuple[int, ...]:
    """A random shape; for 'mean' and 'sum', one whose size and row size are no scale factor."""
    while True:
        shape = _random_shape(rng, min_dims, max_dims)
        n = int(np.prod(shape))
        if reduction == "none" or (n not in _SCALE_FACTORS
                                   and n // shape[0] not in _SCALE_FACTORS):
            return shape


def _pointwise_facet(option: str | None, data: Mapping[str, np.ndarray],
                     kwargs: Mapping[str, Any]) -> str:
    """The facet of a pointwise case that does not raise: ``beta = 0`` where the option is 0
    (allowed only for Smooth L1), the reductions for 'sum' and empty tensors, else the core
    formula (the default 'mean' and 'none')."""
    if option is not None and kwargs.get(option) == 0.0:
        return f"{option} = 0"
    if kwargs.get("reduction") == "sum" or any(v.size == 0 for v in data.values()):
        return REDUCTIONS
    return ""


def _pointwise_public(option: str | None, option_values: Sequence[float],
                      planted: Callable[[float], Sequence[float]], zero_option_ok: bool
                      ) -> list[Case]:
    """The public cases of MSE, L1, Smooth L1 and Huber, in the order that diagnoses best.

    1. default options (reduction 'mean'), 2. reduction 'none' with a non-default option,
    3. 'sum' with another option, 4. residuals exactly at and next to the switch point,
    5. option 0 where allowed, 6. a 0-d pair, 7. broadcasting (4, 1) against (4,),
    8. float32, 9. errors: an unknown reduction, an invalid option.
    """
    rng = np.random.default_rng(20240602)
    both = ("input", "target")
    default = option_values[0]
    cases = []

    def add(note: str, data: dict[str, np.ndarray], kwargs: dict[str, Any],
            grad: Sequence[str] = both, facet: str | None = None) -> None:
        facet = _pointwise_facet(option, data, kwargs) if facet is None else facet
        cases.append(_case(_describe(data, kwargs, note), data, kwargs, grad,
                           seed=len(cases), public=True, facet=facet))

    data = _residual_data(rng, (4, 3), planted=planted(default) + (0.0, 0.0, 4.0, -4.0))
    add("some residuals are exactly 0, some large", data, {})
    for value, reduction in zip(option_values[1:3], ("none", "sum"), strict=True):
        data = _residual_data(rng, (3, 4), planted=planted(value) + (0.0, 3.0, -3.0))
        add("", data, {"reduction": reduction, **({option: value} if option else {})})
    value = option_values[1]
    switch = planted(value)
    data = _residual_data(rng, (2, 5), scale=0.5,
                          planted=switch + tuple(r * (1 + s) for r in switch[:2]
                                                 for s in (1e-6, -1e-6)))
    add("residuals exactly at the switch point and just either side of it" if option
        else "small residuals", data, {"reduction": "none", **({option: value} if option else {})})
    if option and zero_option_ok:
        data = _residual_data(rng, (3, 3), planted=(0.0, 0.0, 1.5, -0.25))
        add("some residuals are exactly 0", data, {option: 0.0})
    data = {"input": np.array(1.75), "target": np.array(-0.5)}
    add("0-d tensors", data, {})
    data = {"input": rng.normal(size=(4, 1)), "target": rng.normal(size=4)}
    add("shapes broadcast to (4, 4), as torch does (with a warning)", data,
        {"reduction": "none"})
    data = _residual_data(rng, (3, 5), planted=planted(default) + (0.0,), dtype="float32")
    add("float32 in, float32 out", data, {"reduction": "mean"})
    data = _residual_data(rng, (2, 2))
    add("an unknown reduction raises", data, {"reduction": "average"}, grad=(), facet=CONTRACT)
    if option:
        add(f"a negative {option} raises", data, {option: -1.0}, grad=(), facet=CONTRACT)
    return cases


def _pointwise_hidden(rng: np.random.Generator, option: str | None, zero_option_ok: bool,
                      planted: Callable[[float], Sequence[float]]) -> list[Case]:
    """Randomized cases: every reduction and option, shapes, scales, edges, errors."""
    both = ("input", "target")
    cases = []

    def add(note: str, data: dict[str, np.ndarray], kwargs: dict[str, Any],
            grad: Sequence[str] = both, facet: str | None = None) -> None:
        facet = _pointwise_facet(option, data, kwargs) if facet is None else facet
        cases.append(_case(_describe(data, kwargs, note), data, kwargs, grad,
                           seed=int(rng.integers(2**31)), facet=facet))

    def options() -> dict[str, float]:
        if option is None:
            return {}
        value = float(rng.choice([0.25, 0.5, 2.0, 3.0, rng.uniform(0.05, 4.0)]))
        return {option: value}

    # The same order as the public cases first, on fresh random data. The first shapes have a
    # batch of at least 2 and 5 or 6 elements per row, so that dividing by the batch size, by
    # the number of elements, by nothing, or scaling every term all give different values.
    shape = (int(rng.integers(2, 5)), int(rng.integers(5, 7)))
    add("", _residual_data(rng, shape, planted=planted(1.0) + (0.0, 5.0, -5.0)), {})
    for reduction in ("none", "sum"):
        # Not 1 (hides a missing / beta) nor 2 (where z^2 / beta equals 0.5 z^2).
        value = float(rng.choice([0.25, 0.5, 3.0]))
        opts = {option: value} if option else {}
        shape = (int(rng.integers(2, 5)), int(rng.integers(5, 7)))
        add("", _residual_data(rng, shape, planted=planted(value) + (0.0, 4.0, -4.0)),
            {"reduction": reduction, **opts})
    # Everything else, shuffled.
    rest = []
    for reduction in ("mean", "sum", "none"):
        for scale in (1e-3, 1.0, 1e3):
            opts = options()
            value = opts.get(option, 1.0) if option else 1.0
            rest.append(("", _residual_data(rng, _reduced_shape(rng, reduction), scale=scale,
                                            planted=planted(value)[:2]),
                         {"reduction": reduction, **opts}))
    if option:
        for reduction in ("mean", "none"):
            value = float(rng.choice([0.5, 1.0, 2.0]))
            rest.append(("residuals exactly at and around the switch point",
                         _residual_data(rng, (3, 5), planted=planted(value) * 2),
                         {"reduction": reduction, option: value}))
    if option and zero_option_ok:
        for reduction in ("mean", "none", "sum"):
            rest.append(("some residuals are exactly 0",
                         _residual_data(rng, _reduced_shape(rng, reduction, 1, 2),
                                        planted=(0.0, 0.0)),
                         {"reduction": reduction, option: 0.0}))
    rest.append(("large residuals", _residual_data(rng, (5,), scale=1e6), {"reduction": "mean",
                                                                             **options()}))
    for order in rng.permutation(len(rest)):
        add(*rest[order])
    # Shapes that broadcast, 0-d, empty, float32.
    a = int(rng.integers(5, 8))  # no scale factor, whichever size 'mean' divides by
    for shapes in (((a, 1), (a,)), ((1, a), (3, a)), ((), (a,))):
        data = {"input": rng.normal(size=shapes[0]), "target": rng.normal(size=shapes[1])}
        add("shapes broadcast", data, {"reduction": str(rng.choice(["mean", "none", "sum"])),
                                       **options()})
    for reduction in ("mean", "none", "sum"):
        add("0-d tensors", {"input": np.array(rng.normal() * 3), "target": np.array(rng.normal())},
            {"reduction": reduction, **options()})
    for reduction in ("mean", "sum", "none"):
        add("empty tensors: the mean of nothing is nan, the sum 0",
            {"input": np.zeros((0, 3)), "target": np.zeros((0, 3))}, {"reduction": reduction})
    for reduction in ("mean", "none"):
        opts = options()
        value = opts.get(option, 1.0) if option else 1.0
        add("float32 in, float32 out",
            _residual_data(rng, _reduced_shape(rng, reduction, 1, 2),
                           planted=planted(value) + (0.0,), dtype="float32"),
            {"reduction": reduction, **opts})
    data = _residual_data(rng, (2, 3))
    for bad in ("average", "MEAN", "batchmean", None):
        add("an unknown reduction raises", data, {"reduction": bad}, grad=(), facet=CONTRACT)
    add("shapes that do not broadcast raise",
        {"input": rng.normal(size=(3,)), "target": rng.normal(size=(4,))}, {}, grad=(),
        facet=CONTRACT)
    if option:
        add(f"a negative {option} raises", data, {option: -float(rng.uniform(0.1, 2))}, grad=(),
            facet=CONTRACT)
    if option and not zero_option_ok:
        add(f"{option}=0 raises", data, {option: 0.0}, grad=(), facet=CONTRACT)
    return cases


def _switch(value: float) -> tuple[float, ...]:
    """Residuals exactly at the switch point of Smooth L1 / Huber, both signs."""
    return (value, -value)


def _no_switch(value: float) -> tuple[float, ...]:
    return ()


# ---------------------------------------------------------------------------------------------
# mse_loss


def _mse_abs(input, target, reduction="mean"):
    return _reduce((input - target).abs(), reduction)


def _mse_rmse(input, target, reduction="mean"):
    return _reduce((input - target) ** 2, reduction).sqrt()


def _mse_half(input, target, reduction="mean"):
    return _reduce(0.5 * (input - target) ** 2, reduction)


def _mse_detached_target(input, target, reduction="mean"):
    return _reduce((input - target.detach()) ** 2, reduction)


class MSELossExercise(_Chapter2Exercise):
    """``mse_loss(input, target, reduction="mean")``: ``(x - y)^2``, then the reduction."""

    name = "mse_loss"
    grade_id = "test_mse_loss"
    points = 1.0
    forbidden = ("torch.nn.functional.mse_loss", "torch._C._nn.mse_loss", "torch.nn.MSELoss")
    facets = (
        Facet("squared error", 0.5, "(x - y)^2 and its gradients in both arguments, with the "
              "default 'mean' and with 'none': 0-d, broadcast, float32, any scale"),
        Facet(REDUCTIONS, 0.25, "'sum', 'mean' over every element, empty tensors"),
        Facet(CONTRACT, 0.25, "ValueError for an unknown reduction, RuntimeError for shapes "
              "that do not broadcast (the type only)"),
    )
    mistakes = (
        *_reduction_mistakes(lambda i, t: (i - t) ** 2, "MSE"),
        Mistake("abs_not_square",
                "the residual is taken in absolute value instead of squared: that is L1, not MSE.",
                _mse_abs, facet="squared error"),
        Mistake("rmse",
                "the square root of the mean is taken: that is RMSE (same minimiser, different "
                "value and gradient); MSE has no square root.", _mse_rmse,
                facet="squared error"),
        Mistake("half_mse",
                "the squared error is halved: 0.5 (x - y)^2 is a common textbook convention, but "
                "torch's mse_loss has no 1/2.", _mse_half, facet="squared error"),
        Mistake("target_detached",
                "no gradient reaches the target: do not detach it; mse_loss is differentiable in "
                "both arguments (d/dy = -2 (x - y)).", _mse_detached_target,
                facet="squared error"),
    )

    def public_cases(self) -> list[Case]:
        return _pointwise_public(None, (1.0, 1.0, 1.0), _no_switch, False)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return _pointwise_hidden(rng, None, False, _no_switch)

    def torch_reference(self) -> Callable[..., Any]:
        def reference(input, target, reduction="mean"):
            return F.mse_loss(input, target, reduction=reduction)
        return reference


# ---------------------------------------------------------------------------------------------
# l1_loss


def _l1_sqrt_square(input, target, reduction="mean"):
    return _reduce(((input - target) ** 2).sqrt(), reduction)


def _l1_where(input, target, reduction="mean"):
    diff = input - target
    return _reduce(torch.where(diff > 0, diff, -diff), reduction)


def _l1_squared(input, target, reduction="mean"):
    return _reduce((input - target) ** 2, reduction)


class L1LossExercise(_Chapter2Exercise):
    """``l1_loss(input, target, reduction="mean")``: ``|x - y|``, then the reduction."""

    name = "l1_loss"
    grade_id = "test_l1_loss"
    points = 1.0
    forbidden = ("torch.nn.functional.l1_loss", "torch._C._nn.l1_loss", "torch.nn.L1Loss",
                 "torch.nn.functional.smooth_l1_loss", "torch._C._nn.smooth_l1_loss")
    facets = (
        Facet("absolute error", 0.5, "|x - y| and its gradients in both arguments (sign(0) = 0 "
              "at a zero residual), with the default 'mean' and with 'none'"),
        Facet(REDUCTIONS, 0.25, "'sum', 'mean' over every element, empty tensors"),
        Facet(CONTRACT, 0.25, "ValueError for an unknown reduction, RuntimeError for shapes "
              "that do not broadcast (the type only)"),
    )
    mistakes = (
        *_reduction_mistakes(lambda i, t: (i - t).abs(), "L1"),
        Mistake("sqrt_of_square",
                "|x - y| is computed as sqrt((x - y)^2): the value is right but the gradient at "
                "a zero residual is nan (0/0); torch.abs gives sign(0) = 0 there.",
                _l1_sqrt_square, facet="absolute error"),
        Mistake("where_abs",
                "|x - y| is computed with where(d > 0, d, -d): at a zero residual the gradient is "
                "-1, torch's is sign(0) = 0. Use torch.abs.", _l1_where, facet="absolute error"),
        Mistake("squared",
                "the residual is squared: that is MSE; L1 is the absolute value |x - y|.",
                _l1_squared, facet="absolute error"),
    )

    def public_cases(self) -> list[Case]:
        return _pointwise_public(None, (1.0, 1.0, 1.0), _no_switch, False)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = _pointwise_hidden(rng, None, False, _no_switch)
        # Zero residuals everywhere in one case: the gradient there must be sign(0) = 0.
        data = {"input": np.arange(10.0).reshape(2, 5), "target": np.arange(10.0).reshape(2, 5)}
        cases.insert(3, _case(_describe(data, {"reduction": "sum"}, "every residual is 0"),
                              data, {"reduction": "sum"}, ("input", "target"), seed=7))
        return cases

    def torch_reference(self) -> Callable[..., Any]:
        def reference(input, target, reduction="mean"):
            return F.l1_loss(input, target, reduction=reduction)
        return reference


# ---------------------------------------------------------------------------------------------
# smooth_l1_loss and huber_loss: a quadratic branch below a switch point, a linear one above


def _branches(quadratic: Callable[[torch.Tensor, float], torch.Tensor],
              linear: Callable[[torch.Tensor, float], torch.Tensor],
              signed: bool = False, inclusive: bool = False) -> Callable[..., torch.Tensor]:
    """The elementwise loss ``quadratic(z, p)`` where ``z < p`` (or ``<=``), else ``linear(z, p)``.

    ``z = |x - y|``, or the signed ``x - y`` in the comparison when ``signed``. Where the two
    branches do not meet at ``z = p`` (a wrong formula), which side the switch point falls on
    changes the value there, so such mistakes are listed twice, once for each side.
    """
    def pointwise(input: torch.Tensor, target: torch.Tensor, p: float) -> torch.Tensor:
        d = input - target
        z = d.abs()
        lhs = d if signed else z
        small = lhs <= p if inclusive else lhs < p
        return torch.where(small, quadratic(z, p), linear(z, p))
    return pointwise


def _smooth_l1(input, target, beta=1.0):
    """Correct elementwise Smooth L1, with the beta = 0 fallback to L1."""
    z = (input - target).abs()
    if beta == 0:
        return z
    return torch.where(z < beta, 0.5 * z**2 / beta, z - 0.5 * beta)


def _huber(input, target, delta=1.0):
    z = (input - target).abs()
    return torch.where(z < delta, 0.5 * z**2, delta * (z - 0.5 * delta))


def _check_beta(beta: float = 1.0) -> None:
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")


def _check_delta(delta: float = 1.0) -> None:
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")


def _sl1_impl(pointwise: Callable[..., torch.Tensor], l1_at_zero: bool = True,
              check: bool = True) -> Callable[..., torch.Tensor]:
    def impl(input, target, reduction="mean", beta=1.0):
        if check:
            _check_beta(beta)
        if beta == 0 and l1_at_zero:
            return _reduce((input - target).abs(), reduction)
        return _reduce(pointwise(input, target, beta), reduction)
    return impl


def _huber_impl(pointwise: Callable[..., torch.Tensor], check: bool = True
                ) -> Callable[..., torch.Tensor]:
    def impl(input, target, reduction="mean", delta=1.0):
        if check:
            _check_delta(delta)
        return _reduce(pointwise(input, target, delta), reduction)
    return impl


def _switch_mistakes(key: str, message: str, quadratic, linear, wrap, signed: bool = False,
                     both_sides: bool = False, facet: str | None = None) -> tuple[Mistake, ...]:
    sides = (False, True) if both_sides else (False,)
    return tuple(Mistake(key, message, wrap(_branches(quadratic, linear, signed, inclusive)),
                         facet=facet)
                 for inclusive in sides)


def _l1_correct(input, target, reduction="mean"):
    """A correct l1_loss: what smooth_l1_loss is checked with in place of the learner's."""
    return _reduce((input - target).abs(), reduction)


def _sl1_mask_no_fallback(input, target, beta):
    z = (input - target).abs()
    small = (z < beta).to(z.dtype)
    return small * 0.5 * z**2 / beta + (1 - small) * (z - 0.5 * beta)


_SIGNED = ("the switch compares the signed residual x - y with {p}, so every negative residual, "
           "however large, lands in the quadratic branch: compare |x - y|.")


SL1 = "Smooth L1 formula"
HUBER = "Huber formula"


class SmoothL1LossExercise(_Chapter2Exercise):
    """``smooth_l1_loss(input, target, reduction="mean", beta=1.0)``."""

    name = "smooth_l1_loss"
    grade_id = "test_smooth_l1_loss"
    points = 2.0
    forbidden = ("torch.nn.functional.smooth_l1_loss", "torch._C._nn.smooth_l1_loss",
                 "torch.nn.SmoothL1Loss", "torch.nn.functional.huber_loss",
                 "torch._C._nn.huber_loss", "torch.nn.HuberLoss",
                 "torch.nn.functional.l1_loss", "torch._C._nn.l1_loss")
    facets = (
        Facet(SL1, 1.0, "both branches, the switch at |x - y| = beta for several "
              "beta, values and gradients in both arguments, with 'mean' and 'none'"),
        Facet("beta = 0", 0.5, "beta=0 is L1 exactly: no nan in the value or the gradient"),
        Facet(REDUCTIONS, 0.25, "'sum', 'mean' over every element, empty tensors"),
        Facet(CONTRACT, 0.25, "RuntimeError for a negative beta, ValueError for an unknown "
              "reduction, RuntimeError for shapes that do not broadcast (the type only)"),
    )
    option, option_mistake = "beta", "negative_beta_accepted"
    # beta=0 may be written with the learner's own l1_loss: checked with a correct one.
    depends_on = ("l1_loss",)
    mistakes = (
        Mistake("negative_beta_accepted",
                "a negative beta must raise RuntimeError, as torch does (beta=0 is allowed and "
                "means L1).", _sl1_impl(_smooth_l1, check=False), facet=CONTRACT),
        Mistake("beta_zero_nan_gradient",
                "with beta=0 the quadratic branch 0.5 z^2 / beta divides by zero: where() picks "
                "the other branch for the value, but the gradient flows through both and becomes "
                "nan. torch falls back to L1 when beta == 0: test for it before dividing.",
                _sl1_impl(_branches(lambda z, b: 0.5 * z**2 / b, lambda z, b: z - 0.5 * b),
                          l1_at_zero=False), facet="beta = 0"),
        Mistake("beta_zero_nan_value",
                "with beta=0 the quadratic branch 0.5 z^2 / beta divides by zero and the mask "
                "multiplication turns it into nan (0 * inf). torch falls back to L1 when "
                "beta == 0: test for it before dividing.",
                _sl1_impl(_sl1_mask_no_fallback, l1_at_zero=False), facet="beta = 0"),
        *_reduction_mistakes(_smooth_l1, "Smooth L1", _check_beta),
        *_switch_mistakes(
            "missing_half",
            "the quadratic branch lacks the 1/2: it is 0.5 z^2 / beta (so that it meets the "
            "linear branch z - 0.5 beta at z = beta).",
            lambda z, b: z**2 / b, lambda z, b: z - 0.5 * b, _sl1_impl, both_sides=True,
            facet=SL1),
        *_switch_mistakes(
            "missing_div_beta",
            "the quadratic branch is not divided by beta: it is 0.5 z^2 / beta. With the default "
            "beta=1 you cannot see it; with any other beta the two branches no longer meet.",
            lambda z, b: 0.5 * z**2, lambda z, b: z - 0.5 * b, _sl1_impl, both_sides=True,
            facet=SL1),
        *_switch_mistakes(
            "huber_formula",
            "this is Huber's formula (0.5 z^2 and beta (z - 0.5 beta)), which equals "
            "beta * SmoothL1. Smooth L1 is Huber divided by beta: 0.5 z^2 / beta and "
            "z - 0.5 beta.", lambda z, b: 0.5 * z**2, lambda z, b: b * (z - 0.5 * b), _sl1_impl,
            facet=SL1),
        *_switch_mistakes(
            "signed_condition", _SIGNED.format(p="beta"),
            lambda z, b: 0.5 * z**2 / b, lambda z, b: z - 0.5 * b, _sl1_impl, signed=True,
            facet=SL1),
        *_switch_mistakes(
            "branches_swapped",
            "the branches are swapped: Smooth L1 is quadratic for small residuals "
            "(|x - y| < beta) and linear for large ones.",
            lambda z, b: z - 0.5 * b, lambda z, b: 0.5 * z**2 / b, _sl1_impl, facet=SL1),
        Mistake("beta_ignored",
                "beta is ignored (the formula for beta=1 is hard-coded): use beta in the "
                "switch point and in both branches.",
                _sl1_impl(lambda i, t, b: _smooth_l1(i, t, 1.0), l1_at_zero=False),
                facet=SL1),
    )

    def public_cases(self) -> list[Case]:
        return _pointwise_public("beta", (1.0, 0.5, 2.0), _switch, True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return _pointwise_hidden(rng, "beta", True, _switch)

    def torch_reference(self) -> Callable[..., Any]:
        def reference(input, target, reduction="mean", beta=1.0):
            return F.smooth_l1_loss(input, target, reduction=reduction, beta=beta)
        return reference

    def substitutes(self) -> dict[str, Any]:
        return {"l1_loss": _l1_correct}


class HuberLossExercise(_Chapter2Exercise):
    """``huber_loss(input, target, reduction="mean", delta=1.0)``."""

    name = "huber_loss"
    grade_id = "test_huber_loss"
    points = 1.0
    forbidden = ("torch.nn.functional.huber_loss", "torch._C._nn.huber_loss", "torch.nn.HuberLoss",
                 "torch.nn.functional.smooth_l1_loss", "torch._C._nn.smooth_l1_loss",
                 "torch.nn.SmoothL1Loss")
    facets = (
        Facet(HUBER, 0.5, "0.5 z^2 below delta, delta (z - 0.5 delta) above, for several delta, "
              "values and gradients in both arguments, with 'mean' and 'none'"),
        Facet(REDUCTIONS, 0.25, "'sum', 'mean' over every element, empty tensors"),
        Facet(CONTRACT, 0.25, "RuntimeError for delta <= 0, ValueError for an unknown reduction, "
              "RuntimeError for shapes that do not broadcast (the type only)"),
    )
    option, option_mistake = "delta", "no_delta_check"
    # Huber = delta * Smooth L1 (beta = delta): an answer written on the learner's own
    # smooth_l1_loss is checked with a correct one in its place.
    depends_on = ("smooth_l1_loss",)
    mistakes = (
        Mistake("no_delta_check",
                "delta must be positive: torch raises RuntimeError for delta <= 0 (Huber with "
                "delta=0 would be the zero function).", _huber_impl(_huber, check=False),
                facet=CONTRACT),
        *_reduction_mistakes(_huber, "Huber", _check_delta),
        *_switch_mistakes(
            "huber_as_smooth_l1",
            "this is Smooth L1 with beta=delta (0.5 z^2 / delta, z - 0.5 delta), which is Huber "
            "divided by delta: Huber is 0.5 z^2 and delta (z - 0.5 delta). The two agree only "
            "for delta=1.", lambda z, d: 0.5 * z**2 / d, lambda z, d: z - 0.5 * d, _huber_impl,
            facet=HUBER),
        *_switch_mistakes(
            "linear_missing_delta",
            "the linear branch is not scaled by delta: it is delta * (|x - y| - 0.5 delta), so "
            "that its slope delta matches the quadratic branch at the switch.",
            lambda z, d: 0.5 * z**2, lambda z, d: z - 0.5 * d, _huber_impl, both_sides=True,
            facet=HUBER),
        *_switch_mistakes(
            "linear_missing_half",
            "the linear branch is delta * (|x - y| - delta); it must be "
            "delta * (|x - y| - 0.5 delta), or the two branches do not meet at |x - y| = delta.",
            lambda z, d: 0.5 * z**2, lambda z, d: d * (z - d), _huber_impl, both_sides=True,
            facet=HUBER),
        *_switch_mistakes(
            "doubled",
            "this is twice Huber (z^2 and 2 delta z - delta^2, another convention found in "
            "textbooks); torch's huber_loss is 0.5 z^2 and delta (z - 0.5 delta).",
            lambda z, d: z**2, lambda z, d: 2 * d * z - d**2, _huber_impl, facet=HUBER),
        *_switch_mistakes(
            "signed_condition", _SIGNED.format(p="delta"),
            lambda z, d: 0.5 * z**2, lambda z, d: d * (z - 0.5 * d), _huber_impl, signed=True,
            facet=HUBER),
        Mistake("delta_ignored",
                "delta is ignored (the formula for delta=1 is hard-coded): use delta in the "
                "switch point and in the linear branch.",
                _huber_impl(lambda i, t, d: _huber(i, t, 1.0)), facet=HUBER),
    )

    def public_cases(self) -> list[Case]:
        return _pointwise_public("delta", (1.0, 0.5, 2.0), _switch, False)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        return _pointwise_hidden(rng, "delta", False, _switch)

    def torch_reference(self) -> Callable[..., Any]:
        def reference(input, target, reduction="mean", delta=1.0):
            return F.huber_loss(input, target, reduction=reduction, delta=delta)
        return reference

    def substitutes(self) -> dict[str, Any]:
        return {"smooth_l1_loss": _sl1_impl(_smooth_l1)}


# ---------------------------------------------------------------------------------------------
# kl_div


def _kl_reduce(loss: torch.Tensor, input: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.dim() else loss.sum()
    return _reduce(loss, reduction)


def _kl_pointwise(input, target, log_target=False):
    if log_target:
        return target.exp() * (target - input)
    return torch.xlogy(target, target) - target * input


def _kl_mistake(pointwise: Callable[..., torch.Tensor],
                reducer: Callable[..., torch.Tensor] = _kl_reduce) -> Callable[..., torch.Tensor]:
    def impl(input, target, reduction="mean", log_target=False):
        return reducer(pointwise(input, target, log_target), input, reduction)
    return impl


def _kl_mean_is_batchmean(loss, input, reduction):
    return _kl_reduce(loss, input, "batchmean" if reduction == "mean" else reduction)


def _kl_batchmean_numel(loss, input, reduction):
    return _kl_reduce(loss, input, "mean" if reduction == "batchmean" else reduction)


def _kl_mean_sum_swapped(loss, input, reduction):
    return _kl_reduce(loss, input, {"mean": "sum", "sum": "mean"}.get(reduction, reduction))


def _kl_swapped(input, target, log_target):
    log_q = target if log_target else target.log()
    return input.exp() * (input - log_q)


def _kl_log_of_input(input, target, log_target):
    if log_target:
        return target.exp() * (target - input.log())
    return torch.xlogy(target, target) - target * input.log()


def _kl_cross_entropy(input, target, log_target):
    p = target.exp() if log_target else target
    return -p * input


def _kl_sign_flipped(input, target, log_target):
    return -_kl_pointwise(input, target, log_target)


def _kl_zeros_nan(input, target, log_target):
    if log_target:
        return target.exp() * (target - input)
    return target * (target.log() - input)


def _kl_log_target_ignored(input, target, log_target):
    return torch.xlogy(target, target) - target * input


def _kl_log_target_no_exp(input, target, log_target):
    if log_target:
        return target * (target - input)
    return torch.xlogy(target, target) - target * input


KL = "KL terms"
ZERO_TARGETS = "zero targets"
LOG_TARGET = "log_target"


def _kl_facet(kwargs: Mapping[str, Any], facet: str | None) -> str:
    """The facet of a KL case, unless given: log_target=True cases, then 'sum' and 'batchmean'
    (the reductions), else the KL terms."""
    if facet is not None:
        return facet
    if kwargs.get("log_target"):
        return LOG_TARGET
    if kwargs.get("reduction") in ("sum", "batchmean"):
        return REDUCTIONS
    return ""


def _kl_reduce_lenient(loss: torch.Tensor, input: torch.Tensor, reduction: str) -> torch.Tensor:
    """Right for the four valid reductions, the mean for anything else: no ValueError."""
    valid = ("none", "sum", "batchmean")
    return _kl_reduce(loss, input, reduction if reduction in valid else "mean")


class KLDivExercise(_Chapter2Exercise):
    """``kl_div(input, target, reduction="mean", log_target=False)``."""

    name = "kl_div"
    grade_id = "test_kl_div"
    points = 3.0
    forbidden = ("torch.nn.functional.kl_div", "torch.kl_div", "torch.nn.KLDivLoss",
                 "torch.distributions.kl.kl_divergence", "torch.distributions.kl_divergence")
    reductions = ("none", "mean", "batchmean", "sum")
    facets = (
        Facet(KL, 1.25, "xlogy(p, p) - p * input and its gradients in both arguments, with the "
              "default 'mean' and with 'none', sharp and flat distributions, float32"),
        Facet(ZERO_TARGETS, 0.5, "0 * log 0 counts as 0: zeros in the target give no nan"),
        Facet(LOG_TARGET, 0.5, "log_target=True: exp(t) * (t - input)"),
        Facet(REDUCTIONS, 0.5, "'sum', and 'batchmean' dividing by input.size(0) (the sum for "
              "0-d input)"),
        Facet(CONTRACT, 0.25, "ValueError for an unknown reduction (the type only)"),
    )
    mistakes = (
        Mistake("mean_is_batchmean",
                "reduction='mean' divides by the batch size: torch's 'mean' divides the sum by "
                "the number of elements (which is why it is not the true KL, and why torch "
                "warns); only 'batchmean' divides by input.size(0).",
                _kl_mistake(_kl_pointwise, _kl_mean_is_batchmean), facet=REDUCTIONS),
        Mistake("batchmean_numel",
                "'batchmean' divides by the number of elements; it must divide the sum by the "
                "batch size input.size(0) (that is what makes it the true KL per example).",
                _kl_mistake(_kl_pointwise, _kl_batchmean_numel), facet=REDUCTIONS),
        Mistake("mean_sum_swapped",
                "'mean' and 'sum' are swapped: 'mean' averages the elementwise terms, 'sum' "
                "adds them up.", _kl_mistake(_kl_pointwise, _kl_mean_sum_swapped),
                facet=REDUCTIONS),
        Mistake("arguments_swapped",
                "this computes KL(input || target): kl_div(input, target) is KL(target || "
                "input) = sum target * (log target - input), with input the model's "
                "log-probabilities.", _kl_mistake(_kl_swapped), facet=KL),
        Mistake("log_of_input",
                "input is already log-probabilities: take no log of it. The elementwise term is "
                "target * (log target - input).", _kl_mistake(_kl_log_of_input), facet=KL),
        Mistake("missing_entropy_term",
                "the target's own term target * log(target) is missing: -target * input alone is "
                "the cross-entropy, which is KL plus the target's entropy (same gradient in "
                "input, different value).", _kl_mistake(_kl_cross_entropy), facet=KL),
        Mistake("sign_flipped",
                "the sign is flipped: the term is target * (log target - input), "
                "non-negative once summed over a distribution.", _kl_mistake(_kl_sign_flipped),
                facet=KL),
        Mistake("zeros_give_nan",
                "a zero target gives nan: 0 * log(0) must count as 0 (torch uses "
                "torch.xlogy(target, target), which is 0 where target is 0).",
                _kl_mistake(_kl_zeros_nan), facet=ZERO_TARGETS),
        Mistake("log_target_ignored",
                "log_target=True is ignored: then target holds log-probabilities, and the term "
                "is exp(target) * (target - input).", _kl_mistake(_kl_log_target_ignored),
                facet=LOG_TARGET),
        Mistake("log_target_without_exp",
                "with log_target=True the weight must be the probability exp(target), not the "
                "log-probability target: exp(target) * (target - input).",
                _kl_mistake(_kl_log_target_no_exp), facet=LOG_TARGET),
        _invalid_reduction(_kl_mistake(_kl_pointwise, _kl_reduce_lenient),
                           "'none', 'mean', 'batchmean' and 'sum'"),
    )

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(31415)
        cases = []

        def add(note, data, kwargs, grad=("input", "target"), facet=None):
            cases.append(_case(_describe(data, kwargs, note), data, kwargs, grad,
                               seed=len(cases), public=True, facet=_kl_facet(kwargs, facet)))

        data = _kl_data(rng, (4, 5))
        add("input = log-probabilities, target = probabilities, rows sum to 1", data, {})
        for reduction in ("batchmean", "sum", "none"):
            add("", _kl_data(rng, (3, 4)), {"reduction": reduction})
        add("target given as log-probabilities", _kl_data(rng, (4, 3), log_target=True),
            {"reduction": "batchmean", "log_target": True})
        add("log_target=True", _kl_data(rng, (2, 3), log_target=True),
            {"reduction": "none", "log_target": True})
        add("targets with zeros (one-hot rows): 0 * log 0 counts as 0",
            _kl_data(rng, (4, 4), zeros=True), {"reduction": "batchmean"}, grad=("input",),
            facet=ZERO_TARGETS)
        add("batchmean divides by input.size(0) = 2", _kl_data(rng, (2, 3, 4)),
            {"reduction": "batchmean"})
        add("0-d tensors: batchmean divides by nothing", {"input": np.array(-1.2),
                                                          "target": np.array(0.3)},
            {"reduction": "batchmean"})
        add("float32 in, float32 out", _kl_data(rng, (3, 5), dtype="float32"),
            {"reduction": "batchmean"}, facet="")
        add("an unknown reduction raises", _kl_data(rng, (2, 2)), {"reduction": "average"},
            grad=(), facet=CONTRACT)
        return cases

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []

        def add(note, data, kwargs, grad=("input", "target"), facet=None):
            cases.append(_case(_describe(data, kwargs, note), data, kwargs, grad,
                               seed=int(rng.integers(2**31)), facet=_kl_facet(kwargs, facet)))

        add("", _kl_data(rng, _kl_shape(rng)), {})
        for reduction in ("batchmean", "sum", "none"):
            add("", _kl_data(rng, _kl_shape(rng)), {"reduction": reduction})
        add("log_target=True", _kl_data(rng, _kl_shape(rng), log_target=True),
            {"reduction": "batchmean", "log_target": True})
        add("targets with zeros", _kl_data(rng, _kl_shape(rng), zeros=True),
            {"reduction": "sum"}, grad=("input",), facet=ZERO_TARGETS)
        rest = []
        for reduction in ("mean", "batchmean", "sum", "none"):
            for log_target in (False, True):
                shape = _random_shape(rng, 1, 4)
                rest.append(("", _kl_data(rng, shape, log_target=log_target,
                                          sharp=float(rng.choice([0.1, 1.0, 5.0]))),
                             {"reduction": reduction, "log_target": log_target}))
            rest.append(("targets with zeros",
                         _kl_data(rng, _kl_shape(rng), zeros=True),
                         {"reduction": reduction}, ("input",), ZERO_TARGETS))
        for order in rng.permutation(len(rest)):
            add(*rest[order])
        for reduction in ("mean", "batchmean", "sum", "none"):
            add("0-d tensors", {"input": np.array(-abs(rng.normal()) - 0.1),
                                "target": np.array(rng.uniform(0.1, 1.0))},
                {"reduction": reduction})
        for log_target in (False, True):
            add("float32 in, float32 out",
                _kl_data(rng, _kl_shape(rng), log_target=log_target, dtype="float32"),
                {"reduction": "batchmean", "log_target": log_target},
                facet=None if log_target else "")
        for bad in ("average", "batch_mean", None):
            add("an unknown reduction raises", _kl_data(rng, (2, 2)), {"reduction": bad}, (),
                CONTRACT)
        return cases

    def torch_reference(self) -> Callable[..., Any]:
        def reference(input, target, reduction="mean", log_target=False):
            return F.kl_div(input, target, reduction=reduction, log_target=log_target)
        return reference


def _kl_shape(rng: np.random.Generator) -> tuple[int, ...]:
    """A batch of at least 2 distributions over at least 3 classes (dim 1), maybe more dims."""
    shape = (int(rng.integers(2, 5)), int(rng.integers(3, 6)))
    return shape + ((int(rng.integers(1, 4)),) if rng.random() < 0.3 else ())


def _kl_data(rng: np.random.Generator, shape: tuple[int, ...], log_target: bool = False,
             zeros: bool = False, sharp: float = 1.0, dtype: str = "float64"
             ) -> dict[str, np.ndarray]:
    """Log-probabilities (input) and probabilities or log-probabilities (target), over dim 1.

    With ``zeros``, some targets are one-hot rows and others have scattered zeros.
    """
    def log_softmax(logits: np.ndarray) -> np.ndarray:
        axis = 1 if logits.ndim > 1 else 0
        shifted = logits - logits.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    log_q = log_softmax(rng.normal(0.0, sharp, shape))
    log_p = log_softmax(rng.normal(0.0, sharp, shape))
    target = log_p if log_target else np.exp(log_p)
    if zeros:
        target = np.where(rng.random(shape) < 0.4, 0.0, target)
        flat = target.reshape(shape[0], -1)
        flat[0] = 0.0
        flat[0, rng.integers(flat.shape[1])] = 1.0  # a one-hot row
    return {"input": log_q.astype(dtype), "target": target.astype(dtype)}


# ---------------------------------------------------------------------------------------------
# generalized_box_iou_loss


def _upcast_non_float(t: torch.Tensor) -> torch.Tensor:
    # torchvision: integer boxes are multiplied in float32, not int, to avoid overflow.
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def generalized_box_iou_loss_reference(boxes1: torch.Tensor, boxes2: torch.Tensor,
                                       reduction: str = "none", eps: float = 1e-7
                                       ) -> torch.Tensor:
    """``torchvision.ops.generalized_box_iou_loss`` (torchvision >= 0.15), transcribed.

    Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019, with torchvision's
    placement of ``eps``: ``iou = inter / (union + eps)`` and
    ``loss = 1 - iou + (area_c - union) / (area_c + eps)``.
    """
    boxes1 = _upcast_non_float(boxes1)
    boxes2 = _upcast_non_float(boxes2)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    # torchvision.ops._utils._loss_inter_union
    xkis1 = torch.max(x1, x1g)
    ykis1 = torch.max(y1, y1g)
    xkis2 = torch.min(x2, x2g)
    ykis2 = torch.min(y2, y2g)
    intsctk = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    iouk = intsctk / (unionk + eps)
    # smallest enclosing box
    xc1 = torch.min(x1, x1g)
    yc1 = torch.min(y1, y1g)
    xc2 = torch.max(x2, x2g)
    yc2 = torch.max(y2, y2g)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    miouk = iouk - ((area_c - unionk) / (area_c + eps))
    loss = 1 - miouk
    if reduction == "none":
        pass
    elif reduction == "mean":
        loss = loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    elif reduction == "sum":
        loss = loss.sum()
    else:
        raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n Supported "
                         "reduction modes: 'none', 'mean', 'sum'")
    return loss


def _giou_parts(boxes1, boxes2, plus_one=False, clamp="each"):
    """Intersection, union and enclosing area of matching boxes, with some classic slips."""
    one = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = boxes1.unbind(-1)
    a1, b1, a2, b2 = boxes2.unbind(-1)
    w = torch.min(x2, a2) - torch.max(x1, a1) + one
    h = torch.min(y2, b2) - torch.max(y1, b1) + one
    if clamp == "each":
        inter = w.clamp(min=0) * h.clamp(min=0)
    elif clamp == "product":
        inter = (w * h).clamp(min=0)
    else:
        inter = w * h
    union = (x2 - x1 + one) * (y2 - y1 + one) + (a2 - a1 + one) * (b2 - b1 + one) - inter
    area_c = ((torch.max(x2, a2) - torch.min(x1, a1) + one)
              * (torch.max(y2, b2) - torch.min(y1, b1) + one))
    return inter, union, area_c


def _giou_reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean() if loss.numel() else 0.0 * loss.sum()
    return _reduce(loss, reduction)


def _giou_mistake(formula: Callable[..., torch.Tensor], reducer=_giou_reduce):
    def impl(boxes1, boxes2, reduction="none", eps=1e-7):
        boxes1, boxes2 = _upcast_non_float(boxes1), _upcast_non_float(boxes2)
        return reducer(formula(boxes1, boxes2, eps), reduction)
    return impl


def _giou_correct(b1, b2, eps):
    inter, union, area_c = _giou_parts(b1, b2)
    return 1 - inter / (union + eps) + (area_c - union) / (area_c + eps)


def _giou_iou_only(b1, b2, eps):
    inter, union, _ = _giou_parts(b1, b2)
    return 1 - inter / (union + eps)


def _giou_returns_giou(b1, b2, eps):
    return 1 - _giou_correct(b1, b2, eps)


def _giou_over_union(b1, b2, eps):
    inter, union, area_c = _giou_parts(b1, b2)
    return 1 - inter / (union + eps) + (area_c - union) / (union + eps)


def _giou_no_eps(b1, b2, eps):
    inter, union, area_c = _giou_parts(b1, b2)
    return 1 - inter / union + (area_c - union) / area_c


def _giou_eps_in_iou_only(b1, b2, eps):
    inter, union, area_c = _giou_parts(b1, b2)
    return 1 - inter / (union + eps) + (area_c - union) / area_c


def _giou_one_minus_ratio(b1, b2, eps):
    inter, union, area_c = _giou_parts(b1, b2)
    return 1 - inter / (union + eps) + 1 - union / (area_c + eps)


def _giou_eps_ignored(b1, b2, eps):
    return _giou_correct(b1, b2, 1e-7)


def _giou_unclamped(b1, b2, eps):
    inter, union, area_c = _giou_parts(b1, b2, clamp="none")
    return 1 - inter / (union + eps) + (area_c - union) / (area_c + eps)


def _giou_clamp_product(b1, b2, eps):
    inter, union, area_c = _giou_parts(b1, b2, clamp="product")
    return 1 - inter / (union + eps) + (area_c - union) / (area_c + eps)


def _giou_plus_one(b1, b2, eps):
    inter, union, area_c = _giou_parts(b1, b2, plus_one=True)
    return 1 - inter / (union + eps) + (area_c - union) / (area_c + eps)


def _giou_enclosing_is_intersection(b1, b2, eps):
    inter, union, _ = _giou_parts(b1, b2)
    x1, y1, x2, y2 = b1.unbind(-1)
    a1, b1_, a2, b2_ = b2.unbind(-1)
    area_c = (torch.min(x2, a2) - torch.max(x1, a1)) * (torch.min(y2, b2_) - torch.max(y1, b1_))
    return 1 - inter / (union + eps) + (area_c - union) / (area_c + eps)


def _giou_xywh(b1, b2, eps):
    def corners(b):
        return torch.cat([b[..., :2], b[..., :2] + b[..., 2:]], dim=-1)
    return _giou_correct(corners(b1), corners(b2), eps)


def _giou_float32(boxes1, boxes2, reduction="none", eps=1e-7):
    return _giou_reduce(_giou_correct(boxes1.float(), boxes2.float(), eps), reduction)


def _giou_mean_nan(loss, reduction):
    return _reduce(loss, reduction)


GIOU = "GIoU formula"
EPS = "eps placement"
DTYPES = "dtypes"


def _giou_facet(kwargs: Mapping[str, Any], facet: str | None) -> str:
    """The facet of a GIoU case, unless given: an explicit eps, then 'mean' and 'sum' (the
    reductions; the empty cases are all three), else the formula."""
    if facet is not None:
        return facet
    if "eps" in kwargs:
        return EPS
    if kwargs.get("reduction") in ("mean", "sum"):
        return REDUCTIONS
    return ""


def _giou_reduce_lenient(loss, reduction):
    return _giou_reduce(loss, reduction if reduction in ("none", "sum") else "mean")


class GeneralizedBoxIoULossExercise(_Chapter2Exercise):
    """``generalized_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7)``."""

    name = "generalized_box_iou_loss"
    grade_id = "test_generalized_box_iou_loss"
    points = 3.0
    # torchvision is not installed; the course's own box helpers do the work, so they are out.
    forbidden = ("lossopt_helpers.boxes.box_inter_union", "lossopt_helpers.boxes.box_iou",
                 "lossopt_helpers.boxes.generalized_box_iou", "lossopt_helpers.boxes.enclosing_box")
    facets = (
        Facet(GIOU, 1.5, "intersection, union, enclosing box and 1 - GIoU, values and gradients "
              "in both boxes: overlapping, nested, apart, touching, at scales 0.01 to 100"),
        Facet(EPS, 0.5, "eps exactly where torchvision puts it, the eps argument used, two "
              "zero-area boxes give 1"),
        Facet(REDUCTIONS, 0.5, "'mean' and 'sum', and no boxes: 'mean' gives 0"),
        Facet(DTYPES, 0.25, "float32 and float64 kept, integer boxes give float32"),
        Facet(CONTRACT, 0.25, "ValueError for an unknown reduction (the type only)"),
    )
    mistakes = (
        Mistake("iou_loss_only",
                "this is the IoU loss 1 - IoU: GIoU adds the penalty (area_c - union) / "
                "(area_c + eps), where area_c is the area of the smallest box enclosing both. "
                "Without it, boxes that do not overlap get no gradient.",
                _giou_mistake(_giou_iou_only), facet=GIOU),
        Mistake("returns_giou",
                "this returns GIoU itself; the loss is 1 - GIoU.",
                _giou_mistake(_giou_returns_giou), facet=GIOU),
        Mistake("penalty_over_union",
                "the penalty is divided by the union; it is (area_c - union) / (area_c + eps), "
                "relative to the enclosing box, so that it stays in [0, 1).",
                _giou_mistake(_giou_over_union), facet=GIOU),
        Mistake("no_eps",
                "eps is missing: torchvision divides by (union + eps) and by (area_c + eps). "
                "Without it zero-area boxes give nan, and small boxes give visibly different "
                "values.", _giou_mistake(_giou_no_eps), facet=EPS),
        Mistake("eps_only_in_iou",
                "eps is missing from the penalty's denominator: it is (area_c - union) / "
                "(area_c + eps).", _giou_mistake(_giou_eps_in_iou_only), facet=EPS),
        Mistake("penalty_as_one_minus_ratio",
                "the penalty is written 1 - union / (area_c + eps), which differs from "
                "torchvision's (area_c - union) / (area_c + eps) by eps / (area_c + eps): "
                "follow the stated formula exactly.", _giou_mistake(_giou_one_minus_ratio),
                facet=EPS),
        Mistake("eps_ignored",
                "the eps argument is ignored (1e-7 is hard-coded): use the eps passed in.",
                _giou_mistake(_giou_eps_ignored), facet=EPS),
        *(Mistake("intersection_not_clamped",
                  "the intersection's width and height must each be clamped at 0 before they "
                  "are multiplied: unclamped, or with only the product clamped, boxes apart in "
                  "both x and y get a positive 'intersection' (negative times negative).", impl,
                  facet=GIOU)
          for impl in (_giou_mistake(_giou_unclamped), _giou_mistake(_giou_clamp_product))),
        Mistake("plus_one_pixel",
                "widths are computed as x2 - x1 + 1 (the old integer-pixel convention of Pascal "
                "VOC code); here coordinates are continuous: width = x2 - x1.",
                _giou_mistake(_giou_plus_one), facet=GIOU),
        Mistake("enclosing_is_intersection",
                "the enclosing box is built like the intersection (max of the top-left, min of "
                "the bottom-right corners); the smallest enclosing box takes the min of the "
                "top-left and the max of the bottom-right corners.",
                _giou_mistake(_giou_enclosing_is_intersection), facet=GIOU),
        Mistake("xywh_format",
                "the boxes are read as (x, y, width, height); they are (x1, y1, x2, y2), two "
                "corners.", _giou_mistake(_giou_xywh), facet=GIOU),
        Mistake("casts_to_float32",
                "the boxes are cast to float32 (.float()): float64 boxes must stay float64. Only "
                "integer boxes are converted, to float32.", _giou_float32, facet=DTYPES),
        Mistake("mean_sum_swapped",
                "'mean' and 'sum' are swapped: 'mean' averages the per-box losses, 'sum' adds "
                "them up.", _giou_mistake(_giou_correct, lambda loss, r: _giou_reduce(
                    loss, {"mean": "sum", "sum": "mean"}.get(r, r))), facet=REDUCTIONS),
        Mistake("empty_mean_nan",
                "reduction='mean' of no boxes gives nan (the mean of nothing); torchvision "
                "returns 0 there (0.0 * loss.sum()), so that an image without boxes adds "
                "nothing to a batch's loss.", _giou_mistake(_giou_correct, _giou_mean_nan),
                facet=REDUCTIONS),
        _invalid_reduction(_giou_mistake(_giou_correct, _giou_reduce_lenient),
                           "'none', 'mean' and 'sum'"),
    )

    def public_cases(self) -> list[Case]:
        rng = np.random.default_rng(2019)
        cases = []

        def add(note, data, kwargs, grad=("boxes1", "boxes2"), facet=None):
            cases.append(_case(_describe(data, kwargs, note), data, kwargs, grad,
                               seed=len(cases), public=True, facet=_giou_facet(kwargs, facet)))

        # Small boxes (side 0.02 to 0.2): overlapping, nested, apart in x, apart in x and y.
        first = np.array([[0.10, 0.12, 0.21, 0.19], [0.31, 0.30, 0.52, 0.47],
                          [0.05, 0.61, 0.13, 0.66], [0.70, 0.72, 0.83, 0.91]])
        second = np.array([[0.14, 0.09, 0.26, 0.17], [0.35, 0.33, 0.44, 0.41],
                           [0.17, 0.58, 0.26, 0.69], [0.87, 0.95, 0.99, 0.98]])
        add("overlapping, nested, apart in x, apart in x and y", {"boxes1": first,
                                                                   "boxes2": second}, {})
        add("", _box_pairs(rng, (5,), scale=1.0), {"reduction": "mean"})
        add("", _box_pairs(rng, (2, 3), scale=10.0), {"reduction": "sum"})
        add("a single pair of boxes (4,)", _box_pairs(rng, (), scale=1.0), {})
        add("eps=0.01", _box_pairs(rng, (4,), scale=0.1), {"reduction": "none", "eps": 0.01})
        tied = {"boxes1": np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0],
                                    [1.0, 1.0, 1.0, 3.0], [0.5, 0.5, 0.5, 0.5]]),
                "boxes2": np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 2.0, 1.0],
                                    [0.0, 0.0, 2.0, 2.0], [0.5, 0.5, 0.5, 0.5]])}
        add("identical, touching, zero-area boxes (values only: no gradient there)", tied,
            {}, grad=())
        for reduction in ("none", "mean", "sum"):
            add("no boxes: 'mean' gives 0, not nan", {"boxes1": np.zeros((0, 4)),
                                                      "boxes2": np.zeros((0, 4))},
                {"reduction": reduction}, grad=(), facet=REDUCTIONS)
        add("float32 in, float32 out", _box_pairs(rng, (3,), dtype="float32"),
            {"reduction": "mean"}, facet=DTYPES)
        add("an unknown reduction raises", _box_pairs(rng, (2,)), {"reduction": "average"}, (),
            CONTRACT)
        return cases

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []

        def add(note, data, kwargs, grad=("boxes1", "boxes2"), facet=None):
            cases.append(_case(_describe(data, kwargs, note), data, kwargs, grad,
                               seed=int(rng.integers(2**31)), facet=_giou_facet(kwargs, facet)))

        add("small boxes", _box_pairs(rng, (int(rng.integers(4, 9)),), scale=0.1), {})
        add("", _box_pairs(rng, (int(rng.integers(3, 7)),), scale=1.0), {"reduction": "mean"})
        add("", _box_pairs(rng, (2, int(rng.integers(2, 5))), scale=5.0), {"reduction": "sum"})
        rest = []
        for reduction in ("none", "mean", "sum"):
            for scale in (1e-2, 1.0, 100.0):
                rest.append(("", _box_pairs(rng, _random_shape(rng, 0, 2), scale=scale),
                             {"reduction": reduction}))
            rest.append(("", _box_pairs(rng, _random_shape(rng, 1, 2), scale=0.1),
                         {"reduction": reduction, "eps": float(rng.choice([1e-3, 0.05, 0.5]))}))
        for order in rng.permutation(len(rest)):
            add(*rest[order])
        add("identical boxes: loss 0 (values only)", _tied_pairs(rng, "identical"), {}, ())
        add("touching boxes (values only)", _tied_pairs(rng, "touching"), {}, ())
        add("zero-area boxes (values only)", _tied_pairs(rng, "degenerate"), {"reduction": "sum"},
            (), EPS)
        for reduction in ("mean", "sum", "none"):
            add("no boxes", {"boxes1": np.zeros((0, 4)), "boxes2": np.zeros((0, 4))},
                {"reduction": reduction}, (), REDUCTIONS)
        add("float32 in, float32 out", _box_pairs(rng, (4,), dtype="float32"), {}, facet=DTYPES)
        add("float32 in, float32 out", _box_pairs(rng, (2, 2), dtype="float32"),
            {"reduction": "sum"}, facet=DTYPES)
        ints = _box_pairs(rng, (5,), scale=50.0)
        ints = {name: np.round(value).astype(np.int64) for name, value in ints.items()}
        add("integer boxes give float32 losses", ints, {"reduction": "none"}, (), DTYPES)
        for bad in ("average", "batchmean", None):
            add("an unknown reduction raises", _box_pairs(rng, (2,)), {"reduction": bad}, (),
                CONTRACT)
        return cases

    def torch_reference(self) -> Callable[..., Any]:
        return generalized_box_iou_loss_reference


def _box_pairs(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0,
               dtype: str = "float64") -> dict[str, np.ndarray]:
    """Pairs of boxes: about half overlapping (a jittered copy), half anywhere (often apart).

    Continuous random coordinates: no two coordinates tie, so the loss is differentiable.
    """
    size = rng.uniform(0.05, 0.5, shape + (2,))
    corner = rng.uniform(0.0, 1.0, shape + (2,)) * (1 - size)
    boxes1 = np.concatenate([corner, corner + size], axis=-1)
    jitter = boxes1 + rng.normal(0.0, 0.08, shape + (4,))
    jitter[..., 2:] = np.maximum(jitter[..., 2:], jitter[..., :2] + 0.01)
    size2 = rng.uniform(0.05, 0.5, shape + (2,))
    corner2 = rng.uniform(0.0, 1.0, shape + (2,)) * (1 - size2)
    anywhere = np.concatenate([corner2, corner2 + size2], axis=-1)
    pick = rng.random(shape + (1,)) < 0.5
    boxes2 = np.where(pick, jitter, anywhere)
    return {"boxes1": (boxes1 * scale).astype(dtype), "boxes2": (boxes2 * scale).astype(dtype)}


def _tied_pairs(rng: np.random.Generator, kind: str) -> dict[str, np.ndarray]:
    """Boxes where the loss has a kink: identical, touching along an edge, or zero-area."""
    boxes = _box_pairs(rng, (4,))["boxes1"]
    if kind == "identical":
        return {"boxes1": boxes, "boxes2": boxes.copy()}
    other = boxes.copy()
    if kind == "touching":
        width = boxes[:, 2] - boxes[:, 0]
        other[:, 0], other[:, 2] = boxes[:, 2], boxes[:, 2] + width
        return {"boxes1": boxes, "boxes2": other}
    flat = boxes.copy()
    flat[:2, 2] = flat[:2, 0]  # zero width
    flat[2:, 3] = flat[2:, 1]  # zero height
    other[0] = flat[0]  # two zero-area boxes on top of each other
    return {"boxes1": flat, "boxes2": other}


# ---------------------------------------------------------------------------------------------

EXERCISES: dict[str, Exercise] = {
    ex.name: ex
    for ex in (MSELossExercise(), L1LossExercise(), SmoothL1LossExercise(), HuberLossExercise(),
               KLDivExercise(), GeneralizedBoxIoULossExercise())
}

check = make_check(EXERCISES)
