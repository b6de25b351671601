"""How an exercise check is described, run and judged.

Every chapter module (``grader/chapters/ch01_classification_losses.py``, ...) describes its
exercises as :class:`Exercise` objects. A check has three separate steps so that the grading core
can run them in different processes:

1. ``cases``: the inputs, as *plain data* (NumPy arrays, Python scalars, strings, tuples), drawn
   from a seed. Public cases are small and fixed; hidden cases are randomized.
2. ``run(impl, case)``: builds torch tensors from the case, calls the learner's function or class,
   and turns what comes back into plain NumPy arrays (strictly: a ``torch.Tensor`` subclass or a
   lying float is refused, see :func:`to_plain`). This is the only step that touches learner code.
3. ``judge``: compares those arrays with the reference computed by PyTorch (``reference``), in the
   grader's own process, and names the mistake when the answer matches a known wrong
   implementation (``mistakes``).

In a notebook, :func:`check` does all three in the kernel and raises ``AssertionError`` with the
feedback; the isolated grading core (``python -m grader autograde``) runs step 2 in a sandboxed
process and steps 1 and 3 outside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import secrets
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

# Outputs are dictionaries of plain arrays: {"out": array, "grad_input": array, ...}.
Outputs = dict[str, np.ndarray]

ERROR_KEY = "__error__"  # Outputs of a call that raised: {"__error__": array("ValueError")}


class ForbiddenCallError(RuntimeError):
    """Raised when an answer calls a function the exercise asks the learner to re-implement."""


class AnswerTypeError(TypeError):
    """Raised when an answer returns something that is not a plain tensor or number."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One input to an exercise, as plain data.

    Attributes:
        label: What a learner needs to know to reproduce the case, e.g.
            ``"input (4, 3) float64, target (4,), weight, reduction='sum'"``.
        args: Plain data only: ``np.ndarray``, ``int``, ``float``, ``bool``, ``str``, ``None``
            and tuples/lists/dicts of these. ``run`` turns them into tensors.
        public: True for the small fixed cases a learner sees when validating.
        facet: The name of the :class:`Facet` this case belongs to ("" for the exercise's
            first facet). A facet is earned when every one of its cases passes.
    """

    label: str
    args: Mapping[str, Any]
    public: bool = False
    facet: str = ""


@dataclasses.dataclass(frozen=True)
class Facet:
    """A named share of an exercise's points, stated in the exercise text.

    Attributes:
        name: Short and learner-facing: "update rule", "weight decay", "API contract".
        points: Its share of the exercise's points (the facets add up to ``Exercise.points``).
        covers: One line on what its cases check, shown in feedback and the exercise text.
    """

    name: str
    points: float
    covers: str = ""


@dataclasses.dataclass(frozen=True)
class Mistake:
    """A known wrong implementation and the diagnosis shown when an answer behaves like it.

    Attributes:
        key: Stable identifier used by the tests' wrong-implementation corpus.
        message: The diagnosis in plain words ("the mean is divided by N instead of ...").
        impl: A wrong implementation with the exercise's signature.
        facet: The facet this mistake costs, whichever case shows it (a mistake in the update
            rule also fails the cases of every option: it is charged to "update rule" once).
            ``None``: the facet of the case that shows it.
    """

    key: str
    message: str
    impl: Callable[..., Any]
    facet: str | None = dataclasses.field(default=None, kw_only=True)


@dataclasses.dataclass
class Verdict:
    """The result of judging one case."""

    ok: bool
    message: str = ""
    mistake: str | None = None  # key of the diagnosed Mistake, if any


class Exercise:
    """Base class: subclass it once per exercise in a chapter module.

    Subclasses set the class attributes and implement :meth:`public_cases`,
    :meth:`hidden_cases`, :meth:`run` and :meth:`torch_reference`.
    """

    name: str = ""  # the name the learner defines, e.g. "cross_entropy" or "Adam"
    grade_id: str = ""  # nbgrader grade_id of the exercise's autograded test cell
    points: float = 0.0
    # Dotted paths of what the answer must not call, e.g. "torch.nn.functional.cross_entropy".
    forbidden: tuple[str, ...] = ()
    # Forbidden paths enforced only while the check runs (tripwires), never by reading the code:
    # the notebook itself calls them at top level (a data loader), and whatever an answer could
    # reach through such a call is withheld at run time, where the mistake is diagnosed.
    runtime_only: tuple[str, ...] = ()
    rtol: float = 1e-7
    atol: float = 1e-10
    mistakes: tuple[Mistake, ...] = ()
    # How the points split (see :class:`Facet`); empty: one facet, "all cases", worth ``points``.
    facets: tuple[Facet, ...] = ()
    # Earlier exercises of the chapter this one builds on (``cross_entropy`` on ``nll_loss``,
    # ``AdamW`` on ``Adam``). The answer is checked with :meth:`substitutes` in their place (see
    # :mod:`grader.kit.depends`), so that their mistakes are charged to their own exercise.
    depends_on: tuple[str, ...] = ()
    # Whether an answer that raises where PyTorch does not is still matched against the
    # mistakes (whose models raise too: a scaler's refusal, a withheld global); off, it is only
    # reported.
    diagnose_errors: bool = False

    # -- to implement -------------------------------------------------------------------------
    def public_cases(self) -> list[Case]:
        """Small, fixed, hand-checkable cases shown to the learner."""
        raise NotImplementedError

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        """Randomized cases (shapes, options, extreme values) drawn from ``rng``."""
        raise NotImplementedError

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        """Call ``impl`` on the case and return plain outputs (values and gradients)."""
        raise NotImplementedError

    def torch_reference(self) -> Callable[..., Any]:
        """The reference implementation (PyTorch's, or the paper's formula in torch)."""
        raise NotImplementedError

    def substitutes(self) -> dict[str, Any]:
        """Correct implementations of :attr:`depends_on`, by name, written in the tensor
        operations this exercise allows (they run while its forbidden calls are wired)."""
        return {}

    # -- provided -----------------------------------------------------------------------------
    def facet_list(self) -> tuple[Facet, ...]:
        """The facets, or the single default one."""
        return self.facets or (Facet("all cases", self.points, "every public and hidden case"),)

    def facet_of(self, case: Case) -> str:
        """The name of the facet ``case`` counts towards."""
        return case.facet or self.facet_list()[0].name

    def simplicity(self, case: Case) -> tuple[Any, ...]:
        """Sort key: the failing case reported first is the simplest (public, fewest options,
        smallest inputs)."""
        sizes = 0
        for value in case.args.values():
            if isinstance(value, np.ndarray):
                sizes += value.size
        return (not case.public, len(case.args), sizes, case.label)

    def prepare(self, impl: Any) -> Any:
        """The answer as it is checked: rebuilt on :meth:`substitutes` when it depends on
        earlier exercises (runs inside the sandbox, with the exercise's tripwires armed)."""
        if not self.depends_on:
            return impl
        from grader.kit.depends import rebind

        return rebind(impl, self.substitutes())

    def reference(self, case: Case) -> Outputs:
        """Expected outputs for ``case``, computed with the reference implementation."""
        return capture(self, self.torch_reference(), case, forbid=False)

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        """Return ``None`` when ``got`` matches ``expected``, else a short description."""
        return compare_outputs(got, expected, rtol=self.rtol, atol=self.atol)

    def candidate_mistakes(self, case: Case) -> tuple[Mistake, ...]:
        """The mistakes :meth:`diagnose` tries on ``case`` (all of them, unless narrowed)."""
        return self.mistakes

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        """The first known mistake whose outputs on ``case`` equal ``got``, if any."""
        for mistake in self.candidate_mistakes(case):
            try:
                wrong = capture(self, mistake.impl, case, forbid=False)
            except Exception:  # a mistake that cannot run on this case says nothing about it
                continue
            if ERROR_KEY in wrong and ERROR_KEY not in got:
                continue
            if compare_outputs(got, wrong, rtol=self.rtol, atol=self.atol) is None:
                return mistake
        return None

    def judge(self, case: Case, got: Outputs, expected: Outputs | None = None) -> Verdict:
        """Decide one case: compare with the reference, and diagnose a failure."""
        if expected is None:
            expected = self.reference(case)
        problem = self.compare(case, got, expected)
        if problem is None:
            return Verdict(True)
        where = f"{self.name} failed on {case.label}:\n  {problem}"
        if ERROR_KEY in got and ERROR_KEY not in expected and not self.diagnose_errors:
            return Verdict(False, where)
        mistake = self.diagnose(case, got)
        if mistake is not None:
            return Verdict(False, f"{where}\n  Likely mistake: {mistake.message}", mistake.key)
        return Verdict(False, where)

    def cases(self, *, hidden: bool, seed: int | None = None) -> list[Case]:
        """Public cases, or hidden cases drawn from ``seed``."""
        if not hidden:
            return self.public_cases()
        return self.hidden_cases(np.random.default_rng(seed))


# ---------------------------------------------------------------------------------------------
# Plain data: strict conversion of what learner code returns


def to_plain(value: Any, what: str = "the result") -> np.ndarray:
    """Turn a tensor or number returned by learner code into a NumPy array, strictly.

    Only an exact ``torch.Tensor`` (not a subclass), or an exact ``int``/``float``/``bool``, is
    accepted: a subclass can rig ``__eq__``, ``__sub__`` or ``__torch_function__``, so it is
    refused rather than trusted. Tensors are detached, moved to the CPU and copied.

    Raises:
        AnswerTypeError: ``value`` is not a plain tensor or number.
    """
    kind = type(value)
    if kind is torch.Tensor:
        if value.is_sparse or value.is_quantized or value.is_complex():
            raise AnswerTypeError(f"{what} must be a dense real tensor, got layout {value.layout}")
        array = torch.Tensor.numpy(torch.Tensor.cpu(torch.Tensor.detach(value)), force=True)
        return np.array(array, copy=True)
    if kind in (float, int, bool):
        return np.array(value)
    raise AnswerTypeError(
        f"{what} must be a torch.Tensor, got {kind.__module__}.{kind.__qualname__}"
    )


def error_outputs(exc: BaseException) -> Outputs:
    """Outputs that record an exception by its class name and message."""
    return {ERROR_KEY: np.array(type(exc).__name__), "__message__": np.array(str(exc)[:500])}


def compare_outputs(got: Outputs, expected: Outputs, *, rtol: float, atol: float) -> str | None:
    """Compare two output dictionaries; ``None`` when equal, else what differs first."""
    if ERROR_KEY in expected:
        want = str(expected[ERROR_KEY])
        if ERROR_KEY not in got:
            return f"expected a {want} to be raised, but the call returned normally"
        if str(got[ERROR_KEY]) != want:
            return f"expected a {want}, got {got[ERROR_KEY]}: {got.get('__message__', '')}"
        return None
    if ERROR_KEY in got:
        return f"raised {got[ERROR_KEY]}: {got.get('__message__', '')}"
    for key, want in expected.items():
        if key not in got:
            return f"no {key!r} was produced"
        have = got[key]
        # Text is compared by value: "True" and "False" (<U4, <U5) are both str.
        if have.dtype != want.dtype and not have.dtype.kind == want.dtype.kind == "U":
            return f"{key}: dtype {describe_dtype(have)}, expected {describe_dtype(want)}"
        if have.shape != want.shape:
            return f"{key}: shape {tuple(have.shape)}, expected {tuple(want.shape)}"
        if want.dtype.kind in "biuUS":
            if not np.array_equal(have, want):
                return f"{key}: {summarize(have)}, expected {summarize(want)}"
            continue
        close = np.isclose(have, want, rtol=rtol, atol=atol, equal_nan=True)
        if not close.all():
            index = tuple(int(i) for i in np.argwhere(~close)[0])
            at = f" at index {index}" if have.ndim else ""
            return (
                f"{key}{at}: got {have[index].item()!r}, expected {want[index].item()!r} "
                f"(rtol={rtol:g}, atol={atol:g}; {int((~close).sum())} of {close.size} differ)"
            )
    return None


def describe_dtype(array: np.ndarray) -> str:
    """The torch name of an array's dtype, as a learner knows it."""
    names = {"float64": "torch.float64", "float32": "torch.float32", "int64": "torch.int64",
             "bool": "torch.bool", "float16": "torch.float16"}
    return names.get(str(array.dtype), str(array.dtype))


def summarize(array: np.ndarray, limit: int = 6) -> str:
    """A short readable rendering of an array (first few values)."""
    flat = np.ravel(array)
    body = ", ".join(f"{v:.6g}" if isinstance(v, float | np.floating) else str(v)
                     for v in flat[:limit])
    more = ", ..." if flat.size > limit else ""
    return f"[{body}{more}]" if array.ndim else body


# ---------------------------------------------------------------------------------------------
# Forbidden calls: tripwires around what the exercise re-implements


def resolve(path: str) -> tuple[Any, str, Any]:
    """Resolve a dotted path to (owner object, attribute name, current value)."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1], getattr(owner, parts[-1])
    raise ValueError(f"cannot resolve {path!r}")


@contextlib.contextmanager
def tripwires(paths: Sequence[str]) -> Iterator[list[str]]:
    """Replace each forbidden callable by one that raises :class:`ForbiddenCallError`.

    Yields the list of paths that were called (also raised), and restores everything on exit.
    """
    calls: list[str] = []
    saved: list[tuple[Any, str, Any]] = []

    def wire(path: str, original: Any) -> Any:
        def tripped(*args: Any, **kwargs: Any) -> Any:
            calls.append(path)
            raise ForbiddenCallError(f"{path} is off-limits in this exercise: write it yourself")

        tripped.__wrapped_forbidden__ = original  # type: ignore[attr-defined]
        return tripped

    try:
        for path in paths:
            try:
                owner, attr, original = resolve(path)
            except (ValueError, AttributeError):
                continue
            if isinstance(original, type):
                continue  # classes are caught by subclass checks and by wiring what they call
            try:
                setattr(owner, attr, wire(path, original))
            except (AttributeError, TypeError):
                continue
            saved.append((owner, attr, original))
        yield calls
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


def forbidden_base(impl: Any, paths: Sequence[str]) -> str | None:
    """If ``impl`` is a class deriving from a forbidden class, the path of that class."""
    if not isinstance(impl, type):
        return None
    for path in paths:
        try:
            _, _, target = resolve(path)
        except (ValueError, AttributeError):
            continue
        if isinstance(target, type) and target in impl.__mro__[1:]:
            return path
    return None


def capture(ex: Exercise, impl: Any, case: Case, *, forbid: bool = True) -> Outputs:
    """Run ``impl`` on ``case`` and return its outputs; an exception becomes error outputs.

    With ``forbid``, the exercise's forbidden callables are wired to raise while ``impl`` runs,
    and :class:`ForbiddenCallError` propagates (it is a verdict, not an answer).
    """
    if forbid:
        base = forbidden_base(impl, ex.forbidden)
        if base is not None:
            raise ForbiddenCallError(f"{ex.name} subclasses {base}, which it must re-implement")
        with tripwires(ex.forbidden) as calls:
            try:
                outputs = ex.run(impl, case)
            except ForbiddenCallError:
                raise
            except Exception as exc:
                outputs = error_outputs(exc)
        if calls:
            raise ForbiddenCallError(f"{calls[0]} is off-limits in this exercise")
        return outputs
    try:
        return ex.run(impl, case)
    except Exception as exc:
        return error_outputs(exc)


# ---------------------------------------------------------------------------------------------
# Helpers for writing ``run``


def tensor(value: Any, *, grad: bool = False) -> torch.Tensor:
    """A fresh torch tensor from plain data (NumPy array or scalar), optionally a leaf with grad."""
    result = torch.from_numpy(np.array(value, copy=True))
    if grad:
        result.requires_grad_(True)
    return result


def value_and_grads(
    impl: Callable[..., Any],
    args: Mapping[str, Any],
    grad_wrt: Sequence[str],
    upstream: np.ndarray | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> Outputs:
    """Call ``impl(**tensors, **kwargs)``, back-propagate, and return value and gradients.

    Args:
        impl: The function under test.
        args: Name -> plain array for tensor arguments (passed by keyword, in this order,
            positionally: the exercise's own positional order must be used by the caller).
        grad_wrt: Names in ``args`` whose gradient is checked.
        upstream: The gradient flowing into the output (same shape); ones if None.
        kwargs: Non-tensor keyword arguments (options), passed by keyword.

    Returns:
        ``{"out": value, "grad_<name>": gradient, ...}``; a gradient that does not flow comes back
        as an array of zeros so that "no gradient" differs from a wrong one only where it matters.
    """
    tensors = {name: (tensor(v, grad=name in grad_wrt) if isinstance(v, np.ndarray) else v)
               for name, v in args.items()}
    out = impl(*tensors.values(), **(kwargs or {}))
    result: Outputs = {"out": to_plain(out, "the returned value")}
    leaves = [tensors[name] for name in grad_wrt]
    if not leaves:
        return result
    if type(out) is not torch.Tensor or not out.requires_grad:
        raise AnswerTypeError(
            "the result is not connected to the inputs' autograd graph: use torch operations "
            "on the input tensors (no .item(), .numpy() or .detach() along the way)"
        )
    seed_grad = torch.ones_like(out) if upstream is None else tensor(upstream).to(out.dtype)
    grads = torch.autograd.grad(out, leaves, seed_grad, allow_unused=True)
    for name, leaf, g in zip(grad_wrt, leaves, grads, strict=True):
        result[f"grad_{name}"] = to_plain(g if g is not None else torch.zeros_like(leaf))
    return result


# ---------------------------------------------------------------------------------------------
# In the notebook: check() raises AssertionError with the feedback


def grading_seed() -> int:
    """The seed for hidden cases: ``$LOSSOPT_SEED`` if set, else a fresh random one."""
    env = os.environ.get("LOSSOPT_SEED")
    return int(env) if env else secrets.randbelow(2**31)


def check_exercise(ex: Exercise, impl: Any, *, hidden: bool = False, seed: int | None = None
                   ) -> tuple[Any, str]:
    """Check ``impl`` in this process: its :class:`~grader.kit.scoring.ExerciseScore` and report.

    Public cases, plus the hidden ones drawn from ``seed`` with ``hidden``. A stub raises
    ``NotImplementedError``; an off-limits call scores 0 with the call named.
    """
    __tracebackhide__ = True
    from grader.kit import scoring

    if impl is None or not callable(impl):
        raise AssertionError(
            f"{ex.name} is not defined as a function or class yet: run the cell that defines it"
        )
    if hidden and seed is None:
        seed = grading_seed()
    cases = ex.cases(hidden=False) + (ex.cases(hidden=True, seed=seed) if hidden else [])
    # PyTorch warns on some legitimate cases (kl_div's "mean", broadcasting); nbgrader scores any
    # stderr output of a test cell as 0, so a check must stay silent except for its verdict.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [ex.reference(case) for case in cases]
        prepared = ex.prepare(impl)
        try:
            gots = _run_cases(ex, prepared, cases)
        except ForbiddenCallError as exc:
            result = scoring.ExerciseScore(ex.name, float(ex.points), [])
            return result, f"{ex.name}: 0 / {ex.points:g} points\n✗ {exc}"
        # A stub raises NotImplementedError on every case, the cases where PyTorch raises too.
        stub = [str(g.get(ERROR_KEY, "")) == "NotImplementedError" for g in gots]
        if cases and all(stub):
            raise NotImplementedError(f"{ex.name} is not implemented yet") from None
        result = scoring.score(ex, cases, gots, expected)
        note = ""
        if prepared is not impl:
            as_written = scoring.score(ex, cases, _run_cases(ex, impl, cases), expected)
            if as_written.score < result.score:
                names = " / ".join(f"`{n}`" for n in ex.depends_on)
                note = (f"Note: your {names} fails (see its exercise). With a correct one in its "
                        f"place, your `{ex.name}` scores as above, and it is graded that way: a "
                        f"mistake costs points once.")
    if hidden:
        note = (note + "\n" if note else "") + f"(hidden cases drawn with seed {seed})"
    return result, scoring.render(ex, result, note=note)


def _run_cases(ex: Exercise, impl: Any, cases: list[Case]) -> list[Outputs]:
    """Every case's outputs (an exception becomes error outputs); raises ForbiddenCallError."""
    __tracebackhide__ = True
    return [capture(ex, impl, case, forbid=True) for case in cases]


def make_check(exercises: Mapping[str, Exercise]) -> Callable[..., float]:
    """Build a chapter's ``check(name, impl, hidden=False)`` function for its test cells."""

    def check(name: str, impl: Any, *, hidden: bool = False, seed: int | None = None) -> float:
        """Print the report (lost facets and their diagnosis first) and return the score.

        The score is a number between 0 and the exercise's points: left as a test cell's last
        value, nbgrader records it as the cell's partial credit.
        """
        __tracebackhide__ = True  # IPython and pytest hide the grader's frames from learners
        if name not in exercises:
            known = ", ".join(sorted(exercises))
            raise AssertionError(f"no exercise called {name!r} in this chapter (known: {known})")
        result, report = check_exercise(exercises[name], impl, hidden=hidden, seed=seed)
        print(report)
        return result.score

    check.exercises = dict(exercises)  # type: ignore[attr-defined]
    return check
