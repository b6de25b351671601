"""Chapter 1's checks: right answers pass, known wrong ones fail *and* are named, cheats are caught.

- the reference answers, taken from the solution notebook, pass the public and hidden checks for
  several seeds, and agree with PyTorch on the edge cases the exercise texts promise;
- every wrong implementation in ``tests/corpus/ch01_classification_losses.py`` loses exactly the
  facets it is registered with (so its partial score is exact), public and hidden, and the report
  names its ``Mistake.key``; every mistake in the grader's table has a corpus entry, and each
  mistake's own implementation is caught and named; right answers written in other ways score
  full marks; a wrong helper under a right ``cross_entropy`` or focal loss costs nothing there,
  and the report names the helper;
- every forbidden path resolves and trips, and answers that reach PyTorch's own function directly,
  by an alias, through a method or module form, or by a ``getattr`` string are refused;
- bad answers (a stub, a float, a tensor subclass, an unknown name, a non-callable) get clear
  messages;
- the focal-loss reference (torchvision is not installed) agrees with the paper's formula.
"""

from __future__ import annotations

import math
import re

import nbformat
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from corpus.ch01_classification_losses import CORPUS, DEPENDENT, LOSES, RIGHT
from grader.chapters.ch01_classification_losses import CHAPTER, EXERCISES, check, focal_reference
from grader.kit.exercise import ForbiddenCallError, check_exercise, resolve, tripwires
from nbutils import SOLUTIONS, facet_scores, solution_namespace

NOTEBOOK = SOLUTIONS / CHAPTER / f"{CHAPTER}.ipynb"
SEEDS = (0, 1, 2)  # diagnosis runs on every failing case: a few seeds keep the file fast


def quiet_check(name, impl, **kwargs):
    """The number of cases checked when every facet is earned, else 0 (report not printed,
    kept in ``quiet_check.report``). (nbutils.checks_passed looks EXERCISES up in the module
    of ``check``, which make_check defines in grader.kit.exercise.)"""
    result, quiet_check.report = check_exercise(EXERCISES[name], impl, **kwargs)
    return sum(f.cases for f in result.facets) if result.passed else 0


def refused(name, impl, **kwargs):
    """The report of an answer that must not earn every facet."""
    result, report = check_exercise(EXERCISES[name], impl, **kwargs)
    assert result.score < EXERCISES[name].points, report
    return report


@pytest.fixture(scope="module")
def answers():
    return solution_namespace(NOTEBOOK)


# ---------------------------------------------------------------------------------------------
# The reference answers and the notebook


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_answers_pass_public_and_hidden_checks(answers, name):
    assert quiet_check(name, answers[name]) >= 7, quiet_check.report
    for seed in SEEDS:
        assert quiet_check(name, answers[name], hidden=True, seed=seed) >= 12, \
            quiet_check.report


def test_check_prints_the_report_and_returns_the_score(answers, capsys):
    assert check("nll_loss", answers["nll_loss"]) == 3.0
    assert "nll_loss: 3 / 3 points" in capsys.readouterr().out
    wrong = dict((f.__name__, f) for _, _, f in CORPUS)["nll_without_weights"]
    assert check("nll_loss", wrong) == 2.25
    out = capsys.readouterr().out
    assert out.startswith("nll_loss: 2.25 / 3 points\n✗ class weights (0 / 0.75): Likely mistake")


def test_facets_are_the_ones_the_notebook_states():
    points = {name: [(f.name, f.points) for f in ex.facet_list()]
              for name, ex in EXERCISES.items()}
    assert points == {
        "log_softmax": [("normalization along dim", 1), ("stable at extreme logits", 1)],
        "nll_loss": [("negative log-likelihood", 1), ("class weights", 0.75),
                     ("ignore_index", 0.75), ("API contract", 0.5)],
        "cross_entropy": [("cross-entropy of logits", 1.5), ("class weights", 0.5),
                          ("ignore_index", 0.5), ("label smoothing", 1),
                          ("class probabilities", 1), ("API contract", 0.5)],
        "binary_cross_entropy_with_logits": [("loss value and gradient", 1),
                                             ("stable and exact", 0.5),
                                             ("weight and pos_weight", 1),
                                             ("API contract", 0.5)],
        "sigmoid_focal_loss": [("focal formula", 1), ("alpha weighting", 0.5),
                               ("reductions", 0.5)],
    }


