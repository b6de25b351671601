"""Wrong (and right) answers to Chapter 7's exercises, written the way learners write them.

Each wrong answer is registered with the exercise it answers, the ``Mistake.key`` the grader must
name (``grader/chapters/ch07_gpu_training.py``) and the facets it must lose (it keeps the others).
They are deliberately *not* the grader's models of these mistakes: the scalers below share a
learner's base class that divides by the scale, keeps booleans per optimizer and rebuilds the
scale tensor, and the functions use other loops and idioms; same wrong behaviour.
"""

from __future__ import annotations

import time
import timeit
import warnings
from time import perf_counter

import torch
from torch.utils import _pytree as pytree

from corpus.registry import Registry

_REGISTRY = Registry()
CORPUS, LOSES, RIGHT = _REGISTRY.corpus, _REGISTRY.loses, _REGISTRY.right
wrong, right = _REGISTRY.wrong, _REGISTRY.correct

SCALING, SKIP, ERRORS, STATE, DISABLED = ("scale and unscale_", "skipping and update", "errors",
                                          "state_dict", "disabled and unavailable device")
AUTOCAST, CLIP, SCHED = ("autocast and loss scaling", "clipping after unscale_",
                         "scheduler and skipped steps")
WEIGHTED, BOUNDARIES, ACC_SCALER = ("weighted accumulation", "step boundaries",
                                    "scaler and scheduler")
MOVED, KEPT = "tensors moved", "types and non-tensors kept"
SYNCED, WARMUP = "synchronised timing", "warmup and units"
WEIGHTS, OPT_STATE = "weights and gradients", "optimizer state and AMP"


# ---------------------------------------------------------------------------------------------
# GradScaler: a learner's correct scaler, and one bug per subclass


