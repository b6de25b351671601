"""Wrong answers to Chapter 6's exercises, written the way learners write them, and right answers
written other ways.

Each wrong entry is registered with the exercise it answers, the ``Mistake.key`` the grader must
name (``grader/chapters/ch06_debugging_training.py``) and the facets it must lose (it keeps the
others). They are deliberately not copies of the grader's models of these mistakes: different
code, same wrong behaviour. The zoo's wrong names are generated: every Bug member but the planted
one, for each of the four loops.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from corpus.registry import Registry
from lossopt_helpers import bugzoo
from lossopt_helpers.bugzoo import Bug, mlp

_REGISTRY = Registry()
CORPUS, LOSES, RIGHT = _REGISTRY.corpus, _REGISTRY.loses, _REGISTRY.right
wrong, right = _REGISTRY.wrong, _REGISTRY.correct



# ---------------------------------------------------------------------------------------------
# get_total_norm


@wrong("get_total_norm", "summed_norms", "combined norm")
def total_norm_summed(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    if not tensors:
        return torch.tensor(0.0)
    total = torch.zeros((), dtype=tensors[0].dtype)
    for t in tensors:
        total = total + t.norm(p=norm_type)  # one norm per tensor, added up
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError("non-finite")
    return total


@wrong("get_total_norm", "inf_norm_without_abs", "conventions")
def total_norm_inf_no_abs(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    if not tensors:
        return torch.tensor(0.0)
    if norm_type == math.inf:
        total = max(t.max() for t in tensors)
    else:
        flat = torch.cat([t.reshape(-1) for t in tensors])
        total = flat.abs().pow(norm_type).sum().pow(1.0 / norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError("non-finite")
    return total


@wrong("get_total_norm", "generator_consumed_twice", "conventions")
def total_norm_twice(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    if isinstance(tensors, torch.Tensor):
        tensors = [tensors]
    count = len(list(tensors))  # counts them... and empties a generator
    norms = [torch.linalg.vector_norm(t, norm_type) for t in tensors]
    if count == 0 or not norms:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack(norms), norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError("non-finite")
    return total


@wrong("get_total_norm", "python_float", "conventions")
def total_norm_float(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    if not tensors:
        return 0.0
    norms = torch.stack([torch.linalg.vector_norm(t, norm_type) for t in tensors])
    total = torch.linalg.vector_norm(norms, norm_type).item()
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError("non-finite")
    return total


@wrong("get_total_norm", "nonfinite_flag_ignored", "conventions")
def total_norm_no_flag(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
    if not tensors:
        return torch.tensor(0.0)
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(t, norm_type) for t in tensors]), norm_type)


@right("get_total_norm")
def total_norm_concatenated(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    tensors = [tensors] if isinstance(tensors, torch.Tensor) else [t for t in tensors]
    if not tensors:
        return torch.tensor(0.0)
    flat = torch.cat([t.reshape(-1) for t in tensors])
    total = flat.abs().max() if norm_type == math.inf else \
        flat.abs().pow(norm_type).sum().pow(1.0 / norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} is non-finite")
    return total


# ---------------------------------------------------------------------------------------------
# clip_grad_norm_ (each on a correct get_total_norm of its own: the grader substitutes one anyway)


def _grads_of(parameters):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _total(grads, norm_type, error_if_nonfinite=False):
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads]), norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError("the total norm is non-finite")
    return total


@wrong("clip_grad_norm_", "branch_without_eps", "scaled gradients")
def clip_branch(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    grads = _grads_of(parameters)
    total = _total(grads, norm_type, error_if_nonfinite)
    if total > max_norm:  # only clip when too large, and exactly to max_norm
        for g in grads:
            g *= max_norm / total
    return total


@wrong("clip_grad_norm_", "per_parameter_clipping", "scaled gradients")
def clip_per_parameter(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                       foreach=None):
    grads = _grads_of(parameters)
    total = _total(grads, norm_type, error_if_nonfinite)
    for g in grads:
        coef = max_norm / (torch.linalg.vector_norm(g, norm_type) + 1e-6)
        g.mul_(coef.clamp(max=1.0))
    return total


@wrong("clip_grad_norm_", "coefficient_not_clamped", "scaled gradients")
def clip_not_clamped(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    grads = _grads_of(parameters)
    total = _total(grads, norm_type, error_if_nonfinite)
    for g in grads:
        g.mul_(max_norm / (total + 1e-6))
    return total


@wrong("clip_grad_norm_", "post_clip_norm", "returned norm")
def clip_returns_after(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                       foreach=None):
    grads = _grads_of(parameters)
    before = _total(grads, norm_type, error_if_nonfinite)
    coef = torch.clamp(max_norm / (before + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)
    return _total(grads, norm_type, error_if_nonfinite)  # the norm now, after clipping


@wrong("clip_grad_norm_", "python_float", "returned norm")
def clip_returns_float(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                       foreach=None):
    grads = _grads_of(parameters)
    total = _total(grads, norm_type, error_if_nonfinite)
    coef = min(1.0, max_norm / (total.item() + 1e-6))
    for g in grads:
        g.mul_(coef)
    return total.item()


@wrong("clip_grad_norm_", "returns_nothing", "returned norm")
def clip_without_return(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                        foreach=None):
    grads = _grads_of(parameters)
    total = _total(grads, norm_type, error_if_nonfinite)
    for g in grads:
        g.mul_(torch.clamp(max_norm / (total + 1e-6), max=1.0))  # in place: "nothing to return"


@wrong("clip_grad_norm_", "generator_consumed_twice", "returned norm")
def clip_generator_twice(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                         foreach=None):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    total = _total([p.grad for p in parameters if p.grad is not None], norm_type,
                   error_if_nonfinite)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in parameters:  # a generator is already exhausted here
        if p.grad is not None:
            p.grad.mul_(coef)
    return total


@wrong("clip_grad_norm_", "nonfinite_flag_not_passed", "returned norm")
def clip_flag_dropped(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                      foreach=None):
    grads = _grads_of(parameters)
    total = _total(grads, norm_type)  # error_if_nonfinite forgotten on the way
    for g in grads:
        g.mul_(torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total


@right("clip_grad_norm_")
def clip_with_list(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    total = total_norm_concatenated(grads, norm_type, error_if_nonfinite)
    if grads:
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.copy_(g * coef)
    return total


# ---------------------------------------------------------------------------------------------
# clip_grad_value_


@wrong("clip_grad_value_", "clamped_one_side", "clamped gradients")
def clip_value_upper_only(parameters, clip_value, foreach=None):
    params = [parameters] if isinstance(parameters, torch.Tensor) else parameters
    for p in params:
        if p.grad is not None:
            p.grad.copy_(torch.minimum(p.grad, torch.tensor(clip_value, dtype=p.grad.dtype)))


@wrong("clip_grad_value_", "clipped_magnitudes", "clamped gradients")
def clip_value_magnitude(parameters, clip_value, foreach=None):
    params = [parameters] if isinstance(parameters, torch.Tensor) else parameters
    for p in params:
        if p.grad is not None:
            p.grad.abs_().clamp_(max=clip_value)


@wrong("clip_grad_value_", "returns_gradients", "conventions")
def clip_value_returns(parameters, clip_value, foreach=None):
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    out = []
    for p in params:
        if p.grad is not None:
            p.grad.clamp_(-clip_value, clip_value)
            out.append(p.grad)
    return out


@right("clip_grad_value_")
def clip_value_where(parameters, clip_value, foreach=None):
    params = [parameters] if isinstance(parameters, torch.Tensor) else parameters
    for p in params:
        if p.grad is None:
            continue
        g = p.grad
        g.copy_(torch.where(g > clip_value, clip_value, torch.where(g < -clip_value,
                                                                     -clip_value, g)))


# ---------------------------------------------------------------------------------------------
# gradcheck


def _jacobians(func, inputs, checked):
    """The autograd Jacobians, [output][checked input] -> (out numel, in numel)."""
    out = func(*inputs)
    outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    result = []
    for o in outs:
        rows = []
        for x in checked:
            J = torch.zeros(o.numel(), x.numel(), dtype=torch.float64)
            for j in range(o.numel()):
                (g,) = torch.autograd.grad(o.reshape(-1)[j], x, retain_graph=True,
                                           allow_unused=True)
                if g is not None:
                    J[j] = g.reshape(-1)
            rows.append(J)
        result.append(rows)
    return result


def _flat_outputs(func, inputs):
    with torch.no_grad():
        out = func(*inputs)
    outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    return [o.reshape(-1).clone() for o in outs]


def _verdict(ok, raise_exception):
    if not ok and raise_exception:
        raise GradcheckError("Jacobian mismatch")
    return ok


from torch.autograd.gradcheck import GradcheckError  # noqa: E402


@wrong("gradcheck", "forward_differences", "verdicts")
def gradcheck_forward(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    checked = [x for x in inputs if x.requires_grad]
    analytical = _jacobians(func, inputs, checked)
    base = _flat_outputs(func, inputs)
    for k, x in enumerate(checked):
        flat = x.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            shifted = _flat_outputs(func, inputs)
            flat[i] = old
            for o, (s, b) in enumerate(zip(shifted, base)):
                n = (s - b) / eps  # one-sided
                if not torch.allclose(analytical[o][k][:, i], n, rtol=rtol, atol=atol):
                    return _verdict(False, raise_exception)
    return True


@wrong("gradcheck", "perturbation_not_restored", "contract")
def gradcheck_not_restored(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                           raise_exception=True):
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    checked = [x for x in inputs if x.requires_grad]
    analytical = _jacobians(func, inputs, checked)
    ok = True
    for k, x in enumerate(checked):
        flat = x.data.view(-1)
        for i in range(flat.numel()):
            flat[i] += eps
            plus = _flat_outputs(func, inputs)
            flat[i] -= 2 * eps  # ... and never put back
            minus = _flat_outputs(func, inputs)
            for o, (p, m) in enumerate(zip(plus, minus)):
                n = (p - m) / (2 * eps)
                ok = ok and torch.allclose(analytical[o][k][:, i], n, rtol=rtol, atol=atol)
    return _verdict(ok, raise_exception)


@wrong("gradcheck", "perturbed_a_copy", "verdicts")
def gradcheck_copy(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    checked = [x for x in inputs if x.requires_grad]
    analytical = _jacobians(func, inputs, checked)
    ok = True
    for k, x in enumerate(checked):
        for i in range(x.numel()):
            xp = x.detach().clone()
            xp.view(-1)[i] += eps  # func is still called with the original inputs
            plus = _flat_outputs(func, inputs)
            xm = x.detach().clone()
            xm.view(-1)[i] -= eps
            minus = _flat_outputs(func, inputs)
            for o, (p, m) in enumerate(zip(plus, minus)):
                ok = ok and torch.allclose(analytical[o][k][:, i], (p - m) / (2 * eps),
                                           rtol=rtol, atol=atol)
    return _verdict(ok, raise_exception)


@wrong("gradcheck", "absolute_tolerance_only", "verdicts")
def gradcheck_atol(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    checked = [x for x in inputs if x.requires_grad]
    analytical = _jacobians(func, inputs, checked)
    for k, x in enumerate(checked):
        flat = x.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            plus = _flat_outputs(func, inputs)
            flat[i] = old - eps
            minus = _flat_outputs(func, inputs)
            flat[i] = old
            for o, (p, m) in enumerate(zip(plus, minus)):
                err = (analytical[o][k][:, i] - (p - m) / (2 * eps)).abs().max()
                if err > atol:
                    return _verdict(False, raise_exception)
    return True


@wrong("gradcheck", "float32_check", "verdicts")
def gradcheck_float32(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    work = [x.detach().float().requires_grad_(x.requires_grad) for x in inputs]  # "to save time"
    checked = [w for w in work if w.requires_grad]
    analytical = _jacobians(func, work, checked)
    for k, x in enumerate(checked):
        flat = x.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            plus = _flat_outputs(func, work)
            flat[i] = old - eps
            minus = _flat_outputs(func, work)
            flat[i] = old
            for o, (p, m) in enumerate(zip(plus, minus)):
                if not torch.allclose(analytical[o][k][:, i].float(), (p - m) / (2 * eps),
                                      rtol=rtol, atol=atol):
                    return _verdict(False, raise_exception)
    return True


@right("gradcheck")
def gradcheck_with_jacobian(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                            raise_exception=True):
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    checked = [x for x in inputs if x.requires_grad]
    analytical = _jacobians(func, inputs, checked)
    for k, x in enumerate(checked):
        flat = x.data.view(-1)
        numerical = [torch.zeros_like(a[k]) for a in analytical]
        for i in range(flat.numel()):
            old = flat[i].clone()
            flat[i] = old + eps
            plus = _flat_outputs(func, inputs)
            flat[i] = old - eps
            minus = _flat_outputs(func, inputs)
            flat[i] = old
            for N, p, m in zip(numerical, plus, minus):
                N[:, i] = (p - m) / (2 * eps)
        for a, N in zip(analytical, numerical):
            if not ((a[k] - N).abs() <= atol + rtol * N.abs()).all():
                return _verdict(False, raise_exception)
    return True


# ---------------------------------------------------------------------------------------------
# The sanity battery


@wrong("initial_loss_check", "batchnorm_left_in_train_mode", "loss at init")
def initial_loss_train_mode(model, loss_fn, batch, num_classes):
    X, y = batch
    with torch.no_grad():
        loss = loss_fn(model(X), y)  # whatever mode the model is in
    return float(loss), math.log(num_classes)


@wrong("initial_loss_check", "log2", "loss at init")
def initial_loss_log2(model, loss_fn, batch, num_classes):
    X, y = batch
    mode = model.training
    model.eval()
    with torch.no_grad():
        loss = loss_fn(model(X), y).item()
    model.train(mode)
    return loss, math.log2(num_classes)


@wrong("initial_loss_check", "mode_not_restored", "contract")
def initial_loss_left_in_eval(model, loss_fn, batch, num_classes):
    model.eval()
    with torch.no_grad():
        loss = loss_fn(model(batch[0]), batch[1]).item()
    return loss, math.log(num_classes)


@right("initial_loss_check")
def initial_loss_inference_mode(model, loss_fn, batch, num_classes):
    X, y = batch
    mode = model.training
    model.train(False)
    with torch.inference_mode():
        loss = float(loss_fn(model(X), y))
    model.train(mode)
    return loss, float(torch.log(torch.tensor(float(num_classes))))


@wrong("overfit_one_batch", "dropout_on_while_overfitting", "training run")
def overfit_dropout_on(model, loss_fn, optimizer, batch, steps):
    X, y = batch
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
    return loss.item()


@wrong("overfit_one_batch", "missing_zero_grad", "training run")
def overfit_no_zero_grad(model, loss_fn, optimizer, batch, steps):
    X, y = batch
    mode = model.training
    model.eval()
    for _ in range(steps):
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
    model.train(mode)
    return loss.item()


@wrong("overfit_one_batch", "first_loss_returned", "training run")
def overfit_first_loss(model, loss_fn, optimizer, batch, steps):
    X, y = batch
    mode = model.training
    model.eval()
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        history.append(loss.item())
        loss.backward()
        optimizer.step()
    model.train(mode)
    return history[0]


@wrong("overfit_one_batch", "loss_after_the_last_update", "training run")
def overfit_loss_after(model, loss_fn, optimizer, batch, steps):
    X, y = batch
    mode = model.training
    model.eval()
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(X), y).backward()
        optimizer.step()
    with torch.no_grad():
        final = loss_fn(model(X), y).item()
    model.train(mode)
    return final


@wrong("overfit_one_batch", "mode_not_restored", "contract")
def overfit_left_in_eval(model, loss_fn, optimizer, batch, steps):
    X, y = batch
    model.eval()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
    return loss.item()


@right("overfit_one_batch")
def overfit_set_to_none(model, loss_fn, optimizer, batch, steps):
    X, y = batch
    was_training = model.training
    model.train(False)
    last = None
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
        last = loss.detach()
    model.train(was_training)
    return float(last)


@wrong("batch_dependence", "summed_every_output", "leak detection")
def dependence_summed(model, x, i):
    x = x.clone().requires_grad_(True)
    model(x).sum().backward()
    leak = x.grad.clone()
    leak[i] = 0
    return bool(leak.abs().sum() > 0)


@wrong("batch_dependence", "checked_in_eval_mode", "leak detection")
def dependence_eval(model, x, i):
    mode = model.training
    model.eval()  # "a check should not change BatchNorm's statistics"
    x = x.clone().requires_grad_(True)
    model(x)[i].sum().backward()
    model.train(mode)
    others = torch.ones(len(x), dtype=torch.bool)
    others[i] = False
    return bool((x.grad[others] != 0).any())


@wrong("batch_dependence", "caller_x_requires_grad", "contract")
def dependence_in_place(model, x, i):
    x.requires_grad_(True)
    out = model(x)
    (g,) = torch.autograd.grad(out[i].sum(), x)
    g = torch.cat([g[:i], g[i + 1:]])
    return bool(g.ne(0).any())


@right("batch_dependence")
def dependence_backward(model, x, i):
    x = x.detach().clone()
    x.requires_grad = True
    model(x)[i].sum().backward()
    mask = torch.arange(len(x)) != i
    return bool(x.grad[mask].abs().amax() > 0) if mask.any() else False


@wrong("grad_stats", "none_grads_as_zero", "which parameters")
def stats_zeros(model):
    stats = {}
    for name, p in model.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        stats[name] = dict(grad_norm=float(g.norm()), grad_mean=float(g.mean()),
                           grad_abs_max=float(g.abs().max()), param_norm=float(p.norm()))
    return stats


@wrong("grad_stats", "mean_of_abs", "statistics")
def stats_mean_abs(model):
    return {n: {"grad_norm": p.grad.norm().item(), "grad_mean": p.grad.abs().mean().item(),
                "grad_abs_max": p.grad.abs().max().item(), "param_norm": p.data.norm().item()}
            for n, p in model.named_parameters() if p.grad is not None}


@wrong("grad_stats", "squared_norm", "statistics")
def stats_squared(model):
    return {n: {"grad_norm": p.grad.pow(2).sum().item(), "grad_mean": p.grad.mean().item(),
                "grad_abs_max": p.grad.abs().max().item(), "param_norm": p.data.norm().item()}
            for n, p in model.named_parameters() if p.grad is not None}


@wrong("grad_stats", "max_without_abs", "statistics")
def stats_max(model):
    return {n: {"grad_norm": p.grad.norm().item(), "grad_mean": p.grad.mean().item(),
                "grad_abs_max": p.grad.max().item(), "param_norm": p.data.norm().item()}
            for n, p in model.named_parameters() if p.grad is not None}


@right("grad_stats")
def stats_linalg(model):
    out = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad
        out[name] = {"grad_norm": torch.linalg.vector_norm(g).item(),
                     "grad_mean": (g.sum() / g.numel()).item(),
                     "grad_abs_max": torch.linalg.vector_norm(g, math.inf).item(),
                     "param_norm": torch.linalg.vector_norm(p.detach()).item()}
    return out


# ---------------------------------------------------------------------------------------------
# The bug zoo: every wrong name, every "repair" that hides the bug, and right repairs


def _answer(bug, loop, name):
    def answer():
        return bug, loop
    answer.__name__ = name
    return answer


def _epochs(X, y, model, optimizer, *, epochs, batch_size, seed, step, after_epoch=None,
            before_epoch=None):
    """A learner's loop skeleton: `step(model, optimizer, xb, yb)` returns the batch loss."""
    order = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        if before_epoch is not None:
            before_epoch()
        total = 0.0
        for idx in torch.randperm(len(X), generator=order).split(batch_size):
            total += step(model, optimizer, X[idx], y[idx]) * len(idx)
        if after_epoch is not None:
            after_epoch()
        losses.append(total / len(X))
    return losses


