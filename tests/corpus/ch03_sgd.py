"""Wrong answers to Chapter 3's exercises, written the way learners write them.

Each entry is registered with the exercise it answers and the ``Mistake.key`` the grader must name
(``grader/chapters/ch03_sgd.py``). They are deliberately *not* copies of the grader's own models of these
mistakes: different code (``.data``, list comprehensions, a velocity dict...), same wrong
behaviour, as a learner would write it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

UPDATE, MOMENTUM, DECAY, MAXIMIZE = "update rule", "momentum and Nesterov", "weight decay", "maximize"
CONTRACT, STATE = "API contract", "state_dict compatibility"
EVERY = {"sgd_step": frozenset({UPDATE, MOMENTUM, DECAY, MAXIMIZE, CONTRACT}),
         "SGD": frozenset({UPDATE, MOMENTUM, DECAY, MAXIMIZE, CONTRACT, STATE})}

# (exercise, mistake key, answer, the facets it must lose: it keeps the others)
CORPUS: list[tuple[str, str, Callable[..., Any], frozenset[str]]] = []
# (exercise, answer): correct answers written in other legitimate ways; they score full marks
RIGHT: list[tuple[str, Any]] = []


def wrong(exercise: str, key: str, *loses: str) -> Callable[[Any], Any]:
    """Register a wrong answer to ``exercise`` that the grader must diagnose as ``key`` and that
    must lose exactly the facets ``loses`` (all of them when none are given)."""

    def register(fn: Any) -> Any:
        CORPUS.append((exercise, key, fn, frozenset(loses) or EVERY[exercise]))
        return fn

    return register


def right(exercise: str) -> Callable[[Any], Any]:
    """Register a correct answer to ``exercise``, written differently from the solution."""

    def register(fn: Any) -> Any:
        RIGHT.append((exercise, fn))
        return fn

    return register


# ---------------------------------------------------------------------------------------------
# sgd_step


@wrong("sgd_step", "dampening_first_step", MOMENTUM)
def step_zero_init(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                   nesterov, maximize):
    with torch.no_grad():
        for i in range(len(params)):
            g = grads[i] * (-1 if maximize else 1) + weight_decay * params[i]
            if momentum:
                if momentum_buffers[i] is None:
                    momentum_buffers[i] = torch.zeros_like(g)  # "velocity starts at rest"
                momentum_buffers[i] = momentum * momentum_buffers[i] + (1 - dampening) * g
                g = g + momentum * momentum_buffers[i] if nesterov else momentum_buffers[i]
            params[i] -= lr * g


@wrong("sgd_step", "dampening_ignored", MOMENTUM)
def step_no_dampening(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                      nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = -g if maximize else g
            g = g + weight_decay * p
            if momentum != 0:
                v = momentum_buffers[i]
                v = g.clone() if v is None else momentum * v + g
                momentum_buffers[i] = v
                g = g + momentum * v if nesterov else v
            p.sub_(lr * g)


@wrong("sgd_step", "dampening_inverted", MOMENTUM)
def step_dampening_weight(params, grads, momentum_buffers, *, lr, momentum, dampening,
                          weight_decay, nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            if maximize:
                g = -g
            if weight_decay:
                g = g + weight_decay * p
            if momentum:
                if momentum_buffers[i] is None:
                    momentum_buffers[i] = g.clone()
                else:
                    momentum_buffers[i].mul_(momentum).add_(dampening * g)
                g = g + momentum * momentum_buffers[i] if nesterov else momentum_buffers[i]
            p.add_(-lr * g)


@wrong("sgd_step", "momentum_as_average", MOMENTUM)
def step_ema(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
             nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = (-g if maximize else g) + weight_decay * p
            if momentum:
                b = momentum_buffers[i]
                b = g.clone() if b is None else momentum * b + (1 - momentum) * g  # like Adam's m
                momentum_buffers[i] = b
                g = g + momentum * b if nesterov else b
            p -= lr * g


@wrong("sgd_step", "nesterov_ignored", MOMENTUM)
def step_nesterov_ignored(params, grads, momentum_buffers, *, lr, momentum, dampening,
                          weight_decay, nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = (-g if maximize else g) + weight_decay * p
            if momentum:
                b = momentum_buffers[i]
                b = g.clone() if b is None else b * momentum + g * (1 - dampening)
                momentum_buffers[i] = b
                g = b
            p -= lr * g


@wrong("sgd_step", "nesterov_lookahead", MOMENTUM)
def step_nesterov_swapped(params, grads, momentum_buffers, *, lr, momentum, dampening,
                          weight_decay, nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = (-g if maximize else g) + weight_decay * p
            if momentum:
                b = momentum_buffers[i]
                b = g.clone() if b is None else b * momentum + g * (1 - dampening)
                momentum_buffers[i] = b
                g = b + momentum * g if nesterov else b  # "look ahead along the gradient"
            p -= lr * g


@wrong("sgd_step", "nesterov_ignored", MOMENTUM)
def step_nesterov_before_update(params, grads, momentum_buffers, *, lr, momentum, dampening,
                                weight_decay, nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = (-g if maximize else g) + weight_decay * p
            if momentum:
                old = momentum_buffers[i]
                look = g + momentum * (old if old is not None else 0.0)
                new = g.clone() if old is None else old * momentum + g * (1 - dampening)
                momentum_buffers[i] = new
                g = look if nesterov else new
            p -= lr * g


@wrong("sgd_step", "decay_after_momentum", DECAY)
def step_decay_after(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                     nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = -g if maximize else g
            if momentum:
                b = momentum_buffers[i]
                b = g.clone() if b is None else b * momentum + g * (1 - dampening)
                momentum_buffers[i] = b
                g = g + momentum * b if nesterov else b
            p -= lr * (g + weight_decay * p)  # L2 term added to the step


@wrong("sgd_step", "decay_after_momentum", DECAY)
def step_decoupled(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                   nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            p.mul_(1 - lr * weight_decay)  # shrink the weights first, AdamW-style
            g = -g if maximize else g
            if momentum:
                b = momentum_buffers[i]
                b = g.clone() if b is None else b * momentum + g * (1 - dampening)
                momentum_buffers[i] = b
                g = g + momentum * b if nesterov else b
            p.add_(g, alpha=-lr)


@wrong("sgd_step", "maximize_ignored", MAXIMIZE)
def step_no_maximize(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                     nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = g + weight_decay * p
            if momentum:
                b = momentum_buffers[i]
                b = g.clone() if b is None else b * momentum + g * (1 - dampening)
                momentum_buffers[i] = b
                g = g + momentum * b if nesterov else b
            p -= lr * g


@wrong("sgd_step", "maximize_after_decay", MAXIMIZE)
def step_negate_late(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                     nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = g + weight_decay * p
            if maximize:
                g = -g
            if momentum:
                b = momentum_buffers[i]
                b = g.clone() if b is None else b * momentum + g * (1 - dampening)
                momentum_buffers[i] = b
                g = g + momentum * b if nesterov else b
            p -= lr * g


@wrong("sgd_step", "lr_in_buffer", MOMENTUM)
def step_sutskever(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                   nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = (-g if maximize else g) + weight_decay * p
            if momentum:
                v = momentum_buffers[i]
                v = lr * g if v is None else momentum * v + (1 - dampening) * lr * g
                momentum_buffers[i] = v
                p -= lr * g + momentum * v if nesterov else v
            else:
                p -= lr * g


@wrong("sgd_step", "buffer_aliases_grad", CONTRACT)
def step_alias(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
               nesterov, maximize):
    with torch.no_grad():
        for i, (p, d_p) in enumerate(zip(params, grads)):
            if maximize:
                d_p = -d_p
            if weight_decay != 0:
                d_p = d_p.add(p, alpha=weight_decay)
            if momentum != 0:
                if momentum_buffers[i] is None:
                    momentum_buffers[i] = d_p  # forgot the clone
                else:
                    momentum_buffers[i].mul_(momentum).add_(d_p, alpha=1 - dampening)
                buf = momentum_buffers[i]
                d_p = d_p.add(buf, alpha=momentum) if nesterov else buf
            p.add_(d_p, alpha=-lr)


@wrong("sgd_step", "grad_modified_in_place", CONTRACT)
def step_inplace_grad(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                      nesterov, maximize):
    with torch.no_grad():
        for i, (p, d_p) in enumerate(zip(params, grads)):
            if maximize:
                d_p.neg_()
            if weight_decay != 0:
                d_p.add_(p, alpha=weight_decay)
            if momentum != 0:
                if momentum_buffers[i] is None:
                    momentum_buffers[i] = d_p.clone()
                else:
                    momentum_buffers[i].mul_(momentum).add_(d_p, alpha=1 - dampening)
                buf = momentum_buffers[i]
                d_p = d_p.add(buf, alpha=momentum) if nesterov else buf
            p.add_(d_p, alpha=-lr)


@wrong("sgd_step", "buffer_without_momentum", MOMENTUM)
def step_always_buffer(params, grads, momentum_buffers, *, lr, momentum, dampening,
                       weight_decay, nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = (-g if maximize else g) + weight_decay * p
            b = momentum_buffers[i]
            b = g.clone() if b is None else momentum * b + (1 - dampening) * g
            momentum_buffers[i] = b
            p -= lr * (g + momentum * b if nesterov else b)


@wrong("sgd_step", "step_without_no_grad")
def step_autograd_on(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                     nesterov, maximize):
    for i, (p, g) in enumerate(zip(params, grads)):
        g = (-g if maximize else g) + weight_decay * p.detach()
        if momentum:
            b = momentum_buffers[i]
            b = g.clone() if b is None else momentum * b + (1 - dampening) * g
            momentum_buffers[i] = b
            g = g + momentum * b if nesterov else b
        p.sub_(lr * g)


@wrong("sgd_step", "buffers_not_stored", MOMENTUM)
def step_local_buffer(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                      nesterov, maximize):
    with torch.no_grad():
        for p, g, buf in zip(params, grads, momentum_buffers):
            g = (-g if maximize else g) + weight_decay * p
            if momentum:
                buf = g.clone() if buf is None else buf * momentum + (1 - dampening) * g
                g = g + momentum * buf if nesterov else buf
            p -= lr * g


@wrong("sgd_step", "params_not_in_place")
def step_rebinding(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                   nesterov, maximize):
    with torch.no_grad():
        for i in range(len(params)):
            g = (-grads[i] if maximize else grads[i]) + weight_decay * params[i]
            if momentum:
                b = momentum_buffers[i]
                b = g.clone() if b is None else b * momentum + (1 - dampening) * g
                momentum_buffers[i] = b
                g = g + momentum * b if nesterov else b
            params[i] = params[i] - lr * g  # a new tensor; the caller's is untouched


@wrong("sgd_step", "returns_params", CONTRACT)
def step_returning(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                   nesterov, maximize):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = (-g if maximize else g) + weight_decay * p
            if momentum:
                b = momentum_buffers[i]
                b = g.clone() if b is None else b * momentum + (1 - dampening) * g
                momentum_buffers[i] = b
                g = g + momentum * b if nesterov else b
            p -= lr * g
    return params


# ---------------------------------------------------------------------------------------------
# SGD: a learner's class, correct, with the variations below overriding one piece each


def _validate(lr, momentum, dampening, weight_decay, nesterov):
    if lr < 0:
        raise ValueError(f"Invalid learning rate: {lr}")
    if momentum < 0:
        raise ValueError(f"Invalid momentum value: {momentum}")
    if weight_decay < 0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")


class LearnerSGD(torch.optim.Optimizer):
    """How many learners write it: one loop over parameters, ``.data`` for the update."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        _validate(lr, momentum, dampening, weight_decay, nesterov)
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    self.update(p, p.grad, group)
        return loss

    def direction(self, p, grad, group):
        g = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p
        return g

    def velocity(self, p, g, group):
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = g.clone()
        else:
            state["momentum_buffer"].mul_(group["momentum"]).add_(g, alpha=1 - group["dampening"])
        return state["momentum_buffer"]

    def update(self, p, grad, group):
        g = self.direction(p, grad, group)
        if group["momentum"] != 0:
            buf = self.velocity(p, g, group)
            g = g + group["momentum"] * buf if group["nesterov"] else buf
        p.data.add_(g, alpha=-group["lr"])