class LearnerScaler:
    """Correct, written another way: divides by the scale, flags per optimizer, a new scale
    tensor at every change."""

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        if enabled and device == "cuda" and not self.cuda_ok():
            if self.warn_when_disabled():
                warnings.warn("CUDA is not available: this GradScaler is disabled", UserWarning,
                              stacklevel=2)
            enabled = False
        if enabled and not growth_factor > 1.0:
            raise AssertionError("growth_factor must be > 1")
        if enabled and not backoff_factor < 1.0:
            raise AssertionError("backoff_factor must be < 1")
        self.enabled = enabled
        self.init_scale, self.gf, self.bf, self.gi = init_scale, growth_factor, backoff_factor, \
            growth_interval
        self.scale_t = None
        self.tracker = 0
        self.per_opt = {}
        self.loss_bad = False
        self.ever_bad = False

    def cuda_ok(self):
        return torch.cuda.is_available()

    def warn_when_disabled(self):
        return True

    def _opt(self, optimizer):
        return self.per_opt.setdefault(id(optimizer),
                                       {"unscaled": False, "stepped": False, "found": None})

    def scale(self, outputs):
        if not self.enabled:
            return outputs
        if isinstance(outputs, list | tuple):
            return type(outputs)(self.scale(o) for o in outputs)
        if not isinstance(outputs, torch.Tensor):
            raise ValueError("outputs must be a tensor or a list/tuple of tensors")
        if self.scale_t is None:
            self.scale_t = torch.tensor(self.init_scale, dtype=torch.float32)
        return self.after_scale(outputs * self.scale_t)

    def after_scale(self, scaled):
        return scaled

    def has_bad(self, grads):
        return any(not torch.isfinite(g).all() for g in grads)

    def unscale_(self, optimizer):
        if not self.enabled:
            return
        if self.scale_t is None:
            raise AssertionError("call scale() first")
        st = self._opt(optimizer)
        self.check_unscale(st)
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if any(g.dtype == torch.float16 for g in grads):
            raise ValueError("Attempting to unscale FP16 gradients.")
        st["found"] = self.record(self.has_bad(grads)) if grads else None
        with torch.no_grad():
            for g in grads:
                g.div_(self.scale_t)
        st["unscaled"] = True

    def record(self, found):
        return found

    def check_unscale(self, st):
        if st["unscaled"]:
            raise RuntimeError("unscale_() has already been called on this optimizer")
        if st["stepped"]:
            raise RuntimeError("unscale_() is being called after step()")

    def step(self, optimizer, *args, **kwargs):
        if not self.enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("closures are not supported with a GradScaler")
        if self.scale_t is None:
            raise AssertionError("call scale() first")
        st = self._opt(optimizer)
        if st["stepped"]:
            raise RuntimeError("step() has already been called since the last update()")
        if not st["unscaled"]:
            self.unscale_(optimizer)
        if st["found"] is None:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        st["stepped"] = True
        if st["found"]:
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        if not self.enabled:
            return
        if self.scale_t is None:
            raise AssertionError("call scale() first")
        if new_scale is not None:
            self.scale_t = torch.as_tensor(new_scale, dtype=torch.float32).reshape(()).clone()
        else:
            founds = [st["found"] for st in self.per_opt.values() if st["found"] is not None]
            if not founds:
                raise AssertionError("No inf checks were recorded prior to update.")
            self.apply(founds)
        self.per_opt = {}
        self.loss_bad = False

    def apply(self, founds):
        self.rule(any(founds))

    def rule(self, found):
        if found:
            self.scale_t = torch.tensor(self.scale_t.item() * self.bf, dtype=torch.float32)
            self.tracker = 0
            return
        self.tracker += 1
        if self.tracker == self.gi:
            grown = torch.tensor(self.scale_t.item() * self.gf, dtype=torch.float32)
            if torch.isfinite(grown):
                self.scale_t = grown
            self.tracker = 0

    def get_scale(self):
        if not self.enabled:
            return 1.0
        return self.init_scale if self.scale_t is None else float(self.scale_t)

    def state_dict(self):
        if not self.enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self.gf, "backoff_factor": self.bf,
                "growth_interval": self.gi, "_growth_tracker": self.tracker}

    def load_state_dict(self, sd):
        if not self.enabled:
            return
        if not sd:
            raise RuntimeError("empty state dict (saved from a disabled GradScaler?)")
        self.init_scale = sd["scale"]
        if self.scale_t is not None:
            self.scale_t = torch.tensor(sd["scale"], dtype=torch.float32)
        self.gf, self.bf, self.gi = sd["growth_factor"], sd["backoff_factor"], sd["growth_interval"]
        self.tracker = sd["_growth_tracker"]


right("GradScaler")(LearnerScaler)


@wrong("GradScaler", "loss_checked_not_grads", SKIP)
class ScalerChecksLoss(LearnerScaler):
    def after_scale(self, scaled):
        self.loss_bad = self.loss_bad or not bool(torch.isfinite(scaled).all())
        return scaled

    def has_bad(self, grads):
        return self.loss_bad  # "if the loss overflowed, the gradients did too"


@wrong("GradScaler", "isinf_only", SKIP)
class ScalerIsinf(LearnerScaler):
    def has_bad(self, grads):
        return any(torch.isinf(g).any() for g in grads)


@wrong("GradScaler", "tracker_not_reset_on_backoff", SKIP)
class ScalerTrackerKept(LearnerScaler):
    def rule(self, found):
        if found:
            self.scale_t = torch.tensor(self.scale_t.item() * self.bf, dtype=torch.float32)
            return
        super().rule(found)


@wrong("GradScaler", "growth_off_by_one", SKIP)
class ScalerGrowsLate(LearnerScaler):
    def rule(self, found):
        if found:
            super().rule(found)
            return
        self.tracker += 1
        if self.tracker > self.gi:  # "more than growth_interval clean steps"
            grown = torch.tensor(self.scale_t.item() * self.gf, dtype=torch.float32)
            if torch.isfinite(grown):
                self.scale_t = grown
            self.tracker = 0


@wrong("GradScaler", "growth_to_inf", SKIP)
class ScalerGrowsToInf(LearnerScaler):
    def rule(self, found):
        if found:
            super().rule(found)
            return
        self.tracker += 1
        if self.tracker == self.gi:
            self.scale_t = self.scale_t * self.gf
            self.tracker = 0


