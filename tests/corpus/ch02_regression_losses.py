"""Answers to Chapter 2's exercises, written the way learners write them.

Each wrong entry is registered with the exercise it answers, the ``Mistake.key`` the grader must
name (``grader/chapters/ch02_regression_losses.py``) and the facets it must lose (it keeps the
others). They are deliberately *not* copies of the grader's own mistake implementations:
different code, same wrong behaviour, as a learner would write it. ``CORRECT`` holds right
answers written in other legitimate ways, which must score full marks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from corpus.registry import Registry

_REGISTRY = Registry()
CORPUS, LOSES, CORRECT = _REGISTRY.corpus, _REGISTRY.loses, _REGISTRY.right
wrong, right = _REGISTRY.wrong, _REGISTRY.correct

# Facet names (grader/chapters/ch02_regression_losses.py).
REDUCTIONS, CONTRACT = "reductions", "API contract"
SL1, HUBER, KL = "Smooth L1 formula", "Huber formula", "KL terms"
GIOU, EPS = "GIoU formula", "eps placement"


def built_on(source: str, name: str) -> Callable[..., Any]:
    """``name`` from ``source`` run in a fresh namespace, as a learner's cells define it: an
    answer that calls the learner's own earlier answer (``huber_loss`` on ``smooth_l1_loss``)."""
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(source, f"<corpus {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def reduce(loss, reduction):
    """What most learners write for the reduction (correct)."""
    if reduction == "mean":
        return torch.mean(loss)
    elif reduction == "sum":
        return torch.sum(loss)
    elif reduction == "none":
        return loss
    else:
        raise ValueError("invalid reduction: " + str(reduction))


# ---------------------------------------------------------------------------------------------
# mse_loss


@wrong("mse_loss", "mean_sum_swapped", REDUCTIONS)
def mse_mean_sum_swapped(input, target, reduction="mean"):
    sq = (input - target).pow(2)
    if reduction == "sum":
        return sq.mean()
    if reduction == "mean":
        return sq.sum()
    if reduction == "none":
        return sq
    raise ValueError(reduction)


@wrong("mse_loss", "reduction_ignored", REDUCTIONS, CONTRACT)
def mse_always_mean(input, target, reduction="mean"):
    return torch.mean((input - target) ** 2)


@wrong("mse_loss", "mean_over_batch", REDUCTIONS)
def mse_per_sample(input, target, reduction="mean"):
    sq = (input - target) ** 2
    if reduction == "mean":
        return sq.sum() / len(input)  # "average over the batch"
    return reduce(sq, reduction)


@wrong("mse_loss", "abs_not_square", "squared error")
def mse_abs(input, target, reduction="mean"):
    return reduce(torch.abs(input - target), reduction)


@wrong("mse_loss", "rmse", "squared error")
def mse_rmse(input, target, reduction="mean"):
    return torch.sqrt(reduce((input - target) ** 2, reduction))


@wrong("mse_loss", "half_mse", "squared error")
def mse_half(input, target, reduction="mean"):
    return reduce((input - target) ** 2 / 2, reduction)


@wrong("mse_loss", "target_detached", "squared error")
def mse_detached(input, target, reduction="mean"):
    target = target.detach()  # "targets never need gradients"
    return reduce((input - target) * (input - target), reduction)


@wrong("mse_loss", "invalid_reduction_accepted", CONTRACT)
def mse_else_mean(input, target, reduction="mean"):
    sq = (input - target) ** 2
    if reduction == "none":
        return sq
    elif reduction == "sum":
        return sq.sum()
    else:  # "mean", the default
        return sq.mean()


@right("mse_loss")
def mse_square(input, target, reduction="mean"):
    return reduce(torch.square(input - target), reduction)


@right("mse_loss")
def mse_sum_over_numel(input, target, reduction="mean"):
    diff = input - target
    loss = diff * diff
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if reduction == "none":
        return loss
    return loss.sum() / loss.numel() if reduction == "mean" else loss.sum()


@right("mse_loss")
def mse_match(input, target, reduction="mean"):
    loss = (input - target).pow(2)
    match reduction:
        case "none":
            return loss
        case "mean":
            return loss.mean()
        case "sum":
            return loss.sum()
        case _:
            raise ValueError(reduction)


# ---------------------------------------------------------------------------------------------
# l1_loss


@wrong("l1_loss", "mean_sum_swapped", REDUCTIONS, CONTRACT)
def l1_swapped(input, target, reduction="mean"):
    diff = (input - target).abs()
    return {"mean": diff.sum, "sum": diff.mean, "none": lambda: diff}[reduction]()


@wrong("l1_loss", "reduction_ignored", REDUCTIONS, CONTRACT)
def l1_ignores_reduction(input, target, reduction="mean"):
    return (input - target).abs().mean()


@wrong("l1_loss", "mean_over_batch", REDUCTIONS)
def l1_batch_mean(input, target, reduction="mean"):
    loss = (input - target).abs()
    if reduction == "mean":
        return loss.sum() / input.size(0)
    return reduce(loss, reduction)


@wrong("l1_loss", "sqrt_of_square", "absolute error")
def l1_sqrt(input, target, reduction="mean"):
    return reduce(torch.sqrt((input - target) ** 2), reduction)


@wrong("l1_loss", "where_abs", "absolute error")
def l1_where(input, target, reduction="mean"):
    d = input - target
    return reduce(torch.where(d > 0, d, -d), reduction)


@wrong("l1_loss", "squared", "absolute error")
def l1_squared(input, target, reduction="mean"):
    return reduce((input - target).square(), reduction)


@wrong("l1_loss", "invalid_reduction_accepted", CONTRACT)
def l1_else_mean(input, target, reduction="mean"):
    # 'none' and 'sum' are right; anything else (a typo too) silently gives the mean.
    loss = torch.abs(input - target)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean()


@right("l1_loss")
def l1_maximum(input, target, reduction="mean"):
    return reduce(torch.maximum(input - target, target - input), reduction)


@right("l1_loss")
def l1_sign_times_residual(input, target, reduction="mean"):
    d = input - target
    return reduce(torch.sign(d) * d, reduction)  # gradient sign(d) + d * 0: sign(0) = 0


@right("l1_loss")
def l1_reducers(input, target, reduction="mean"):
    reducers = {"none": lambda t: t, "mean": torch.mean, "sum": torch.sum}
    if reduction not in reducers:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reducers[reduction]((input - target).abs())


# ---------------------------------------------------------------------------------------------
# smooth_l1_loss


@wrong("smooth_l1_loss", "beta_zero_nan_gradient", "beta = 0")
def sl1_where_everywhere(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = torch.abs(input - target)
    loss = torch.where(n < beta, 0.5 * n * n / beta, n - 0.5 * beta)
    return reduce(loss, reduction)


@wrong("smooth_l1_loss", "beta_zero_nan_value", "beta = 0")
def sl1_masks(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = torch.abs(input - target)
    small = (n < beta).float().to(n.dtype)
    loss = small * (0.5 * n**2 / beta) + (1.0 - small) * (n - beta / 2)
    return reduce(loss, reduction)


@wrong("smooth_l1_loss", "mean_sum_swapped", REDUCTIONS)
def sl1_swapped(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = (input - target).abs()
    loss = n if beta == 0 else torch.where(n < beta, 0.5 * n**2 / beta, n - 0.5 * beta)
    if reduction == "mean":
        return loss.sum()
    if reduction == "sum":
        return loss.mean()
    return reduce(loss, reduction)


@wrong("smooth_l1_loss", "reduction_ignored", REDUCTIONS, CONTRACT)
def sl1_mean_only(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = (input - target).abs()
    if beta > 0:
        n = torch.where(n < beta, 0.5 * n**2 / beta, n - 0.5 * beta)
    return n.mean()


@wrong("smooth_l1_loss", "mean_over_batch", REDUCTIONS)
def sl1_per_sample_mean(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = (input - target).abs()
    if beta > 0:
        n = torch.where(n < beta, 0.5 * n**2 / beta, n - 0.5 * beta)
    if reduction == "mean":
        return n.sum() / n.shape[0]
    return reduce(n, reduction)


@wrong("smooth_l1_loss", "missing_half", SL1)
def sl1_no_half(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = (input - target).abs()
    if beta == 0:
        return reduce(n, reduction)
    return reduce(torch.where(n < beta, n**2 / beta, n - 0.5 * beta), reduction)


@wrong("smooth_l1_loss", "missing_div_beta", SL1)
def sl1_no_div(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = (input - target).abs()
    if beta == 0:
        return reduce(n, reduction)
    return reduce(torch.where(n < beta, 0.5 * n**2, n - 0.5 * beta), reduction)


@wrong("smooth_l1_loss", "huber_formula", SL1)
def sl1_huber(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = (input - target).abs()
    if beta == 0:
        return reduce(n, reduction)
    quadratic = 0.5 * n**2
    linear = beta * n - 0.5 * beta**2
    return reduce(torch.where(n <= beta, quadratic, linear), reduction)


@wrong("smooth_l1_loss", "signed_condition", SL1)
def sl1_signed(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    d = input - target
    if beta == 0:
        return reduce(d.abs(), reduction)
    loss = torch.where(d < beta, 0.5 * d**2 / beta, torch.abs(d) - 0.5 * beta)
    return reduce(loss, reduction)


@wrong("smooth_l1_loss", "branches_swapped", SL1)
def sl1_swapped_branches(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = (input - target).abs()
    if beta == 0:
        return reduce(n, reduction)
    loss = torch.where(n >= beta, 0.5 * n**2 / beta, n - 0.5 * beta)
    return reduce(loss, reduction)


@wrong("smooth_l1_loss", "beta_ignored", SL1, CONTRACT)
def sl1_beta_one(input, target, reduction="mean", beta=1.0):
    n = (input - target).abs()
    loss = torch.where(n < 1, 0.5 * n**2, n - 0.5)
    return reduce(loss, reduction)


@wrong("smooth_l1_loss", "negative_beta_accepted", CONTRACT)
def sl1_no_check(input, target, reduction="mean", beta=1.0):
    n = (input - target).abs()
    if beta == 0:
        return reduce(n, reduction)
    return reduce(torch.where(n < beta, 0.5 * n**2 / beta, n - 0.5 * beta), reduction)


@wrong("smooth_l1_loss", "invalid_reduction_accepted", CONTRACT)
def sl1_falls_through(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("beta must be >= 0")
    n = (input - target).abs()
    loss = n if beta == 0 else torch.where(n < beta, 0.5 * n**2 / beta, n - 0.5 * beta)
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    # no else: an unknown reduction returns None


@right("smooth_l1_loss")
def sl1_clamped(input, target, reduction="mean", beta=1.0):
    # 0.5 q^2 / beta + (z - q) with q = min(z, beta): the same function, written without where.
    if beta < 0:
        raise RuntimeError("negative beta")
    z = (input - target).abs()
    if beta == 0:
        return reduce(z, reduction)
    q = z.clamp(max=beta)
    return reduce(0.5 * q * q / beta + (z - q), reduction)


@right("smooth_l1_loss")
def sl1_inclusive(input, target, reduction="mean", beta=1.0):
    # Which branch gets |x - y| == beta does not matter: value and slope agree there.
    if beta < 0:
        raise RuntimeError("negative beta")
    z = (input - target).abs()
    if beta == 0:
        return reduce(z, reduction)
    return reduce(torch.where(z <= beta, 0.5 * z**2 / beta, z - 0.5 * beta), reduction)


SL1_ON_L1 = """
def l1_loss(input, target, reduction="mean"):
    loss = (input - target).abs()
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("negative beta")
    if beta == 0:
        return l1_loss(input, target, reduction)  # the exercise allows your own l1_loss
    z = (input - target).abs()
    return l1_loss(torch.where(z < beta, 0.5 * z**2 / beta, z - 0.5 * beta),
                   torch.zeros_like(z), reduction)
"""
right("smooth_l1_loss")(built_on(SL1_ON_L1, "smooth_l1_loss"))


# ---------------------------------------------------------------------------------------------
# huber_loss


def _check_delta(delta):
    if delta <= 0:
        raise RuntimeError("delta must be positive")


@wrong("huber_loss", "mean_sum_swapped", REDUCTIONS, CONTRACT)
def huber_swapped(input, target, reduction="mean", delta=1.0):
    _check_delta(delta)
    a = (input - target).abs()
    loss = torch.where(a < delta, 0.5 * a**2, delta * (a - 0.5 * delta))
    return {"mean": loss.sum(), "sum": loss.mean(), "none": loss}[reduction]


@wrong("huber_loss", "reduction_ignored", REDUCTIONS, CONTRACT)
def huber_mean_only(input, target, reduction="mean", delta=1.0):
    _check_delta(delta)
    a = (input - target).abs()
    return torch.where(a < delta, 0.5 * a**2, delta * (a - 0.5 * delta)).mean()


@wrong("huber_loss", "mean_over_batch", REDUCTIONS)
def huber_batch_mean(input, target, reduction="mean", delta=1.0):
    _check_delta(delta)
    a = (input - target).abs()
    loss = torch.where(a < delta, 0.5 * a**2, delta * (a - 0.5 * delta))
    if reduction == "mean":
        return loss.flatten(1).sum(dim=1).mean()  # per-example sums, averaged over the batch
    return reduce(loss, reduction)


@wrong("huber_loss", "huber_as_smooth_l1", HUBER)
def huber_is_smooth_l1(input, target, reduction="mean", delta=1.0):
    _check_delta(delta)
    a = (input - target).abs()
    return reduce(torch.where(a < delta, 0.5 * a**2 / delta, a - 0.5 * delta), reduction)


@wrong("huber_loss", "linear_missing_delta", HUBER)
def huber_no_delta_scale(input, target, reduction="mean", delta=1.0):
    _check_delta(delta)
    a = (input - target).abs()
    return reduce(torch.where(a <= delta, 0.5 * a * a, a - delta / 2), reduction)


@wrong("huber_loss", "linear_missing_half", HUBER)
def huber_no_half(input, target, reduction="mean", delta=1.0):
    _check_delta(delta)
    a = (input - target).abs()
    return reduce(torch.where(a < delta, 0.5 * a**2, delta * (a - delta)), reduction)


@wrong("huber_loss", "doubled", HUBER)
def huber_doubled(input, target, reduction="mean", delta=1.0):
    _check_delta(delta)
    a = (input - target).abs()
    return reduce(torch.where(a < delta, a**2, 2 * delta * a - delta**2), reduction)


@wrong("huber_loss", "signed_condition", HUBER)
def huber_signed(input, target, reduction="mean", delta=1.0):
    _check_delta(delta)
    r = input - target
    return reduce(torch.where(r < delta, 0.5 * r**2, delta * (r.abs() - 0.5 * delta)), reduction)


@wrong("huber_loss", "delta_ignored", HUBER, CONTRACT)
def huber_delta_one(input, target, reduction="mean", delta=1.0):
    a = (input - target).abs()
    return reduce(torch.where(a < 1.0, 0.5 * a**2, a - 0.5), reduction)


@wrong("huber_loss", "no_delta_check", CONTRACT)
def huber_unchecked(input, target, reduction="mean", delta=1.0):
    a = (input - target).abs()
    return reduce(torch.where(a < delta, 0.5 * a**2, delta * (a - 0.5 * delta)), reduction)


@wrong("huber_loss", "invalid_reduction_accepted", CONTRACT)
def huber_get_reducer(input, target, reduction="mean", delta=1.0):
    _check_delta(delta)
    a = (input - target).abs()
    loss = torch.where(a < delta, 0.5 * a**2, delta * (a - 0.5 * delta))
    return {"none": loss, "sum": loss.sum()}.get(reduction, loss.mean())


@right("huber_loss")
def huber_clamped(input, target, reduction="mean", delta=1.0):
    if delta <= 0:
        raise RuntimeError("non-positive delta")
    z = (input - target).abs()
    q = torch.minimum(z, torch.full_like(z, delta))
    return reduce(0.5 * q**2 + delta * (z - q), reduction)


@right("huber_loss")
def huber_inclusive(input, target, reduction="mean", delta=1.0):
    if not delta > 0:
        raise RuntimeError("delta must be positive")
    r = input - target
    return reduce(torch.where(r.abs() <= delta, r * r / 2, delta * r.abs() - delta**2 / 2),
                  reduction)


HUBER_ON_SL1 = """
def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError("negative beta")
    z = (input - target).abs()
    loss = z if beta == 0 else torch.where(z < beta, 0.5 * z**2 / beta, z - 0.5 * beta)
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    if delta <= 0:
        raise RuntimeError("delta must be positive")
    return delta * smooth_l1_loss(input, target, reduction, beta=delta)
"""
right("huber_loss")(built_on(HUBER_ON_SL1, "huber_loss"))


# ---------------------------------------------------------------------------------------------
# kl_div


def kl_reduce(loss, input, reduction):
    """A correct reduction, batchmean included."""
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return reduce(loss, reduction)


def kl_terms(input, target, log_target):
    if log_target:
        return torch.exp(target) * (target - input)
    return torch.xlogy(target, target) - target * input


@wrong("kl_div", "mean_is_batchmean", REDUCTIONS)
def kl_mean_is_true_kl(input, target, reduction="mean", log_target=False):
    loss = kl_terms(input, target, log_target)
    if reduction in ("mean", "batchmean"):
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return reduce(loss, reduction)


@wrong("kl_div", "batchmean_numel", REDUCTIONS)
def kl_batchmean_numel(input, target, reduction="mean", log_target=False):
    loss = kl_terms(input, target, log_target)
    if reduction == "batchmean":
        return loss.sum() / loss.numel()
    return reduce(loss, reduction)


@wrong("kl_div", "mean_sum_swapped", REDUCTIONS)
def kl_swapped_reductions(input, target, reduction="mean", log_target=False):
    loss = kl_terms(input, target, log_target)
    if reduction == "mean":
        return loss.sum()
    if reduction == "sum":
        return loss.mean()
    return kl_reduce(loss, input, reduction)


@wrong("kl_div", "arguments_swapped", KL)
def kl_wrong_direction(input, target, reduction="mean", log_target=False):
    p = torch.exp(input)  # the model's distribution
    log_q = target if log_target else torch.log(target)
    return kl_reduce(p * (input - log_q), input, reduction)


@wrong("kl_div", "log_of_input", KL)
def kl_logs_input(input, target, reduction="mean", log_target=False):
    if log_target:
        loss = target.exp() * (target - torch.log(input))
    else:
        loss = torch.xlogy(target, target) - target * torch.log(input)
    return kl_reduce(loss, input, reduction)


@wrong("kl_div", "missing_entropy_term", KL)
def kl_cross_entropy(input, target, reduction="mean", log_target=False):
    p = target.exp() if log_target else target
    return kl_reduce(-(p * input), input, reduction)


@wrong("kl_div", "sign_flipped", KL)
def kl_negative(input, target, reduction="mean", log_target=False):
    if log_target:
        loss = target.exp() * (input - target)
    else:
        loss = target * input - torch.xlogy(target, target)
    return kl_reduce(loss, input, reduction)


@wrong("kl_div", "zeros_give_nan", "zero targets")
def kl_plain_log(input, target, reduction="mean", log_target=False):
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = target * (torch.log(target) - input)
    return kl_reduce(loss, input, reduction)


@wrong("kl_div", "log_target_ignored", "log_target")
def kl_no_log_target(input, target, reduction="mean", log_target=False):
    loss = torch.xlogy(target, target) - target * input
    return kl_reduce(loss, input, reduction)


@wrong("kl_div", "log_target_without_exp", "log_target")
def kl_log_target_weights(input, target, reduction="mean", log_target=False):
    if log_target:
        loss = target * (target - input)
    else:
        loss = torch.xlogy(target, target) - target * input
    return kl_reduce(loss, input, reduction)


@wrong("kl_div", "invalid_reduction_accepted", CONTRACT)
def kl_else_batchmean(input, target, reduction="mean", log_target=False):
    loss = kl_terms(input, target, log_target)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss.sum() / (input.shape[0] if input.ndim else 1)  # "batchmean", or a typo of it


@right("kl_div")
def kl_masked(input, target, reduction="mean", log_target=False):
    if log_target:
        loss = torch.exp(target) * (target - input)
    else:
        loss = torch.where(target > 0, target * (torch.log(target) - input),
                           torch.zeros_like(target))
    return kl_reduce(loss, input, reduction)


@right("kl_div")
def kl_special_xlogy(input, target, reduction="mean", log_target=False):
    p = target.exp() if log_target else target
    log_p = target if log_target else None
    loss = p * (log_p - input) if log_target else torch.special.xlogy(p, p) - p * input
    if reduction == "batchmean":
        return loss.sum() / (len(input) if input.dim() > 0 else 1)
    if reduction in ("none", "mean", "sum"):
        return reduce(loss, reduction)
    raise ValueError(f"reduction={reduction!r}")


@right("kl_div")
def kl_expanded(input, target, reduction="mean", log_target=False):
    if log_target:
        loss = torch.exp(target) * target - torch.exp(target) * input
    else:
        loss = torch.xlogy(target, target) - torch.mul(target, input)
    divisors = {"none": None, "sum": 1, "mean": loss.numel(),
                "batchmean": input.size(0) if input.dim() else 1}
    if reduction not in divisors:
        raise ValueError(reduction)
    return loss if reduction == "none" else loss.sum() / divisors[reduction]


# ---------------------------------------------------------------------------------------------
# generalized_box_iou_loss


def giou_reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum() * 0.0
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"bad reduction {reduction}")


def upcast(boxes):
    return boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float()


def inter_union_enclosing(boxes1, boxes2):
    """Correct pieces, written with corner tensors as many detection codebases do."""
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    union = area1 + area2 - inter
    lt_c = torch.min(boxes1[..., :2], boxes2[..., :2])
    rb_c = torch.max(boxes1[..., 2:], boxes2[..., 2:])
    wh_c = rb_c - lt_c
    return inter, union, wh_c[..., 0] * wh_c[..., 1]


@wrong("generalized_box_iou_loss", "iou_loss_only", GIOU)
def giou_is_iou(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, _ = inter_union_enclosing(boxes1, boxes2)
    return giou_reduce(1 - inter / (union + eps), reduction)


@wrong("generalized_box_iou_loss", "returns_giou", GIOU)
def giou_not_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    giou = inter / (union + eps) - (area_c - union) / (area_c + eps)
    return giou_reduce(giou, reduction)


@wrong("generalized_box_iou_loss", "penalty_over_union", GIOU)
def giou_penalty_union(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    iou = inter / (union + eps)
    return giou_reduce(1 - (iou - (area_c - union) / (union + eps)), reduction)


@wrong("generalized_box_iou_loss", "no_eps", EPS)
def giou_without_eps(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    return giou_reduce(1 - (inter / union - (area_c - union) / area_c), reduction)


@wrong("generalized_box_iou_loss", "eps_only_in_iou", EPS)
def giou_eps_once(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    iou = inter / (union + eps)
    return giou_reduce(1 - iou + (area_c - union) / area_c, reduction)


@wrong("generalized_box_iou_loss", "penalty_as_one_minus_ratio", EPS)
def giou_ratio(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    giou = inter / (union + eps) - (1 - union / (area_c + eps))
    return giou_reduce(1 - giou, reduction)


@wrong("generalized_box_iou_loss", "eps_ignored", EPS)
def giou_fixed_eps(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    return giou_reduce(1 - inter / (union + 1e-7) + (area_c - union) / (area_c + 1e-7),
                       reduction)


@wrong("generalized_box_iou_loss", "intersection_not_clamped", GIOU)
def giou_no_clamp(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    x1, y1, x2, y2 = boxes1.unbind(-1)
    gx1, gy1, gx2, gy2 = boxes2.unbind(-1)
    inter = (torch.min(x2, gx2) - torch.max(x1, gx1)) * (torch.min(y2, gy2) - torch.max(y1, gy1))
    union = (x2 - x1) * (y2 - y1) + (gx2 - gx1) * (gy2 - gy1) - inter
    area_c = (torch.max(x2, gx2) - torch.min(x1, gx1)) * (torch.max(y2, gy2) - torch.min(y1, gy1))
    return giou_reduce(1 - inter / (union + eps) + (area_c - union) / (area_c + eps), reduction)


@wrong("generalized_box_iou_loss", "intersection_not_clamped", GIOU)
def giou_late_clamp(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    x1, y1, x2, y2 = boxes1.unbind(-1)
    gx1, gy1, gx2, gy2 = boxes2.unbind(-1)
    inter = ((torch.min(x2, gx2) - torch.max(x1, gx1))
             * (torch.min(y2, gy2) - torch.max(y1, gy1))).clamp(min=0)
    union = (x2 - x1) * (y2 - y1) + (gx2 - gx1) * (gy2 - gy1) - inter
    area_c = (torch.max(x2, gx2) - torch.min(x1, gx1)) * (torch.max(y2, gy2) - torch.min(y1, gy1))
    return giou_reduce(1 - inter / (union + eps) + (area_c - union) / (area_c + eps), reduction)


@wrong("generalized_box_iou_loss", "plus_one_pixel", GIOU)
def giou_voc(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    x1, y1, x2, y2 = boxes1.unbind(-1)
    gx1, gy1, gx2, gy2 = boxes2.unbind(-1)
    iw = (torch.min(x2, gx2) - torch.max(x1, gx1) + 1).clamp(min=0)
    ih = (torch.min(y2, gy2) - torch.max(y1, gy1) + 1).clamp(min=0)
    inter = iw * ih
    union = (x2 - x1 + 1) * (y2 - y1 + 1) + (gx2 - gx1 + 1) * (gy2 - gy1 + 1) - inter
    cw = torch.max(x2, gx2) - torch.min(x1, gx1) + 1
    ch = torch.max(y2, gy2) - torch.min(y1, gy1) + 1
    area_c = cw * ch
    return giou_reduce(1 - inter / (union + eps) + (area_c - union) / (area_c + eps), reduction)


@wrong("generalized_box_iou_loss", "enclosing_is_intersection", GIOU)
def giou_wrong_enclosing(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, _ = inter_union_enclosing(boxes1, boxes2)
    lt_c = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb_c = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    area_c = (rb_c - lt_c).prod(dim=-1)
    return giou_reduce(1 - inter / (union + eps) + (area_c - union) / (area_c + eps), reduction)


@wrong("generalized_box_iou_loss", "xywh_format", GIOU)
def giou_xywh(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    x, y, w, h = boxes1.unbind(-1)
    gx, gy, gw, gh = boxes2.unbind(-1)
    iw = (torch.min(x + w, gx + gw) - torch.max(x, gx)).clamp(min=0)
    ih = (torch.min(y + h, gy + gh) - torch.max(y, gy)).clamp(min=0)
    inter = iw * ih
    union = w * h + gw * gh - inter
    area_c = (torch.max(x + w, gx + gw) - torch.min(x, gx)) * (torch.max(y + h, gy + gh)
                                                              - torch.min(y, gy))
    return giou_reduce(1 - inter / (union + eps) + (area_c - union) / (area_c + eps), reduction)


@wrong("generalized_box_iou_loss", "casts_to_float32", "dtypes")
def giou_float(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = boxes1.float(), boxes2.float()
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    return giou_reduce(1 - inter / (union + eps) + (area_c - union) / (area_c + eps), reduction)


@wrong("generalized_box_iou_loss", "mean_sum_swapped", REDUCTIONS)
def giou_swapped(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    loss = 1 - inter / (union + eps) + (area_c - union) / (area_c + eps)
    if reduction == "mean":
        return loss.sum()
    if reduction == "sum":
        return loss.mean() if loss.numel() else loss.sum() * 0.0
    return giou_reduce(loss, reduction)


@wrong("generalized_box_iou_loss", "empty_mean_nan", REDUCTIONS)
def giou_plain_mean(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    return reduce(1 - inter / (union + eps) + (area_c - union) / (area_c + eps), reduction)


@wrong("generalized_box_iou_loss", "invalid_reduction_accepted", CONTRACT)
def giou_default_mean(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    loss = 1 - inter / (union + eps) + (area_c - union) / (area_c + eps)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if loss.numel() else loss.sum() * 0.0


@right("generalized_box_iou_loss")
def giou_corners(boxes1, boxes2, reduction="none", eps=1e-7):
    # Corner tensors and prod(), as detection codebases write it.
    if not boxes1.is_floating_point():
        boxes1, boxes2 = boxes1.float(), boxes2.float()
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).prod(dim=-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).prod(dim=-1)
    union = area1 + area2 - inter
    lt_c = torch.min(boxes1[..., :2], boxes2[..., :2])
    rb_c = torch.max(boxes1[..., 2:], boxes2[..., 2:])
    area_c = (rb_c - lt_c).prod(dim=-1)
    return giou_reduce(1 - (inter / (union + eps) - (area_c - union) / (area_c + eps)), reduction)


@right("generalized_box_iou_loss")
def giou_helpers(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter, union, area_c = inter_union_enclosing(boxes1, boxes2)
    iou = inter / (union + eps)
    giou = iou - (area_c - union) / (area_c + eps)
    return giou_reduce(1 - giou, reduction)


@right("generalized_box_iou_loss")
def giou_count_guard(boxes1, boxes2, reduction="none", eps=1e-7):
    if boxes1.dtype not in (torch.float32, torch.float64):
        boxes1, boxes2 = boxes1.to(torch.float32), boxes2.to(torch.float32)
    x1, y1, x2, y2 = boxes1.unbind(-1)
    a1, b1, a2, b2 = boxes2.unbind(-1)
    inter = ((torch.minimum(x2, a2) - torch.maximum(x1, a1)).clamp_min(0)
             * (torch.minimum(y2, b2) - torch.maximum(y1, b1)).clamp_min(0))
    union = (x2 - x1) * (y2 - y1) + (a2 - a1) * (b2 - b1) - inter
    area_c = (torch.maximum(x2, a2) - torch.minimum(x1, a1)) * (torch.maximum(y2, b2)
                                                                - torch.minimum(y1, b1))
    loss = 1 - inter / (union + eps) + (area_c - union) / (area_c + eps)
    if reduction == "mean":
        return loss.sum() / max(loss.numel(), 1)  # no boxes: 0, not nan
    if reduction in ("none", "sum"):
        return loss if reduction == "none" else loss.sum()
    raise ValueError(f"unknown reduction {reduction!r}")