@wrong("SGD", "dampening_first_step", MOMENTUM)
class SGDZeroVelocity(LearnerSGD):
    def velocity(self, p, g, group):
        state = self.state[p]
        buf = state.setdefault("momentum_buffer", torch.zeros_like(p))
        buf.mul_(group["momentum"]).add_(g, alpha=1 - group["dampening"])
        return buf


@wrong("SGD", "nesterov_lookahead", MOMENTUM)
class SGDNesterovSwapped(LearnerSGD):
    def update(self, p, grad, group):
        g = self.direction(p, grad, group)
        if group["momentum"] != 0:
            buf = self.velocity(p, g, group)
            g = buf + group["momentum"] * g if group["nesterov"] else buf
        p.data.add_(g, alpha=-group["lr"])


@wrong("SGD", "dampening_ignored", MOMENTUM)
class SGDNoDampening(LearnerSGD):
    def velocity(self, p, g, group):
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = g.clone()
        else:
            state["momentum_buffer"] = group["momentum"] * state["momentum_buffer"] + g
        return state["momentum_buffer"]


@wrong("SGD", "dampening_inverted", MOMENTUM)
class SGDDampeningAsWeight(LearnerSGD):
    def velocity(self, p, g, group):
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = g.clone()
        else:
            state["momentum_buffer"].mul_(group["momentum"]).add_(group["dampening"] * g)
        return state["momentum_buffer"]