@wrong("GradScaler", "update_per_optimizer", SKIP)
class ScalerUpdatePerOptimizer(LearnerScaler):
    def apply(self, founds):
        for found in founds:
            self.rule(found)


@wrong("GradScaler", "found_inf_never_reset", SKIP)
class ScalerStickyInf(LearnerScaler):
    def record(self, found):
        self.ever_bad = self.ever_bad or found
        return self.ever_bad


@wrong("GradScaler", "unscales_twice", SCALING)
class ScalerNoStages(LearnerScaler):
    def check_unscale(self, st):
        pass

    def step(self, optimizer, *args, **kwargs):
        if not self.enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("closures are not supported with a GradScaler")
        if self.scale_t is None:
            raise AssertionError("call scale() first")
        self.unscale_(optimizer)  # always: "step() unscales"
        st = self._opt(optimizer)
        if st["found"] is None:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        if st["found"]:
            return None
        return optimizer.step(*args, **kwargs)


@wrong("GradScaler", "errors_missing", ERRORS)
class ScalerNoErrors(LearnerScaler):
    def check_unscale(self, st):
        pass

    def step(self, optimizer, *args, **kwargs):
        if not self.enabled:
            return optimizer.step(*args, **kwargs)
        if self.scale_t is None:
            raise AssertionError("call scale() first")
        st = self._opt(optimizer)
        if not st["unscaled"]:
            self.unscale_(optimizer)
        if st["found"] is None:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        st["stepped"] = True
        return None if st["found"] else optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        if self.enabled and new_scale is None and self.scale_t is not None:
            founds = [st["found"] for st in self.per_opt.values() if st["found"] is not None]
            self.rule(any(founds))
            self.per_opt = {}
            return
        super().update(new_scale)


@wrong("GradScaler", "tracker_not_saved", STATE)
class ScalerStateWithoutTracker(LearnerScaler):
    def state_dict(self):
        if not self.enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self.gf, "backoff_factor": self.bf,
                "growth_interval": self.gi}

    def load_state_dict(self, sd):
        if not self.enabled:
            return
        if not sd:
            raise RuntimeError("empty state dict")
        self.init_scale = sd["scale"]
        if self.scale_t is not None:
            self.scale_t = torch.tensor(sd["scale"], dtype=torch.float32)
        self.gf, self.bf, self.gi = sd["growth_factor"], sd["backoff_factor"], sd["growth_interval"]


@wrong("GradScaler", "unavailable_silent", DISABLED)
class ScalerDisablesSilently(LearnerScaler):
    def warn_when_disabled(self):
        return False


@wrong("GradScaler", "unavailable_ignored", DISABLED)
class ScalerIgnoresDevice(LearnerScaler):
    def cuda_ok(self):
        return True  # "the scale lives wherever the loss is"


# ---------------------------------------------------------------------------------------------
# amp_train_step


@right("amp_train_step")
def amp_step_counting(model, batch, loss_fn, optimizer, scaler, *, device_type, dtype,
                      max_norm=None, scheduler=None):
    x, y = batch
    for p in model.parameters():
        p.grad = None
    with torch.autocast(device_type, dtype=dtype):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    if max_norm:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    stepped = []
    hook = optimizer.register_step_post_hook(lambda *_: stepped.append(True))
    scaler.step(optimizer)
    hook.remove()
    scaler.update()
    if scheduler is not None and stepped:  # the optimizer really stepped
        scheduler.step()
    return loss.detach()


@wrong("amp_train_step", "model_half", AUTOCAST)
def amp_step_half(model, batch, loss_fn, optimizer, scaler, *, device_type, dtype, max_norm=None,
                  scheduler=None):
    model.half()  # "mixed precision = half precision"
    x, y = batch
    optimizer.zero_grad()
    with torch.autocast(device_type=device_type, dtype=dtype):
        loss = loss_fn(model(x.half()), y)
    scaler.scale(loss).backward()
    if max_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    old = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    if scheduler is not None and scaler.get_scale() >= old:
        scheduler.step()
    return loss.detach()