def test_the_points_add_up_to_the_recap_table():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    recap = next(c for c in nb.cells if c.get("id") == "recap").source
    total = sum(ex.points for ex in EXERCISES.values())
    assert f"**{total:g}**" in recap
    for name, ex in EXERCISES.items():
        row = next(line for line in recap.splitlines() if f"`{name}(" in line)
        assert f"| {ex.points:g} |" in row, row


def test_cases_cover_what_the_exercise_texts_promise():
    for name, ex in EXERCISES.items():
        for hidden in (False, True):
            cases = ex.cases(hidden=hidden, seed=3)
            labels = " | ".join(c.label for c in cases)
            assert "float32" in labels and "extreme" in labels, (name, hidden)
            reductions = {c.args.get("reduction", "default") for c in cases}
            if name != "log_softmax":
                assert {"none", "sum", "default"} <= reductions, (name, reductions)
                assert reductions - {"none", "mean", "sum", "default"}, "no invalid reduction"
            if name in ("nll_loss", "cross_entropy"):
                for needle in ("weight", "ignore_index", "K-dimensional", "all targets ignored",
                               "one sample"):
                    assert needle in labels, (name, hidden, needle)
            if name == "cross_entropy":
                for needle in ("label smoothing", "class probabilities", "label_smoothing=",
                               "weight (", "target (6, 4) float64"):
                    assert needle in labels, (hidden, needle)
            if name in ("binary_cross_entropy_with_logits", "sigmoid_focal_loss"):
                zeros = any((np.asarray(c.args.get("input", c.args.get("inputs"))) == 0).any()
                            for c in cases)
                assert zeros, "a logit of exactly 0 (the gradient kink)"


def test_reference_answers_match_pytorch_on_the_promised_edge_cases(answers):
    x = torch.randn(3, 4, dtype=torch.float64)
    ignored = torch.full((3,), -100)
    assert math.isnan(answers["nll_loss"](x, ignored).item())
    assert answers["nll_loss"](x, ignored, reduction="sum").item() == 0.0
    for fn, args in [(answers["nll_loss"], (x, torch.tensor([0, 1, 2]))),
                     (answers["cross_entropy"], (x, torch.tensor([0, 1, 2]))),
                     (answers["binary_cross_entropy_with_logits"], (x, torch.rand(3, 4)))]:
        with pytest.raises(ValueError):
            fn(*args, reduction="avg")
    with pytest.raises(ValueError):
        answers["sigmoid_focal_loss"](x, torch.ones(3, 4), reduction="avg")
    with pytest.raises(ValueError):
        answers["binary_cross_entropy_with_logits"](torch.zeros(3, 1), torch.zeros(3))
    extreme = torch.tensor([[1e4, -1e4, 0.0]], dtype=torch.float32)
    assert torch.equal(answers["log_softmax"](extreme, -1), torch.log_softmax(extreme, -1))


# ---------------------------------------------------------------------------------------------
# Wrong answers: they fail, and the diagnosis names the mistake


def mistake_message(exercise: str, key: str) -> str:
    messages = {m.message for m in EXERCISES[exercise].mistakes if m.key == key}
    assert len(messages) == 1, f"{exercise}: no single mistake with key {key!r}"
    return messages.pop()


@pytest.mark.parametrize(("exercise", "key", "impl"), CORPUS,
                         ids=[f"{e}-{k}-{f.__name__}" for e, k, f in CORPUS])
