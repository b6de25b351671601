"""Wrong answers to Chapter 5's exercises, written the way learners write them, and right ones
written differently from the solution.

A scheduler is a whole class, and a realistic wrong one is a right one with one thing wrong: the
entries subclass the correct learner-style classes below and override the one method that holds
the mistake (readable at a glance). The correct classes are not copies of the solution or of the
grader's models (lists built in loops, ``self.optimizer.param_groups`` read through a helper,
``math.pi`` written out differently...). Each entry is registered with the exercise it answers,
the ``Mistake.key`` the grader must name (``grader/chapters/ch05_lr_schedules.py``) and the
facets it must lose; the subclasses are built on the base named ``LRScheduler``, so that the
grader checks them on its correct base (a mistake in the base is charged to the base only).
"""

from __future__ import annotations

import copy
import math
import warnings
from bisect import bisect_right
from collections import Counter

import numpy as np

from corpus.registry import Registry

_REGISTRY = Registry()
CORPUS, LOSES, RIGHT = _REGISTRY.corpus, _REGISTRY.loses, _REGISTRY.right
wrong, right = _REGISTRY.wrong, _REGISTRY.correct


# ---------------------------------------------------------------------------------------------
# LRScheduler


@right("LRScheduler")
class LRScheduler:
    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                if "initial_lr" not in group:
                    group["initial_lr"] = group["lr"]
            elif "initial_lr" not in group:
                raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}]")
        self.base_lrs = self._base_lrs()
        self.last_epoch = last_epoch
        self._watch_optimizer()
        self._initial_step()

    def _base_lrs(self):
        return [group["initial_lr"] for group in self.optimizer.param_groups]

    def _watch_optimizer(self):
        opt = self.optimizer
        if hasattr(opt.step, "_wrapped_by_lr_sched"):
            return
        original = opt.step

        def step(*args, **kwargs):
            opt._opt_called = True
            return original(*args, **kwargs)

        step._wrapped_by_lr_sched = True
        opt.step = step

    def _initial_step(self):
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def _lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_lr(self):
        raise NotImplementedError

    def get_last_lr(self):
        return self._last_lr

    def _warn_if_out_of_order(self):
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn("lr_scheduler.step() was called before optimizer.step()", UserWarning)

    def step(self, epoch=None):
        self._warn_if_out_of_order()
        self._step_count = self._step_count + 1
        self._update_lr(epoch)

    def _new_lrs(self, epoch):
        if epoch is None:
            self.last_epoch = self.last_epoch + 1
            return self.get_lr()
        self.last_epoch = epoch
        if hasattr(self, "_get_closed_form_lr"):
            return self._get_closed_form_lr()
        return self.get_lr()

    def _update_lr(self, epoch=None):
        new = self._new_lrs(epoch)
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = new[i]
        self._last_lr = self._lrs()

    def state_dict(self):
        state = dict(self.__dict__)
        del state["optimizer"]
        return state

    def load_state_dict(self, state_dict):
        for key, value in state_dict.items():
            setattr(self, key, value)


@wrong("LRScheduler", "no_initial_step", "constructor")
class LRSchedulerNoFirstStep(LRScheduler):
    def _initial_step(self):
        # "the first step() call starts the schedule"
        self._step_count = 0
        self._is_initial = False
        self._last_lr = self._lrs()


@wrong("LRScheduler", "one_base_lr", "constructor")
class LRSchedulerOneBaseLr(LRScheduler):
    def _base_lrs(self):
        groups = self.optimizer.param_groups
        return [groups[0]["initial_lr"] for _ in groups]


@wrong("LRScheduler", "overwrite_initial_lr", "constructor")
class LRSchedulerOverwritesInitialLr(LRScheduler):
    def __init__(self, optimizer, last_epoch=-1):
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group["initial_lr"] = group["lr"]
        super().__init__(optimizer, last_epoch)


@wrong("LRScheduler", "no_closed_form_jump", "step")
class LRSchedulerNoClosedForm(LRScheduler):
    def _new_lrs(self, epoch):
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        return self.get_lr()


@wrong("LRScheduler", "last_lr_stale", "step")
class LRSchedulerStaleLastLr(LRScheduler):
    def _update_lr(self, epoch=None):
        self._last_lr = self._lrs()
        new = self._new_lrs(epoch)
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = new[i]


@wrong("LRScheduler", "state_dict_keeps_optimizer", "state_dict")
class LRSchedulerSavesOptimizer(LRScheduler):
    def state_dict(self):
        return dict(self.__dict__)


