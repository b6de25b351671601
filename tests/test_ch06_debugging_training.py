"""Chapter 6's checks: right answers score full marks, wrong ones lose exactly their facets and
are named, cheats are caught, and the torch 2.13 facts the exercise text states are true.

- the reference answers, taken from the solution notebook, and correct answers written in other
  ways (``RIGHT`` in ``tests/corpus/ch06_debugging_training.py``) score full marks on the public
  and hidden checks;
- every wrong implementation of the corpus loses exactly the facets it is registered with, with
  the diagnosis of its ``Mistake.key`` in the report; every mistake of the grader's tables has a
  corpus entry, and every mistake model is caught, charged to its own facet only;
- a wrong ``get_total_norm`` costs nothing to a ``clip_grad_norm_`` built on it;
- PyTorch's own functions, under any of the forbidden names, and the zoo's reference loops score 0;
- the cases' references say what the exercise text says (torch's gradcheck verdicts on the planted
  bugs, the 1e-6 at equality, empty inputs), and the hidden cases are plain data drawn from the
  seed only.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from corpus.ch06_debugging_training import CORPUS, LOSES, RIGHT
from grader.chapters.ch06_debugging_training import (CHAPTER, EXERCISES, FUNCTIONS, check,
                                                     _torch_gradcheck)
from grader.kit.exercise import ForbiddenCallError, capture, resolve, tripwires
from lossopt_helpers import bugzoo
from lossopt_helpers.bugzoo import Bug
from nbutils import SOLUTIONS, score_and_lost, solution_namespace

NOTEBOOK = SOLUTIONS / CHAPTER / f"{CHAPTER}.ipynb"
_REFERENCE_1 = bugzoo.reference_1


def scored(name, impl, **kwargs):
    """(score, facets lost, report) of ``impl`` checked as a test cell checks it."""
    return score_and_lost(EXERCISES[name], impl, **kwargs)


@pytest.fixture(scope="module")
def answers():
    return solution_namespace(NOTEBOOK)


# ---------------------------------------------------------------------------------------------
# Right answers


def test_points_are_as_announced():
    assert {n: ex.points for n, ex in EXERCISES.items()} == {
        "get_total_norm": 2, "clip_grad_norm_": 3, "clip_grad_value_": 2, "gradcheck": 3,
        "initial_loss_check": 1, "overfit_one_batch": 1, "batch_dependence": 2, "grad_stats": 1,
        "zoo_1": 2, "zoo_2": 2, "zoo_3": 2, "zoo_4": 2}
    assert sum(ex.points for ex in EXERCISES.values()) == 23  # the brief's "29" mis-added 15 + 8


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_answers_score_full_marks(answers, name):
    points = EXERCISES[name].points
    for seed in (0, 1):
        score, _, report = scored(name, answers[name], hidden=True, seed=seed)
        assert score == points, report
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert check(name, answers[name]) == points  # what a test cell leaves: the score
    assert out.getvalue().startswith(f"{name}: {points:g} / {points:g} points")


@pytest.mark.parametrize(("name", "impl"), RIGHT, ids=[fn.__name__ for _, fn in RIGHT])
def test_other_correct_answers_score_full_marks(name, impl):
    score, _, report = scored(name, impl, hidden=True, seed=3)
    assert score == EXERCISES[name].points, report


# ---------------------------------------------------------------------------------------------
# Wrong answers: each loses exactly its facets, with its diagnosis


@pytest.mark.parametrize(("name", "key", "impl"), CORPUS, ids=[fn.__name__ for _, _, fn in CORPUS])
def test_corpus_entry_loses_exactly_its_facets_and_is_named(name, key, impl):
    mistake = next(m for m in EXERCISES[name].mistakes if m.key == key)
    score, lost, report = scored(name, impl, hidden=True, seed=0)
    assert lost == LOSES[impl.__name__], report
    assert f"Likely mistake: {mistake.message}" in report, report


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_mistake_has_a_corpus_entry(name):
    keys = {k for e, k, _ in CORPUS if e == name}
    assert {m.key for m in EXERCISES[name].mistakes} <= keys


@pytest.mark.parametrize("name", [n for n in EXERCISES if not n.startswith("zoo")])
def test_every_mistake_model_is_caught_and_charged_to_its_facet(name):
    for mistake in EXERCISES[name].mistakes:
        score, lost, report = scored(name, mistake.impl, hidden=True, seed=1)
        assert score < EXERCISES[name].points and mistake.message in report, \
            f"{mistake.key}:\n{report}"
        assert lost == {mistake.facet}, f"{mistake.key}:\n{report}"


@pytest.mark.parametrize("name", ["zoo_1", "zoo_2", "zoo_3", "zoo_4"])
def test_every_hiding_repair_model_fails_on_the_hidden_surface_too(name):
    # The public case and the hidden ones are different surfaces (data, sizes, lr, seeds):
    # a repair that hides the bug fails each of them, not just the one it was tuned on.
    ex = EXERCISES[name]
    cases = [c for c in ex.cases(hidden=False) + ex.cases(hidden=True, seed=2)
             if c.facet == "repaired loop"]
    for mistake in (m for m in ex.mistakes if m.facet == "repaired loop"):
        for case in cases:
            verdict = ex.judge(case, capture(ex, mistake.impl, case, forbid=False))
            assert not verdict.ok and verdict.mistake == mistake.key, (mistake.key, case.label)


LEARNER_CELLS = """
def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    return sum((t.norm(norm_type) for t in tensors), torch.tensor(0.0))  # summed norms

