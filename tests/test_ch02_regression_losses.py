"""Chapter 2's checks: right answers pass, known wrong ones fail *and* are named, cheats are caught.

- the reference answers, taken from the solution notebook, pass the public and hidden checks for
  several seeds;
- every wrong implementation in ``tests/corpus/ch02_regression_losses.py`` fails, public and
  hidden, with the diagnosis of its ``Mistake.key``; every mistake in the grader's table has a
  corpus entry and is itself caught;
- every forbidden path resolves and trips, and answers that reach PyTorch's own function by its
  name, an alias, an internal or the module form are refused;
- bad answers (missing, wrong type, detached, wrong shape, wrong exception) get clear messages;
- the GIoU reference transcribed from torchvision agrees with hand computations, with the
  course's independent box helpers, and with torchvision itself when it is installed.
"""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from corpus.ch02_regression_losses import CORPUS
from grader.chapters.ch02_regression_losses import (
    CHAPTER,
    EXERCISES,
    check,
    generalized_box_iou_loss_reference,
)
from grader.kit.exercise import ForbiddenCallError, resolve, tripwires
from lossopt_helpers import boxes
from nbutils import SOLUTIONS, checks_passed, solution_namespace

NOTEBOOK = SOLUTIONS / CHAPTER / f"{CHAPTER}.ipynb"
SEEDS = (0, 1, 2, 3, 4)


def quiet_check(name, impl, **kwargs):
    """``check`` without its "all N checks passed" line; returns N."""
    return checks_passed(check, name, impl, **kwargs)


@pytest.fixture(scope="module")
def answers():
    return solution_namespace(NOTEBOOK)


# ---------------------------------------------------------------------------------------------
# The reference answers and the notebook


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_answers_pass_public_and_hidden_checks(answers, name):
    assert quiet_check(name, answers[name]) >= 8
    for seed in SEEDS:
        assert quiet_check(name, answers[name], hidden=True, seed=seed) >= 20


def reduced(loss, reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction)
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def sl1_clamped(input, target, reduction="mean", beta=1.0):
    # 0.5 q^2 / beta + (z - q) with q = min(z, beta): the same function, written without where.
    if beta < 0:
        raise RuntimeError("negative beta")
    z = (input - target).abs()
    if beta == 0:
        return reduced(z, reduction)
    q = z.clamp(max=beta)
    return reduced(0.5 * q * q / beta + (z - q), reduction)


def sl1_inclusive(input, target, reduction="mean", beta=1.0):
    # Which branch gets |x - y| == beta does not matter: value and slope agree there.
    if beta < 0:
        raise RuntimeError("negative beta")
    z = (input - target).abs()
    if beta == 0:
        return reduced(z, reduction)
    return reduced(torch.where(z <= beta, 0.5 * z**2 / beta, z - 0.5 * beta), reduction)


def huber_clamped(input, target, reduction="mean", delta=1.0):
    if delta <= 0:
        raise RuntimeError("non-positive delta")
    z = (input - target).abs()
    q = torch.minimum(z, torch.full_like(z, delta))
    return reduced(0.5 * q**2 + delta * (z - q), reduction)


def kl_masked(input, target, reduction="mean", log_target=False):
    if log_target:
        loss = torch.exp(target) * (target - input)
    else:
        loss = torch.where(target > 0, target * (torch.log(target) - input),
                           torch.zeros_like(target))
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.dim() else 1)
    return reduced(loss, reduction)


def giou_corners(boxes1, boxes2, reduction="none", eps=1e-7):
    # Corner tensors and prod(), as detection codebases write it.
    if not boxes1.is_floating_point():
        boxes1, boxes2 = boxes1.float(), boxes2.float()
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    area = lambda b: (b[..., 2:] - b[..., :2]).prod(dim=-1)  # noqa: E731
    union = area(boxes1) + area(boxes2) - inter
    lt_c = torch.min(boxes1[..., :2], boxes2[..., :2])
    rb_c = torch.max(boxes1[..., 2:], boxes2[..., 2:])
    area_c = (rb_c - lt_c).prod(dim=-1)
    loss = 1 - (inter / (union + eps) - (area_c - union) / (area_c + eps))
    if reduction == "mean" and loss.numel() == 0:
        return 0.0 * loss.sum()
    return reduced(loss, reduction)