@wrong("LRScheduler", "no_warning", "order warning")
class LRSchedulerNoWarning(LRScheduler):
    def _warn_if_out_of_order(self):
        pass


# ---------------------------------------------------------------------------------------------
# StepLR, MultiStepLR, ExponentialLR


@right("StepLR")
class StepLR(LRScheduler):
    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _decays(self, t):
        return t > 0 and t % self.step_size == 0

    def get_lr(self):
        factor = self.gamma if self._decays(self.last_epoch) else 1.0
        return [lr * factor if factor != 1.0 else lr for lr in self._lrs()]

    def _get_closed_form_lr(self):
        n = self.last_epoch // self.step_size
        return [base * self.gamma ** n for base in self.base_lrs]


@wrong("StepLR", "decay_at_zero", "schedule")
class StepLRDecaysAtZero(StepLR):
    def _decays(self, t):
        return t % self.step_size == 0


@wrong("StepLR", "decay_one_early", "schedule")
class StepLROneEarly(StepLR):
    def _decays(self, t):
        return (t + 1) % self.step_size == 0


@wrong("StepLR", "closed_form_only", "chainable")
class StepLRClosedForm(StepLR):
    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


@right("MultiStepLR")
class MultiStepLR(LRScheduler):
    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        counts = Counter()
        for m in milestones:
            counts[m] += 1
        self.milestones = counts
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        times = self.milestones.get(self.last_epoch, 0)
        if times == 0:
            return self._lrs()
        return [lr * self.gamma ** times for lr in self._lrs()]

    def _get_closed_form_lr(self):
        passed = sum(c for m, c in self.milestones.items() if m <= self.last_epoch)
        return [base * self.gamma ** passed for base in self.base_lrs]


@wrong("MultiStepLR", "milestone_set", "schedule")
class MultiStepLRSet(MultiStepLR):
    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestone_set = set(milestones)
        super().__init__(optimizer, milestones, gamma, last_epoch)

    def get_lr(self):
        if self.last_epoch in self.milestone_set:
            return [lr * self.gamma for lr in self._lrs()]
        return self._lrs()


@wrong("MultiStepLR", "closed_form_only", "chainable")
class MultiStepLRClosedForm(MultiStepLR):
    def get_lr(self):
        return self._get_closed_form_lr()