@wrong("SGD", "momentum_as_average", MOMENTUM)
class SGDAverage(LearnerSGD):
    def velocity(self, p, g, group):
        mu, state = group["momentum"], self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = g.clone()
        else:
            state["momentum_buffer"].lerp_(g, 1 - mu)  # mu * b + (1 - mu) * g
        return state["momentum_buffer"]


@wrong("SGD", "nesterov_ignored", MOMENTUM)
class SGDNesterovEarly(LearnerSGD):
    def update(self, p, grad, group):
        g = self.direction(p, grad, group)
        if group["momentum"] != 0:
            previous = self.state[p].get("momentum_buffer")
            look_ahead = g if previous is None else g + group["momentum"] * previous
            look_ahead = look_ahead.clone()  # before velocity() updates the buffer in place
            buf = self.velocity(p, g, group)
            g = look_ahead if group["nesterov"] else buf
        p.data.add_(g, alpha=-group["lr"])


@wrong("SGD", "maximize_after_decay", MAXIMIZE)
class SGDNegateLate(LearnerSGD):
    def direction(self, p, grad, group):
        g = grad + group["weight_decay"] * p
        return -g if group["maximize"] else g


@wrong("SGD", "nesterov_ignored", MOMENTUM)
class SGDNoNesterov(LearnerSGD):
    def update(self, p, grad, group):
        g = self.direction(p, grad, group)
        if group["momentum"] != 0:
            g = self.velocity(p, g, group)
        p.data.add_(g, alpha=-group["lr"])


