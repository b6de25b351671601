"""Chapter 4's checks: right answers pass, known wrong ones fail *and* are named, cheats are caught.

- the reference answers, taken from the solution notebook, pass the public and hidden checks for
  several seeds; so do independently written correct answers (the tolerances accept other
  rounding) and the grader's own bug-free models (so that matching a model with bugs switched
  on is a meaningful diagnosis);
- every wrong implementation in ``tests/corpus/ch04_adaptive_optimizers.py`` loses exactly the
  facet of its mistake (and keeps the others), with the diagnosis of its ``Mistake.key`` in the
  report; every mistake in the grader's tables has a corpus entry and is itself caught;
- a wrong (or crashing) ``Adam`` costs ``AdamW(Adam)`` nothing, and its report names ``Adam``;
- the hidden cases cover every option combination in every gradient regime and every feature
  (groups, None grads, closures, state_dict round trips, ...), depend on the seed only, are plain
  data that cross the sandbox wire, and their objective's gradient changes at every step;
- every forbidden path resolves and trips, and answers that reach PyTorch's optimizers by
  subclassing, wrapping or calling their functional forms are refused;
- bad answers (missing, not a class, no error, state under other names) get clear messages,
  and cost only their facet;
- the signatures and defaults the exercises ask for are PyTorch 2.13's, and the reference
  answers' state_dicts load into ``torch.optim`` and back.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import re

import nbformat
import numpy as np
import pytest
import torch

from corpus.ch04_adaptive_optimizers import CORPUS, CORRECT, EVERY_FACET, LOSES
from grader.chapters.ch04_adaptive_optimizers import (CHAPTER, EXERCISES, AdagradModel, AdamModel,
                                                      AdamWModel, ReferenceAdam, RMSpropModel,
                                                      check, uses_base_internals)
from grader.kit.exercise import ForbiddenCallError, capture, resolve, tripwires
from nbutils import SOLUTIONS, facet_scores, nbgrader_meta, solution_namespace

NOTEBOOK = SOLUTIONS / CHAPTER / f"{CHAPTER}.ipynb"
SEEDS = (0, 1)  # a hidden check runs ~40 cases of 50 steps: two seeds keep this file fast
MODELS = {"Adagrad": AdagradModel, "RMSprop": RMSpropModel, "Adam": AdamModel, "AdamW": AdamWModel}


def scored(name, impl, **kwargs):
    """(score, {facet: score}, report) of ``impl`` checked as a test cell checks it."""
    return facet_scores(EXERCISES[name], impl, **kwargs)


def first_failure(ex, impl, *, hidden=False, seed=None):
    """The verdict on the first failing case, run without the tripwires (for the grader's own
    models, whose update functions are off-limits to learners); None when every case passes."""
    for case in ex.cases(hidden=hidden, seed=seed):
        verdict = ex.judge(case, capture(ex, impl, case, forbid=False))
        if not verdict.ok:
            return verdict
    return None


@pytest.fixture(scope="module")
def answers():
    return solution_namespace(NOTEBOOK)


# ---------------------------------------------------------------------------------------------
# Right answers, the models, the notebook


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_answers_pass_public_and_hidden_checks(answers, name):
    points = EXERCISES[name].points
    for seed in SEEDS:
        score, facets, report = scored(name, answers[name], hidden=True, seed=seed)
        assert score == points, report
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert check(name, answers[name]) == points  # what a test cell leaves: the score
    assert out.getvalue().startswith(f"{name}: {points:g} / {points:g} points")


@pytest.mark.parametrize(("name", "impl"), [(n, c) for n, cs in CORRECT.items() for c in cs],
                         ids=[f"{n}-{c.__name__}" for n, cs in CORRECT.items() for c in cs])
def test_other_correct_answers_score_full_marks(name, impl):
    # A check that refuses a right answer written (and rounded) differently is as wrong as one
    # that passes a wrong answer: an int step, state created lazily or eagerly, bias corrections
    # from the float32 step tensor (PyTorch's capturable path), another error message.
    score, _, report = scored(name, impl, hidden=True, seed=0)
    assert score == EXERCISES[name].points, report


def test_there_are_at_least_three_other_correct_answers_per_exercise():
    assert all(len(CORRECT[name]) >= 3 for name in EXERCISES), {n: len(c) for n, c in CORRECT.items()}


@pytest.mark.parametrize("name", list(EXERCISES))
def test_bug_free_models_pass_every_check(name):
    assert first_failure(EXERCISES[name], MODELS[name]) is None
    verdict = first_failure(EXERCISES[name], MODELS[name], hidden=True, seed=5)
    assert verdict is None, verdict.message


def test_points_are_as_announced():
    assert {n: ex.points for n, ex in EXERCISES.items()} == {
        "Adagrad": 3, "RMSprop": 4, "Adam": 5, "AdamW": 3}


def test_signatures_and_defaults_are_pytorch_2_13s(answers):
    # The exercises leave out the implementation switches (foreach, fused, capturable,
    # differentiable); every other parameter has PyTorch's name, kind and default.
    switches = {"foreach", "fused", "capturable", "differentiable"}
    for name in EXERCISES:
        ours = inspect.signature(answers[name]).parameters
        theirs = {k: v for k, v in inspect.signature(getattr(torch.optim, name)).parameters.items()
                  if k not in switches}
        assert list(ours) == list(theirs), name
        for key, param in theirs.items():
            assert ours[key].default == param.default, (name, key)
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                assert ours[key].kind is inspect.Parameter.KEYWORD_ONLY, (name, key)
    assert inspect.signature(answers["AdamW"]).parameters["weight_decay"].default == 1e-2


# ---------------------------------------------------------------------------------------------
# The cases


GRID_SIZE = {"Adagrad": 16, "RMSprop": 16, "Adam": 16, "AdamW": 12}
FEATURES = ("the defaults", "positional arguments", "parameter groups", "None", "zeroed in place",
            "stepped with a closure", "under torch.no_grad", "lr halved", "float32",
            "saved at step", "state_dict at step", "must raise ValueError", "is valid")


@pytest.mark.parametrize("name", list(EXERCISES))
def test_hidden_cases_cover_every_combination_regime_and_feature(name):
    ex = EXERCISES[name]
    for seed in SEEDS:
        cases = ex.cases(hidden=True, seed=seed)
        grid = [c for c in cases if c.label.startswith(("ordinary", "tiny", "large eps"))]
        assert len(grid) == GRID_SIZE[name]
        switched = {tuple(sorted(k for k, v in c.args["kwargs"].items()
                                 if k in ("lr_decay", "weight_decay", "initial_accumulator_value",
                                          "maximize", "centered", "momentum", "amsgrad",
                                          "decoupled_weight_decay") and v not in (0, 0.0, False)))
                    for c in grid}
        assert len(switched) == (GRID_SIZE[name] if name != "AdamW" else 8), switched
        for regime in ("ordinary gradients", "tiny gradients", "large eps"):
            assert sum(c.label.startswith(regime) for c in grid) >= 4, regime
        labels = " | ".join(c.label for c in cases)
        for feature in FEATURES:
            assert feature in labels, feature
        for case in cases:
            if case.args["kind"] == "train" and case.args["dtype"] == "float64":
                assert case.args["steps"] >= 50 or case.args["load"] is not None, case.label


def test_the_objective_changes_the_gradient_at_every_step():
    # A constant gradient would let an average that lags a step behind pass unnoticed.
    seen = []

    class Spy(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                     amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self, closure=None):
            seen.append(self.param_groups[0]["params"][0].grad.clone())

    ex = EXERCISES["Adam"]
    case = next(c for c in ex.cases(hidden=False) if c.args["kind"] == "train")
    ex.run(Spy, case)  # the parameters never move, and still every gradient differs
    assert len(seen) == 50
    assert all(not torch.allclose(a, b) for a, b in zip(seen, seen[1:]))


def test_the_references_are_deterministic():
    for ex in EXERCISES.values():
        for case in ex.cases(hidden=True, seed=3)[:3]:
            first, second = ex.reference(case), ex.reference(case)
            assert first.keys() == second.keys()
            assert all(np.array_equal(first[k], second[k]) for k in first), case.label


# ---------------------------------------------------------------------------------------------
# Wrong answers


def mistake_message(exercise: str, key: str) -> str:
    messages = {m.message for m in EXERCISES[exercise].mistakes if m.key == key}
    assert len(messages) == 1, f"{exercise}: no single mistake message for key {key!r}"
    return messages.pop()


@pytest.mark.parametrize(("exercise", "key", "impl"), CORPUS,
                         ids=[f"{e}-{k}-{i}" for i, (e, k, _) in enumerate(CORPUS)])
def test_wrong_answers_lose_exactly_their_facet_and_are_diagnosed(exercise, key, impl):
    # The public check, which covers every facet: what a learner reads first. The hidden cases
    # give the same scores (checked below for a few mistakes, to keep this file fast).
    ex = EXERCISES[exercise]
    score, facets, report = scored(exercise, impl)
    lost = {name for name, value in facets.items() if value == 0}
    facet = LOSES[exercise][key]
    if facet == EVERY_FACET:
        assert score == 0, report
    else:
        assert lost == {facet}, report
        assert score == ex.points - next(f.points for f in ex.facets if f.name == facet), report
    assert mistake_message(exercise, key) in report, report


@pytest.mark.parametrize(("exercise", "key"), [
    ("Adam", "no_bias_correction"), ("Adam", "amsgrad_ignored"), ("Adam", "grad_modified_in_place"),
    ("RMSprop", "centered_missing_square"), ("Adagrad", "eps_inside_sqrt"),
    ("AdamW", "decay_after_update")])
def test_partial_scores_do_not_depend_on_the_seed(exercise, key):
    impl = next(i for e, k, i in CORPUS if (e, k) == (exercise, key))
    ex = EXERCISES[exercise]
    want = ex.points - next(f.points for f in ex.facets if f.name == LOSES[exercise][key])
    for seed in SEEDS:
        score, _, report = scored(exercise, impl, hidden=True, seed=seed)
        assert score == want, f"seed {seed}:\n{report}"


def test_adam_without_bias_correction_is_named_on_the_simplest_case():
    impl = next(i for e, k, i in CORPUS if (e, k) == ("Adam", "no_bias_correction"))
    _, _, report = scored("Adam", impl)
    lines = report.splitlines()
    assert lines[0] == "Adam: 3 / 5 points", report
    assert lines[1].startswith("✗ update rule (0 / 2): Likely mistake: no bias correction"), report
    assert "failed on plain Adam: Adam(params, lr=0.05)" in lines[2], report


def test_rmsprop_shows_its_simplest_failing_case_first():
    impl = next(i for e, k, i in CORPUS if (e, k) == ("RMSprop", "eps_inside_sqrt"))
    _, _, report = scored("RMSprop", impl)
    assert "✗ update rule (0 / 1.5): Likely mistake: eps is added inside" in report, report
    assert "failed on plain RMSprop: RMSprop(params, lr=0.01)" in report, report


def test_every_mistake_in_the_table_has_a_corpus_entry():
    corpus = {(exercise, key) for exercise, key, _ in CORPUS}
    table = {(name, m.key) for name, ex in EXERCISES.items() for m in ex.mistakes}
    assert table == corpus
    required = {"no_bias_correction", "eps_inside_sqrt", "step_incremented_late",
                "amsgrad_max_of_corrected", "l2_instead_of_decoupled", "decoupled_instead_of_l2",
                "decay_after_update", "decay_without_lr", "decay_wrong_sign", "maximize_ignored",
                "betas_swapped", "lr_decay_off_by_one", "centered_missing_square"}
    assert required <= {key for _, key in table}


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_mistake_model_is_caught_and_names_itself(name):
    for mistake in EXERCISES[name].mistakes:
        verdict = first_failure(EXERCISES[name], mistake.impl)
        assert verdict is not None, f"{mistake.key} passes the public checks"
        assert verdict.mistake == mistake.key, f"{mistake.key}:\n{verdict.message}"


def test_a_float32_step_in_the_bias_corrections_passes_but_not_much_more():
    # PyTorch's capturable/differentiable Adam computes 1 - beta ** step from the float32 step
    # tensor: that rounding passes (at rtol 1e-4 of that computation); an answer off by 1%
    # does not.
    adam = EXERCISES["Adam"]
    model = AdamModel.with_bugs("step_tensor_float32")
    case = next(c for c in adam.cases(hidden=False) if c.args["kind"] == "train")
    got = capture(adam, model, case, forbid=False)
    assert adam.judge(case, got).ok
    bumped = {k: (v * 1.01 if v.dtype.kind == "f" else v) for k, v in got.items()}
    assert not adam.judge(case, bumped).ok


# ---------------------------------------------------------------------------------------------
# A mistake is charged once: AdamW is checked on a correct Adam


def adamw_on(adam: type) -> type:
    """``class AdamW(Adam)`` as the solution writes it, on the given (learner's) Adam."""
    namespace = {"Adam": adam}
    exec("class AdamW(Adam):\n"
         "    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,\n"
         "                 weight_decay=1e-2, amsgrad=False, *, maximize=False):\n"
         "        super().__init__(params, lr, betas, eps, weight_decay, amsgrad,\n"
         "                         maximize=maximize, decoupled_weight_decay=True)\n", namespace)
    return namespace["AdamW"]


class CrashingAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        raise RuntimeError("my Adam is not finished")


CrashingAdam.__name__ = CrashingAdam.__qualname__ = "Adam"
WRONG_ADAMS = [i for e, k, i in CORPUS if e == "Adam" and k in (
    "no_bias_correction", "amsgrad_ignored", "step_not_no_grad", "none_grad_as_zero")]


@pytest.mark.parametrize("adam", [*WRONG_ADAMS, CrashingAdam],
                         ids=lambda a: getattr(a, "__name__", "?"))
def test_a_wrong_adam_costs_adamw_nothing_and_is_named(adam):
    score, _, report = scored("AdamW", adamw_on(adam), hidden=True, seed=0)
    assert score == 3, report
    assert "your `Adam` fails (see its exercise)" in report, report


def test_adamw_is_rebuilt_on_the_reference_adam_unless_it_relies_on_its_own_helpers():
    from corpus.ch04_adaptive_optimizers import Adam

    assert not uses_base_internals(adamw_on(Adam), "Adam", ReferenceAdam)
    rebuilt = EXERCISES["AdamW"].prepare(adamw_on(Adam))
    assert rebuilt.__mro__[1] is ReferenceAdam and rebuilt.__name__ == "AdamW"

    class TemplateAdam(Adam):  # its step would call a helper that AdamW overrides
        def _decay(self, p, group):
            pass

    TemplateAdam.__name__ = "Adam"

    class AdamW(TemplateAdam):
        def _decay(self, p, group):
            p.mul_(1 - group["lr"] * group["weight_decay"])

    assert uses_base_internals(AdamW, "Adam", ReferenceAdam)
    assert EXERCISES["AdamW"].prepare(AdamW) is AdamW  # checked as written


# ---------------------------------------------------------------------------------------------
# Forbidden calls


ALL_FORBIDDEN = sorted({path for ex in EXERCISES.values() for path in ex.forbidden})


@pytest.mark.parametrize("path", ALL_FORBIDDEN)
def test_every_forbidden_path_resolves_and_trips(path):
    owner, attr, target = resolve(path)
    if isinstance(target, type):
        assert issubclass(target, torch.optim.Optimizer), path  # caught as a base class
        return
    with tripwires([path]) as calls:
        with pytest.raises(ForbiddenCallError):
            getattr(owner, attr)()
    assert calls == [path]
    assert getattr(owner, attr) is target, f"{path} was not restored"


class AdamSubclass(torch.optim.Adam):
    pass


class AdamWOnTorchAdam(torch.optim.Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)


class WrapsTorch(torch.optim.Optimizer):
    """Keeps a torch optimizer inside and delegates step to it."""

    torch_class: type = torch.optim.Adam

    def __init__(self, params, *args, **kwargs):
        params = list(params)
        super().__init__(params, {})
        self.inner = self.torch_class(params, *args, **kwargs)
        self.param_groups = self.inner.param_groups

    def step(self, closure=None):
        return self.inner.step(closure)


def wrapping(cls):
    return type(f"Wraps{cls.__name__}", (WrapsTorch,), {"torch_class": cls})


class BorrowsTorchStep(torch.optim.Optimizer):
    """Not a subclass: calls PyTorch's RMSprop.step on itself."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize,
                                      foreach=None, capturable=False, differentiable=False))

    _init_group = torch.optim.RMSprop._init_group

    def step(self, closure=None):
        return torch.optim.RMSprop.step(self, closure)


class CallsFunctionalAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if not self.state[p]:
                    self.state[p].update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                                         exp_avg_sq=torch.zeros_like(p))
            states = [self.state[p] for p in params]
            torch.optim._functional.adam(
                params, [p.grad for p in params], [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states], [], [s["step"] for s in states],
                amsgrad=False, beta1=group["betas"][0], beta2=group["betas"][1], lr=group["lr"],
                weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"])


CHEATS = {
    "Adagrad": [wrapping(torch.optim.Adagrad), AdagradModel.with_bugs()],
    "RMSprop": [torch.optim.RMSprop, BorrowsTorchStep, wrapping(torch.optim.RMSprop)],
    "Adam": [AdamSubclass, torch.optim.Adam, wrapping(torch.optim.Adam), CallsFunctionalAdam,
             AdamModel],
    "AdamW": [AdamWOnTorchAdam, torch.optim.AdamW, wrapping(torch.optim.AdamW), AdamWModel],
}


@pytest.mark.parametrize(("name", "cheat"), [(n, c) for n, cs in CHEATS.items() for c in cs],
                         ids=[f"{n}-{c.__name__}" for n, cs in CHEATS.items() for c in cs])
def test_answers_that_use_torch_or_the_grader_are_refused(name, cheat):
    score, _, report = scored(name, cheat)
    assert score == 0 and re.search("off-limits|subclasses", report), report


def test_subclassing_torch_adam_is_named_in_the_message():
    assert "Adam subclasses torch.optim.Adam" in scored("Adam", AdamSubclass)[2]
    assert "torch.optim._functional.adam is off-limits" in scored("Adam", CallsFunctionalAdam)[2]
    # The correct Adam that AdamW is checked on is off-limits to Adam itself.
    assert "subclasses" in scored("Adam", type("Adam", (ReferenceAdam,), {}))[2]


# ---------------------------------------------------------------------------------------------
# Bad answers get clear messages


def test_missing_answer_or_unknown_exercise():
    with pytest.raises(AssertionError, match="not defined as a function or class"):
        check("Adam", None)
    with pytest.raises(AssertionError, match="no exercise called 'Adamm'"):
        check("Adamm", torch.optim.Optimizer)


def test_unimplemented_stub_raises_not_implemented():
    class Stub(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                     amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
            raise NotImplementedError()

    with pytest.raises(NotImplementedError, match="Adam is not implemented yet"):
        check("Adam", Stub)


def test_a_function_instead_of_an_optimizer_class():
    def adam(params, lr=1e-3):
        return None

    score, _, report = scored("Adam", adam)
    assert score == 0 and "must be a class that subclasses torch.optim" in report, report


def edited(answers, name, old, new, count=1):
    """The reference answer with ``old`` replaced by ``new`` in its cell (``count`` times)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == name)
    assert cell.source.count(old) == count, old
    namespace = dict(answers)
    exec(compile(cell.source.replace(old, new), f"<edited {name}>", "exec"), namespace)
    return namespace[name]