OTHER_CORRECT_ANSWERS = [
    ("mse_loss", lambda input, target, reduction="mean":
        reduced(torch.square(input - target), reduction)),
    ("l1_loss", lambda input, target, reduction="mean":
        reduced(torch.maximum(input - target, target - input), reduction)),
    ("smooth_l1_loss", sl1_clamped),
    ("smooth_l1_loss", sl1_inclusive),
    ("huber_loss", huber_clamped),
    ("kl_div", kl_masked),
    ("generalized_box_iou_loss", giou_corners),
]


@pytest.mark.parametrize(("name", "impl"), OTHER_CORRECT_ANSWERS,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(OTHER_CORRECT_ANSWERS)])
def test_other_correct_answers_pass(name, impl):
    # A check that refuses a right answer written differently is as wrong as one that passes a
    # wrong answer.
    quiet_check(name, impl)
    for seed in SEEDS:
        quiet_check(name, impl, hidden=True, seed=seed)


# ---------------------------------------------------------------------------------------------
# Wrong answers: they fail, and the diagnosis names the mistake


def mistake_message(exercise: str, key: str) -> str:
    messages = {m.message for m in EXERCISES[exercise].mistakes if m.key == key}
    assert len(messages) == 1, f"{exercise}: no single mistake with key {key!r}"
    return messages.pop()


@pytest.mark.parametrize(("exercise", "key", "impl"), CORPUS,
                         ids=[f"{e}-{k}-{f.__name__}" for e, k, f in CORPUS])
def test_wrong_answers_fail_with_their_diagnosis(exercise, key, impl):
    message = mistake_message(exercise, key)
    for hidden, seed in [(False, None)] + [(True, s) for s in SEEDS]:
        with pytest.raises(AssertionError) as info:
            quiet_check(exercise, impl, hidden=hidden, seed=seed)
        where = "public" if not hidden else f"hidden, seed {seed}"
        assert message in str(info.value), f"{where}: diagnosed as\n{info.value}"


def test_every_mistake_in_the_table_has_a_corpus_entry():
    corpus = {(exercise, key) for exercise, key, _ in CORPUS}
    table = {(name, m.key) for name, ex in EXERCISES.items() for m in ex.mistakes}
    assert table == corpus


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_mistake_implementation_is_caught_and_names_itself(name):
    for mistake in EXERCISES[name].mistakes:
        with pytest.raises(AssertionError) as info:
            quiet_check(name, mistake.impl)
        assert mistake.message in str(info.value), f"{mistake.key}:\n{info.value}"


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
def test_answers_that_call_torch_are_refused(name, cheat):
    with pytest.raises(AssertionError, match="off-limits"):
        quiet_check(name, cheat)


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


def test_answer_that_is_not_a_tensor():
    with pytest.raises(AssertionError, match="must be a torch.Tensor, got numpy.ndarray"):
        quiet_check("mse_loss", lambda input, target, reduction="mean":
                    ((input - target) ** 2).detach().numpy().mean(keepdims=True))


def test_answer_cut_from_the_graph():
    with pytest.raises(AssertionError, match="not connected to the inputs' autograd graph"):
        quiet_check("l1_loss", lambda input, target, reduction="mean":
                    torch.tensor((input - target).abs().mean().item(), dtype=input.dtype))


def test_answer_with_the_wrong_shape():
    # Forgets to reduce: the first public case (4, 3), reduction 'mean', expects a 0-d result.
    with pytest.raises(AssertionError, match=r"out: shape \(4, 3\), expected \(\)"):
        quiet_check("huber_loss", lambda input, target, reduction="mean", delta=1.0:
                    0.5 * (input - target) ** 2)


def test_answer_raising_the_wrong_exception():
    def l1(input, target, reduction="mean"):
        loss = (input - target).abs()
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]  # KeyError

    with pytest.raises(AssertionError, match="expected a ValueError, got KeyError"):
        quiet_check("l1_loss", l1)


def test_float32_answer_returned_as_float64_is_reported_as_dtype():
    def mse(input, target, reduction="mean"):
        loss = (input.double() - target.double()) ** 2
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]

    with pytest.raises(AssertionError, match="dtype torch.float64, expected torch.float32"):
        quiet_check("mse_loss", mse)


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