@wrong("amp_train_step", "loss_outside_autocast", AUTOCAST)
def amp_step_loss_outside(model, batch, loss_fn, optimizer, scaler, *, device_type, dtype,
                          max_norm=None, scheduler=None):
    x, y = batch
    optimizer.zero_grad()
    with torch.autocast(device_type=device_type, dtype=dtype):
        out = model(x)
    loss = loss_fn(out, y)
    scaler.scale(loss).backward()
    if max_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    old = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    if scheduler is not None and scaler.get_scale() >= old:
        scheduler.step()
    return loss.detach()


@wrong("amp_train_step", "clip_before_unscale", CLIP)
def amp_step_clip_first(model, batch, loss_fn, optimizer, scaler, *, device_type, dtype,
                        max_norm=None, scheduler=None):
    x, y = batch
    optimizer.zero_grad()
    with torch.autocast(device_type=device_type, dtype=dtype):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    old = scaler.get_scale()
    scaler.step(optimizer)  # unscales here, after the clip
    scaler.update()
    if scheduler is not None and scaler.get_scale() >= old:
        scheduler.step()
    return loss.detach()


@wrong("amp_train_step", "scheduler_on_skip", SCHED)
def amp_step_always_schedules(model, batch, loss_fn, optimizer, scaler, *, device_type, dtype,
                              max_norm=None, scheduler=None):
    x, y = batch
    optimizer.zero_grad()
    with torch.autocast(device_type=device_type, dtype=dtype):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    if max_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    if scheduler is not None:
        scheduler.step()
    return loss.detach()


# ---------------------------------------------------------------------------------------------
# train_accumulated


def _groups(micro_batches, accum_steps):
    return [micro_batches[i:i + accum_steps] for i in range(0, len(micro_batches), accum_steps)]


def _finish(optimizer, scaler, scheduler):
    skipped = False
    if scaler is None:
        optimizer.step()
    else:
        before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        skipped = scaler.get_scale() < before
    if scheduler is not None and not skipped:
        scheduler.step()


@right("train_accumulated")
def accumulate_by_index(model, loss_fn, optimizer, micro_batches, accum_steps, scaler=None,
                        scheduler=None):
    micro_batches = list(micro_batches)
    sizes = [len(x) for x, _ in micro_batches]
    losses, current = [], torch.zeros(())
    optimizer.zero_grad(set_to_none=False)
    for i, (x, y) in enumerate(micro_batches):
        start = i - i % accum_steps
        n_step = sum(sizes[start:start + accum_steps])
        loss = loss_fn(model(x), y) * len(x) / n_step
        (loss if scaler is None else scaler.scale(loss)).backward()
        current = current + loss.detach()
        if (i + 1) % accum_steps == 0 or i + 1 == len(micro_batches):
            _finish(optimizer, scaler, scheduler)
            optimizer.zero_grad(set_to_none=False)
            losses.append(current)
            current = torch.zeros(())
    return losses


@wrong("train_accumulated", "loss_not_divided", WEIGHTED)
def accumulate_sum(model, loss_fn, optimizer, micro_batches, accum_steps, scaler=None,
                   scheduler=None):
    losses = []
    for group in _groups(list(micro_batches), accum_steps):
        optimizer.zero_grad()
        total = 0.0
        for x, y in group:
            loss = loss_fn(model(x), y)  # "gradients add up anyway"
            (loss if scaler is None else scaler.scale(loss)).backward()
            total += loss.detach()
        _finish(optimizer, scaler, scheduler)
        losses.append(total)
    return losses


@wrong("train_accumulated", "equal_weights", WEIGHTED)
def accumulate_divide_by_steps(model, loss_fn, optimizer, micro_batches, accum_steps, scaler=None,
                               scheduler=None):
    losses = []
    for group in _groups(list(micro_batches), accum_steps):
        optimizer.zero_grad()
        total = 0.0
        for x, y in group:
            loss = loss_fn(model(x), y) / accum_steps
            (loss if scaler is None else scaler.scale(loss)).backward()
            total += loss.detach()
        _finish(optimizer, scaler, scheduler)
        losses.append(total)
    return losses


