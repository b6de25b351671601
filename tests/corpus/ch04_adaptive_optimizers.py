"""Wrong answers to Chapter 4's exercises, written the way learners write them.

Each entry is registered with the exercise it answers and the ``Mistake.key`` the grader must name
(``grader/chapters/ch04_adaptive_optimizers.py``). An optimizer is a whole class, and a realistic wrong one
is a right one with one thing wrong, so the entries are built from four *correct* learner-style
classes below (:data:`CORRECT`), each by a few exact text edits of its source: the edit is the
mistake, readable at a glance. The correct classes are deliberately not copies of the solution
or of the grader's models (``m_hat``/``v_hat`` written out, ``** 0.5``, ``p -= ...``): they also
prove that the grader's float64 tolerances accept a differently rounded right answer.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch.optim import Optimizer

CORPUS: list[tuple[str, str, type]] = []


# ---------------------------------------------------------------------------------------------
# Correct answers, as a learner might write them


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if lr_decay < 0:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if initial_accumulator_value < 0:
            raise ValueError(
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if eps < 0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = torch.tensor(0.0)
                self.state[p]["sum"] = torch.full_like(p, initial_accumulator_value)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.clone()
                if group["maximize"]:
                    g = -g
                state = self.state[p]
                state["step"] += 1
                t = state["step"].item()
                if group["weight_decay"] != 0:
                    g = g + group["weight_decay"] * p
                clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
                state["sum"] += g * g
                p -= clr * g / (state["sum"].sqrt() + group["eps"])
        return loss


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        for name, value in [("learning rate", lr), ("epsilon value", eps),
                            ("momentum value", momentum), ("weight_decay value", weight_decay),
                            ("alpha value", alpha)]:
            if value < 0:
                raise ValueError(f"Invalid {name}: {value}")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"]:
                    g = g + group["weight_decay"] * p
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["square_avg"] = torch.zeros_like(p)
                    if group["momentum"] > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    if group["centered"]:
                        state["grad_avg"] = torch.zeros_like(p)
                state["step"] += 1
                v = state["square_avg"]
                v.mul_(alpha).add_((1 - alpha) * g * g)
                if group["centered"]:
                    state["grad_avg"].mul_(alpha).add_((1 - alpha) * g)
                    denom = torch.sqrt(v - state["grad_avg"] ** 2) + eps
                else:
                    denom = torch.sqrt(v) + eps
                if group["momentum"] > 0:
                    buf = state["momentum_buffer"]
                    buf.mul_(group["momentum"]).add_(g / denom)
                    p.sub_(lr * buf)
                else:
                    p.sub_(lr * g / denom)
        return loss


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i in range(2):
            if not 0 <= betas[i] < 1:
                raise ValueError(f"Invalid beta parameter at index {i}: {betas[i]}")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if not group["maximize"] else -p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                if wd != 0:
                    if group["decoupled_weight_decay"]:
                        p.mul_(1 - lr * wd)
                    else:
                        grad = grad + wd * p
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_((1 - beta1) * grad)
                v.mul_(beta2).add_((1 - beta2) * grad * grad)
                m_hat = m / (1 - beta1 ** t)
                if group["amsgrad"]:
                    torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    v_hat = state["max_exp_avg_sq"] / (1 - beta2 ** t)
                else:
                    v_hat = v / (1 - beta2 ** t)
                p.sub_(lr * m_hat / (v_hat ** 0.5 + eps))
        return loss


class AdamW(Optimizer):
    """AdamW written out in full, on Optimizer (not on Adam)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad,
                                  "maximize": maximize})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                step = state["step"].item()
                p.mul_(1 - group["lr"] * group["weight_decay"])
                beta1, beta2 = group["betas"]
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias_correction1 = 1 - beta1 ** step
                bias_correction2 = 1 - beta2 ** step
                second = state["exp_avg_sq"]
                if group["amsgrad"]:
                    second = torch.maximum(state["max_exp_avg_sq"], second)
                    state["max_exp_avg_sq"].copy_(second)
                denom = second.sqrt() / math.sqrt(bias_correction2) + group["eps"]
                p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / bias_correction1)
        return loss


