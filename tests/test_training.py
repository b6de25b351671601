"""Tests for lossopt_helpers.training: the loop's order, seeding, optimizers, schedulers."""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lossopt_helpers.data import make_blobs
from lossopt_helpers.training import History, accuracy, evaluate, fit, set_seed


def tiny_problem(seed: int = 0, n: int = 96):
    """Three Gaussian blobs and a small MLP: trains to a low loss in a few epochs."""
    split = make_blobs(n_samples=n, centers=3, n_features=2, seed=seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))
    return split, model


def batches(X: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed list of batches: fit accepts any iterable of (X, y)."""
    return [(X[i : i + size], y[i : i + size]) for i in range(0, len(X), size)]


class PlainSGD(torch.optim.Optimizer):
    """SGD as a learner writes it: p <- p - lr * grad."""

    def __init__(self, params, lr: float = 0.01):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


class DuckSGD:
    """Not a torch.optim.Optimizer at all: only zero_grad and step."""

    def __init__(self, params, lr: float):
        self.params, self.lr = list(params), lr

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p in self.params:
            p -= self.lr * p.grad


# ---------------------------------------------------------------- fit
def test_fit_reduces_the_loss_and_records_one_entry_per_epoch():
    split, model = tiny_problem()
    train_loader, val_loader = split.loaders(batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    history = fit(model, F.cross_entropy, optimizer, train_loader, val_loader, num_epochs=15,
                  progress=False)
    assert isinstance(history, History) and isinstance(history, dict)
    for key in ("train_loss", "val_loss", "train_metric", "val_metric", "lr"):
        assert len(history[key]) == 15, key
    assert len(history["step_loss"]) == 15 * math.ceil(len(split.X_train) / 16)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["val_loss"][-1] < 0.5 * history["val_loss"][0]
    assert history["val_metric"][-1] >= 0.85 and history["train_metric"][-1] >= 0.85
    assert history["lr"] == [0.2] * 15
    assert model.training  # fit leaves the model in training mode for more training


def test_train_loss_is_the_batch_size_weighted_mean_of_step_losses():
    split, model = tiny_problem()
    loader = batches(split.X_train, split.y_train, 30)  # 76 examples: 30, 30, 16
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, F.cross_entropy, optimizer, loader, num_epochs=2, progress=False)
    sizes = [len(x) for x, _ in loader]
    steps = history["step_loss"]
    for epoch in range(2):
        chunk = steps[epoch * 3 : epoch * 3 + 3]
        expected = sum(s * n for s, n in zip(chunk, sizes)) / sum(sizes)
        assert history["train_loss"][epoch] == pytest.approx(expected)


def run_once(seed: int, loader_seed: int = 0) -> History:
    split, model = tiny_problem()
    train_loader, val_loader = split.loaders(batch_size=16, seed=loader_seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    return fit(model, F.cross_entropy, optimizer, train_loader, val_loader, num_epochs=3,
               seed=seed, progress=False)


def test_same_seed_gives_identical_histories_and_another_seed_does_not():
    first = run_once(seed=0)
    assert run_once(seed=0) == first  # dropout masks and batch order replayed exactly
    assert run_once(seed=1)["train_loss"] != first["train_loss"]  # other dropout masks
    assert run_once(seed=0, loader_seed=1)["train_loss"] != first["train_loss"]  # other order


def test_fit_rewinds_a_reused_loader_so_two_runs_see_the_same_batches():
    split, _ = tiny_problem()
    train_loader, _ = split.loaders(batch_size=16)
    histories = []
    for _ in range(2):
        _, model = tiny_problem()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        histories.append(fit(model, F.cross_entropy, optimizer, train_loader, num_epochs=2,
                             progress=False))
    assert histories[0] == histories[1]


def test_a_learner_written_optimizer_matches_torch_sgd():
    histories = {}
    for name, make in {"torch": torch.optim.SGD, "plain": PlainSGD, "duck": DuckSGD}.items():
        split, model = tiny_problem()
        train_loader, val_loader = split.loaders(batch_size=16)
        optimizer = make(model.parameters(), lr=0.1)
        histories[name] = fit(model, F.cross_entropy, optimizer, train_loader, val_loader,
                              num_epochs=3, progress=False)
    assert histories["plain"] == histories["torch"]
    # p -= lr * grad rounds differently from torch's p.add_(grad, alpha=-lr)
    assert histories["duck"]["train_loss"] == pytest.approx(histories["torch"]["train_loss"])
    assert histories["plain"]["lr"] == [0.1] * 3
    assert histories["duck"]["lr"] == [0.1] * 3  # read from its lr attribute


class SpySGD(torch.optim.SGD):
    """Records the gradient it is asked to apply and the parameters it applies it to."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.seen: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []

    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"]]
        self.seen.append(([p.detach().clone() for p in params], [p.grad.clone() for p in params]))
        return super().step(closure)


def test_each_step_uses_the_gradient_of_its_own_batch_only():
    # If zero_grad were missing or came after backward, step k would see the sum of the
    # gradients of batches 1..k (or zeros), not the gradient of batch k.
    split, model = tiny_problem()
    model = nn.Sequential(*[m for m in model if not isinstance(m, nn.Dropout)])
    loader = batches(split.X_train, split.y_train, 16)
    optimizer = SpySGD(model.parameters(), lr=0.5)
    fit(model, F.cross_entropy, optimizer, loader, num_epochs=2, progress=False)
    assert len(optimizer.seen) == 2 * len(loader)
    for step, (params, grads) in enumerate(optimizer.seen):
        X, y = loader[step % len(loader)]
        replica = copy.deepcopy(model)
        with torch.no_grad():
            for p, value in zip(replica.parameters(), params):
                p.copy_(value)
        expected = torch.autograd.grad(F.cross_entropy(replica(X), y), list(replica.parameters()))
        for got, want in zip(grads, expected):
            torch.testing.assert_close(got, want, msg=f"step {step}: not this batch's gradient")


def test_calls_happen_in_the_canonical_order():
    calls = []
    split, model = tiny_problem()
    model.register_forward_pre_hook(lambda module, args: calls.append("forward"))

    class LoggingSGD(torch.optim.SGD):
        def zero_grad(self, set_to_none=True):
            calls.append("zero_grad")
            super().zero_grad(set_to_none)

        def step(self, closure=None):
            calls.append("step")
            return super().step(closure)

    def loss_fn(output, target):
        calls.append("loss")
        loss = F.cross_entropy(output, target)
        loss.register_hook(lambda grad: calls.append("backward"))  # runs during backward()
        return loss

    loader = batches(split.X_train, split.y_train, 40)
    fit(model, loss_fn, LoggingSGD(model.parameters(), lr=0.1), loader, num_epochs=1,
        progress=False)
    assert calls == ["zero_grad", "forward", "loss", "backward", "step"] * len(loader)


# ---------------------------------------------------------------- schedulers
def test_epoch_scheduler_is_stepped_after_each_epoch():
    split, model = tiny_problem()
    train_loader, _ = split.loaders(batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, F.cross_entropy, optimizer, train_loader, num_epochs=3,
                  scheduler=scheduler, progress=False)
    assert history["lr"] == pytest.approx([0.4, 0.2, 0.1])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert scheduler.last_epoch == 3


def test_batch_scheduler_is_stepped_after_every_optimizer_step():
    split, model = tiny_problem()
    loader = batches(split.X_train, split.y_train, 16)  # 5 batches
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
    history = fit(model, F.cross_entropy, optimizer, loader, num_epochs=2, scheduler=scheduler,
                  step_scheduler="batch", progress=False)
    assert scheduler.last_epoch == 2 * len(loader)
    assert history["lr"] == pytest.approx([1.0, 1 / (1 + len(loader))])


def test_plateau_scheduler_gets_the_validation_loss():
    seen = []

    class SpyPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metrics, *args, **kwargs):
            seen.append(metrics)
            return super().step(metrics, *args, **kwargs)

    split, model = tiny_problem()
    train_loader, val_loader = split.loaders(batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, F.cross_entropy, optimizer, train_loader, val_loader, num_epochs=3,
                  scheduler=SpyPlateau(optimizer), progress=False)
    assert seen == history["val_loss"]
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        fit(model, F.cross_entropy, optimizer, train_loader, scheduler=SpyPlateau(optimizer),
            step_scheduler="batch", progress=False)