@wrong("train_accumulated", "zero_grad_every_micro_step", BOUNDARIES)
def accumulate_zeroing_each(model, loss_fn, optimizer, micro_batches, accum_steps, scaler=None,
                            scheduler=None):
    losses = []
    for group in _groups(list(micro_batches), accum_steps):
        n = sum(x.shape[0] for x, _ in group)
        total = 0.0
        for x, y in group:
            optimizer.zero_grad()  # "as in every training loop"
            loss = loss_fn(model(x), y) * x.shape[0] / n
            (loss if scaler is None else scaler.scale(loss)).backward()
            total += loss.detach()
        _finish(optimizer, scaler, scheduler)
        losses.append(total)
    return losses


@wrong("train_accumulated", "last_group_dropped", BOUNDARIES)
def accumulate_full_groups_only(model, loss_fn, optimizer, micro_batches, accum_steps,
                                scaler=None, scheduler=None):
    micro_batches = list(micro_batches)
    losses = []
    for k in range(len(micro_batches) // accum_steps):
        group = micro_batches[k * accum_steps:(k + 1) * accum_steps]
        n = sum(x.shape[0] for x, _ in group)
        optimizer.zero_grad()
        total = 0.0
        for x, y in group:
            loss = loss_fn(model(x), y) * x.shape[0] / n
            (loss if scaler is None else scaler.scale(loss)).backward()
            total += loss.detach()
        _finish(optimizer, scaler, scheduler)
        losses.append(total)
    return losses


@wrong("train_accumulated", "update_every_micro_step", ACC_SCALER)
def accumulate_update_each(model, loss_fn, optimizer, micro_batches, accum_steps, scaler=None,
                           scheduler=None):
    losses = []
    for group in _groups(list(micro_batches), accum_steps):
        n = sum(x.shape[0] for x, _ in group)
        optimizer.zero_grad()
        total = 0.0
        for x, y in group:
            loss = loss_fn(model(x), y) * x.shape[0] / n
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
                scaler.update()  # "keep the scale fresh"
            total += loss.detach()
        _finish(optimizer, scaler, scheduler)
        losses.append(total)
    return losses


# ---------------------------------------------------------------------------------------------
# move_to


@right("move_to")
def move_to_pytree(obj, device, non_blocking=False):
    return pytree.tree_map(
        lambda v: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v,
        obj)


@wrong("move_to", "dicts_not_recursed", MOVED)
def move_to_sequences_only(obj, device, non_blocking=False):
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*[move_to_sequences_only(v, device, non_blocking) for v in obj])
    if isinstance(obj, list | tuple):
        return type(obj)(move_to_sequences_only(v, device, non_blocking) for v in obj)
    return obj


@wrong("move_to", "tuples_to_lists", KEPT)
def move_to_lists(obj, device, non_blocking=False):
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return type(obj)({k: move_to_lists(v, device, non_blocking) for k, v in obj.items()})
    if isinstance(obj, list | tuple):
        return [move_to_lists(v, device, non_blocking) for v in obj]
    return obj


@wrong("move_to", "namedtuple_to_tuple", KEPT)
def move_to_plain_tuples(obj, device, non_blocking=False):
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return type(obj)((k, move_to_plain_tuples(v, device, non_blocking))
                         for k, v in obj.items())
    if isinstance(obj, tuple):
        return tuple(move_to_plain_tuples(v, device, non_blocking) for v in obj)
    if isinstance(obj, list):
        return [move_to_plain_tuples(v, device, non_blocking) for v in obj]
    return obj


@wrong("move_to", "drops_non_tensors", KEPT)
def move_to_tensors_only(obj, device, non_blocking=False):
    def wanted(v):
        return torch.is_tensor(v) or isinstance(v, dict | list | tuple)

    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return type(obj)((k, move_to_tensors_only(v, device, non_blocking))
                         for k, v in obj.items() if wanted(v))
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*[move_to_tensors_only(v, device, non_blocking) for v in obj
                           if wanted(v)])
    if isinstance(obj, list | tuple):
        return type(obj)(move_to_tensors_only(v, device, non_blocking) for v in obj if wanted(v))
    return obj


