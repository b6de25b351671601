"""Wrong answers to Chapter 1's exercises, written the way learners write them.

Each entry is registered with the exercise it answers and the ``Mistake.key`` the grader must name
(``grader/chapters/ch01_classification_losses.py``). They are deliberately *not* the grader's own
mistake implementations: different code, same wrong behaviour.

Besides ``CORPUS`` (exercise, mistake key, answer):

- ``LOSES``: for every wrong answer (by function name), the facets it must lose; it keeps the
  others, so its partial score is exact (``tests/test_ch01_classification_losses.py``);
- ``RIGHT``: correct answers written in other legitimate ways, which score full marks;
- ``DEPENDENT``: a wrong earlier answer (``nll_loss``, ``log_softmax``, BCE with logits) under a
  right later one that calls it by name, as learners write it: the later answer is checked with
  a correct version in its place, so it scores full marks and the report names the earlier one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from corpus.registry import Registry

_REGISTRY = Registry()
CORPUS, LOSES, RIGHT = _REGISTRY.corpus, _REGISTRY.loses, _REGISTRY.right
wrong, right = _REGISTRY.wrong, _REGISTRY.correct
DEPENDENT: list[tuple[str, str, Callable[..., Any]]] = []  # (exercise, base it calls, answer)

# Facet names (grader/chapters/ch01_classification_losses.py)
LSM_CORE, LSM_STABLE = "normalization along dim", "stable at extreme logits"
NLL_CORE, CE_CORE = "negative log-likelihood", "cross-entropy of logits"
WEIGHTS, IGNORE, SMOOTHING, PROBS = ("class weights", "ignore_index", "label smoothing",
                                     "class probabilities")
API = "API contract"
BCE_CORE, BCE_STABLE, BCE_WEIGHTS = ("loss value and gradient", "stable and exact",
                                     "weight and pos_weight")
FOCAL_CORE, ALPHA, FOCAL_REDUCTIONS = "focal formula", "alpha weighting", "reductions"


def on_helpers(source: str, name: str, **helpers: Any) -> Callable[..., Any]:
    """The function ``name`` defined by ``source`` in a fresh namespace (a learner's notebook)
    where ``helpers`` are the learner's earlier answers, called by name."""
    namespace: dict[str, Any] = {"torch": torch, "__name__": "learner", **helpers}
    exec(compile(source, f"<learner {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def reduce(loss, reduction):
    """The reduction most learners write (correct)."""
    if reduction == "none":
        return loss
    elif reduction == "mean":
        return loss.mean()
    elif reduction == "sum":
        return loss.sum()
    raise ValueError(f"unknown reduction {reduction}")


# ---------------------------------------------------------------------------------------------
# log_softmax


def good_log_softmax(x, dim):
    """A correct log_softmax, for the answers whose bug is elsewhere."""
    c = torch.max(x, dim=dim, keepdim=True)[0]
    return x - c - torch.log(torch.sum(torch.exp(x - c), dim=dim, keepdim=True))


@wrong("log_softmax", "overflow", LSM_STABLE)
def log_softmax_naive(input, dim):
    return torch.log(torch.exp(input) / torch.exp(input).sum(dim=dim, keepdim=True))


@wrong("log_softmax", "overflow", LSM_STABLE)
def log_softmax_naive_lse(input, dim):
    return input - torch.log(torch.sum(torch.exp(input), dim, keepdim=True))


@wrong("log_softmax", "global_max", LSM_STABLE)
def log_softmax_global_max(input, dim):
    c = input.max()  # "subtract the max" -- of everything
    return input - c - torch.log(torch.exp(input - c).sum(dim, keepdim=True))


@wrong("log_softmax", "max_not_added_back", LSM_CORE)
def log_softmax_forgot_max(input, dim):
    m, _ = torch.max(input, dim=dim, keepdim=True)
    return input - torch.log(torch.sum(torch.exp(input - m), dim=dim, keepdim=True))


@wrong("log_softmax", "softmax_returned", LSM_CORE)
def log_softmax_returns_softmax(input, dim):
    e = torch.exp(input - input.max(dim, keepdim=True).values)
    return e / e.sum(dim, keepdim=True)


@wrong("log_softmax", "wrong_dim", LSM_CORE)
def log_softmax_last_dim(input, dim):
    m = input.max(-1, keepdim=True)[0]  # "classes are the last dimension"
    return input - m - (input - m).exp().sum(-1, keepdim=True).log()


@wrong("log_softmax", "log_of_softmax", LSM_STABLE)
def log_softmax_log_of_stable_softmax(input, dim):
    z = input - input.amax(dim=dim, keepdim=True)
    probs = torch.exp(z) / torch.exp(z).sum(dim=dim, keepdim=True)
    return torch.log(probs)


@wrong("log_softmax", "clamped_probabilities", LSM_STABLE)
def log_softmax_log_plus_eps(input, dim):
    z = input - input.amax(dim=dim, keepdim=True)
    probs = z.exp() / z.exp().sum(dim=dim, keepdim=True)
    return torch.log(probs + 1e-10)


@wrong("log_softmax", "clamped_probabilities", LSM_STABLE)
def log_softmax_clamp(input, dim):
    z = input - input.amax(dim=dim, keepdim=True)
    probs = z.exp() / z.exp().sum(dim=dim, keepdim=True)
    return torch.log(torch.clamp(probs, min=1e-8))


# ---------------------------------------------------------------------------------------------
# nll_loss: each answer also serves as the NLL step of a cross_entropy below


def pick(input, target):
    """-input[n, target[n]] along dim 1 (0 for a 1-D input), with ignored targets set to 0."""
    class_dim = 0 if input.dim() == 1 else 1
    return input.gather(class_dim, target.unsqueeze(class_dim)).squeeze(class_dim)


def good_nll(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """A correct nll_loss, for the answers whose bug is elsewhere."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction)
    mask = (target != ignore_index).to(input.dtype)
    t = target * (target != ignore_index)
    w = (weight[t] if weight is not None else torch.ones_like(mask)) * mask
    loss = -pick(input, t) * w
    if reduction == "mean":
        return loss.sum() / w.sum()
    return reduce(loss, reduction)


@wrong("nll_loss", "weighted_mean_over_n", WEIGHTS, IGNORE)
def nll_divides_by_n(input, target, weight=None, ignore_index=-100, reduction="mean"):
    mask = target != ignore_index
    t = torch.where(mask, target, torch.zeros_like(target))
    loss = -pick(input, t) * mask
    if weight is not None:
        loss = loss * weight[t]
    if reduction == "mean":
        return loss.sum() / target.numel()  # "the mean divides by N"
    return reduce(loss, reduction)


@wrong("nll_loss", "weighted_mean_over_n", WEIGHTS, IGNORE)
def nll_divides_by_count(input, target, weight=None, ignore_index=-100, reduction="mean"):
    mask = target != ignore_index
    t = torch.where(mask, target, torch.zeros_like(target))
    loss = -pick(input, t) * mask
    if weight is not None:
        loss = loss * weight[t]
    if reduction == "mean":
        return loss.sum() / mask.sum()  # counts the kept targets, forgets their weights
    return reduce(loss, reduction)


@wrong("nll_loss", "ignored_in_denominator", IGNORE)
def nll_ignored_weights_counted(input, target, weight=None, ignore_index=-100, reduction="mean"):
    mask = target != ignore_index
    t = target.clamp(min=0)
    w = weight[t] if weight is not None else torch.ones(target.shape, dtype=input.dtype)
    loss = -pick(input, t) * w * mask
    if reduction == "mean":
        return loss.sum() / w.sum()  # the ignored positions' weights are still in here
    return reduce(loss, reduction)


@wrong("nll_loss", "ignored_rows_dropped", IGNORE)
def nll_filters_ignored(input, target, weight=None, ignore_index=-100, reduction="mean"):
    if input.dim() > 2:  # per-position classification: one row per position
        C = input.shape[1]
        input, target = input.movedim(1, -1).reshape(-1, C), target.reshape(-1)
    keep = target != ignore_index
    x, t = input[keep], target[keep]
    loss = -pick(x, t)
    if weight is not None:
        loss = loss * weight[t]
        if reduction == "mean":
            return loss.sum() / weight[t].sum()
    return reduce(loss, reduction)


@wrong("nll_loss", "hard_coded_ignore", IGNORE)
def nll_ignores_minus_100_only(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return good_nll(input, target, weight, -100, reduction)


@wrong("nll_loss", "kdim_flattened_wrong", NLL_CORE)
def nll_reshape_flat(input, target, weight=None, ignore_index=-100, reduction="mean"):
    shape = target.shape
    if input.dim() > 2:
        input = input.reshape(-1, input.shape[1])  # (N*d, C)... without moving C last
        target = target.reshape(-1)
    out = good_nll(input, target, weight, ignore_index, reduction)
    return out.reshape(shape) if reduction == "none" else out


@wrong("nll_loss", "weight_ignored", WEIGHTS)
def nll_without_weights(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return good_nll(input, target, None, ignore_index, reduction)


@wrong("nll_loss", "mean_sum_swapped", NLL_CORE, IGNORE)
def nll_swapped(input, target, weight=None, ignore_index=-100, reduction="mean"):
    swapped = {"mean": "sum", "sum": "mean"}.get(reduction, reduction)
    return good_nll(input, target, weight, ignore_index, swapped)


@wrong("nll_loss", "no_negation", NLL_CORE)
def nll_no_minus(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return -good_nll(input, target, weight, ignore_index, reduction)


@wrong("nll_loss", "all_ignored_zero", IGNORE)
def nll_eps_denominator(input, target, weight=None, ignore_index=-100, reduction="mean"):
    mask = (target != ignore_index).to(input.dtype)
    t = target * (target != ignore_index)
    w = (weight[t] if weight is not None else torch.ones_like(mask)) * mask
    loss = -pick(input, t) * w
    if reduction == "mean":
        return loss.sum() / (w.sum() + 1e-12)  # "avoid dividing by zero"
    return reduce(loss, reduction)


@wrong("nll_loss", "invalid_reduction_accepted", API)
def nll_falls_through(input, target, weight=None, ignore_index=-100, reduction="mean"):
    mask = (target != ignore_index).to(input.dtype)
    t = target * (target != ignore_index)
    w = (weight[t] if weight is not None else torch.ones_like(mask)) * mask
    loss = -pick(input, t) * w
    if reduction == "mean":
        return loss.sum() / w.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


# ---------------------------------------------------------------------------------------------
# cross_entropy: log_softmax + nll_loss + smoothing + probability targets, one bug at a time


def build_ce(nll=good_nll, log_softmax=good_log_softmax, class_dim=None, smoothing=None,
             prob=None):
    """A learner's cross_entropy assembled from parts; the arguments replace one part."""

    def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
        cdim = (0 if input.dim() == 1 else 1) if class_dim is None else class_dim(input)
        C = input.shape[0 if input.dim() == 1 else 1]
        logp = log_softmax(input, cdim)
        if target.dtype.is_floating_point and target.shape == input.shape:
            return (prob or good_prob)(logp, target, weight, reduction, label_smoothing, C)
        loss = nll(logp, target, weight, ignore_index, reduction)
        if label_smoothing > 0:
            return (smoothing or good_smoothing)(loss, logp, target, weight, ignore_index,
                                                 reduction, label_smoothing, C)
        return loss

    return cross_entropy


def class_weights_view(weight, logp):
    shape = [1] * logp.dim()
    shape[0 if logp.dim() == 1 else 1] = -1
    return weight.view(shape)


def good_prob(logp, q, weight, reduction, eps, C):
    cdim = 0 if logp.dim() == 1 else 1
    q = q * (1 - eps) + eps / C
    if weight is not None:
        q = q * class_weights_view(weight, logp)
    loss = -(q * logp).sum(cdim)
    return reduce(loss, reduction)  # the mean over positions


def good_smoothing(nll, logp, target, weight, ignore_index, reduction, eps, C):
    cdim = 0 if logp.dim() == 1 else 1
    keep = target != ignore_index
    w = class_weights_view(weight, logp) if weight is not None else 1.0
    smooth = -(logp * w).sum(cdim) * keep
    if reduction == "mean":
        t = torch.where(keep, target, 0)
        denom = (weight[t] * keep).sum() if weight is not None else keep.sum()
        smooth = smooth.sum() / denom
    else:
        smooth = reduce(smooth, reduction)
    return (1 - eps) * nll + eps / C * smooth


# A learner's cross_entropy as the notebook asks for it: on their own log_softmax and nll_loss,
# called by name. With a wrong helper it is checked on a correct one (a mistake is charged once).
CE_ON_HELPERS = """
def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    class_dim = 0 if input.dim() == 1 else 1
    C = input.shape[class_dim]
    logp = log_softmax(input, class_dim)
    if target.dtype.is_floating_point and target.shape == input.shape:
        return good_prob(logp, target, weight, reduction, label_smoothing, C)
    loss = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing > 0:
        return good_smoothing(loss, logp, target, weight, ignore_index, reduction,
                              label_smoothing, C)
    return loss
"""

for _nll in (nll_divides_by_n, nll_divides_by_count, nll_ignored_weights_counted,
             nll_filters_ignored, nll_ignores_minus_100_only, nll_reshape_flat,
             nll_without_weights, nll_swapped, nll_no_minus, nll_eps_denominator,
             nll_falls_through):
    DEPENDENT.append(("cross_entropy", "nll_loss", on_helpers(
        CE_ON_HELPERS, "cross_entropy", log_softmax=good_log_softmax, nll_loss=_nll,
        good_prob=good_prob, good_smoothing=good_smoothing)))


@wrong("cross_entropy", "no_log_softmax", CE_CORE, SMOOTHING, PROBS)
def ce_forgets_log_softmax(input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    return good_nll(input, target, weight, ignore_index, reduction)  # logits are not log-probs


@wrong("cross_entropy", "class_dim_last", CE_CORE)
def ce_softmax_over_last_dim(input, target, weight=None, ignore_index=-100, reduction="mean",
                             label_smoothing=0.0):
    return build_ce(class_dim=lambda x: -1)(input, target, weight, ignore_index, reduction,
                                            label_smoothing)


@wrong("cross_entropy", "overflow", CE_CORE)
def ce_naive_softmax(input, target, weight=None, ignore_index=-100, reduction="mean",
                     label_smoothing=0.0):
    def naive(x, dim):
        return torch.log(torch.exp(x) / torch.exp(x).sum(dim, keepdim=True))
    return build_ce(log_softmax=naive)(input, target, weight, ignore_index, reduction,
                                       label_smoothing)


@wrong("cross_entropy", "log_of_softmax", CE_CORE)
def ce_log_of_softmax(input, target, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
    def log_of_stable_softmax(x, dim):
        return torch.log(torch.softmax(x, dim))  # allowed here, but log(0) = -inf
    return build_ce(log_softmax=log_of_stable_softmax)(input, target, weight, ignore_index,
                                                       reduction, label_smoothing)


@wrong("cross_entropy", "clamped_probabilities", CE_CORE)
def ce_log_of_clamped_softmax(input, target, weight=None, ignore_index=-100, reduction="mean",
                              label_smoothing=0.0):
    def clamped(x, dim):
        return torch.log(torch.softmax(x, dim).clamp(min=1e-12))
    return build_ce(log_softmax=clamped)(input, target, weight, ignore_index, reduction,
                                         label_smoothing)


def smoothing_c_minus_1(nll, logp, target, weight, ignore_index, reduction, eps, C):
    # the classic "smoothed one-hot": 1 - eps on the target, eps / (C - 1) on every other class
    cdim = 0 if logp.dim() == 1 else 1
    keep = target != ignore_index
    t = torch.where(keep, target, 0)
    q = torch.full_like(logp, eps / (C - 1)).scatter(cdim, t.unsqueeze(cdim), 1 - eps)
    loss = -(q * logp).sum(cdim) * keep
    if reduction == "mean":
        return loss.sum() / keep.sum()
    return reduce(loss, reduction)


def smoothing_unweighted(nll, logp, target, weight, ignore_index, reduction, eps, C):
    cdim = 0 if logp.dim() == 1 else 1
    keep = target != ignore_index
    smooth = -logp.mean(cdim) * keep  # the uniform part: no class weights
    if reduction == "mean":
        smooth = smooth.sum() / keep.sum()
    else:
        smooth = reduce(smooth, reduction)
    return (1 - eps) * nll + eps * smooth


def smoothing_by_target(nll, logp, target, weight, ignore_index, reduction, eps, C):
    cdim = 0 if logp.dim() == 1 else 1
    keep = target != ignore_index
    t = torch.where(keep, target, 0)
    w_t = weight[t] * keep if weight is not None else keep.to(logp.dtype)
    smooth = -logp.sum(cdim) / C * w_t  # "weight each example by its class"
    if reduction == "mean":
        return (1 - eps) * nll + eps * smooth.sum() / w_t.sum()
    return (1 - eps) * nll + eps * reduce(smooth, reduction)


def smoothing_not_masked(nll, logp, target, weight, ignore_index, reduction, eps, C):
    cdim = 0 if logp.dim() == 1 else 1
    w = class_weights_view(weight, logp) if weight is not None else 1.0
    smooth = -(logp * w).sum(cdim) / C  # padding positions included
    return (1 - eps) * nll + eps * reduce(smooth, reduction)


def prob_mean_all(logp, q, weight, reduction, eps, C):
    q = q * (1 - eps) + eps / C
    if weight is not None:
        q = q * class_weights_view(weight, logp)
    elementwise = -(q * logp)
    if reduction == "mean":
        return elementwise.mean()  # over N * C elements
    return reduce(elementwise.sum(0 if logp.dim() == 1 else 1), reduction)


def prob_mean_weight_sum(logp, q, weight, reduction, eps, C):
    cdim = 0 if logp.dim() == 1 else 1
    q = q * (1 - eps) + eps / C
    w = class_weights_view(weight, logp) if weight is not None else torch.ones_like(logp[:1])
    loss = -(q * w * logp).sum(cdim)
    if reduction == "mean":
        return loss.sum() / (q * w).sum()  # "divide by the total weight", as for indices
    return reduce(loss, reduction)


def prob_no_smoothing(logp, q, weight, reduction, eps, C):
    return good_prob(logp, q, weight, reduction, 0.0, C)


for _key, _kwargs in [
    ("smoothing_over_c_minus_1", {"smoothing": smoothing_c_minus_1}),
    ("smoothing_ignores_weights", {"smoothing": smoothing_unweighted}),
    ("smoothing_by_target_weight", {"smoothing": smoothing_by_target}),
    ("smoothing_counts_ignored", {"smoothing": smoothing_not_masked}),
    ("prob_mean_over_all_elements", {"prob": prob_mean_all}),
    ("prob_mean_over_weight_sum", {"prob": prob_mean_weight_sum}),
    ("prob_smoothing_ignored", {"prob": prob_no_smoothing}),
]:
    _ce = build_ce(**_kwargs)
    _ce.__name__ = f"cross_entropy_with_{next(iter(_kwargs.values())).__name__}"
    wrong("cross_entropy", _key, PROBS if "prob" in _key else SMOOTHING)(_ce)

for _lsm in (log_softmax_naive, log_softmax_global_max, log_softmax_forgot_max,
             log_softmax_last_dim, log_softmax_clamp):
    DEPENDENT.append(("cross_entropy", "log_softmax", on_helpers(
        CE_ON_HELPERS, "cross_entropy", log_softmax=_lsm, nll_loss=good_nll,
        good_prob=good_prob, good_smoothing=good_smoothing)))


# ---------------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits


def stable_terms(x):
    """-log sigmoid(x) and -log(1 - sigmoid(x)), exactly (gradient at 0 included)."""
    m = torch.clamp(-x, min=0)
    neg_log_p = m + torch.log(torch.exp(-m) + torch.exp(-x - m))
    return neg_log_p, x + neg_log_p


def check_args(input, target, reduction):
    if input.shape != target.shape:
        raise ValueError("shapes differ")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction)


def good_bce(input, target, weight=None, reduction="mean", pos_weight=None):
    """A correct BCE with logits, for the focal answers whose bug is elsewhere."""
    check_args(input, target, reduction)
    a, b = stable_terms(input)
    pw = 1.0 if pos_weight is None else pos_weight
    loss = pw * target * a + (1 - target) * b
    return reduce(loss if weight is None else loss * weight, reduction)


@wrong("binary_cross_entropy_with_logits", "abs_kink_gradient", BCE_STABLE)
def bce_textbook(input, target, weight=None, reduction="mean", pos_weight=None):
    # max(x, 0) - x * t + log(1 + exp(-|x|)): right values, wrong gradient at x = 0
    check_args(input, target, reduction)
    softplus = torch.log1p(torch.exp(-input.abs()))
    if pos_weight is None:
        loss = input.clamp(min=0) - input * target + softplus
    else:
        log_w = 1 + (pos_weight - 1) * target
        loss = (1 - target) * input + log_w * (softplus + torch.clamp(-input, min=0))
    return reduce(loss if weight is None else loss * weight, reduction)


@wrong("binary_cross_entropy_with_logits", "unstable_log_sigmoid", BCE_STABLE)
def bce_log_sigmoid(input, target, weight=None, reduction="mean", pos_weight=None):
    check_args(input, target, reduction)
    p = torch.sigmoid(input)
    pw = 1.0 if pos_weight is None else pos_weight
    loss = -(pw * target * torch.log(p) + (1 - target) * torch.log(1 - p))
    return reduce(loss if weight is None else loss * weight, reduction)


@wrong("binary_cross_entropy_with_logits", "clamped_probabilities", BCE_STABLE)
def bce_clamped(input, target, weight=None, reduction="mean", pos_weight=None):
    check_args(input, target, reduction)
    eps = 1e-7
    p = torch.sigmoid(input).clamp(eps, 1 - eps)
    pw = 1.0 if pos_weight is None else pos_weight
    loss = -(pw * target * torch.log(p) + (1 - target) * torch.log(1 - p))
    return reduce(loss if weight is None else loss * weight, reduction)


@wrong("binary_cross_entropy_with_logits", "soft_target_where", BCE_CORE)
def bce_where_on_label(input, target, weight=None, reduction="mean", pos_weight=None):
    check_args(input, target, reduction)
    a, b = stable_terms(input)
    pw = 1.0 if pos_weight is None else pos_weight
    loss = torch.where(target == 1, pw * a, b)
    return reduce(loss if weight is None else loss * weight, reduction)


@wrong("binary_cross_entropy_with_logits", "weight_ignored", BCE_WEIGHTS)
def bce_forgets_weight(input, target, weight=None, reduction="mean", pos_weight=None):
    return good_bce(input, target, None, reduction, pos_weight)


@wrong("binary_cross_entropy_with_logits", "pos_weight_ignored", BCE_WEIGHTS)
def bce_forgets_pos_weight(input, target, weight=None, reduction="mean", pos_weight=None):
    return good_bce(input, target, weight, reduction, None)


@wrong("binary_cross_entropy_with_logits", "pos_weight_on_negative", BCE_WEIGHTS)
def bce_pos_weight_negative(input, target, weight=None, reduction="mean", pos_weight=None):
    check_args(input, target, reduction)
    a, b = stable_terms(input)
    pw = 1.0 if pos_weight is None else pos_weight
    loss = target * a + pw * (1 - target) * b
    return reduce(loss if weight is None else loss * weight, reduction)


@wrong("binary_cross_entropy_with_logits", "pos_weight_on_both", BCE_WEIGHTS)
def bce_pos_weight_everywhere(input, target, weight=None, reduction="mean", pos_weight=None):
    loss = good_bce(input, target, weight, "none")
    if pos_weight is not None:
        loss = loss * pos_weight
    return reduce(loss, reduction)


@wrong("binary_cross_entropy_with_logits", "no_size_check", API)
def bce_broadcasts(input, target, weight=None, reduction="mean", pos_weight=None):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction)
    a, b = stable_terms(input)
    pw = 1.0 if pos_weight is None else pos_weight
    loss = pw * target * a + (1 - target) * b
    return reduce(loss if weight is None else loss * weight, reduction)


@wrong("binary_cross_entropy_with_logits", "mean_sum_swapped", BCE_CORE, BCE_STABLE)
def bce_swapped(input, target, weight=None, reduction="mean", pos_weight=None):
    return good_bce(input, target, weight, {"mean": "sum", "sum": "mean"}.get(reduction, reduction),
                    pos_weight)


@wrong("binary_cross_entropy_with_logits", "invalid_reduction_accepted", API)
def bce_falls_through(input, target, weight=None, reduction="mean", pos_weight=None):
    loss = good_bce(input, target, weight, "none", pos_weight)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# ---------------------------------------------------------------------------------------------
# sigmoid_focal_loss


def focal(inputs, targets, alpha, gamma, reduction, *, ce=None, factor=None, alpha_t=None,
          apply_alpha=lambda alpha: alpha >= 0):
    """A learner's focal loss from parts; the keyword arguments replace one part."""
    p = torch.sigmoid(inputs)
    ce = good_bce(inputs, targets, reduction="none") if ce is None else ce(inputs, targets)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma if factor is None else factor(p, p_t, gamma))
    if apply_alpha(alpha):
        a_t = alpha * targets + (1 - alpha) * (1 - targets) if alpha_t is None \
            else alpha_t(alpha, targets)
        loss = a_t * loss
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(reduction)


@wrong("sigmoid_focal_loss", "mean_default", FOCAL_REDUCTIONS)
def focal_mean_by_default(inputs, targets, alpha=0.25, gamma=2, reduction="mean"):
    return focal(inputs, targets, alpha, gamma, reduction)


@wrong("sigmoid_focal_loss", "mean_sum_swapped", FOCAL_CORE, FOCAL_REDUCTIONS)
def focal_swapped(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    swapped = {"mean": "sum", "sum": "mean"}.get(reduction, reduction)
    return focal(inputs, targets, alpha, gamma, swapped)


@wrong("sigmoid_focal_loss", "no_modulating_factor", FOCAL_CORE)
def focal_no_gamma(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    return focal(inputs, targets, alpha, gamma, reduction, factor=lambda p, p_t, g: 1.0)


@wrong("sigmoid_focal_loss", "modulating_wrong", FOCAL_CORE)
def focal_gamma_on_p(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    return focal(inputs, targets, alpha, gamma, reduction,
                 factor=lambda p, p_t, g: (1 - p) ** g)


@wrong("sigmoid_focal_loss", "modulating_wrong", FOCAL_CORE)
def focal_gamma_on_p_t(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    return focal(inputs, targets, alpha, gamma, reduction, factor=lambda p, p_t, g: p_t ** g)


@wrong("sigmoid_focal_loss", "alpha_both_terms", ALPHA)
def focal_alpha_everywhere(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    return focal(inputs, targets, alpha, gamma, reduction, alpha_t=lambda a, t: a)


@wrong("sigmoid_focal_loss", "alpha_swapped", ALPHA)
def focal_alpha_on_negatives(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    return focal(inputs, targets, alpha, gamma, reduction,
                 alpha_t=lambda a, t: (1 - a) * t + a * (1 - t))


@wrong("sigmoid_focal_loss", "alpha_negative_not_handled", ALPHA)
def focal_alpha_always(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    return focal(inputs, targets, alpha, gamma, reduction, apply_alpha=lambda a: True)


@wrong("sigmoid_focal_loss", "alpha_zero_skipped", ALPHA)
def focal_alpha_if_truthy(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    return focal(inputs, targets, alpha, gamma, reduction, apply_alpha=lambda a: a > 0)


@wrong("sigmoid_focal_loss", "abs_kink_gradient", FOCAL_CORE)
def focal_textbook_bce(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    return focal(inputs, targets, alpha, gamma, reduction,
                 ce=lambda x, t: bce_textbook(x, t, reduction="none"))


@wrong("sigmoid_focal_loss", "unstable_log_sigmoid", FOCAL_CORE)
def focal_log_p_t(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    def ce(x, t):
        p = torch.sigmoid(x)
        return -torch.log(p * t + (1 - p) * (1 - t))  # -log p_t, straight from the paper
    return focal(inputs, targets, alpha, gamma, reduction, ce=ce)


@wrong("sigmoid_focal_loss", "clamped_probabilities", FOCAL_CORE)
def focal_clamped(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    def ce(x, t):
        p_t = torch.sigmoid(x) * t + (1 - torch.sigmoid(x)) * (1 - t)
        return -torch.log(p_t.clamp(min=1e-6))
    return focal(inputs, targets, alpha, gamma, reduction, ce=ce)


@wrong("sigmoid_focal_loss", "invalid_reduction_accepted", FOCAL_REDUCTIONS)
def focal_falls_through(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    loss = focal(inputs, targets, alpha, gamma, "none")
    return {"mean": loss.mean(), "sum": loss.sum()}.get(reduction, loss)


# A learner's focal loss on their own BCE with logits, called by name.
FOCAL_ON_BCE = """
def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    p = torch.sigmoid(inputs)
    ce = binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(reduction)
"""

# (The other wrong BCE answers differ only where the focal loss does not call them.)
for _bce in (bce_textbook, bce_log_sigmoid, bce_clamped):
    DEPENDENT.append(("sigmoid_focal_loss", "binary_cross_entropy_with_logits", on_helpers(
        FOCAL_ON_BCE, "sigmoid_focal_loss", binary_cross_entropy_with_logits=_bce)))


# ---------------------------------------------------------------------------------------------
# Right answers, written in other legitimate ways: they score full marks


@right("log_softmax")
def log_softmax_max_values_kept_in_graph(input, dim):
    m = input.max(dim=dim, keepdim=True).values  # not detached: its gradient cancels out
    return (input - m) - torch.log(torch.exp(input - m).sum(dim=dim, keepdim=True))


@right("log_softmax")
def log_softmax_last_dim_moved(input, dim):
    x = input.movedim(dim, -1)
    z = x - x.amax(-1, keepdim=True)
    return (z - z.exp().sum(-1, keepdim=True).log()).movedim(-1, dim)


@right("log_softmax")
def log_softmax_log_of_normalizer(input, dim):
    z = input - torch.amax(input, dim, keepdim=True).detach()
    return z - torch.log(torch.exp(z).sum(dim, keepdim=True))


def check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


@right("nll_loss")
def nll_one_hot_mask(input, target, weight=None, ignore_index=-100, reduction="mean"):
    check_reduction(reduction)
    cdim = 0 if input.dim() == 1 else 1
    C = input.shape[cdim]
    keep = target != ignore_index
    t = torch.where(keep, target, torch.zeros_like(target))
    shape = [1] * input.dim()
    shape[cdim] = C
    one_hot = (torch.arange(C).view(shape) == t.unsqueeze(cdim)).to(input.dtype)
    w = (weight[t] if weight is not None else torch.ones(t.shape, dtype=input.dtype)) * keep
    loss = -(input * one_hot).sum(cdim) * w
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / w.sum()


@right("nll_loss")
def nll_flattened_rows(input, target, weight=None, ignore_index=-100, reduction="mean"):
    check_reduction(reduction)
    if input.dim() == 1:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
        squeeze = True
    else:
        squeeze = False
    C = input.shape[1]
    shape = target.shape
    x = input.movedim(1, -1).reshape(-1, C)  # one row per position, classes last
    t = target.reshape(-1)
    keep = t != ignore_index
    t0 = t.masked_fill(~keep, 0)
    picked = x[torch.arange(t.numel()), t0]
    w = weight[t0] if weight is not None else torch.ones_like(picked)
    w = torch.where(keep, w, torch.zeros_like(w))
    loss = -picked * w
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / w.sum()
    loss = loss.reshape(shape)
    return loss[0] if squeeze else loss


@right("nll_loss")
def nll_gather_then_where(input, target, weight=None, ignore_index=-100, reduction="mean"):
    cdim = 0 if input.dim() == 1 else 1
    keep = target != ignore_index
    t = torch.where(keep, target, 0)
    picked = input.gather(cdim, t.unsqueeze(cdim)).squeeze(cdim)
    w = torch.ones_like(picked) if weight is None else weight[t]
    loss = torch.where(keep, -picked * w, torch.zeros_like(picked))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / torch.where(keep, w, torch.zeros_like(w)).sum()
    raise ValueError(reduction)


def smoothed_distribution(logp, target, weight, ignore_index, eps):
    """Index targets as a smoothed, weighted distribution q_c, and each position's weight w_y."""
    cdim = 0 if logp.dim() == 1 else 1
    C = logp.shape[cdim]
    keep = target != ignore_index
    t = torch.where(keep, target, 0)
    one_hot = torch.zeros_like(logp).scatter(cdim, t.unsqueeze(cdim), 1.0)
    q = one_hot * (1 - eps) + eps / C
    if weight is not None:
        q = q * class_weights_view(weight, logp)
    w_y = (weight[t] if weight is not None else torch.ones(t.shape, dtype=logp.dtype)) * keep
    return q * keep.unsqueeze(cdim), w_y


@right("cross_entropy")
def cross_entropy_smoothed_one_hot(input, target, weight=None, ignore_index=-100,
                                   reduction="mean", label_smoothing=0.0):
    # (1 - eps) w_y (-log p_y) + eps/C sum_c w_c (-log p_c) = -sum_c q_c log p_c, with
    # q = w * ((1 - eps) one_hot + eps / C): one formula for both kinds of target
    check_reduction(reduction)
    cdim = 0 if input.dim() == 1 else 1
    logp = good_log_softmax(input, cdim)
    if target.dtype.is_floating_point and target.shape == input.shape:
        return good_prob(logp, target, weight, reduction, label_smoothing, input.shape[cdim])
    q, w_y = smoothed_distribution(logp, target, weight, ignore_index, label_smoothing)
    loss = -(q * logp).sum(cdim)
    if reduction == "mean":
        return loss.sum() / w_y.sum()
    return reduce(loss, reduction)


@right("cross_entropy")
def cross_entropy_nll_per_position(input, target, weight=None, ignore_index=-100,
                                   reduction="mean", label_smoothing=0.0):
    # nll_loss with reduction='none' for both terms, then one reduction of the sum
    check_reduction(reduction)
    cdim = 0 if input.dim() == 1 else 1
    C = input.shape[cdim]
    logp = nll_input = input - input.amax(cdim, keepdim=True)
    logp = nll_input - nll_input.exp().sum(cdim, keepdim=True).log()
    if target.dtype.is_floating_point and target.shape == input.shape:
        return good_prob(logp, target, weight, reduction, label_smoothing, C)
    keep = target != ignore_index
    nll = good_nll(logp, target, weight, ignore_index, "none")
    w = class_weights_view(weight, logp) if weight is not None else 1.0
    smooth = -(logp * w).sum(cdim) * keep
    loss = (1 - label_smoothing) * nll + label_smoothing / C * smooth
    if reduction == "mean":
        t = torch.where(keep, target, 0)
        return loss.sum() / ((weight[t] if weight is not None else 1.0) * keep).sum()
    return reduce(loss, reduction)


@right("cross_entropy")
def cross_entropy_classes_last(input, target, weight=None, ignore_index=-100, reduction="mean",
                               label_smoothing=0.0):
    # move the classes last, flatten to rows, compute, reshape back
    check_reduction(reduction)
    if input.dim() == 1:
        out = cross_entropy_classes_last(input.unsqueeze(0), target.unsqueeze(0), weight,
                                         ignore_index, reduction, label_smoothing)
        return out[0] if reduction == "none" else out
    C = input.shape[1]
    x = input.movedim(1, -1).reshape(-1, C)
    logp = good_log_softmax(x, 1)
    eps = label_smoothing
    w = weight if weight is not None else torch.ones(C, dtype=input.dtype)
    if target.dtype.is_floating_point and target.shape == input.shape:
        q = target.movedim(1, -1).reshape(-1, C) * (1 - eps) + eps / C
        loss = -(q * w * logp).sum(1)
        if reduction == "mean":
            return loss.mean()
        return reduce(loss.reshape(target.movedim(1, -1).shape[:-1]), reduction)
    t = target.reshape(-1)
    keep = t != ignore_index
    t0 = torch.where(keep, t, 0)
    picked = logp[torch.arange(t.numel()), t0]
    w_y = w[t0] * keep
    loss = (1 - eps) * -picked * w_y + eps / C * -(logp * w).sum(1) * keep
    if reduction == "mean":
        return loss.sum() / w_y.sum()
    return reduce(loss.reshape(target.shape), reduction)


@right("binary_cross_entropy_with_logits")
def bce_with_softplus(input, target, weight=None, reduction="mean", pos_weight=None):
    check_args(input, target, reduction)
    pos, neg = F.softplus(-input), F.softplus(input)  # -log sigmoid(x), -log(1 - sigmoid(x))
    pw = 1.0 if pos_weight is None else pos_weight
    loss = pw * target * pos + (1 - target) * neg
    return reduce(loss if weight is None else loss * weight, reduction)


@right("binary_cross_entropy_with_logits")
def bce_with_logsigmoid(input, target, weight=None, reduction="mean", pos_weight=None):
    check_args(input, target, reduction)
    log_p, log_not_p = F.logsigmoid(input), F.logsigmoid(-input)
    if pos_weight is not None:
        log_p = pos_weight * log_p
    loss = -(target * log_p + (1 - target) * log_not_p)
    if weight is not None:
        loss = weight * loss
    return reduce(loss, reduction)


@right("binary_cross_entropy_with_logits")
def bce_with_logaddexp(input, target, weight=None, reduction="mean", pos_weight=None):
    check_args(input, target, reduction)
    softplus_neg = torch.logaddexp(torch.zeros_like(input), -input)  # log(1 + e^-x)
    log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
    loss = (1 - target) * input + log_weight * softplus_neg
    return reduce(loss * weight if weight is not None else loss, reduction)


@right("sigmoid_focal_loss")
def focal_from_logsigmoid(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    # the paper's -log p_t, written stably without a BCE function
    p = torch.sigmoid(inputs)
    ce = -(targets * F.logsigmoid(inputs) + (1 - targets) * F.logsigmoid(-inputs))
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return reduce(loss, reduction)


@right("sigmoid_focal_loss")
def focal_with_where(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction)
    p = torch.sigmoid(inputs)
    ce = good_bce(inputs, targets, reduction="none")
    one_minus_p_t = p + targets - 2 * p * targets  # 1 - p_t, expanded
    loss = ce * one_minus_p_t.pow(gamma)
    if alpha >= 0:
        loss = torch.where(targets == 1, alpha * loss, (1 - alpha) * loss)
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@right("sigmoid_focal_loss")
def focal_modulating_first(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    p = torch.sigmoid(inputs)
    p_t = p * targets + (1 - p) * (1 - targets)
    modulating = (1 - p_t) ** gamma
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets) if alpha >= 0 else 1.0
    loss = alpha_t * modulating * good_bce(inputs, targets, reduction="none")
    return reduce(loss, reduction)