class AdamWOnAdam(Adam):
    """AdamW as PyTorch 2.13 builds it: Adam with decoupled_weight_decay=True."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)


CORRECT: dict[str, list[type]] = {
    "Adagrad": [Adagrad], "RMSprop": [RMSprop], "Adam": [Adam], "AdamW": [AdamW, AdamWOnAdam],
}


# ---------------------------------------------------------------------------------------------
# Wrong answers: a correct class with a few exact edits


def wrong(exercise: str, key: str, base: type, *edits: tuple[str, str]) -> type:
    """Register ``base`` with ``edits`` applied to its source, to be diagnosed as ``key``
    (``key`` None: a correct answer written another way, added to :data:`CORRECT`).

    Each ``(old, new)`` edit must match exactly once, so that a change to the correct classes
    cannot silently turn an entry into a right answer.
    """
    source = inspect.getsource(base)
    for old, new in edits:
        count = source.count(old)
        if count != 1:
            raise AssertionError(f"corpus {exercise}/{key}: {old!r} occurs {count} times in "
                                 f"{base.__name__}, expected once")
        source = source.replace(old, new)
    namespace: dict[str, Any] = {"torch": torch, "math": math, "Optimizer": Optimizer,
                                 "Adam": Adam}
    exec(compile(source, f"<corpus {exercise}: {key}>", "exec"), namespace)
    cls = namespace[base.__name__]
    # The class's own text, so the grading-core tests can type it into a submission's cell.
    cls.__corpus_source__ = source
    if key is None:
        cls.__name__ = cls.__qualname__ = f"{base.__name__}_{len(CORRECT[exercise])}"
        CORRECT[exercise].append(cls)
    else:
        CORPUS.append((exercise, key, cls))
    return cls


def right(exercise: str, base: type, *edits: tuple[str, str]) -> type:
    """A correct answer written another way: ``base`` with ``edits``; it scores full marks."""
    return wrong(exercise, None, base, *edits)


NO_GRAD = "    @torch.no_grad()\n"
ENABLE_GRAD = "            with torch.enable_grad():\n                loss = closure()"
RETURN = "        return loss"


def step_loop_mistakes(exercise: str, base: type, loop_end: str) -> None:
    """The mistakes about step() itself, which every optimizer can make the same way."""
    wrong(exercise, "step_not_no_grad", base, (NO_GRAD, ""))
    wrong(exercise, "closure_without_enable_grad", base,
          (ENABLE_GRAD, "            loss = closure()"))
    wrong(exercise, "closure_loss_dropped", base, (RETURN, "        return None"))
    wrong(exercise, "zero_grad_in_step", base,
          (loop_end, loop_end + "\n                p.grad = None"))


# -- Adagrad ------------------------------------------------------------------------------------

A = Adagrad
wrong("Adagrad", "lr_decay_off_by_one", A,
      ('(1 + (t - 1) * group["lr_decay"])', '(1 + t * group["lr_decay"])'))
wrong("Adagrad", "step_incremented_late", A,
      ('state["step"] += 1\n                t = state["step"].item()', 't = state["step"].item()'),
      ('p -= clr * g / (state["sum"].sqrt() + group["eps"])',
       'p -= clr * g / (state["sum"].sqrt() + group["eps"])\n                state["step"] += 1'))
wrong("Adagrad", "eps_inside_sqrt", A,
      ('(state["sum"].sqrt() + group["eps"])', '(state["sum"] + group["eps"]).sqrt()'))
wrong("Adagrad", "decoupled_instead_of_l2", A,
      ('g = g + group["weight_decay"] * p', 'p.mul_(1 - group["lr"] * group["weight_decay"])'))
wrong("Adagrad", "maximize_ignored", A, ("g = -g", "g = g"))
right("Adagrad", A,
      ('        for group in self.param_groups:\n            for p in group["params"]:\n'
       '                self.state[p]["step"] = torch.tensor(0.0)\n'
       '                self.state[p]["sum"] = '
       'torch.full_like(p, initial_accumulator_value)\n', ''),
      ('                state = self.state[p]\n',
       '                state = self.state[p]\n                if not state:\n'
       '                    state["step"] = torch.tensor(0.0)\n'
       '                    state["sum"] = '
       'torch.full_like(p, group["initial_accumulator_value"])\n'))
wrong("Adagrad", "initial_accumulator_ignored", A,
      ("torch.full_like(p, initial_accumulator_value)", "torch.zeros_like(p)"))
wrong("Adagrad", "weight_decay_not_in_sum", A,
      ('state["sum"] += g * g', 'state["sum"] += p.grad * p.grad'))
wrong("Adagrad", "none_grad_as_zero", A,
      ("if p.grad is None:\n                    continue\n                g = p.grad.clone()",
       "g = p.grad.clone() if p.grad is not None else torch.zeros_like(p)"))
wrong("Adagrad", "grad_modified_in_place", A,
      ("g = p.grad.clone()", "g = p.grad"), ("g = -g", "g.neg_()"),
      ('g = g + group["weight_decay"] * p', 'g.add_(p, alpha=group["weight_decay"])'))
wrong("Adagrad", "lr_cached", A,
      ("eps=eps, maximize=maximize))", "eps=eps, maximize=maximize))\n        self.lr = lr"),
      ('clr = group["lr"] /', "clr = self.lr /"))
step_loop_mistakes("Adagrad", A, 'p -= clr * g / (state["sum"].sqrt() + group["eps"])')

# -- RMSprop ------------------------------------------------------------------------------------

R = RMSprop
wrong("RMSprop", "centered_missing_square", R,
      ('v - state["grad_avg"] ** 2', 'v - state["grad_avg"]'))
wrong("RMSprop", "centered_ignored", R,
      ('                    if group["centered"]:\n'
       '                        state["grad_avg"] = torch.zeros_like(p)\n', ''),
      ('if group["centered"]:\n                    state["grad_avg"].mul_',
       'if False:\n                    state["grad_avg"].mul_'))
wrong("RMSprop", "eps_inside_sqrt", R,
      ('torch.sqrt(v - state["grad_avg"] ** 2) + eps',
       'torch.sqrt(v - state["grad_avg"] ** 2 + eps)'),
      ("torch.sqrt(v) + eps", "torch.sqrt(v + eps)"))
wrong("RMSprop", "alpha_swapped", R,
      ("v.mul_(alpha).add_((1 - alpha) * g * g)", "v.mul_(1 - alpha).add_(alpha * g * g)"),
      ('state["grad_avg"].mul_(alpha).add_((1 - alpha) * g)',
       'state["grad_avg"].mul_(1 - alpha).add_(alpha * g)'))
wrong("RMSprop", "lr_in_momentum_buffer", R,
      ('buf.mul_(group["momentum"]).add_(g / denom)\n                    p.sub_(lr * buf)',
       'buf.mul_(group["momentum"]).add_(lr * g / denom)\n                    p.sub_(buf)'))
wrong("RMSprop", "momentum_dampened", R,
      ("add_(g / denom)", 'add_((1 - group["momentum"]) * g / denom)'))
wrong("RMSprop", "bias_corrected", R,
      ('state["step"] += 1\n', 'state["step"] += 1\n'
       '                correction = 1 - alpha ** state["step"].item()\n'),
      ('torch.sqrt(v - state["grad_avg"] ** 2)',
       'torch.sqrt((v - state["grad_avg"] ** 2) / correction)'),
      ("torch.sqrt(v) + eps", "torch.sqrt(v / correction) + eps"))
wrong("RMSprop", "extra_state_keys", R,
      ('                    if group["momentum"] > 0:\n'
       '                        state["momentum_buffer"] = torch.zeros_like(p)\n'
       '                    if group["centered"]:\n'
       '                        state["grad_avg"] = torch.zeros_like(p)\n',
       '                    state["momentum_buffer"] = torch.zeros_like(p)\n'
       '                    state["grad_avg"] = torch.zeros_like(p)\n'))
wrong("RMSprop", "decoupled_instead_of_l2", R,
      ('g = g + group["weight_decay"] * p', 'p.mul_(1 - lr * group["weight_decay"])'))
wrong("RMSprop", "maximize_ignored", R,
      ('g = -p.grad if group["maximize"] else p.grad', "g = p.grad"))
right("RMSprop", R,
      ("        super().__init__(params, defaults)\n",
       "        super().__init__(params, defaults)\n"
       "        for group in self.param_groups:\n"
       '            for p in group["params"]:\n'
       '                self.state[p]["step"] = torch.tensor(0.0)\n'
       '                self.state[p]["square_avg"] = torch.zeros_like(p)\n'
       '                if group["momentum"] > 0:\n'
       '                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)\n'
       '                if group["centered"]:\n'
       '                    self.state[p]["grad_avg"] = torch.zeros_like(p)\n'))
wrong("RMSprop", "grad_modified_in_place", R,
      ('g = g + group["weight_decay"] * p', 'g.add_(p, alpha=group["weight_decay"])'))
wrong("RMSprop", "uses_defaults_not_group", R,
      ('            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]\n',
       '            group = dict(self.defaults, params=group["params"])\n'
       '            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]\n'))
step_loop_mistakes("RMSprop", R, "p.sub_(lr * g / denom)")

# -- Adam ---------------------------------------------------------------------------------------

D = Adam
AMS = 'v_hat = state["max_exp_avg_sq"] / (1 - beta2 ** t)'
PLAIN = "v_hat = v / (1 - beta2 ** t)"
UPDATE = "p.sub_(lr * m_hat / (v_hat ** 0.5 + eps))"
wrong("Adam", "no_bias_correction", D,
      ("m_hat = m / (1 - beta1 ** t)", "m_hat = m"),
      (AMS, 'v_hat = state["max_exp_avg_sq"]'), (PLAIN, "v_hat = v"))
wrong("Adam", "bias_correction_first_moment_only", D,
      (AMS, 'v_hat = state["max_exp_avg_sq"]'), (PLAIN, "v_hat = v"))
wrong("Adam", "bias_correction2_not_sqrt", D,
      (AMS, 'v_hat = (state["max_exp_avg_sq"].sqrt() / (1 - beta2 ** t)) ** 2'),
      (PLAIN, "v_hat = (v.sqrt() / (1 - beta2 ** t)) ** 2"))
wrong("Adam", "eps_inside_sqrt", D, (UPDATE, "p.sub_(lr * m_hat / (v_hat + eps) ** 0.5)"))
wrong("Adam", "eps_before_bias_correction", D,
      (UPDATE, "step_size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)\n"
               "                p.sub_(step_size * m / ((v_hat * (1 - beta2 ** t)) ** 0.5 + eps))"))
wrong("Adam", "step_incremented_late", D,
      ('state["step"] += 1\n                t = state["step"].item()', 't = state["step"].item()'),
      (UPDATE, UPDATE + '\n                state["step"] += 1'))
wrong("Adam", "step_incremented_late", D,
      ('state["step"] += 1\n                t = state["step"].item()', 't = state["step"].item()'),
      (UPDATE, "step_size = lr / (1 - beta1 ** t)\n"
               "                p.sub_(step_size * m / (v_hat ** 0.5 + eps))\n"
               '                state["step"] += 1'))
right("Adam", D, ('t = state["step"].item()', 't = state["step"]'))
wrong("Adam", "amsgrad_max_of_corrected", D,
      ('torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])\n'
       '                    ' + AMS,
       'torch.maximum(state["max_exp_avg_sq"], v / (1 - beta2 ** t), out=state["max_exp_avg_sq"])\n'
       '                    v_hat = state["max_exp_avg_sq"]'))
wrong("Adam", "amsgrad_ignored", D,
      ('                    if group["amsgrad"]:\n'
       '                        state["max_exp_avg_sq"] = torch.zeros_like(p)\n', ''),
      ('if group["amsgrad"]:\n                    torch.maximum',
       'if False:\n                    torch.maximum'))
wrong("Adam", "betas_swapped", D,
      ('beta1, beta2 = group["betas"]', 'beta2, beta1 = group["betas"]'))
wrong("Adam", "decoupled_instead_of_l2", D, ('if group["decoupled_weight_decay"]:', "if True:"))
wrong("Adam", "l2_instead_of_decoupled", D, ('if group["decoupled_weight_decay"]:', "if False:"))
wrong("Adam", "decay_after_update", D,
      ("p.mul_(1 - lr * wd)", "pass"),
      (UPDATE, UPDATE + '\n                if wd != 0 and group["decoupled_weight_decay"]:\n'
                        "                    p.mul_(1 - lr * wd)"))
wrong("Adam", "decay_without_lr", D, ("p.mul_(1 - lr * wd)", "p.mul_(1 - wd)"))
wrong("Adam", "maximize_ignored", D,
      ('grad = p.grad if not group["maximize"] else -p.grad', "grad = p.grad"))
wrong("Adam", "none_grad_as_zero", D,
      ('if p.grad is None:\n                    continue\n'
       '                grad = p.grad if not group["maximize"] else -p.grad',
       'grad = p.grad if p.grad is not None else torch.zeros_like(p)\n'
       '                if group["maximize"]:\n                    grad = -grad'))
right("Adam", D,
      ("                                      decoupled_weight_decay=decoupled_weight_decay))\n",
       "                                      decoupled_weight_decay=decoupled_weight_decay))\n"
       "        for group in self.param_groups:\n"
       '            for p in group["params"]:\n'
       '                self.state[p]["step"] = torch.tensor(0.0)\n'
       '                self.state[p]["exp_avg"] = torch.zeros_like(p)\n'
       '                self.state[p]["exp_avg_sq"] = torch.zeros_like(p)\n'
       '                if group["amsgrad"]:\n'
       '                    self.state[p]["max_exp_avg_sq"] = torch.zeros_like(p)\n'))
wrong("Adam", "grad_modified_in_place", D, ("grad = grad + wd * p", "grad.add_(p, alpha=wd)"))
wrong("Adam", "uses_defaults_not_group", D,
      ('beta1, beta2 = group["betas"]\n'
       '            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]',
       'beta1, beta2 = self.defaults["betas"]\n'
       '            hp = self.defaults\n'
       '            lr, eps, wd = hp["lr"], hp["eps"], hp["weight_decay"]'))
wrong("Adam", "lr_cached", D,
      ("decoupled_weight_decay=decoupled_weight_decay))\n",
       "decoupled_weight_decay=decoupled_weight_decay))\n        self.lr = lr\n"),
      ('lr, eps, wd = group["lr"],', 'lr, eps, wd = self.lr,'))
step_loop_mistakes("Adam", D, UPDATE)

# -- AdamW --------------------------------------------------------------------------------------

W = AdamW
DECAY = 'p.mul_(1 - group["lr"] * group["weight_decay"])'
W_UPDATE = 'p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / bias_correction1)'
wrong("AdamW", "l2_instead_of_decoupled", W,
      (DECAY, 'grad = grad + group["weight_decay"] * p'))
wrong("AdamW", "l2_instead_of_decoupled", AdamWOnAdam,
      ("maximize=maximize,\n                         decoupled_weight_decay=True)",
       "maximize=maximize)"))
wrong("AdamW", "decay_after_update", W,
      (DECAY, "pass"), (W_UPDATE, W_UPDATE + "\n                " + DECAY))
wrong("AdamW", "decay_without_lr", W, (DECAY, 'p.mul_(1 - group["weight_decay"])'))
wrong("AdamW", "decay_wrong_sign", W, (DECAY, 'p.mul_(1 + group["lr"] * group["weight_decay"])'))
wrong("AdamW", "decay_proximal", W, (DECAY, 'p.div_(1 + group["lr"] * group["weight_decay"])'))
wrong("AdamW", "decay_twice", W,
      (DECAY, 'grad = grad + group["weight_decay"] * p\n                ' + DECAY))
wrong("AdamW", "default_weight_decay", W, ("weight_decay=1e-2,", "weight_decay=0,"))
wrong("AdamW", "default_weight_decay", AdamWOnAdam, ("weight_decay=1e-2,", "weight_decay=0,"))
wrong("AdamW", "maximize_ignored", W,
      ('grad = -p.grad if group["maximize"] else p.grad', "grad = p.grad"))
wrong("AdamW", "no_bias_correction", W,
      ("bias_correction1 = 1 - beta1 ** step", "bias_correction1 = 1"),
      ("bias_correction2 = 1 - beta2 ** step", "bias_correction2 = 1"))
wrong("AdamW", "eps_inside_sqrt", W,
      ('denom = second.sqrt() / math.sqrt(bias_correction2) + group["eps"]',
       'denom = (second / bias_correction2 + group["eps"]).sqrt()'))
wrong("AdamW", "amsgrad_max_of_corrected", W,
      ('second = torch.maximum(state["max_exp_avg_sq"], second)\n'
       '                    state["max_exp_avg_sq"].copy_(second)',
       'second = torch.maximum(state["max_exp_avg_sq"], second / bias_correction2)\n'
       '                    state["max_exp_avg_sq"].copy_(second)\n'
       "                    bias_correction2 = 1.0"))
right("AdamW", W, ('step = state["step"].item()', 'step = state["step"]'))
wrong("AdamW", "amsgrad_ignored", W,
      ('                    if group["amsgrad"]:\n'
       '                        state["max_exp_avg_sq"] = torch.zeros_like(p)\n', ''),
      ('if group["amsgrad"]:\n                    second = torch.maximum',
       'if False:\n                    second = torch.maximum'))
wrong("AdamW", "betas_swapped", W,
      ('beta1, beta2 = group["betas"]', 'beta2, beta1 = group["betas"]'))
wrong("AdamW", "bias_correction2_not_sqrt", W,
      ("second.sqrt() / math.sqrt(bias_correction2)", "second.sqrt() / bias_correction2"))
wrong("AdamW", "bias_correction_first_moment_only", W,
      ("bias_correction2 = 1 - beta2 ** step", "bias_correction2 = 1"))
wrong("AdamW", "eps_before_bias_correction", W,
      ('denom = second.sqrt() / math.sqrt(bias_correction2) + group["eps"]',
       'denom = (second.sqrt() + group["eps"]) / math.sqrt(bias_correction2)'))
wrong("AdamW", "step_incremented_late", W,
      ('state["step"] += 1\n                step = state["step"].item()',
       'step = state["step"].item()'),
      (W_UPDATE, W_UPDATE + '\n                state["step"] += 1'))
wrong("AdamW", "grad_modified_in_place", W,
      ('grad = -p.grad if group["maximize"] else p.grad',
       'grad = p.grad.neg_() if group["maximize"] else p.grad'))
wrong("AdamW", "lr_cached", W,
      ('                                  "maximize": maximize})\n',
       '                                  "maximize": maximize})\n        self.lr = lr\n'),
      (DECAY, 'p.mul_(1 - self.lr * group["weight_decay"])'),
      (W_UPDATE, W_UPDATE.replace('group["lr"]', "self.lr")))
wrong("AdamW", "none_grad_as_zero", W,
      ('if p.grad is None:\n                    continue\n'
       '                grad = -p.grad if group["maximize"] else p.grad',
       'grad = p.grad if p.grad is not None else torch.zeros_like(p)\n'
       '                if group["maximize"]:\n                    grad = -grad'))
right("AdamW", W,
      ('                                  "maximize": maximize})\n',
       '                                  "maximize": maximize})\n'
       "        for group in self.param_groups:\n"
       '            for p in group["params"]:\n'
       '                self.state[p]["step"] = torch.tensor(0.0)\n'
       '                self.state[p]["exp_avg"] = torch.zeros_like(p)\n'
       '                self.state[p]["exp_avg_sq"] = torch.zeros_like(p)\n'
       '                if group["amsgrad"]:\n'
       '                    self.state[p]["max_exp_avg_sq"] = torch.zeros_like(p)\n'))
wrong("AdamW", "uses_defaults_not_group", W,
      ("        for group in self.param_groups:\n            for p in group[\"params\"]:\n"
       "                if p.grad is None:",
       "        for group in self.param_groups:\n"
       '            group = dict(self.defaults, params=group["params"])\n'
       '            for p in group["params"]:\n                if p.grad is None:'))
step_loop_mistakes("AdamW", W, W_UPDATE)

# -- the remaining entries of the tables -----------------------------------------------------------

wrong("Adagrad", "uses_defaults_not_group", A,
      ("        for group in self.param_groups:\n            for p in group[\"params\"]:\n"
       "                if p.grad is None:",
       "        for group in self.param_groups:\n"
       '            group = dict(self.defaults, params=group["params"])\n'
       '            for p in group["params"]:\n                if p.grad is None:'))
wrong("RMSprop", "lr_cached", R,
      ("        super().__init__(params, defaults)\n",
       "        super().__init__(params, defaults)\n        self.lr = lr\n"),
      ('lr, alpha, eps = group["lr"],', "lr, alpha, eps = self.lr,"))
wrong("RMSprop", "none_grad_as_zero", R,
      ('if p.grad is None:\n                    continue\n'
       '                g = -p.grad if group["maximize"] else p.grad',
       'g = p.grad if p.grad is not None else torch.zeros_like(p)\n'
       '                if group["maximize"]:\n                    g = -g'))
wrong("Adam", "decay_wrong_sign", D, ("p.mul_(1 - lr * wd)", "p.mul_(1 + lr * wd)"))
wrong("Adam", "decay_proximal", D, ("p.mul_(1 - lr * wd)", "p.div_(1 + lr * wd)"))
wrong("Adam", "decay_twice", D,
      ("p.mul_(1 - lr * wd)", "grad = grad + wd * p\n                        p.mul_(1 - lr * wd)"))

# -- more correct answers, written other ways (each scores full marks) -------------------------

# A step counted in a Python int: torch.optim's load_state_dict accepts it (and converts it).
right("Adagrad", A, ('self.state[p]["step"] = torch.tensor(0.0)', 'self.state[p]["step"] = 0'),
      ('t = state["step"].item()', 't = float(state["step"])'))
right("RMSprop", R, ('state["step"] = torch.tensor(0.0)', 'state["step"] = 0'))
right("Adam", D, ('state["step"] = torch.tensor(0.0)', 'state["step"] = 0'),
      ('t = state["step"].item()', 't = state["step"]'))
right("AdamW", W, ('state["step"] = torch.tensor(0.0)', 'state["step"] = 0'),
      ('step = state["step"].item()', 'step = state["step"]'))
# Other error messages: the exception's class is graded, not its text.
right("Adagrad", A, ('f"Invalid lr_decay value: {lr_decay}"', '"lr_decay must be non-negative"'))
right("RMSprop", R, ('raise ValueError(f"Invalid {name}: {value}")',
                     'raise ValueError(f"{name} must be >= 0, got {value}")'))
right("Adam", D, ('f"Invalid learning rate: {lr}"', 'f"lr must be >= 0, got {lr}"'))


# -- what each wrong answer loses ---------------------------------------------------------------

EVERY_FACET = "every facet"  # a step() that raises at every step earns only what never steps
UPDATE, API, STATE = "update rule", "API contract", "state and state_dict"
API_KEYS = ("none_grad_as_zero", "grad_modified_in_place", "uses_defaults_not_group", "lr_cached",
            "zero_grad_in_step", "closure_without_enable_grad", "closure_loss_dropped")
ADAM_UPDATE = ("no_bias_correction", "bias_correction_first_moment_only",
               "bias_correction2_not_sqrt", "eps_inside_sqrt", "eps_before_bias_correction",
               "step_incremented_late", "betas_swapped")
ADAM_DECAY = ("decoupled_instead_of_l2", "l2_instead_of_decoupled", "decay_after_update",
              "decay_without_lr", "decay_wrong_sign", "decay_proximal", "decay_twice",
              "default_weight_decay")


def loses(**facets: tuple[str, ...]) -> dict[str, str]:
    return {key: facet.replace("_", " ") for facet, keys in facets.items() for key in keys}


# Exercise -> mistake key -> the one facet it costs (the others are kept).
LOSES: dict[str, dict[str, str]] = {
    "Adagrad": {**loses(update_rule=("eps_inside_sqrt",),
                        options=("lr_decay_off_by_one", "step_incremented_late",
                                 "decoupled_instead_of_l2", "maximize_ignored",
                                 "initial_accumulator_ignored", "weight_decay_not_in_sum")),
                **dict.fromkeys(API_KEYS, API), "step_not_no_grad": EVERY_FACET},
    "RMSprop": {**loses(update_rule=("eps_inside_sqrt", "alpha_swapped", "bias_corrected"),
                        centered=("centered_missing_square", "centered_ignored"),
                        momentum=("lr_in_momentum_buffer", "momentum_dampened"),
                        weight_decay_and_maximize=("decoupled_instead_of_l2",
                                                   "maximize_ignored")),
                "extra_state_keys": STATE, **dict.fromkeys(API_KEYS, API),
                "step_not_no_grad": EVERY_FACET},
    "Adam": {**loses(update_rule=ADAM_UPDATE, weight_decay=ADAM_DECAY, maximize=("maximize_ignored",),
                     AMSGrad=("amsgrad_max_of_corrected", "amsgrad_ignored")),
             **dict.fromkeys(API_KEYS, API), "step_not_no_grad": EVERY_FACET},
    "AdamW": {**loses(update_rule=ADAM_UPDATE + ADAM_DECAY,
                      AMSGrad_and_maximize=("amsgrad_max_of_corrected", "amsgrad_ignored",
                                            "maximize_ignored")),
              **dict.fromkeys(API_KEYS, API), "step_not_no_grad": EVERY_FACET},
}
