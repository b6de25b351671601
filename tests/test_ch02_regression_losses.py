"""Chapter 2's checks: partial credit by facet, a mistake charged once, the diagnosis named.

- the reference answers, taken from the solution notebook, and the corpus's right answers
  written in other legitimate ways score full marks, public and hidden, for several seeds;
- every wrong answer in ``tests/corpus/ch02_regression_losses.py`` loses exactly the facets the
  corpus lists (and keeps the others), with the exact partial score, and its report names its
  ``Mistake.key``; every mistake in the grader's table has a corpus entry and is itself caught;
- dependencies: ``smooth_l1_loss`` on a wrong ``l1_loss`` and ``huber_loss`` on a wrong
  ``smooth_l1_loss`` score in full, and the report names the base;
- the issue's misdiagnoses stay fixed: an ``l1_loss`` that only forgets the ``ValueError`` loses
  the API contract and is not told its reduction is ignored; ``log_target`` ignored is named;
- every forbidden path resolves and trips, and answers that reach PyTorch's own function by its
  name, an alias, an internal or the module form score 0 with the call named;
- bad answers (missing, wrong type, detached, wrong shape, wrong exception) get clear messages;
- the GIoU reference transcribed from torchvision agrees with hand computations, with the
  course's independent box helpers, and with torchvision itself when it is installed.
"""

from __future__ import annotations

import math

import nbformat
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from corpus.ch02_regression_losses import (
    CORPUS,
    CORRECT,
    HUBER_ON_SL1,
    LOSES,
    SL1_ON_L1,
    built_on,
)
from grader.chapters.ch02_regression_losses import (
    CHAPTER,
    EXERCISES,
    check,
    generalized_box_iou_loss_reference,
)
from grader.kit.exercise import ForbiddenCallError, resolve, tripwires
from lossopt_helpers import boxes
from nbutils import SOLUTIONS, facet_scores, nbgrader_meta, solution_namespace

NOTEBOOK = SOLUTIONS / CHAPTER / f"{CHAPTER}.ipynb"
SEEDS = (0, 1)  # hidden draws per answer: the corpus is large, and each draw checks ~45 cases
RUNS = [{}] + [{"hidden": True, "seed": seed} for seed in SEEDS]


def where(kwargs) -> str:
    return f"hidden, seed {kwargs['seed']}" if kwargs else "public"


@pytest.fixture(scope="module")
def answers():
    return solution_namespace(NOTEBOOK)


# ---------------------------------------------------------------------------------------------
# Right answers score full marks


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_answers_score_full_marks(answers, name):
    ex = EXERCISES[name]
    for kwargs in RUNS + [{"hidden": True, "seed": 2}]:
        score, _, report = facet_scores(ex, answers[name], **kwargs)
        assert score == ex.points, f"{where(kwargs)}:\n{report}"


def test_check_prints_the_report_and_returns_the_score(answers, capsys):
    assert check("huber_loss", answers["huber_loss"]) == 1.0
    out = capsys.readouterr().out
    assert "huber_loss: 1 / 1 points" in out and "✓ Huber formula (0.5 / 0.5)" in out
    wrong = next(fn for e, k, fn in CORPUS if k == "log_target_ignored")
    assert check("kl_div", wrong, hidden=True, seed=0) == 2.5
    out = capsys.readouterr().out
    assert out.startswith("kl_div: 2.5 / 3 points\n✗ log_target (0 / 0.5): Likely mistake:"), out


@pytest.mark.parametrize(("name", "impl"), CORRECT,
                         ids=[f"{n}-{fn.__name__}-{i}" for i, (n, fn) in enumerate(CORRECT)])
def test_other_correct_answers_score_full_marks(name, impl):
    # A check that refuses a right answer written differently is as wrong as one that passes a
    # wrong answer.
    ex = EXERCISES[name]
    for kwargs in RUNS:
        score, _, report = facet_scores(ex, impl, **kwargs)
        assert score == ex.points, f"{where(kwargs)}:\n{report}"