@wrong("SGD", "decay_after_momentum", DECAY)
class SGDDecayAfterMomentum(LearnerSGD):
    def update(self, p, grad, group):
        g = -grad if group["maximize"] else grad
        if group["momentum"] != 0:
            buf = self.velocity(p, g, group)
            g = g + group["momentum"] * buf if group["nesterov"] else buf
        p.data.add_(g + group["weight_decay"] * p, alpha=-group["lr"])


@wrong("SGD", "maximize_ignored", MAXIMIZE)
class SGDNoMaximize(LearnerSGD):
    def direction(self, p, grad, group):
        return grad + group["weight_decay"] * p


@wrong("SGD", "lr_in_buffer", MOMENTUM)
class SGDSutskever(LearnerSGD):
    def update(self, p, grad, group):
        g = self.direction(p, grad, group)
        lr, mu = group["lr"], group["momentum"]
        if mu == 0:
            p.data.add_(g, alpha=-lr)
            return
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = lr * g
        else:
            damp = 1 - group["dampening"]
            state["momentum_buffer"] = mu * state["momentum_buffer"] + damp * lr * g
        v = state["momentum_buffer"]
        p.data.sub_(lr * g + mu * v if group["nesterov"] else v)


@wrong("SGD", "buffer_aliases_grad", CONTRACT)
class SGDAliasedBuffer(LearnerSGD):
    def velocity(self, p, g, group):
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = g  # the gradient tensor itself
        else:
            state["momentum_buffer"].mul_(group["momentum"]).add_(g, alpha=1 - group["dampening"])
        return state["momentum_buffer"]


@wrong("SGD", "grad_modified_in_place", CONTRACT)
class SGDInPlaceGrad(LearnerSGD):
    def direction(self, p, grad, group):
        if group["maximize"]:
            grad.mul_(-1)
        if group["weight_decay"] != 0:
            grad.add_(p, alpha=group["weight_decay"])
        return grad.clone()


@wrong("SGD", "none_grad_as_zero", CONTRACT)
class SGDNoneAsZero(LearnerSGD):
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    grad = p.grad if p.grad is not None else torch.zeros_like(p)
                    self.update(p, grad, group)
        return loss


