"""Chapter 3's checks: right answers score full marks, wrong ones lose exactly their facets and
are named, cheats are caught.

- the reference answers, taken from the solution notebook, and correct answers written in other
  ways (``RIGHT`` in ``tests/corpus/ch03_sgd.py``) score full marks on the public and hidden
  checks, and so do the grader's own bug-free models (so that matching a model with bugs
  switched on is a meaningful diagnosis);
- every wrong implementation of the corpus scores exactly the points of the facets it keeps,
  public and hidden, with the diagnosis of its ``Mistake.key``; every mistake in the grader's
  tables has a corpus entry and is itself caught;
- a wrong ``sgd_step`` costs nothing to an ``SGD`` built on it, and the report names it;
- the hidden cases cover every option combination PyTorch accepts, depend on the seed only and
  are plain data that cross the sandbox wire;
- every forbidden path resolves and trips, and answers that reach PyTorch's SGD by any of its
  names, by subclassing or by wrapping it score 0 with the call named;
- bad answers (missing, not a class, wrong exception class, closure loss not returned) get clear
  messages, and a ValueError worded differently from PyTorch's costs nothing;
- what the grader cannot do inside its sandbox is done here: the reference ``SGD``'s
  ``state_dict`` loads into ``torch.optim.SGD`` and back, and both continue identically.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools

import numpy as np
import pytest
import torch

from corpus.ch03_sgd import CORPUS, RIGHT, sgd_on
from grader.chapters.ch03_sgd import (CHAPTER, EXERCISES, FORBIDDEN, SGDModel, check,
                                      flawed_sgd_step, valid_combinations)
from grader.kit.exercise import ForbiddenCallError, resolve, tripwires
from nbutils import SOLUTIONS, score_and_lost, solution_namespace
from nbutils import assert_full_marks as full_marks

NOTEBOOK = SOLUTIONS / CHAPTER / f"{CHAPTER}.ipynb"
SEEDS = (0, 1)  # the reference answers: two hidden seeds
RUNS = [{}, {"hidden": True, "seed": 0}]  # everything else: public, and one hidden seed


def facets(name):
    return {f.name: f.points for f in EXERCISES[name].facet_list()}


def scored(name, impl, **kwargs):
    """(score, facets lost, report) of an answer, checked in this process."""
    return score_and_lost(EXERCISES[name], impl, **kwargs)


def assert_full_marks(name, impl, runs=RUNS):
    full_marks(EXERCISES[name], impl, runs)


@pytest.fixture(scope="module")
def answers():
    return solution_namespace(NOTEBOOK)


# ---------------------------------------------------------------------------------------------
# Right answers: the reference, the models, and other ways of writing them


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_answers_score_full_marks(answers, name):
    assert_full_marks(name, answers[name], [{}] + [{"hidden": True, "seed": s} for s in SEEDS])


def test_bug_free_models_score_full_marks():
    assert_full_marks("sgd_step", flawed_sgd_step(), [{"hidden": True, "seed": 5}])
    assert_full_marks("SGD", SGDModel, [{"hidden": True, "seed": 5}])


@pytest.mark.parametrize(("name", "impl"), RIGHT, ids=[f"{n}-{f.__name__}" for n, f in RIGHT])
def test_answers_written_differently_score_full_marks(name, impl):
    assert_full_marks(name, impl)


def test_points_are_as_announced():
    assert (EXERCISES["sgd_step"].points, EXERCISES["SGD"].points) == (4, 6)
    assert facets("sgd_step") == {"update rule": 1.5, "momentum and Nesterov": 1.0,
                                  "weight decay": 0.5, "maximize": 0.5, "API contract": 0.5}
    assert facets("SGD") == {"update rule": 2.0, "momentum and Nesterov": 1.0,
                             "weight decay": 0.5, "maximize": 0.5, "API contract": 1.5,
                             "state_dict compatibility": 0.5}


def test_check_prints_the_report_and_returns_the_score(answers):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        value = check("sgd_step", answers["sgd_step"])
    assert value == 4.0 and "sgd_step: 4 / 4 points" in out.getvalue()


# ---------------------------------------------------------------------------------------------
# The cases


def test_valid_combinations_are_exactly_those_torch_accepts():
    names = ("momentum", "dampening", "weight_decay", "nesterov", "maximize")
    accepted = []
    for bits in itertools.product((False, True), repeat=5):
        combo = dict(zip(names, bits, strict=True))
        options = {"lr": 0.1, "momentum": 0.9 * combo["momentum"],
                   "dampening": 0.5 * combo["dampening"],
                   "weight_decay": 0.1 * combo["weight_decay"], "nesterov": combo["nesterov"],
                   "maximize": combo["maximize"]}
        try:
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], **options)
        except ValueError:
            continue
        accepted.append(combo)
    assert valid_combinations() == accepted and len(accepted) == 20


def test_hidden_cases_cover_every_combination_and_feature():
    for name, ex in EXERCISES.items():
        cases = ex.cases(hidden=True, seed=3)
        labels = " | ".join(c.label for c in cases)
        assert sum(c.label.startswith("combination") for c in cases) == 20, name
        assert "float32" in labels
    labels = " | ".join(c.label for c in EXERCISES["SGD"].cases(hidden=True, seed=3))
    for feature in ("parameter groups", "None", "closure", "under torch.no_grad", "lr changed",
                    "zeroed in place", "positional", "saved at step", "torch.optim.SGD's "
                    "state_dict", "must raise ValueError", "is valid"):
        assert feature in labels, feature
    for case in EXERCISES["SGD"].cases(hidden=True, seed=3):
        if case.args["kind"] == "train":
            assert case.args["steps"] >= 50 or case.args["load"] is not None, case.label


def test_the_objective_changes_the_gradient_at_every_step():
    # A constant gradient would let a buffer that lags a step behind pass unnoticed.
    ex = EXERCISES["sgd_step"]
    case = ex.cases(hidden=False)[0]
    seen = []

    def spy(params, grads, momentum_buffers, **options):
        seen.append(grads[0].clone())
        with torch.no_grad():
            params[0].add_(grads[0], alpha=-options["lr"])

    ex.run(spy, case)
    assert len(seen) == 50
    assert all(not torch.allclose(a, b) for a, b in zip(seen, seen[1:]))


# ---------------------------------------------------------------------------------------------
# Wrong answers


def mistake_message(exercise: str, key: str) -> str:
    messages = {m.message for m in EXERCISES[exercise].mistakes if m.key == key}
    assert len(messages) == 1, f"{exercise}: no single mistake with key {key!r}"
    return messages.pop()


@pytest.mark.parametrize(("exercise", "key", "impl", "loses"), CORPUS,
                         ids=[f"{e}-{k}-{f.__name__}" for e, k, f, _ in CORPUS])
def test_wrong_answers_lose_exactly_their_facets_and_are_named(exercise, key, impl, loses):
    message = mistake_message(exercise, key)
    kept = sum(points for facet, points in facets(exercise).items() if facet not in loses)
    for kwargs in RUNS:
        score, lost, report = scored(exercise, impl, **kwargs)
        assert lost == loses, f"{kwargs}: lost {sorted(lost)}, expected {sorted(loses)}\n{report}"
        assert score == kept, f"{kwargs}: {score} points, expected {kept}\n{report}"
        assert message in report, f"{kwargs}: diagnosed as\n{report}"


def test_every_mistake_in_the_table_has_a_corpus_entry():
    corpus = {(exercise, key) for exercise, key, _, _ in CORPUS}
    table = {(name, m.key) for name, ex in EXERCISES.items() for m in ex.mistakes}
    assert table == corpus
    keys = [(name, m.key) for name, ex in EXERCISES.items() for m in ex.mistakes]
    assert len(keys) == len(set(keys)), "a key appears twice in a table"


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_mistake_model_is_caught_and_names_itself(name):
    for mistake in EXERCISES[name].mistakes:
        score, lost, report = scored(name, mistake.impl)
        assert score < EXERCISES[name].points and mistake.message in report, \
            f"{mistake.key}:\n{report}"
        if mistake.facet is not None:  # charged once: only its own facet is lost
            assert lost == {mistake.facet}, f"{mistake.key}:\n{report}"


# ---------------------------------------------------------------------------------------------
# Dependency: SGD is checked on a correct sgd_step


@pytest.mark.parametrize("key", ["dampening_ignored", "maximize_ignored", "step_without_no_grad",
                                 "buffers_not_stored"])
def test_a_wrong_sgd_step_costs_nothing_to_an_sgd_built_on_it(key):
    wrong_step = next(f for e, k, f, _ in CORPUS if e == "sgd_step" and k == key)
    assert scored("sgd_step", wrong_step)[0] < 4
    sgd = sgd_on(wrong_step)
    for kwargs in RUNS:
        score, lost, report = scored("SGD", sgd, **kwargs)
        assert score == 6.0 and not lost, report
    if key != "step_without_no_grad":  # SGD.step runs it under no_grad: it works as written
        assert "your `sgd_step` fails" in report, report


def test_an_sgd_step_that_raises_costs_nothing_to_sgd():
    def sgd_step(params, grads, momentum_buffers, **options):
        raise RuntimeError("not finished")

    score, lost, report = scored("SGD", sgd_on(sgd_step))
    assert score == 6.0 and "your `sgd_step` fails" in report, report


def test_sgd_on_a_right_sgd_step_still_loses_its_own_mistakes():
    class OwnMistake(sgd_on(flawed_sgd_step())):
        def step(self, closure=None):
            super().step(closure)  # the closure's loss is dropped

    score, lost, report = scored("SGD", OwnMistake)
    assert lost == {"API contract"} and score == 4.5, report
    assert mistake_message("SGD", "closure_loss_dropped") in report


# ---------------------------------------------------------------------------------------------
# Forbidden calls


@pytest.mark.parametrize("path", FORBIDDEN)
def test_every_forbidden_path_resolves_and_trips(path):
    owner, attr, target = resolve(path)
    if isinstance(target, type):
        assert issubclass(target, torch.optim.Optimizer), path  # caught as a base class
        return
    with tripwires([path]) as calls:
        with pytest.raises(ForbiddenCallError):
            getattr(owner, attr)([], [], [])
    assert calls == [path]
    assert getattr(owner, attr) is target, f"{path} was not restored"


def functional_cheat(sgd):
    def sgd_step(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                 nesterov, maximize):
        with torch.no_grad():
            sgd(params, grads, momentum_buffers, lr=lr, momentum=momentum, dampening=dampening,
                weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
    return sgd_step


def wrapping_cheat(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                   nesterov, maximize):
    for p, g in zip(params, grads):
        p.grad = g
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening,
                                weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
    optimizer.step()


class SubclassCheat(torch.optim.SGD):
    pass


class WrapperCheat(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))
        self.inner = torch.optim.SGD(self.param_groups)

    def step(self, closure=None):
        return self.inner.step(closure)


import torch.optim.sgd as _sgd_module  # noqa: E402

CHEATS = [
    ("sgd_step", functional_cheat(lambda *a, **k: _sgd_module.sgd(*a, **k))),
    ("sgd_step", functional_cheat(lambda *a, **k: torch.optim._functional.sgd(*a, **k))),
    ("sgd_step", functional_cheat(lambda p, g, b, **k: _sgd_module._single_tensor_sgd(
        p, g, b, None, None, has_sparse_grad=False, **k))),
    ("sgd_step", wrapping_cheat),
    ("SGD", SubclassCheat),
    ("SGD", WrapperCheat),
]


@pytest.mark.parametrize(("name", "cheat"), CHEATS, ids=[f"{n}-{i}" for i, (n, _) in
                                                          enumerate(CHEATS)])
def test_answers_that_use_torch_sgd_are_refused(name, cheat):
    score, _, report = scored(name, cheat)
    assert score == 0 and ("off-limits" in report or "subclasses" in report), report


# ---------------------------------------------------------------------------------------------
# Bad answers get clear messages


def test_missing_answer_or_unknown_exercise():
    with pytest.raises(AssertionError, match="not defined as a function"):
        check("SGD", None)
    with pytest.raises(AssertionError, match="no exercise called 'Adam'"):
        check("Adam", SGDModel)


def test_unimplemented_stub_raises_not_implemented():
    def sgd_step(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                 nesterov, maximize):
        raise NotImplementedError()

    class SGD(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                     nesterov=False, *, maximize=False):
            raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check("sgd_step", sgd_step)
    with pytest.raises(NotImplementedError):
        check("SGD", SGD)


def test_a_function_instead_of_an_optimizer_class(answers):
    score, _, report = scored("SGD", answers["sgd_step"])
    assert score == 0 and "subclasses torch.optim.Optimizer" in report, report


def test_a_valueerror_worded_differently_scores_full_marks():
    # The case: a correct SGD whose ValueError text differs from PyTorch's scored 0/6.
    class Worded(SGDModel):
        def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                     nesterov=False, *, maximize=False):
            if nesterov and (momentum <= 0 or dampening != 0):
                raise ValueError("nesterov needs momentum")
            super().__init__(params, lr, momentum, dampening, weight_decay, nesterov,
                             maximize=maximize)

    assert_full_marks("SGD", Worded)


def test_a_wrong_exception_class_costs_the_api_contract_with_pytorchs_message_as_a_hint():
    class WrongClass(SGDModel):
        def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                     nesterov=False, *, maximize=False):
            if lr < 0:
                raise TypeError("lr must not be negative")
            super().__init__(params, lr, momentum, dampening, weight_decay, nesterov,
                             maximize=maximize)

    score, lost, report = scored("SGD", WrongClass)
    assert lost == {"API contract"} and score == 4.5, report
    assert "expected a ValueError, got TypeError" in report
    assert "Hint: PyTorch raises ValueError('Invalid learning rate: -0.1')" in report


def test_a_closure_loss_returned_as_a_float_is_reported():
    class ItemLoss(SGDModel):
        def step(self, closure=None):
            loss = super().step(closure)
            return None if loss is None else loss.item()

    score, lost, report = scored("SGD", ItemLoss)
    assert lost == {"API contract"} and "must return the loss that closure" in report, report


def test_state_looked_up_or_created_lazily_is_not_a_mistake():
    # self.state[p] creates an empty dict on lookup; PyTorch treats it as no state at all.
    class LooksUp(SGDModel):
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    _ = self.state[p]
            return super().step(closure)

    assert_full_marks("SGD", LooksUp, [{}])


# ---------------------------------------------------------------------------------------------
# What the sandboxed grader cannot do: run torch.optim.SGD next to the answer


def run_steps(optimizer, w, num_steps, start):
    for t in range(start, start + num_steps):
        optimizer.zero_grad()
        ((w - 1.0) ** 2 + torch.sin(w + 0.3 * t)).sum().backward()
        optimizer.step()


@pytest.mark.parametrize("direction", ["answer to torch", "torch to answer"])
def test_state_dicts_cross_over_both_ways(answers, direction):
    options = dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)
    first, second = ((answers["SGD"], torch.optim.SGD) if direction == "answer to torch"
                     else (torch.optim.SGD, answers["SGD"]))
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    optimizer = first([w], **options)
    run_steps(optimizer, w, 20, 0)
    saved = copy.deepcopy(optimizer.state_dict())
    w_saved = w.detach().clone()

    run_steps(optimizer, w, 20, 20)
    expected = w.detach().clone()

    with torch.no_grad():
        w.copy_(w_saved)
    resumed = second([w])  # the defaults only: load_state_dict brings the options back
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["momentum"] == 0.9
    run_steps(resumed, w, 20, 20)
    np.testing.assert_allclose(w.detach().numpy(), expected.numpy(), rtol=1e-12, atol=1e-14)


def test_reference_answer_keeps_the_dtype(answers):
    w = torch.ones(3, dtype=torch.float32)
    buffers = [None]
    answers["sgd_step"]([w], [torch.full((3,), 0.5)], buffers, lr=0.1, momentum=0.9,
                        dampening=0.0, weight_decay=0.1, nesterov=True, maximize=False)
    assert w.dtype == torch.float32 and buffers[0].dtype == torch.float32