@right("ExponentialLR")
class ExponentialLR(LRScheduler):
    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _keeps(self):
        return self._is_initial

    def get_lr(self):
        if self._keeps():
            return self._lrs()
        return [self.gamma * lr for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [base * math.pow(self.gamma, self.last_epoch) for base in self.base_lrs]


@wrong("ExponentialLR", "decays_in_constructor", "schedule")
class ExponentialLREpochZero(ExponentialLR):
    def _keeps(self):
        return self.last_epoch == 0


@wrong("ExponentialLR", "closed_form_only", "chainable")
class ExponentialLRClosedForm(ExponentialLR):
    def get_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


# ---------------------------------------------------------------------------------------------
# LinearLR, CosineAnnealingLR


@right("LinearLR")
class LinearLR(LRScheduler):
    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if not 0 < start_factor <= 1:
            raise ValueError("start_factor must be in (0, 1]")
        if not 0 <= end_factor <= 1:
            raise ValueError("end_factor must be in [0, 1]")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, \
            total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t = self.last_epoch
        if t == 0:
            return [lr * self.start_factor for lr in self._lrs()]
        if self._is_initial or t > self.total_iters:
            return self._lrs()
        diff = self.end_factor - self.start_factor
        scale = 1.0 + diff / (self.start_factor * self.total_iters + diff * (t - 1))
        return [scale * lr for lr in self._lrs()]

    def _get_closed_form_lr(self):
        frac = min(self.last_epoch, self.total_iters) / self.total_iters
        factor = self.start_factor * (1 - frac) + self.end_factor * frac
        return [base * factor for base in self.base_lrs]


class _LinearByFactor(LinearLR):
    """A chainable LinearLR written as the ratio of this epoch's factor to the last one."""

    def factor(self, t):
        raise NotImplementedError

    def get_lr(self):
        t = self.last_epoch
        if t == 0:
            return [lr * self.start_factor for lr in self._lrs()]
        if self._is_initial:
            return self._lrs()
        ratio = self.factor(t) / self.factor(t - 1)
        return [lr * ratio for lr in self._lrs()]


@wrong("LinearLR", "divide_by_total_iters_minus_1", "warmup")
class LinearLRMinusOne(_LinearByFactor):
    def factor(self, t):
        steps = self.total_iters - 1  # "total_iters values, so total_iters - 1 intervals"
        return self.start_factor + (self.end_factor - self.start_factor) * min(t, steps) / steps


@wrong("LinearLR", "past_total_iters", "after total_iters")
class LinearLRNoStop(_LinearByFactor):
    def factor(self, t):
        return self.start_factor + (self.end_factor - self.start_factor) * t / self.total_iters


@wrong("LinearLR", "closed_form_only", "chainable")
class LinearLRClosedForm(LinearLR):
    def get_lr(self):
        return self._get_closed_form_lr()


@right("CosineAnnealingLR")
class CosineAnnealingLR(LRScheduler):
    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def period(self):
        return self.T_max

    def _cos(self, t):
        return math.cos(t * math.pi / self.period())

    def get_lr(self):
        t, T = self.last_epoch, self.period()
        if self._is_initial:
            return self._lrs()
        if self._step_count == 1 and t > 0:
            return self._get_closed_form_lr()
        if (t - 1 - T) % (2 * T) == 0:
            bump = (1 - math.cos(math.pi / T)) / 2
            return [lr + (base - self.eta_min) * bump
                    for lr, base in zip(self._lrs(), self.base_lrs)]
        ratio = (1 + self._cos(t)) / (1 + self._cos(t - 1))
        return [self.eta_min + (lr - self.eta_min) * ratio for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [self.eta_min + 0.5 * (base - self.eta_min) * (1 + self._cos(self.last_epoch))
                for base in self.base_lrs]


@wrong("CosineAnnealingLR", "clamped", "past T_max")
class CosineAnnealingLRClamped(CosineAnnealingLR):
    def get_lr(self):
        if self.last_epoch > self.T_max:  # "the schedule is over: stay at the bottom"
            return self._lrs()
        return super().get_lr()


@wrong("CosineAnnealingLR", "period_minus_1", "one period")
class CosineAnnealingLRShortPeriod(CosineAnnealingLR):
    def period(self):
        return self.T_max - 1


@wrong("CosineAnnealingLR", "closed_form_only", "chainable")
class CosineAnnealingLRClosedForm(CosineAnnealingLR):
    def get_lr(self):
        return self._get_closed_form_lr()


# ---------------------------------------------------------------------------------------------
# OneCycleLR


@right("OneCycleLR")
class OneCycleLR(LRScheduler):
    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        groups = optimizer.param_groups
        self.optimizer = optimizer
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError("total_steps must be a positive integer")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError("epochs must be a positive integer")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError("steps_per_epoch must be a positive integer")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("give total_steps, or epochs and steps_per_epoch")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError("pct_start must be a float in [0, 1]")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("anneal_strategy must be 'cos' or 'linear'")
        self.pct_start, self.three_phase = pct_start, three_phase
        self.linear = anneal_strategy == "linear"

        def each(value, name):
            if isinstance(value, (list, tuple)):
                if len(value) != len(groups):
                    raise ValueError(f"{name}: one value per param group")
                return list(value)
            return [value for _ in groups]

        tops = each(max_lr, "max_lr")
        if last_epoch == -1:
            for group, top in zip(groups, tops):
                group["max_lr"] = top
                group["initial_lr"] = top / div_factor
                group["min_lr"] = self._min_lr(top, div_factor, final_div_factor)
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("the optimizer has no momentum to cycle")
            self.use_beta1 = "betas" in optimizer.defaults
            highs, lows = each(max_momentum, "max_momentum"), each(base_momentum, "base_momentum")
            if last_epoch == -1:
                for group, high, low in zip(groups, highs, lows):
                    group["max_momentum"], group["base_momentum"] = high, low
                    self._set_momentum(group, high)
        super().__init__(optimizer, last_epoch)

    def _min_lr(self, top, div_factor, final_div_factor):
        return top / div_factor / final_div_factor

    def _ends(self):
        n, p = self.total_steps, self.pct_start
        if self.three_phase:
            return [float(p * n) - 1, float(2 * p * n) - 2, n - 1]
        return [float(p * n) - 1, n - 1]

    def _momentum_keys(self):
        if self.three_phase:
            return [("max_momentum", "base_momentum"), ("base_momentum", "max_momentum"),
                    ("max_momentum", "max_momentum")]
        return [("max_momentum", "base_momentum"), ("base_momentum", "max_momentum")]

    def _lr_keys(self):
        if self.three_phase:
            return [("initial_lr", "max_lr"), ("max_lr", "initial_lr"), ("initial_lr", "min_lr")]
        return [("initial_lr", "max_lr"), ("max_lr", "min_lr")]

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value,) + tuple(group["betas"][1:])
        else:
            group["momentum"] = value

    def _too_far(self, t):
        return t > self.total_steps

    def _anneal(self, a, b, pct):
        if self.linear:
            return a + (b - a) * pct
        return b + (a - b) * (1 + math.cos(math.pi * pct)) / 2

    def get_lr(self):
        t = self.last_epoch
        if self._too_far(t):
            raise ValueError(f"Tried to step {t} times with total_steps={self.total_steps}")
        ends = self._ends()
        out = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for k, end in enumerate(ends):
                if t <= end or k == len(ends) - 1:
                    pct = (t - start) / (end - start)
                    a, b = self._lr_keys()[k]
                    out.append(self._anneal(group[a], group[b], pct))
                    if self.cycle_momentum:
                        ma, mb = self._momentum_keys()[k]
                        self._cycle(group, self._anneal(group[ma], group[mb], pct))
                    break
                start = end
        return out

    def _cycle(self, group, momentum):
        self._set_momentum(group, momentum)


@wrong("OneCycleLR", "phase_end_without_minus_1", "lr cycle")
class OneCycleLRPhaseEnds(OneCycleLR):
    def _ends(self):
        n, p = self.total_steps, self.pct_start
        if self.three_phase:
            return [float(p * n), float(2 * p * n), n]
        return [float(p * n), n]


@wrong("OneCycleLR", "min_lr_from_max_lr", "lr cycle")
class OneCycleLRMinFromMax(OneCycleLR):
    def _min_lr(self, top, div_factor, final_div_factor):
        return top / final_div_factor


@wrong("OneCycleLR", "momentum_not_cycled", "momentum")
class OneCycleLRFixedMomentum(OneCycleLR):
    def _cycle(self, group, momentum):
        pass


@wrong("OneCycleLR", "momentum_same_way", "momentum")
class OneCycleLRMomentumWithLr(OneCycleLR):
    def _momentum_keys(self):
        keys = super()._momentum_keys()
        return [(b, a) if a != b else (a, b) for a, b in keys]


@wrong("OneCycleLR", "raises_at_total_steps", "end and arguments")
class OneCycleLRRaisesEarly(OneCycleLR):
    def _too_far(self, t):
        return t >= self.total_steps


# ---------------------------------------------------------------------------------------------
# ReduceLROnPlateau


@right("ReduceLROnPlateau")
class ReduceLROnPlateau(LRScheduler):
    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError("factor must be < 1")
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"expected {n} min_lrs")
            self.min_lrs = list(min_lr)
        else:
            self.min_lrs = [min_lr] * n
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError("unknown mode or threshold_mode")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = self._lrs()

    def _bar(self):
        sign = -1 if self.mode == "min" else 1
        if self.threshold_mode == "rel":
            return self.best * (1 + sign * self.threshold)
        return self.best + sign * self.threshold

    def _better(self, current):
        bar = self._bar()
        return current < bar if self.mode == "min" else current > bar

    def _in_cooldown(self):
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0

    def _too_long(self):
        return self.num_bad_epochs > self.patience

    def _reduce(self):
        for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
            new = max(group["lr"] * self.factor, floor)
            if group["lr"] - new > self.eps:
                group["lr"] = new

    def _after_reduce(self):
        self.cooldown_counter = self.cooldown
        self.num_bad_epochs = 0

    def step(self, metrics):
        current = float(metrics)
        self.last_epoch += 1
        if self._better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        self._in_cooldown()
        if self._too_long():
            self._reduce()
            self._after_reduce()
        self._last_lr = self._lrs()