@wrong("SGD", "state_key_name", STATE)
class SGDVelocityKey(LearnerSGD):
    def velocity(self, p, g, group):
        state = self.state[p]
        if "velocity" not in state:
            state["velocity"] = g.clone()
        else:
            state["velocity"] = group["momentum"] * state["velocity"] + (1 - group["dampening"]) * g
        return state["velocity"]


@wrong("SGD", "buffer_outside_state", STATE)
class SGDOwnDict(LearnerSGD):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.velocities = {}

    def velocity(self, p, g, group):
        if p not in self.velocities:
            self.velocities[p] = g.clone()
        else:
            damp = 1 - group["dampening"]
            self.velocities[p] = group["momentum"] * self.velocities[p] + damp * g
        return self.velocities[p]


@wrong("SGD", "group_options_ignored", CONTRACT)
class SGDDefaultsOnly(LearnerSGD):
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self.update(p, p.grad, self.defaults)  # one set of options for all
        return loss


@wrong("SGD", "lr_cached", CONTRACT)
class SGDCachedLr(LearnerSGD):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        super().__init__(params, lr, momentum, dampening, weight_decay, nesterov,
                         maximize=maximize)
        self.lr = lr

    def update(self, p, grad, group):
        g = self.direction(p, grad, group)
        if group["momentum"] != 0:
            buf = self.velocity(p, g, group)
            g = g + group["momentum"] * buf if group["nesterov"] else buf
        p.data.add_(g, alpha=-self.lr)


@wrong("SGD", "zero_grad_in_step", CONTRACT)
class SGDClearsGrads(LearnerSGD):
    def step(self, closure=None):
        loss = super().step(closure)
        self.zero_grad()  # "ready for the next batch"
        return loss


@wrong("SGD", "closure_loss_dropped", CONTRACT)
class SGDForgetsLoss(LearnerSGD):
    def step(self, closure=None):
        super().step(closure)


@wrong("SGD", "closure_without_enable_grad", CONTRACT)
class SGDClosureNoGrad(LearnerSGD):
    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, group)
        return loss


@wrong("SGD", "step_without_no_grad")
class SGDRecordsUpdate(LearnerSGD):
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = self.direction(p.detach(), p.grad, group)
                if group["momentum"] != 0:
                    buf = self.velocity(p, g, group)
                    g = g + group["momentum"] * buf if group["nesterov"] else buf
                p.add_(g, alpha=-group["lr"])  # autograd sees an in-place op on a leaf
        return loss


@wrong("SGD", "buffer_without_momentum", MOMENTUM)
class SGDAlwaysBuffer(LearnerSGD):
    def update(self, p, grad, group):
        g = self.direction(p, grad, group)
        buf = self.velocity(p, g, group)
        g = g + group["momentum"] * buf if group["nesterov"] else buf
        p.data.add_(g, alpha=-group["lr"])


@wrong("SGD", "nesterov_check_missing", CONTRACT)
class SGDNoNesterovCheck(LearnerSGD):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        # "nesterov only matters when there is momentum": no check
        _validate(lr, momentum, dampening, weight_decay, False)
        torch.optim.Optimizer.__init__(self, params, dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize))


@wrong("SGD", "validation_too_strict", CONTRACT)
class SGDStrictMomentum(LearnerSGD):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        if not 0.0 <= momentum < 1.0:  # "a momentum of 1 or more diverges"
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        super().__init__(params, lr, momentum, dampening, weight_decay, nesterov,
                         maximize=maximize)


# ---------------------------------------------------------------------------------------------
# Correct answers written in other legitimate ways: they score full marks


@right("sgd_step")
def step_foreach(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                 nesterov, maximize):
    """The multi-tensor style: torch._foreach_* over the whole list (allowed)."""
    with torch.no_grad():
        d_p = torch._foreach_neg(grads) if maximize else list(grads)
        if weight_decay != 0:
            d_p = torch._foreach_add(d_p, params, alpha=weight_decay)
        if momentum != 0:
            for i, g in enumerate(d_p):
                if momentum_buffers[i] is None:
                    momentum_buffers[i] = torch.clone(g).detach()
                else:
                    momentum_buffers[i].mul_(momentum).add_(g, alpha=1 - dampening)
            if nesterov:
                d_p = torch._foreach_add(d_p, momentum_buffers, alpha=momentum)
            else:
                d_p = list(momentum_buffers)
        torch._foreach_add_(params, d_p, alpha=-lr)