def test_wrong_answers_lose_their_facets_only_and_are_diagnosed(exercise, key, impl):
    ex = EXERCISES[exercise]
    message = mistake_message(exercise, key)
    loses = LOSES[impl.__name__]
    want = ex.points - sum(f.points for f in ex.facet_list() if f.name in loses)
    for hidden, seed in [(False, None)] + [(True, s) for s in SEEDS[:2]]:
        score, facets, report = facet_scores(ex, impl, hidden=hidden, seed=seed)
        where = "public" if not hidden else f"hidden, seed {seed}"
        lost = {name for name, got in facets.items()
                if got < next(f.points for f in ex.facet_list() if f.name == name)}
        assert lost == loses, f"{where}: lost {lost}, expected {loses}\n{report}"
        assert score == pytest.approx(want), f"{where}: {score} / {ex.points}\n{report}"
        assert message in report, f"{where}: diagnosed as\n{report}"


@pytest.mark.parametrize(("exercise", "impl"), RIGHT, ids=[f.__name__ for _, f in RIGHT])
def test_right_answers_written_other_ways_score_full_marks(exercise, impl):
    for hidden, seed in [(False, None)] + [(True, s) for s in SEEDS]:
        score, _, report = facet_scores(EXERCISES[exercise], impl, hidden=hidden, seed=seed)
        assert score == EXERCISES[exercise].points, report


def test_every_exercise_has_three_right_answers_written_other_ways():
    counts = {name: sum(1 for e, _ in RIGHT if e == name) for name in EXERCISES}
    assert min(counts.values()) >= 3, counts


@pytest.mark.parametrize(("exercise", "base", "impl"), DEPENDENT,
                         ids=[f"{e}-on-{b}-{i}" for i, (e, b, _) in enumerate(DEPENDENT)])
def test_a_wrong_helper_costs_nothing_in_the_exercise_built_on_it(exercise, base, impl):
    ex = EXERCISES[exercise]
    assert base in ex.depends_on
    score, _, report = facet_scores(ex, impl, hidden=True, seed=0)
    assert score == ex.points, report
    # As written (on the wrong helper) it would lose points: the report says where they went.
    assert f"your `{base}`" in report or f"`{base}`" in report.split("Note:")[-1], report
    assert "fails (see its exercise)" in report, report


def test_dependents_are_checked_on_substitutes_that_agree_with_pytorch():
    x = torch.randn(4, 3, 2, dtype=torch.float64)
    t = torch.tensor([[0, 2], [1, -100], [2, 2], [0, 1]])
    subs = EXERCISES["cross_entropy"].substitutes()
    assert torch.allclose(subs["log_softmax"](x, 1), torch.log_softmax(x, 1))
    w = torch.rand(3, dtype=torch.float64)
    for reduction in ("none", "mean", "sum"):
        assert torch.allclose(subs["nll_loss"](x, t, w, reduction=reduction),
                              F.nll_loss(x, t, w, reduction=reduction))
    bce = EXERCISES["sigmoid_focal_loss"].substitutes()["binary_cross_entropy_with_logits"]
    y = torch.rand(4, 3, 2, dtype=torch.float64)
    assert torch.allclose(bce(x, y, reduction="none"),
                          F.binary_cross_entropy_with_logits(x, y, reduction="none"))


def test_a_mistake_is_named_whatever_case_shows_it_first():
    # label smoothing spread over C - 1 classes, ignored targets still counted in the mean:
    # named in the lost facet, however many cases of it fail
    by_name = {f.__name__: (e, k, f) for e, k, f in CORPUS}
    for name in ("cross_entropy_with_smoothing_c_minus_1", "nll_ignored_weights_counted"):
        exercise, key, impl = by_name[name]
        _, report = check_exercise(EXERCISES[exercise], impl, hidden=True, seed=1)
        assert f"Likely mistake: {mistake_message(exercise, key)}" in report, report


def test_the_simplest_failing_case_is_shown_not_the_overflow_one():
    # max not added back fails every case: the one shown is a small float64 one
    by_name = {f.__name__: f for _, _, f in CORPUS}
    _, report = check_exercise(EXERCISES["log_softmax"], by_name["log_softmax_forgot_max"],
                               hidden=True, seed=0)
    shown = report.split("failed on ", 1)[1].split("\n", 1)[0]
    assert "extreme" not in shown and "float32" not in shown and "overflow" not in shown, shown