@wrong("ReduceLROnPlateau", "patience_ge", "patience")
class PlateauPatienceGe(ReduceLROnPlateau):
    def _too_long(self):
        return self.num_bad_epochs >= self.patience


@wrong("ReduceLROnPlateau", "bad_epochs_not_reset", "patience")
class PlateauNoReset(ReduceLROnPlateau):
    def _after_reduce(self):
        self.cooldown_counter = self.cooldown


@wrong("ReduceLROnPlateau", "non_strict", "threshold")
class PlateauNonStrict(ReduceLROnPlateau):
    def _better(self, current):
        bar = self._bar()
        return current <= bar if self.mode == "min" else current >= bar


@wrong("ReduceLROnPlateau", "rel_as_abs", "threshold")
class PlateauRelAsAbs(ReduceLROnPlateau):
    def _bar(self):
        return self.best - self.threshold if self.mode == "min" else self.best + self.threshold


@wrong("ReduceLROnPlateau", "cooldown_ignored", "cooldown")
class PlateauNoCooldown(ReduceLROnPlateau):
    def _in_cooldown(self):
        pass


@wrong("ReduceLROnPlateau", "no_eps", "min_lr and eps")
class PlateauNoEps(ReduceLROnPlateau):
    def _reduce(self):
        for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
            group["lr"] = max(group["lr"] * self.factor, floor)