@right("sgd_step")
def step_new_buffers(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                     nesterov, maximize):
    """Out-of-place arithmetic, ``.data`` for the update, a new buffer tensor at every step."""
    for i, (p, g) in enumerate(zip(params, grads)):
        d = g * (-1.0 if maximize else 1.0)
        if weight_decay:
            d = d + weight_decay * p.data
        if momentum:
            old = momentum_buffers[i]
            momentum_buffers[i] = d.clone() if old is None else momentum * old + (1 - dampening) * d
            d = d + momentum * momentum_buffers[i] if nesterov else momentum_buffers[i]
        p.data -= lr * d


@right("sgd_step")
def step_sub_with_alpha(params, grads, momentum_buffers, *, lr, momentum, dampening,
                        weight_decay, nesterov, maximize):
    """Each option a separate pass; p.sub_ under no_grad."""
    directions = [-g if maximize else g.clone() for g in grads]
    with torch.no_grad():
        if weight_decay != 0:
            directions = [d + weight_decay * p for d, p in zip(directions, params)]
        if momentum != 0:
            for i, d in enumerate(directions):
                b = momentum_buffers[i]
                momentum_buffers[i] = d.detach().clone() if b is None else \
                    b.mul_(momentum).add_((1 - dampening) * d)
            directions = [d + momentum * b if nesterov else b
                          for d, b in zip(directions, momentum_buffers)]
        for p, d in zip(params, directions):
            p.sub_(d, alpha=lr)


@right("SGD")
class SGDOwnWords(LearnerSGD):
    """Its own ValueError messages, checked in another order: PyTorch grades neither."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and no dampening")
        for name, value in (("weight_decay", weight_decay), ("momentum", momentum), ("lr", lr)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        torch.optim.Optimizer.__init__(self, params, dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize))


@right("SGD")
class SGDWithStepCount(LearnerSGD):
    """Keeps a step counter next to the buffer (an int, created lazily with the state):
    torch.optim.SGD loads such a state_dict and ignores the extra entry."""

    def velocity(self, p, g, group):
        state = self.state[p]
        state["step"] = state.get("step", 0) + 1
        return super().velocity(p, g, group)


@right("SGD")
class SGDDecorated(torch.optim.Optimizer):
    """@torch.no_grad() on step, setdefault for the group options, torch.clone for the buffer."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        _validate(lr, momentum, dampening, weight_decay, nesterov)
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "maximize": maximize})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            mu, tau = group["momentum"], group["dampening"]
            for p in (q for q in group["params"] if q.grad is not None):
                d_p = p.grad.neg() if group["maximize"] else p.grad
                d_p = d_p.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else d_p
                if mu != 0:
                    buf = self.state[p].get("momentum_buffer")
                    if buf is None:
                        buf = self.state[p]["momentum_buffer"] = torch.clone(d_p).detach()
                    else:
                        buf.mul_(mu).add_(d_p, alpha=1 - tau)
                    d_p = d_p.add(buf, alpha=mu) if group["nesterov"] else buf
                p.add_(d_p, alpha=-group["lr"])
        return loss


# ---------------------------------------------------------------------------------------------
# Dependent pair: an SGD built on the learner's own sgd_step (a wrong one) is checked on a correct
# sgd_step, so it scores in full; the report names sgd_step. Built by ``sgd_on(step)`` so that the
# class's methods find ``sgd_step`` in their globals, as in a notebook.

SGD_ON_SGD_STEP = '''
class SGD(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._group_step(group)
        return loss

    def _group_step(self, group):
        params = [p for p in group["params"] if p.grad is not None]
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        sgd_step(params, [p.grad for p in params], buffers,
                 **{k: group[k] for k in ("lr", "momentum", "dampening", "weight_decay",
                                          "nesterov", "maximize")})
        if group["momentum"] != 0:
            for p, b in zip(params, buffers):
                self.state[p]["momentum_buffer"] = b
'''


def sgd_on(step: Callable[..., Any]) -> type:
    """An SGD class whose step calls ``step`` as its global ``sgd_step``."""
    namespace: dict[str, Any] = {"torch": torch, "sgd_step": step, "__name__": "learner"}
    exec(compile(SGD_ON_SGD_STEP, "<learner>", "exec"), namespace)
    return namespace["SGD"]