def _sgd_step(model, optimizer, xb, yb, *, zero=True, clip=None):
    if zero:
        optimizer.zero_grad()
    loss = F.cross_entropy(model(xb), yb)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


def zoo1_with(*, lr_factor=1.0, zero=True, clip=None, model_zero=False, per_epoch=False):
    def train(X, y, *, lr, epochs, batch_size, hidden, seed):
        torch.manual_seed(seed)
        model = mlp(hidden)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr * lr_factor, momentum=0.9)
        if per_epoch:
            return _epochs(X, y, model, optimizer, epochs=epochs, batch_size=batch_size,
                           seed=seed, step=lambda m, o, xb, yb: _sgd_step(m, o, xb, yb, zero=False),
                           before_epoch=optimizer.zero_grad)

        def step(model, optimizer, xb, yb):
            if model_zero:
                model.zero_grad()
            return _sgd_step(model, optimizer, xb, yb, zero=zero and not model_zero, clip=clip)
        return _epochs(X, y, model, optimizer, epochs=epochs, batch_size=batch_size, seed=seed,
                       step=step)
    return train


def zoo2_with(*, head="logits", lr_factor=1.0):
    def train(X, y, *, lr, epochs, batch_size, hidden, seed):
        torch.manual_seed(seed)
        model = mlp(hidden)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr * lr_factor)

        def step(model, optimizer, xb, yb):
            optimizer.zero_grad()
            z = model(xb)
            if head == "log_softmax":
                loss = F.nll_loss(F.log_softmax(z, dim=1), yb)
            elif head == "softmax":
                loss = F.cross_entropy(F.softmax(z, dim=1), yb)
            elif head == "softmax dim 0":
                loss = F.cross_entropy(torch.softmax(z, 0), yb)
            elif head == "nll on logits":
                loss = F.nll_loss(z, yb)
            else:
                loss = F.cross_entropy(z, yb)
            loss.backward()
            optimizer.step()
            return loss.item()
        return _epochs(X, y, model, optimizer, epochs=epochs, batch_size=batch_size, seed=seed,
                       step=step)
    return train