# ---------------------------------------------------------------------------------------------
# SequentialLR


@right("SequentialLR")
class SequentialLR(LRScheduler):
    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if not schedulers:
            raise ValueError("no schedulers")
        for s in schedulers:
            if not hasattr(s, "optimizer"):
                raise TypeError("a scheduler without an optimizer")
            if s.optimizer is not optimizer:
                raise ValueError("all schedulers must use this optimizer")
        if len(milestones) + 1 != len(schedulers):
            raise ValueError("one milestone fewer than schedulers")
        self.optimizer = optimizer
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self._reset_lrs()
        self._undo()
        current = self._schedulers[bisect_right(self._milestones, 0)]
        current._initial_step()
        self._last_lr = current.get_last_lr()

    def _reset_lrs(self):
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"]

    def _undo(self):
        for s in self._schedulers:
            s.last_epoch -= 1

    def _advance(self, scheduler, at_milestone):
        if at_milestone:
            scheduler._update_lr(0)
        else:
            scheduler.step()

    def step(self):
        self.last_epoch += 1
        i = bisect_right(self._milestones, self.last_epoch)
        at_milestone = i > 0 and self._milestones[i - 1] == self.last_epoch
        self._advance(self._schedulers[i], at_milestone)
        self._last_lr = self._schedulers[i].get_last_lr()

    def state_dict(self):
        out = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        out["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return out

    def load_state_dict(self, state_dict):
        for key, value in state_dict.items():
            if key != "_schedulers":
                setattr(self, key, value)
        for s, sd in zip(self._schedulers, state_dict["_schedulers"]):
            s.load_state_dict(sd)


@wrong("SequentialLR", "step_at_milestone", "sequence")
class SequentialLRStepsAtMilestone(SequentialLR):
    def _advance(self, scheduler, at_milestone):
        scheduler.step()


@wrong("SequentialLR", "no_undo", "sequence")
class SequentialLRNoUndo(SequentialLR):
    def _undo(self):
        pass


@wrong("SequentialLR", "no_lr_reset", "sequence")
class SequentialLRNoReset(SequentialLR):
    def _reset_lrs(self):
        pass


# ---------------------------------------------------------------------------------------------
# lr_find and suggest_lr


def _batches(loader):
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            return


@right("lr_find")
def lr_find(model, loss_fn, optimizer, loader, start_lr=1e-7, end_lr=10, num_iter=100,
            smooth_f=0.05, diverge_th=5):
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    ratio = math.log(end_lr / start_lr)
    lrs, losses = [], []
    data = _batches(loader)
    for i in range(num_iter):
        lr = start_lr * math.exp(ratio * i / (num_iter - 1))
        for g in optimizer.param_groups:
            g["lr"] = lr
        x, y = next(data)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        value = float(loss)
        if losses:
            value = smooth_f * value + (1 - smooth_f) * losses[-1]
        lrs.append(lr)
        losses.append(value)
        if value > diverge_th * min(losses):
            break
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_opt)
    return lrs, losses