# ---------------------------------------------------------------------------------------------
# benchmark


@right("benchmark")
def benchmark_sync_every_call(fn, *, warmup=3, iters=20, sync=None):
    for _ in range(warmup):
        fn()
    total = 0.0
    for _ in range(iters):
        if sync:
            sync()
        start = perf_counter()
        fn()
        if sync:
            sync()
        total += perf_counter() - start
    return 1000 * total / iters


@right("benchmark")
def benchmark_ns(fn, *, warmup=3, iters=20, sync=None):
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    t0 = time.perf_counter_ns()
    for _ in range(iters):
        fn()
    if sync is not None:
        sync()
    return (time.perf_counter_ns() - t0) / 1e6 / iters


@right("benchmark")
def benchmark_timeit(fn, *, warmup=3, iters=20, sync=None):
    [fn() for _ in range(warmup)]
    sync = sync or (lambda: None)
    sync()
    t0 = timeit.default_timer()
    [fn() for _ in range(iters)]
    sync()
    return (timeit.default_timer() - t0) * 1e3 / iters


@wrong("benchmark", "no_sync", SYNCED)
def benchmark_unsynced(fn, *, warmup=3, iters=20, sync=None):
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) * 1000 / iters


@wrong("benchmark", "warmup_work_timed", SYNCED)
def benchmark_sync_at_end(fn, *, warmup=3, iters=20, sync=None):
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - start) * 1000 / iters


@wrong("benchmark", "no_warmup", WARMUP)
def benchmark_cold(fn, *, warmup=3, iters=20, sync=None):
    if sync is not None:
        sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - start) * 1000 / iters


@wrong("benchmark", "seconds_not_ms", WARMUP)
def benchmark_seconds(fn, *, warmup=3, iters=20, sync=None):
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - start) / iters


@wrong("benchmark", "total_not_mean", WARMUP)
def benchmark_total(fn, *, warmup=3, iters=20, sync=None):
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - start) * 1000


# ---------------------------------------------------------------------------------------------
# estimate_train_memory

_BUFFERS = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adagrad": 1, "adam": 2, "adamw": 2}


@right("estimate_train_memory")
def memory_by_groups(model, optimizer="adam", amp=False):
    if optimizer not in _BUFFERS:
        raise ValueError(optimizer)
    params = list(model.parameters())
    weights = sum(p.nbytes for p in params)
    trainable = [p for p in params if p.requires_grad]
    per_copy = sum(p.nbytes for p in trainable)
    extra = sum(2 * p.numel() for p in trainable if p.dtype == torch.float32) if amp else 0
    return weights + per_copy * (1 + _BUFFERS[optimizer]) + extra


@wrong("estimate_train_memory", "frozen_counted", WEIGHTS)
def memory_all_params(model, optimizer="adam", amp=False):
    if optimizer not in _BUFFERS:
        raise ValueError(optimizer)
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    extra = sum(2 * p.numel() for p in model.parameters()
                if p.dtype == torch.float32) if amp else 0
    return n_bytes * (2 + _BUFFERS[optimizer]) + extra


@wrong("estimate_train_memory", "no_optimizer_state", OPT_STATE)
def memory_weights_and_grads(model, optimizer="adam", amp=False):
    if optimizer not in _BUFFERS:
        raise ValueError(optimizer)
    total = 0
    for p in model.parameters():
        total += p.nbytes * (2 if p.requires_grad else 1)
        if amp and p.requires_grad and p.dtype == torch.float32:
            total += 2 * p.numel()
    return total


@wrong("estimate_train_memory", "amp_ignored", OPT_STATE)
def memory_no_amp(model, optimizer="adam", amp=False):
    if optimizer not in _BUFFERS:
        raise ValueError(optimizer)
    total = 0
    for p in model.parameters():
        total += p.nbytes
        if p.requires_grad:
            total += p.nbytes * (1 + _BUFFERS[optimizer])
    return total