def test_only_the_exception_type_is_graded_and_pytorchs_message_is_a_hint(answers):
    def other_message(input, target, weight=None, ignore_index=-100, reduction="mean"):
        if reduction not in ("none", "mean", "sum"):
            raise ValueError("no such reduction")
        return answers["nll_loss"](input, target, weight, ignore_index, reduction)

    assert quiet_check("nll_loss", other_message, hidden=True, seed=0) > 0

    def wrong_type(input, target, weight=None, ignore_index=-100, reduction="mean"):
        if reduction not in ("none", "mean", "sum"):
            raise KeyError(reduction)
        return answers["nll_loss"](input, target, weight, ignore_index, reduction)

    score, facets, report = facet_scores(EXERCISES["nll_loss"], wrong_type)
    assert score == 2.5 and facets["API contract"] == 0, report
    assert "expected a ValueError" in report and "PyTorch says: " in report, report


def test_every_mistake_in_the_table_has_a_corpus_entry():
    corpus = {(exercise, key) for exercise, key, _ in CORPUS}
    table = {(name, m.key) for name, ex in EXERCISES.items() for m in ex.mistakes}
    # cross_entropy shares nll_loss's mistakes: a learner's cross_entropy gets them from its
    # nll_loss, where they are charged (DEPENDENT); written inline they are still named, as
    # test_every_mistake_implementation_is_caught_and_names_itself shows.
    shared = {("cross_entropy", m.key) for m in EXERCISES["nll_loss"].mistakes}
    assert table - shared == corpus - shared and corpus <= table
    assert {("cross_entropy", "nll_loss")} == {(e, b) for e, b, _ in DEPENDENT
                                               if e == "cross_entropy" and b == "nll_loss"}


def test_mistake_keys_are_unique_per_exercise():
    for name, ex in EXERCISES.items():
        keys = [m.key for m in ex.mistakes]
        assert len(keys) == len(set(keys)), name


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_mistake_implementation_is_caught_and_names_itself(name):
    ex = EXERCISES[name]
    for mistake in ex.mistakes:
        for hidden, seed in [(False, None), (True, 0)]:
            score, report = check_exercise(ex, mistake.impl, hidden=hidden, seed=seed)
            assert not score.passed and mistake.message in report, \
                f"{mistake.key} ({seed}):\n{report}"
            if mistake.facet is not None:  # charged to its facet
                assert mistake.facet in {f.name for f in score.lost()}, report


# ---------------------------------------------------------------------------------------------
# Forbidden calls


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_forbidden_path_resolves_and_trips(name):
    for path in EXERCISES[name].forbidden:
        owner, attr, target = resolve(path)
        if isinstance(target, type):
            assert issubclass(target, nn.Module), path  # module forms, caught via what they call
            continue
        with tripwires([path]) as calls:
            with pytest.raises(ForbiddenCallError):
                getattr(owner, attr)(torch.zeros(2, 3), 1)
        assert calls == [path]
        assert getattr(owner, attr) is target, f"{path} was not restored"


def lsm(name):
    return lambda input, dim: getattr(torch, name)(input, dim)