def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    parameters = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    if grads:
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef)
    return total
"""


def test_a_wrong_get_total_norm_costs_nothing_to_clip_grad_norm_():
    namespace = {"torch": torch}
    exec(LEARNER_CELLS, namespace)  # as notebook cells define them: globals of one namespace
    assert scored("get_total_norm", namespace["get_total_norm"], hidden=True, seed=0)[0] < 2
    score, _, report = scored("clip_grad_norm_", namespace["clip_grad_norm_"], hidden=True,
                              seed=0)
    assert score == 3, report
    assert "your `get_total_norm` fails" in report, report


# ---------------------------------------------------------------------------------------------
# Forbidden calls and cheats


@pytest.mark.parametrize("path", sorted({p for ex in EXERCISES.values() for p in ex.forbidden}))
def test_every_forbidden_path_resolves_and_trips(path):
    owner, attr, target = resolve(path)
    with tripwires([path]) as calls:
        with pytest.raises(ForbiddenCallError):
            getattr(owner, attr)()
    assert calls == [path] and getattr(owner, attr) is target


CHEATS = [
    ("get_total_norm", lambda tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None:
        torch.nn.utils.get_total_norm(tensors, norm_type, error_if_nonfinite)),
    ("clip_grad_norm_", torch.nn.utils.clip_grad_norm_),
    ("clip_grad_value_", torch.nn.utils.clip_grad_value_),
    ("gradcheck", _torch_gradcheck),
    ("gradcheck", lambda func, inputs, **kw: torch.autograd.gradcheck(func, inputs, **kw)),
    ("zoo_1", lambda: (Bug.MISSING_ZERO_GRAD, bugzoo.reference_1)),
    # Taken before the check starts, so that no tripwire sees the call: recognised by its code.
    ("zoo_1", lambda: (Bug.MISSING_ZERO_GRAD, _REFERENCE_1)),
    ("zoo_3", lambda: (Bug.EVAL_MODE_WHILE_TRAINING,
                       lambda X, y, **hyper: bugzoo.reference_3(X, y, **hyper))),
]


@pytest.mark.parametrize(("name", "cheat"), CHEATS, ids=[f"{n}-{i}" for i, (n, _) in
                                                          enumerate(CHEATS)])
def test_answers_that_call_what_they_reimplement_score_0(name, cheat):
    score, _, report = scored(name, cheat, hidden=True, seed=0)
    assert score == 0 and "off-limits" in report, report


def test_stubs_raise_not_implemented_and_nothing_else():
    def zoo_1():
        raise NotImplementedError()

    def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
        raise NotImplementedError()

    for name, stub in (("zoo_1", zoo_1), ("gradcheck", gradcheck)):
        with pytest.raises(NotImplementedError):
            check(name, stub)


def test_a_bug_named_in_words_is_refused_with_a_clear_message():
    score, lost, report = scored("zoo_1", lambda: ("MISSING_ZERO_GRAD", bugzoo.BUGGY["zoo_1"]))
    assert "bug named" in lost and "member of Bug" in report, report


# ---------------------------------------------------------------------------------------------
# The cases mean what the exercise text says (torch 2.13)


def test_torch_facts_stated_in_the_exercise_text():
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    for total in (torch.nn.utils.clip_grad_norm_([p], 1.0), torch.nn.utils.get_total_norm([])):
        assert total.dtype == torch.float32 and total.item() == 0.0  # float32, for float64 too
    with pytest.raises(RuntimeError):
        torch.nn.utils.get_total_norm([torch.empty(0)], math.inf)
    for no_grads in ([], [p]):
        with pytest.raises(RuntimeError):
            torch.nn.utils.clip_grad_value_(no_grads, 1.0)
    with pytest.raises(RuntimeError):
        torch.nn.utils.get_total_norm([torch.ones(2), None])
    # Scaled at equality, by max/(total + 1e-6) ...
    p.grad = torch.tensor([0.0, 3.0, 4.0], dtype=torch.float64)
    torch.nn.utils.clip_grad_norm_([p], 5.0)
    assert torch.equal(p.grad, torch.tensor([0.0, 3.0, 4.0], dtype=torch.float64) * 5 / (5 + 1e-6))
    # In float32 the 1e-6 itself is lost from 32 on (total + 1e-6 == total), not below ...
    assert (torch.tensor(32.0) + 1e-6).item() == 32.0
    assert (torch.tensor(31.75) + 1e-6).item() != 31.75
    # ... but max_norm / tensor is max_norm * (1 / tensor): the coefficient can still round
    # below 1, so a float32 gradient at equality may change in its last bit, or not.
    for total, unchanged in ((40.0, True), (62.875, False), (31.75, True), (16.0, False)):
        q = torch.zeros(1, requires_grad=True)
        q.grad = torch.tensor([total])
        torch.nn.utils.clip_grad_norm_([q], total)
        assert (q.grad.item() == total) is unchanged, total


def test_gradchecks_verdicts_on_the_planted_bugs_are_torchs():
    ex = EXERCISES["gradcheck"]
    case = next(c for c in ex.cases(hidden=True, seed=0) if c.facet == "verdicts")
    got = ex.reference(case)
    verdicts = {k.removeprefix("verdict on "): str(v) for k, v in got.items()}
    for label, verdict in verdicts.items():
        planted = any(w in label for w in ("missing", "transposed", "averaged", "flipped",
                                           "ignored)", "wrong")) \
            and "does not require grad" not in label  # b's gradient is then never checked
        assert verdict == ("False" if planted else "True"), (label, verdict)
    # torch 2.13 reduces an unreduced broadcast gradient itself: that Function passes.
    assert verdicts["a + b broadcast (unreduced gradient)"] == "True"


def test_a_copy_perturbed_and_a_float32_check_are_told_apart_on_the_public_case():
    # (forward differences and an absolute tolerance only show on the hidden cases)
    ex = EXERCISES["gradcheck"]
    case = ex.cases(hidden=False)[0]
    patterns = {m.key: tuple(map(str, capture(ex, m.impl, case, forbid=False).values()))
                for m in ex.mistakes if m.facet == "verdicts"}
    expected = tuple(map(str, ex.reference(case).values()))
    assert len({patterns["perturbed_a_copy"], patterns["float32_check"], expected}) == 3


def test_the_silent_bugs_measured_in_the_chapter():
    # softmax before cross_entropy: the loss cannot go below log(1 + 9/e) for 10 classes.
    logits = torch.full((1, 10), -1e4)
    logits[0, 3] = 1e4
    floor = F.cross_entropy(F.softmax(logits, dim=1), torch.tensor([3])).item()
    assert abs(floor - math.log(1 + 9 / math.e)) < 1e-6 and abs(floor - 1.461) < 1e-3
    # MSE between (N, 1) and (N,): a warning, and the mean of an (N, N) difference.
    pred, target = torch.arange(4.0).reshape(4, 1), torch.arange(4.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrong = F.mse_loss(pred, target)
    assert any("broadcast" in str(w.message) for w in caught)
    assert wrong.item() == ((pred - target) ** 2).mean().item() != 0.0


def test_every_gradcheck_function_named_in_the_cases_exists():
    ex = EXERCISES["gradcheck"]
    for case in ex.cases(hidden=False) + ex.cases(hidden=True, seed=0):
        assert all(item[1] in FUNCTIONS for item in case.args["items"])