def zoo3_with(*, dropout=0.3, evaluate=True, train_at_end=False):
    def train(X, y, *, lr, epochs, batch_size, hidden, seed):
        torch.manual_seed(seed)
        n_val = len(X) // 5
        X_val, y_val, X_tr, y_tr = X[:n_val], y[:n_val], X[n_val:], y[n_val:]
        model = mlp(hidden, dropout=dropout)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        order = torch.Generator().manual_seed(seed)
        history = []
        model.train()
        for _ in range(epochs):
            if not train_at_end:
                model.train()
            total = 0.0
            for idx in torch.randperm(len(X_tr), generator=order).split(batch_size):
                total += _sgd_step(model, optimizer, X_tr[idx], y_tr[idx]) * len(idx)
            if evaluate:
                model.eval()
            with torch.no_grad():
                val = F.cross_entropy(model(X_val), y_val).item()
            if train_at_end:
                model.train()
            history.append([total / len(X_tr), val])
        return history
    return train


def zoo4_with(*, per_batch=False, scale_step=False, scheduler=True, lr_factor=1.0, twice=False):
    def train(X, y, *, lr, epochs, batch_size, hidden, seed):
        torch.manual_seed(seed)
        model = mlp(hidden)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr * lr_factor, momentum=0.9)
        n_batches = math.ceil(len(X) / batch_size)
        size = 2 * n_batches if scale_step else 2
        sched = torch.optim.lr_scheduler.StepLR(optimizer, step_size=size, gamma=0.5)

        def step(model, optimizer, xb, yb):
            loss = _sgd_step(model, optimizer, xb, yb)
            if scheduler and per_batch:
                sched.step()
            return loss
        def after_epoch():
            for _ in range(2 if twice else 1):
                sched.step()
        return _epochs(X, y, model, optimizer, epochs=epochs, batch_size=batch_size, seed=seed,
                       step=step, after_epoch=after_epoch if scheduler and not per_batch else None)
    return train