CHEATS = {
    "log_softmax": [
        lambda input, dim: torch.log_softmax(input, dim),
        lambda input, dim: F.log_softmax(input, dim=dim),
        lambda input, dim: input.log_softmax(dim),
        lambda input, dim: torch.special.log_softmax(input, dim),
        lambda input, dim: nn.LogSoftmax(dim=dim)(input),
        lsm("log_" + "softmax"),
        lambda input, dim: torch.log(torch.softmax(input, dim)),
        lambda input, dim: input - torch.logsumexp(input, dim, keepdim=True),
        lambda input, dim: input - input.logsumexp(dim, keepdim=True),
    ],
    "nll_loss": [
        lambda input, target, weight=None, ignore_index=-100, reduction="mean": F.nll_loss(
            input, target, weight, ignore_index=ignore_index, reduction=reduction),
        lambda input, target, weight=None, ignore_index=-100, reduction="mean": nn.NLLLoss(
            weight, ignore_index=ignore_index, reduction=reduction)(input, target),
        lambda input, target, weight=None, ignore_index=-100, reduction="mean": getattr(
            F, "nll" + "_loss")(input, target, weight, ignore_index=ignore_index,
                                reduction=reduction),
        # the cross-entropy of log-probabilities is their NLL: still off-limits
        lambda input, target, weight=None, ignore_index=-100, reduction="mean": F.cross_entropy(
            input, target, weight, ignore_index=ignore_index, reduction=reduction),
    ],
    "cross_entropy": [
        lambda input, target, weight=None, ignore_index=-100, reduction="mean",
        label_smoothing=0.0: F.cross_entropy(input, target, weight, ignore_index=ignore_index,
                                             reduction=reduction, label_smoothing=label_smoothing),
        lambda input, target, weight=None, ignore_index=-100, reduction="mean",
        label_smoothing=0.0: nn.CrossEntropyLoss(weight, ignore_index=ignore_index,
                                                 reduction=reduction,
                                                 label_smoothing=label_smoothing)(input, target),
        lambda input, target, weight=None, ignore_index=-100, reduction="mean",
        label_smoothing=0.0: torch._C._nn.cross_entropy_loss(
            input, target, weight, {"none": 0, "mean": 1, "sum": 2}[reduction], ignore_index,
            label_smoothing),
        lambda input, target, weight=None, ignore_index=-100, reduction="mean",
        label_smoothing=0.0: F.nll_loss(input.log_softmax(1), target, weight,
                                        ignore_index=ignore_index, reduction=reduction),
    ],
    "binary_cross_entropy_with_logits": [
        lambda input, target, weight=None, reduction="mean", pos_weight=None:
            F.binary_cross_entropy_with_logits(input, target, weight, reduction=reduction,
                                               pos_weight=pos_weight),
        lambda input, target, weight=None, reduction="mean", pos_weight=None:
            torch.binary_cross_entropy_with_logits(input, target, weight, pos_weight,
                                                   {"none": 0, "mean": 1, "sum": 2}[reduction]),
        lambda input, target, weight=None, reduction="mean", pos_weight=None:
            nn.BCEWithLogitsLoss(weight, reduction=reduction, pos_weight=pos_weight)(input, target),
        lambda input, target, weight=None, reduction="mean", pos_weight=None:
            F.binary_cross_entropy(torch.sigmoid(input), target, weight, reduction=reduction),
    ],
    "sigmoid_focal_loss": [
        lambda inputs, targets, alpha=0.25, gamma=2, reduction="none": focal_via(
            F.binary_cross_entropy_with_logits, inputs, targets, alpha, gamma, reduction),
        lambda inputs, targets, alpha=0.25, gamma=2, reduction="none": focal_via(
            nn.BCEWithLogitsLoss(reduction="none"), inputs, targets, alpha, gamma, reduction),
    ],
}