def test_bad_arguments_are_refused():
    split, model = tiny_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="step_scheduler"):
        fit(model, F.cross_entropy, optimizer, [], step_scheduler="step", progress=False)
    with pytest.raises(ValueError, match="no examples"):
        fit(model, F.cross_entropy, optimizer, [], num_epochs=1, progress=False)


# ---------------------------------------------------------------- validation and output
class ModeRecorder(nn.Module):
    """Records (training mode, grad enabled) at each forward pass."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 3)
        self.modes: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.modes.append((self.training, torch.is_grad_enabled()))
        return self.linear(x)


def test_validation_runs_in_eval_mode_without_gradients():
    split, _ = tiny_problem()
    model = ModeRecorder()
    train = batches(split.X_train, split.y_train, 40)  # 2 batches
    val = batches(split.X_test, split.y_test, 40)  # 1 batch
    fit(model, F.cross_entropy, torch.optim.SGD(model.parameters(), lr=0.1), train, val,
        num_epochs=2, progress=False)
    epoch = [(True, True)] * len(train) + [(False, False)] * len(val)
    assert model.modes == epoch * 2


def test_evaluate_weights_batches_by_size_and_restores_the_mode():
    split, _ = tiny_problem()
    model = ModeRecorder()
    loader = batches(split.X_test, split.y_test, 7)  # 20 examples: 7, 7, 6
    loss, acc = evaluate(model, F.cross_entropy, loader, accuracy)
    with torch.no_grad():
        output = model(split.X_test)
    assert loss == pytest.approx(F.cross_entropy(output, split.y_test).item(), rel=1e-6)
    assert acc == pytest.approx(accuracy(output, split.y_test))
    assert model.training
    model.eval()
    evaluate(model, F.cross_entropy, loader, None)
    assert not model.training
    assert evaluate(model, F.cross_entropy, loader, metric=None)[1] is None
    with pytest.raises(ValueError, match="no examples"):
        evaluate(model, F.cross_entropy, [], accuracy)


def test_without_val_loader_or_metric_those_lists_stay_empty():
    split, model = tiny_problem()
    history = fit(model, F.cross_entropy, torch.optim.SGD(model.parameters(), lr=0.1),
                  batches(split.X_train, split.y_train, 32), num_epochs=2, metric=None,
                  progress=False)
    assert history["val_loss"] == history["train_metric"] == history["val_metric"] == []
    assert len(history["train_loss"]) == 2
    plain = history.to_dict()
    assert type(plain) is dict and plain == history
    plain["train_loss"].append(0.0)
    assert len(history["train_loss"]) == 2  # a copy


def test_progress_false_prints_nothing_and_true_shows_the_losses(capsys):
    split, model = tiny_problem()
    loader = batches(split.X_train, split.y_train, 32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, F.cross_entropy, optimizer, loader, num_epochs=2, progress=False)
    assert capsys.readouterr() == ("", "")
    fit(model, F.cross_entropy, optimizer, loader, loader, num_epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "train_loss=" in err and "val_loss=" in err


# ---------------------------------------------------------------- accuracy and seeding
def test_accuracy_multiclass_binary_and_errors():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 2])) == 0.5
    assert accuracy(logits, F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()) == 1.0
    binary = torch.tensor([-2.0, 0.5, 3.0, -0.1], requires_grad=True)
    assert accuracy(binary, torch.tensor([0.0, 1.0, 0.0, 0.0])) == 0.75
    assert accuracy(binary.reshape(4, 1), torch.tensor([[0], [1], [0], [0]])) == 0.75
    # Logit 0 is P = 1/2: predicted negative.
    assert accuracy(torch.tensor([0.0]), torch.tensor([0.0])) == 1.0
    assert isinstance(accuracy(logits, torch.tensor([0, 1, 2, 0])), float)
    with pytest.raises(ValueError, match="same non-zero number"):
        accuracy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


def test_set_seed_seeds_python_numpy_and_torch():
    set_seed(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    set_seed(8)
    assert torch.rand(1).item() != first[2]