def _lr_find_with(bug):
    """lr_find as a learner writes it, with one mistake (the variants below call it)."""

    def run(model, loss_fn, optimizer, loader, start_lr, end_lr, num_iter, smooth_f, diverge_th):
        saved_model = copy.deepcopy(model.state_dict())
        saved_opt = copy.deepcopy(optimizer.state_dict())
        lrs, losses, raws = [], [], []
        data = _batches(loader)
        for i in range(num_iter):
            if bug == "linear":
                lr = start_lr + (end_lr - start_lr) * i / (num_iter - 1)
            else:
                lr = start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))
            if bug == "one group":
                optimizer.param_groups[0]["lr"] = lr
            else:
                for g in optimizer.param_groups:
                    g["lr"] = lr
            x, y = next(data)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            raw = loss.item()
            raws.append(raw)
            smooth = raw if not losses else smooth_f * raw + (1 - smooth_f) * losses[-1]
            if bug == "after":  # the lr of the next step, read after "advancing the schedule"
                lr = start_lr * (end_lr / start_lr) ** ((i + 1) / (num_iter - 1))
            lrs.append(lr)
            losses.append(smooth)
            if bug == "raw":
                if raw > diverge_th * min(raws):
                    break
            elif smooth > diverge_th * min(losses):
                break
        model.load_state_dict(saved_model)
        if bug == "moments":  # only the lr is put back
            for g, s in zip(optimizer.param_groups, saved_opt["param_groups"]):
                g["lr"] = s["lr"]
        else:
            optimizer.load_state_dict(saved_opt)
        return lrs, losses

    return run


@wrong("lr_find", "linear_sweep", "sweep")
def lr_find_linear(model, loss_fn, optimizer, loader, start_lr=1e-7, end_lr=10, num_iter=100,
                   smooth_f=0.05, diverge_th=5):
    return _lr_find_with("linear")(model, loss_fn, optimizer, loader, start_lr, end_lr,
                                   num_iter, smooth_f, diverge_th)


@wrong("lr_find", "lr_after_step", "sweep")
def lr_find_lr_after(model, loss_fn, optimizer, loader, start_lr=1e-7, end_lr=10, num_iter=100,
                     smooth_f=0.05, diverge_th=5):
    return _lr_find_with("after")(model, loss_fn, optimizer, loader, start_lr, end_lr,
                                  num_iter, smooth_f, diverge_th)


@wrong("lr_find", "raw_loss_stop", "sweep")
def lr_find_raw_stop(model, loss_fn, optimizer, loader, start_lr=1e-7, end_lr=10, num_iter=100,
                     smooth_f=0.05, diverge_th=5):
    return _lr_find_with("raw")(model, loss_fn, optimizer, loader, start_lr, end_lr,
                                num_iter, smooth_f, diverge_th)


@wrong("lr_find", "first_group_only", "sweep")
def lr_find_first_group(model, loss_fn, optimizer, loader, start_lr=1e-7, end_lr=10,
                        num_iter=100, smooth_f=0.05, diverge_th=5):
    return _lr_find_with("one group")(model, loss_fn, optimizer, loader, start_lr, end_lr,
                                      num_iter, smooth_f, diverge_th)


@wrong("lr_find", "optimizer_not_restored", "restore")
def lr_find_keeps_moments(model, loss_fn, optimizer, loader, start_lr=1e-7, end_lr=10,
                          num_iter=100, smooth_f=0.05, diverge_th=5):
    return _lr_find_with("moments")(model, loss_fn, optimizer, loader, start_lr, end_lr,
                                    num_iter, smooth_f, diverge_th)


@right("suggest_lr")
def suggest_lr(lrs, losses):
    x = [math.log(lr) for lr in lrs]
    n = len(x)
    slopes = []
    for i in range(n):
        if i == 0:
            slopes.append((losses[1] - losses[0]) / (x[1] - x[0]))
        elif i == n - 1:
            slopes.append((losses[-1] - losses[-2]) / (x[-1] - x[-2]))
        else:  # numpy.gradient's second-order interior formula (uneven spacing)
            h0, h1 = x[i] - x[i - 1], x[i + 1] - x[i]
            slopes.append((h0 ** 2 * losses[i + 1] - h1 ** 2 * losses[i - 1]
                           + (h1 ** 2 - h0 ** 2) * losses[i]) / (h0 * h1 * (h0 + h1)))
    best = min(range(n), key=lambda i: (slopes[i], i))
    return lrs[best]


@wrong("suggest_lr", "min_loss", "steepest descent")
def suggest_lr_min_loss(lrs, losses):
    return lrs[int(np.argmin(losses))]


@wrong("suggest_lr", "min_loss_tenth", "steepest descent")
def suggest_lr_fastai_minimum(lrs, losses):
    i = min(range(len(losses)), key=losses.__getitem__)
    return lrs[i] / 10


@wrong("suggest_lr", "interior_only", "end points and ties")
def suggest_lr_interior(lrs, losses):
    logs = np.log(lrs)
    best, pick = math.inf, None
    for i in range(1, len(lrs) - 1):
        slope = (losses[i + 1] - losses[i - 1]) / (logs[i + 1] - logs[i - 1])
        if slope < best:
            best, pick = slope, lrs[i]
    return pick