RIGHT_LOOPS = {"zoo_1": [zoo1_with(), zoo1_with(model_zero=True)],
               "zoo_2": [zoo2_with(), zoo2_with(head="log_softmax")],
               "zoo_3": [zoo3_with(), zoo3_with(train_at_end=True)],
               "zoo_4": [zoo4_with(), zoo4_with(per_batch=True, scale_step=True)]}
for _zoo, _loops in RIGHT_LOOPS.items():
    for _k, _loop in enumerate(_loops):
        right(_zoo)(_answer(bugzoo.PLANTED[_zoo], _loop, f"{_zoo}_right_{_k}"))

HIDING = {
    "zoo_1": [("loop_not_repaired", bugzoo.buggy_1),
              ("lr_lowered_instead", zoo1_with(lr_factor=0.1, zero=False)),
              ("clipping_hides_it", zoo1_with(zero=False, clip=1.0)),
              ("zero_grad_once_per_epoch", zoo1_with(per_epoch=True))],
    "zoo_2": [("loop_not_repaired", zoo2_with(head="softmax")),
              ("lr_raised_instead", zoo2_with(head="softmax", lr_factor=10.0)),
              ("softmax_over_the_batch", zoo2_with(head="softmax dim 0")),
              ("nll_loss_on_logits", zoo2_with(head="nll on logits"))],
    "zoo_3": [("loop_not_repaired", bugzoo.buggy_3),
              ("dropout_removed", zoo3_with(dropout=0.0)),
              ("never_evaluated_in_eval_mode", zoo3_with(evaluate=False))],
    "zoo_4": [("loop_not_repaired", zoo4_with(per_batch=True)),
              ("scheduler_removed", zoo4_with(scheduler=False)),
              ("lr_raised_instead", zoo4_with(per_batch=True, lr_factor=4.0)),
              ("stepped_twice_per_epoch", zoo4_with(twice=True))],
}
for _zoo, _entries in HIDING.items():
    for _key, _loop in _entries:
        wrong(_zoo, _key, "repaired loop")(
            _answer(bugzoo.PLANTED[_zoo], _loop, f"{_zoo}_{_key}"))
    for _bug in Bug:
        if _bug is not bugzoo.PLANTED[_zoo]:
            wrong(_zoo, f"named_{_bug.name.lower()}", "bug named")(
                _answer(_bug, RIGHT_LOOPS[_zoo][0], f"{_zoo}_named_{_bug.name.lower()}"))