def test_every_exercise_has_three_other_correct_answers():
    counts = {name: sum(n == name for n, _ in CORRECT) for name in EXERCISES}
    assert min(counts.values()) >= 3, counts


def exercise_text(name: str) -> str:
    """The Markdown between the previous test cell and ``name``'s answer cell."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == name)
    text = []
    for cell in reversed(nb.cells[:index]):
        if nbgrader_meta(cell).get("grade"):
            break
        if cell.cell_type == "markdown":
            text.append(cell.source)
    return "\n".join(text)


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_exercise_text_states_each_facet_with_the_graders_points(name):
    text = exercise_text(name)
    for facet in EXERCISES[name].facet_list():
        unit = "point" if facet.points <= 1 else "points"
        assert f"**{facet.name}** ({facet.points:g} {unit})" in text, facet.name
    for base in EXERCISES[name].depends_on:
        assert f"checked with a correct\n  `{base}` in place of yours" in text or \
            f"checked with a correct `{base}` in\n  place of yours" in text, base


# ---------------------------------------------------------------------------------------------
# Wrong answers: the facets they lose, the exact partial score, the diagnosis


def mistake_message(exercise: str, key: str) -> str:
    messages = {m.message for m in EXERCISES[exercise].mistakes if m.key == key}
    assert len(messages) == 1, f"{exercise}: no single mistake with key {key!r}"
    return messages.pop()


@pytest.mark.parametrize(("exercise", "key", "impl"), CORPUS,
                         ids=[f"{e}-{k}-{f.__name__}" for e, k, f in CORPUS])
def test_wrong_answers_lose_their_facets_only_and_are_diagnosed(exercise, key, impl):
    ex = EXERCISES[exercise]
    loses = LOSES[impl.__name__]
    points = {f.name: f.points for f in ex.facet_list()}
    assert loses and loses <= points.keys(), f"{impl.__name__}: unknown facets {loses}"
    message = mistake_message(exercise, key)
    for kwargs in RUNS:
        score, by_facet, report = facet_scores(ex, impl, **kwargs)
        lost = {name for name, got in by_facet.items() if got < points[name]}
        assert lost == loses, f"{where(kwargs)}: lost {lost}, expected {set(loses)}\n{report}"
        assert score == pytest.approx(ex.points - sum(points[f] for f in loses)), report
        assert message in report, f"{where(kwargs)}: not diagnosed as {key}:\n{report}"


def test_every_mistake_in_the_table_has_a_corpus_entry():
    corpus = {(exercise, key) for exercise, key, _ in CORPUS}
    table = {(name, m.key) for name, ex in EXERCISES.items() for m in ex.mistakes}
    assert table == corpus


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_mistake_implementation_is_caught_and_names_itself(name):
    ex = EXERCISES[name]
    for mistake in ex.mistakes:
        score, _, report = facet_scores(ex, mistake.impl)
        assert score < ex.points and mistake.message in report, f"{mistake.key}:\n{report}"
        if mistake.facet is not None:  # charged to its facet, whichever cases show it
            lost = {f.name for f in ex.facet_list()} - {n for n, s in facet_scores(
                ex, mistake.impl)[1].items() if s > 0}
            assert mistake.facet in lost, f"{mistake.key}: {lost}\n{report}"


def test_l1_without_the_valueerror_is_not_told_its_reduction_is_ignored():
    # The misdiagnosis: 'none' and 'sum' right, an unknown reduction gives the mean.
    impl = next(fn for e, k, fn in CORPUS if e == "l1_loss" and k == "invalid_reduction_accepted")
    score, by_facet, report = facet_scores(EXERCISES["l1_loss"], impl, hidden=True, seed=0)
    assert score == 0.75 and by_facet["API contract"] == 0 and by_facet["reductions"] == 0.25
    assert mistake_message("l1_loss", "reduction_ignored") not in report, report
    assert "PyTorch raises ValueError: average is not a valid value for reduction" in report


def test_the_exception_type_counts_not_its_text():
    def l1(input, target, reduction="mean"):
        loss = (input - target).abs()
        if reduction not in ("none", "mean", "sum"):
            raise ValueError("please pick none, mean or sum")  # not torch's words: fine
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]

    assert facet_scores(EXERCISES["l1_loss"], l1, hidden=True, seed=0)[0] == 1.0


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_reduced_cases_keep_formula_and_reduction_mistakes_apart(name):
    # A wrong formula that scales every term (x2, 1/delta) must never look like a reduction slip
    # (x n, x row size) on the same case: sizes 2, 3 and 4 stay out of 'mean'/'sum' cases.
    ex = EXERCISES[name]
    for seed in range(20):
        for case in ex.cases(hidden=True, seed=seed):
            kwargs, tensors = case.args["kwargs"], case.args["tensors"]
            if kwargs.get("reduction", "mean") == "none" or ex.facet_of(case) == "API contract":
                continue
            shape = np.broadcast_shapes(*(t.shape for t in tensors.values()))
            n = int(np.prod(shape))
            if n > 1:
                assert n not in (2, 3, 4) and n // shape[0] not in (2, 3, 4), case.label


# ---------------------------------------------------------------------------------------------
# A mistake is charged once: dependents are checked on a correct base


def test_smooth_l1_on_a_wrong_l1_loss_scores_in_full():
    # The learner's l1_loss returns the mean for 'sum'; their smooth_l1_loss uses it.
    impl = built_on(SL1_ON_L1.replace("return loss.sum()", "return loss.mean()"),
                    "smooth_l1_loss")
    base = facet_scores(EXERCISES["l1_loss"], impl.__globals__["l1_loss"])[0]
    assert base < 1
    for kwargs in RUNS:
        score, _, report = facet_scores(EXERCISES["smooth_l1_loss"], impl, **kwargs)
        assert score == 2.0, report
        assert "your `l1_loss` fails (see its exercise)" in report, report


@pytest.mark.parametrize("bug", [
    ("0.5 * z**2 / beta", "z**2 / beta"),  # a formula slip
    ("    if beta < 0:", "    raise RuntimeError('oops')\n    if beta < 0:"),  # it always raises
    ("    if beta < 0:", "    raise NotImplementedError()\n    if beta < 0:"),  # still a stub
])
def test_huber_on_a_wrong_smooth_l1_scores_in_full(bug):
    impl = built_on(HUBER_ON_SL1.replace(*bug), "huber_loss")
    base = impl.__globals__["smooth_l1_loss"]
    if "NotImplementedError" in bug[1]:  # checked on its own, a stub says it is not implemented
        with pytest.raises(NotImplementedError):
            facet_scores(EXERCISES["smooth_l1_loss"], base)
    else:
        assert facet_scores(EXERCISES["smooth_l1_loss"], base)[0] < 2
    for kwargs in RUNS:
        score, _, report = facet_scores(EXERCISES["huber_loss"], impl, **kwargs)
        assert score == 1.0, report
        assert "your `smooth_l1_loss` fails (see its exercise)" in report, report


def test_a_dependent_keeps_its_own_mistake():
    # Huber written as Smooth L1 (the factor delta forgotten), on a wrong smooth_l1_loss: the
    # base is replaced by a correct one, and the missing factor is still Huber's own mistake.
    source = HUBER_ON_SL1.replace("0.5 * z**2 / beta", "z**2 / beta").replace(
        "return delta * smooth_l1_loss", "return smooth_l1_loss")
    impl = built_on(source, "huber_loss")
    score, by_facet, report = facet_scores(EXERCISES["huber_loss"], impl, hidden=True, seed=0)
    assert score == 0.5 and by_facet["Huber formula"] == 0, report
    assert mistake_message("huber_loss", "huber_as_smooth_l1") in report


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
                getattr(owner, attr)(torch.zeros(2), torch.zeros(2))
        assert calls == [path]
        assert getattr(owner, attr) is target, f"{path} was not restored"


early_mse = F.mse_loss  # bound before the tripwires are set: still caught through torch._C._nn
CHEATS = {
    "mse_loss": [
        lambda input, target, reduction="mean": F.mse_loss(input, target, reduction=reduction),
        lambda input, target, reduction="mean": torch._C._nn.mse_loss(
            input, target, {"none": 0, "mean": 1, "sum": 2}[reduction]),
        lambda input, target, reduction="mean": nn.MSELoss(reduction=reduction)(input, target),
        lambda input, target, reduction="mean": early_mse(input, target, reduction=reduction),
    ],
    "l1_loss": [
        lambda input, target, reduction="mean": nn.L1Loss(reduction=reduction)(input, target),
        lambda input, target, reduction="mean": F.smooth_l1_loss(input, target, reduction=reduction,
                                                                 beta=0.0),
    ],
    "smooth_l1_loss": [
        lambda input, target, reduction="mean", beta=1.0: nn.SmoothL1Loss(
            reduction=reduction, beta=beta)(input, target),
        lambda input, target, reduction="mean", beta=1.0: F.huber_loss(
            input, target, reduction=reduction, delta=beta) / beta,
    ],
    "huber_loss": [
        lambda input, target, reduction="mean", delta=1.0: nn.HuberLoss(
            reduction=reduction, delta=delta)(input, target),
        lambda input, target, reduction="mean", delta=1.0: delta * F.smooth_l1_loss(
            input, target, reduction=reduction, beta=delta),
    ],
    "kl_div": [
        lambda input, target, reduction="mean", log_target=False: F.kl_div(
            input, target, reduction=reduction, log_target=log_target),
        lambda input, target, reduction="mean", log_target=False: torch.kl_div(input, target),
        lambda input, target, reduction="mean", log_target=False: nn.KLDivLoss(
            reduction=reduction, log_target=log_target)(input, target),
        lambda input, target, reduction="mean", log_target=False:
            torch.distributions.kl_divergence(
                torch.distributions.Categorical(probs=target),
                torch.distributions.Categorical(logits=input)).sum(),
    ],
    "generalized_box_iou_loss": [
        lambda boxes1, boxes2, reduction="none", eps=1e-7:
            1 - boxes.generalized_box_iou(boxes1, boxes2, eps),
        lambda boxes1, boxes2, reduction="none", eps=1e-7:
            1 - boxes.box_iou(boxes1, boxes2, eps),
    ],
}


@pytest.mark.parametrize(("name", "cheat"), [(n, c) for n, cs in CHEATS.items() for c in cs])
def test_answers_that_call_torch_score_zero(name, cheat):
    score, _, report = facet_scores(EXERCISES[name], cheat)
    assert score == 0 and "off-limits" in report, report


# ---------------------------------------------------------------------------------------------
# Bad answers get clear messages


def test_missing_answer_or_unknown_exercise():
    with pytest.raises(AssertionError, match="not defined as a function"):
        check("mse_loss", None)
    with pytest.raises(AssertionError, match="no exercise called 'mse'"):
        check("mse", lambda input, target: input)


def test_unimplemented_stub_raises_not_implemented():
    def stub(input, target, reduction="mean"):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError, match="mse_loss is not implemented yet"):
        check("mse_loss", stub)


def report_of(name, impl):
    score, _, report = facet_scores(EXERCISES[name], impl)
    assert score < EXERCISES[name].points, report
    return report


def test_answer_that_is_not_a_tensor():
    assert "must be a torch.Tensor, got numpy.ndarray" in report_of(
        "mse_loss", lambda input, target, reduction="mean":
        ((input - target) ** 2).detach().numpy().mean(keepdims=True))


def test_answer_cut_from_the_graph():
    assert "not connected to the inputs' autograd graph" in report_of(
        "l1_loss", lambda input, target, reduction="mean":
        torch.tensor((input - target).abs().mean().item(), dtype=input.dtype))


def test_answer_with_the_wrong_shape():
    # Forgets to reduce: the simplest failing case, 0-d... then (4, 3) 'mean', expects 0-d.
    report = report_of("huber_loss", lambda input, target, reduction="mean", delta=1.0:
                       0.5 * (input - target) ** 2)
    assert "out: shape (" in report and "expected ()" in report, report


def test_answer_raising_the_wrong_exception_loses_the_api_contract_only():
    def l1(input, target, reduction="mean"):
        loss = (input - target).abs()
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]  # KeyError

    score, by_facet, report = facet_scores(EXERCISES["l1_loss"], l1, hidden=True, seed=0)
    assert score == 0.75 and by_facet["API contract"] == 0, report
    assert "expected a ValueError, got KeyError" in report
    assert mistake_message("l1_loss", "invalid_reduction_accepted") in report


def test_float32_answer_returned_as_float64_is_reported_as_dtype():
    def mse(input, target, reduction="mean"):
        loss = (input.double() - target.double()) ** 2
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]

    assert "dtype torch.float64, expected torch.float32" in report_of("mse_loss", mse)


# ---------------------------------------------------------------------------------------------
# The GIoU reference


def test_giou_reference_by_hand():
    b1 = torch.tensor([[0.0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 4, 4], [1, 1, 1, 1]],
                      dtype=torch.float64)
    b2 = torch.tensor([[1.0, 1, 3, 3], [2, 0, 3, 1], [1, 1, 2, 2], [1, 1, 1, 1]],
                      dtype=torch.float64)
    got = generalized_box_iou_loss_reference(b1, b2)
    # overlap: 1 - 1/7 + 2/9; apart: 1 + 1/3; nested: 1 - 1/16; two zero-area boxes: 1, not nan
    want = torch.tensor([1 - 1 / 7 + 2 / 9, 1 + 1 / 3, 1 - 1 / 16, 1.0], dtype=torch.float64)
    assert torch.allclose(got, want, rtol=1e-6)
    assert generalized_box_iou_loss_reference(b1[:0], b2[:0], reduction="mean").item() == 0.0
    with pytest.raises(ValueError):
        generalized_box_iou_loss_reference(b1, b2, reduction="average")
    ints = generalized_box_iou_loss_reference(b1.long(), b2.long())
    assert ints.dtype == torch.float32


def test_giou_reference_agrees_with_the_box_helpers():
    generator = torch.Generator().manual_seed(0)
    b1 = boxes.random_boxes(200, generator=generator, dtype=torch.float64)
    b2 = boxes.random_boxes(200, generator=generator, dtype=torch.float64)
    want = 1 - boxes.generalized_box_iou(b1, b2)
    assert torch.allclose(generalized_box_iou_loss_reference(b1, b2), want, rtol=1e-12)


def test_giou_reference_agrees_with_torchvision():
    ops = pytest.importorskip("torchvision.ops")
    generator = torch.Generator().manual_seed(1)
    b1 = boxes.random_boxes(100, generator=generator, dtype=torch.float64)
    b2 = boxes.random_boxes(100, generator=generator, dtype=torch.float64)
    for reduction in ("none", "mean", "sum"):
        assert torch.allclose(generalized_box_iou_loss_reference(b1, b2, reduction),
                              ops.generalized_box_iou_loss(b1, b2, reduction), rtol=1e-12)


def test_kl_batchmean_of_the_reference_is_the_true_kl(answers):
    # What the chapter teaches, on the learner-facing answer: batchmean == KL averaged per row.
    logits = torch.randn(5, 7, dtype=torch.float64)
    p = torch.softmax(torch.randn(5, 7, dtype=torch.float64), dim=1)
    true_kl = (p * (p.log() - logits.log_softmax(1))).sum(1).mean()
    got = answers["kl_div"](logits.log_softmax(1), p, reduction="batchmean")
    assert math.isclose(got.item(), true_kl.item(), rel_tol=1e-12)