def focal_via(bce, inputs, targets, alpha, gamma, reduction):
    """torchvision's formula on top of PyTorch's own BCE with logits."""
    p = torch.sigmoid(inputs)
    ce = bce(inputs, targets) if isinstance(bce, nn.Module) else bce(inputs, targets,
                                                                     reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@pytest.mark.parametrize(("name", "cheat"), [(n, c) for n, cs in CHEATS.items() for c in cs])
def test_answers_that_call_torch_are_refused(name, cheat):
    report = refused(name, cheat)
    assert "off-limits" in report and "✗ torch." in report, report


def test_the_refusal_names_the_call():
    assert re.search(r"torch\.nn\.functional\.log_softmax is off-limits", refused("log_softmax", lambda input, dim: F.log_softmax(input, dim)))
    assert re.search(r"torch\.Tensor\.log_softmax is off-limits", refused("log_softmax", lambda input, dim: input.log_softmax(dim)))


def test_subclassing_a_forbidden_module_is_refused():
    class MyLoss(nn.CrossEntropyLoss):
        pass

    assert re.search("subclasses torch.nn.CrossEntropyLoss", refused("cross_entropy", MyLoss))


def test_own_helpers_are_allowed(answers):
    # cross_entropy on the learner's log_softmax and nll_loss, focal on their BCE: not cheats.
    assert quiet_check("cross_entropy", answers["cross_entropy"]) > 0
    assert quiet_check("sigmoid_focal_loss", answers["sigmoid_focal_loss"]) > 0


# ---------------------------------------------------------------------------------------------
# Bad answers get clear messages


def test_unimplemented_stub_raises_not_implemented():
    def stub(input, target, weight=None, ignore_index=-100, reduction="mean"):
        # YOUR CODE HERE
        raise NotImplementedError()

    with pytest.raises(NotImplementedError, match="nll_loss is not implemented yet"):
        check("nll_loss", stub)


def test_unknown_exercise_or_missing_answer():
    with pytest.raises(AssertionError, match="no exercise called 'softmax'"):
        check("softmax", lambda input, dim: input)
    with pytest.raises(AssertionError, match="not defined as a function"):
        check("log_softmax", None)
    with pytest.raises(AssertionError, match="not defined as a function"):
        check("log_softmax", torch.zeros(3))


def test_answer_returning_a_float():
    def as_float(input, dim):
        m = input.amax(dim, keepdim=True)
        return float((input - m - (input - m).exp().sum(dim, keepdim=True).log()).sum())

    assert re.search("not connected to the inputs' autograd graph", refused("log_softmax", as_float))


def test_answer_returning_a_tensor_subclass(answers):
    class Agreeable(torch.Tensor):
        def __eq__(self, other):
            return True

    def sneaky(input, target, weight=None, reduction="mean", pos_weight=None):
        out = answers["binary_cross_entropy_with_logits"](input, target, weight, reduction,
                                                          pos_weight)
        return out.as_subclass(Agreeable)

    assert re.search("must be a torch.Tensor, got .*Agreeable", refused("binary_cross_entropy_with_logits", sneaky))


def test_answer_with_the_wrong_shape(answers):
    # Never reduces: the first public case, reduction 'mean', expects a 0-d result.
    def never_reduces(input, target, weight=None, ignore_index=-100, reduction="mean"):
        return answers["nll_loss"](input, target, weight, ignore_index, "none")

    assert re.search(r"out: shape \(3,\), expected \(\)", refused("nll_loss", never_reduces))


def test_answer_with_the_wrong_dtype(answers):
    def float64_always(input, dim):
        return answers["log_softmax"](input.double(), dim)

    assert re.search("dtype torch.float64, expected torch.float32", refused("log_softmax", float64_always))


def test_failure_messages_name_the_case():
    text = refused("cross_entropy", CORPUS_BY_KEY["cross_entropy", "smoothing_over_c_minus_1"])
    assert "cross_entropy failed on" in text and "label_smoothing=" in text
    assert "expected" in text and "Likely mistake" in text


CORPUS_BY_KEY = {(e, k): f for e, k, f in reversed(CORPUS)}


# ---------------------------------------------------------------------------------------------
# The focal-loss reference (torchvision.ops is not installed here)


def test_focal_reference_matches_the_papers_formula():
    x = torch.tensor([0.0, 2.0, -1.0, 3.0], dtype=torch.float64)
    t = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    p = 1 / (1 + torch.exp(-x))
    p_t = torch.where(t == 1, p, 1 - p)
    for alpha, gamma in [(0.25, 2), (0.5, 0), (-1, 1.5), (0.0, 3)]:
        alpha_t = torch.where(t == 1, torch.tensor(alpha), torch.tensor(1 - alpha))
        want = -(1 - p_t) ** gamma * torch.log(p_t)
        if alpha >= 0:
            want = alpha_t * want
        assert torch.allclose(focal_reference(x, t, alpha, gamma), want, rtol=1e-12, atol=0)
    assert torch.allclose(focal_reference(x, t, reduction="sum"), focal_reference(x, t).sum())
    with pytest.raises(ValueError, match="Invalid Value for arg 'reduction'"):
        focal_reference(x, t, reduction="avg")
    # at logit 0: p_t = 1/2, loss alpha_t / 4 * log 2
    got = focal_reference(torch.zeros(2), torch.tensor([1.0, 0.0]))
    assert torch.allclose(got, torch.tensor([0.25, 0.75]) * 0.25 * math.log(2))