def test_a_missing_valueerror_costs_the_api_contract_and_shows_pytorchs_text(answers):
    impl = edited(answers, "Adam", 'raise ValueError(f"Invalid learning rate: {lr}")', "pass")
    score, facets, report = scored("Adam", impl, hidden=True, seed=0)
    assert score == 4.5 and facets["API contract"] == 0, report
    assert "Hint: PyTorch raises ValueError('Invalid learning rate: -0.001')" in report, report


def test_a_step_counter_that_is_an_int_costs_nothing(answers):
    impl = edited(answers, "RMSprop", 'state["step"] = torch.tensor(0.0)', 'state["step"] = 0')
    assert scored("RMSprop", impl, hidden=True, seed=0)[0] == 4


def test_state_under_other_names_costs_only_the_state_facet(answers):
    impl = edited(answers, "Adam", '"exp_avg_sq"', '"v"', count=2)
    score, facets, report = scored("Adam", impl)
    assert score == 4.5 and facets["state and state_dict"] == 0, report
    # The simplest case that shows it: PyTorch's state_dict does not load into it.
    assert "raised KeyError: 'v'" in report, report


def test_a_closure_loss_returned_as_a_float_is_reported(answers):
    impl = edited(answers, "Adam", "        return loss\n",
                  "        return float(loss) if loss is not None else None\n")
    score, facets, report = scored("Adam", impl)
    assert score == 4.5 and facets["API contract"] == 0, report
    assert "must return the loss that closure" in report, report


# ---------------------------------------------------------------------------------------------
# What the sandboxed checks rely on, verified directly


@pytest.mark.parametrize("name", ["Adagrad", "RMSprop", "Adam", "AdamW"])
def test_state_dicts_cross_over_both_ways(answers, name):
    options = {"Adagrad": {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1},
               "RMSprop": {"lr": 0.01, "momentum": 0.9, "centered": True},
               "Adam": {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
               "AdamW": {"lr": 0.01, "amsgrad": True}}[name]
    ours, theirs = answers[name], getattr(torch.optim, name)
    torch.manual_seed(0)
    target = torch.randn(5, dtype=torch.float64)

    def run(optimizer, p, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            (torch.sin(3 * p) + (p - target) ** 2).sum().backward()
            optimizer.step()

    for first, second in ((ours, theirs), (theirs, ours)):
        p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
        a = first([p], **options)
        run(a, p, 10)
        q = p.detach().clone().requires_grad_(True)
        b = second([q])
        b.load_state_dict(copy.deepcopy(a.state_dict()))
        reference = p.detach().clone().requires_grad_(True)
        c = first([reference])
        c.load_state_dict(copy.deepcopy(a.state_dict()))
        run(b, q, 10)
        run(c, reference, 10)
        torch.testing.assert_close(q, reference, rtol=1e-12, atol=1e-14)


def test_reference_answers_keep_the_dtype(answers):
    for name in EXERCISES:
        p = torch.ones(3, requires_grad=True)  # float32
        optimizer = answers[name]([p], lr=0.1)
        p.grad = torch.ones(3)
        optimizer.step()
        assert p.dtype == torch.float32
        for value in optimizer.state[p].values():
            assert value.dtype == torch.float32, name
