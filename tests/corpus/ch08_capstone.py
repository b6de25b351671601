"""Wrong answers to Chapter 8's exercises, written the way learners write them.

Each entry is registered with the exercise it answers, the ``Mistake.key`` the grader must name
(``grader/chapters/ch08_capstone.py``) and the facets it must lose (it keeps the others). The
"as written" entries are full loops as a learner writes them, with the parts of the solution
where the mistake is not in a part; the recipe entries are the recipes the issue lists: one that
trains on the notebook's test split, one that leaks the scaler's statistics, one that runs past
its budget, one that reaches the thresholds on lucky seeds only, and ones that call PyTorch's
optimizers or the dataset loaders (``FORBIDDEN``: they score 0, with the call named).
"""

from __future__ import annotations

import os
import subprocess
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import sklearn.datasets
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

from lossopt_helpers.capstone import article_classifier, article_regressor, classifier_data

FIRST, AS_WRITTEN = "first epochs", "as written"
LOW, HIGH, SEEDS, TIME, SCALER = ("lower threshold", "upper threshold", "every seed",
                                  "time budget", "scaler")
EVERY = {"classifier_as_written": frozenset({FIRST, AS_WRITTEN}),
         "regression_as_written": frozenset({FIRST, AS_WRITTEN}),
         "classifier_recipe": frozenset({LOW, HIGH, SEEDS, TIME}),
         "regression_recipe": frozenset({LOW, HIGH, SEEDS, TIME, SCALER})}

# (exercise, mistake key, answer, the facets it must lose)
CORPUS: list[tuple[str, str, Callable[..., Any], frozenset[str]]] = []
# (exercise, answer, the forbidden path it reaches): scored 0 with the call named
FORBIDDEN: list[tuple[str, Callable[..., Any], str]] = []


def wrong(exercise: str, key: str, *loses: str) -> Callable[[Any], Any]:
    def register(fn: Any) -> Any:
        CORPUS.append((exercise, key, fn, frozenset(loses) or EVERY[exercise]))
        return fn

    return register


def forbidden(exercise: str, path: str) -> Callable[[Any], Any]:
    def register(fn: Any) -> Any:
        FORBIDDEN.append((exercise, fn, path))
        return fn

    return register


# ---------------------------------------------------------------------------------------------
# The learner's parts (correct), as the solution pastes them; the mistakes are in the loops.


def cross_entropy(input, target, label_smoothing=0.0):
    shifted = input - input.max(dim=1, keepdim=True).values.detach()
    logp = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    nll = -logp.gather(1, target.view(-1, 1)).mean()
    return (1 - label_smoothing) * nll - label_smoothing * logp.mean()


class Adam:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, bias_correction=True):
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.bias_correction = bias_correction
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0
        self.param_groups = [{"params": self.params, "lr": lr}]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        lr = self.param_groups[0]["lr"]
        for p, m, v in zip(self.params, self.m, self.v):
            m.mul_(b1).add_((1 - b1) * p.grad)
            v.mul_(b2).add_((1 - b2) * p.grad * p.grad)
            if self.bias_correction:
                p.sub_(lr * (m / (1 - b1**self.t)) / ((v / (1 - b2**self.t)).sqrt() + self.eps))
            else:
                p.sub_(lr * m / (v.sqrt() + self.eps))


def mse_loss(input, target):
    return ((input - target) ** 2).mean()


class SGD:
    def __init__(self, params, lr, momentum=0.0):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.buffers = [None] * len(self.params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            g = p.grad
            self.buffers[i] = g.clone() if self.buffers[i] is None else \
                self.buffers[i] * self.momentum + g
            p -= self.lr * self.buffers[i]


# ---------------------------------------------------------------------------------------------
# classifier_as_written


def classifier_loop(X_train, y_train, seed=0, num_epochs=10, *, normalize=True, shuffle=True,
                    zero_grad=True, probabilities=False, bias_correction=True):
    torch.manual_seed(seed)
    model = article_classifier()
    optimizer = Adam(model.parameters(), lr=1e-3, bias_correction=bias_correction)
    X = (X_train - 0.5) / 0.5 if normalize else X_train
    loader = DataLoader(TensorDataset(X, y_train), batch_size=64, shuffle=shuffle,
                        generator=torch.Generator().manual_seed(seed))
    losses = []
    for _ in range(num_epochs):
        for images, labels in loader:
            if zero_grad:
                optimizer.zero_grad()
            outputs = model(images)
            if probabilities:
                outputs = outputs.softmax(dim=1)
            loss = cross_entropy(outputs, labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return torch.tensor(losses)


@wrong("classifier_as_written", "no_zero_grad")
def classifier_forgets_zero_grad(X_train, y_train, seed=0, num_epochs=10):
    return classifier_loop(X_train, y_train, seed, num_epochs, zero_grad=False)


@wrong("classifier_as_written", "no_normalize")
def classifier_raw_pixels(X_train, y_train, seed=0, num_epochs=10):
    return classifier_loop(X_train, y_train, seed, num_epochs, normalize=False)


@wrong("classifier_as_written", "no_shuffle")
def classifier_in_order(X_train, y_train, seed=0, num_epochs=10):
    return classifier_loop(X_train, y_train, seed, num_epochs, shuffle=False)


@wrong("classifier_as_written", "adam_no_bias_correction")
def classifier_adam_without_bias_correction(X_train, y_train, seed=0, num_epochs=10):
    return classifier_loop(X_train, y_train, seed, num_epochs, bias_correction=False)


@wrong("classifier_as_written", "softmax_then_ce")
def classifier_softmax_first(X_train, y_train, seed=0, num_epochs=10):
    return classifier_loop(X_train, y_train, seed, num_epochs, probabilities=True)


# ---------------------------------------------------------------------------------------------
# regression_as_written


def regression_loop(X_train, y_train, seed=0, num_epochs=100, *, X_fit=None, unbiased=False,
                    scale_y=True, flat=False, zero_grad=True):
    X_fit = X_train if X_fit is None else X_fit
    X = (X_train - X_fit.mean(0)) / X_fit.std(0, unbiased=unbiased)
    y = (y_train - y_train.mean()) / y_train.std(unbiased=unbiased) if scale_y else y_train
    y = y if flat else y.view(-1, 1)
    torch.manual_seed(seed)
    model = article_regressor(X.shape[1])
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = torch.zeros(num_epochs)
    for epoch in range(num_epochs):
        if zero_grad:
            optimizer.zero_grad()
        loss = mse_loss(model(X), y)
        loss.backward()
        optimizer.step()
        losses[epoch] = loss.detach()
    return losses


@wrong("regression_as_written", "scaler_leak")
def regression_scaler_on_everything(X_train, y_train, seed=0, num_epochs=100):
    everything = torch.tensor(sklearn.datasets.load_diabetes(scaled=False).data,
                              dtype=torch.float32)  # the article: fit_transform on all of X
    return regression_loop(X_train, y_train, seed, num_epochs, X_fit=everything)


@wrong("regression_as_written", "sample_std")
def regression_sample_std(X_train, y_train, seed=0, num_epochs=100):
    return regression_loop(X_train, y_train, seed, num_epochs, unbiased=True)


@wrong("regression_as_written", "y_not_scaled")
def regression_raw_target(X_train, y_train, seed=0, num_epochs=100):
    return regression_loop(X_train, y_train, seed, num_epochs, scale_y=False)


@wrong("regression_as_written", "broadcast_output")
def regression_broadcast(X_train, y_train, seed=0, num_epochs=100):
    return regression_loop(X_train, y_train, seed, num_epochs, flat=True)


@wrong("regression_as_written", "no_zero_grad")
def regression_forgets_zero_grad(X_train, y_train, seed=0, num_epochs=100):
    return regression_loop(X_train, y_train, seed, num_epochs, zero_grad=False)


# ---------------------------------------------------------------------------------------------
# The recipes

NOTEBOOK_DATA = classifier_data(seed=0)  # what a notebook holds: its own split, test part included


def train_classifier(model, X, y, *, lr=2e-3, num_epochs=15, budget_s=None, start=None):
    """Adam with label smoothing, constant lr; stops at budget_s when given."""
    optimizer = Adam(model.parameters(), lr=lr)
    X = (X - 0.5) / 0.5
    for _ in range(num_epochs):
        for batch in torch.randperm(len(X)).split(64):
            loss = cross_entropy(model(X[batch]), y[batch], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if budget_s is not None and time.process_time() - start > 0.7 * budget_s:
            break


@wrong("classifier_recipe", "train_on_test")
def recipe_uses_the_notebook_test_split(model, X_train, y_train, budget_s):
    # "More data is better": the notebook's test images join the training set.
    X = torch.cat([X_train, NOTEBOOK_DATA.X_test])
    y = torch.cat([y_train, NOTEBOOK_DATA.y_test])
    train_classifier(model, X, y, budget_s=budget_s, start=time.process_time())


@wrong("classifier_recipe", "over_budget", TIME)
def recipe_trains_for_ever(model, X_train, y_train, budget_s):
    # 1000 epochs "to be sure", never looking at the clock.
    train_classifier(model, X_train, y_train, lr=1e-3, num_epochs=1000)


@wrong("classifier_recipe", "lucky_seed", SEEDS)
def recipe_with_a_random_learning_rate(model, X_train, y_train, budget_s):
    # A one-trial random search: the learning rate is drawn anew on every run.
    lr = 10 ** torch.empty(()).uniform_(-3.1, -0.4).item()  # log-uniform in [8e-4, 0.4]
    train_classifier(model, X_train, y_train, lr=lr, num_epochs=15, budget_s=budget_s,
                     start=time.process_time())


@wrong("classifier_recipe", "train_on_test")
def recipe_reads_the_dataset_file(model, X_train, y_train, budget_s):
    # Last of its exercise, so that the test through the sandboxed core reads it too.
    # The loaders are off-limits, so: every image of the dataset, straight from sklearn's file.
    path = os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")
    with open(path, "rb") as f:
        rows = np.array([[float(v) for v in line.split(",")] for line in
                         zlib.decompress(f.read(), 16 + zlib.MAX_WBITS).decode().splitlines()])
    X = torch.nn.functional.interpolate(
        torch.tensor(rows[:, :64] / 16.0, dtype=torch.float32).view(-1, 1, 8, 8), size=(28, 28),
        mode="bilinear")
    train_classifier(model, X, torch.tensor(rows[:, 64], dtype=torch.int64), budget_s=budget_s,
                     start=time.process_time())


@forbidden("classifier_recipe", "torch.optim.adam.adam")
def recipe_with_torch_adam(model, X_train, y_train, budget_s):
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    X = (X_train - 0.5) / 0.5
    for _ in range(10):
        for batch in torch.randperm(len(X)).split(64):
            optimizer.zero_grad()
            cross_entropy(model(X[batch]), y_train[batch]).backward()
            optimizer.step()


@forbidden("classifier_recipe", "torch.nn.functional.cross_entropy")
def recipe_with_torch_loss(model, X_train, y_train, budget_s):
    optimizer = Adam(model.parameters(), lr=2e-3)
    X = (X_train - 0.5) / 0.5
    for _ in range(10):
        for batch in torch.randperm(len(X)).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(X[batch]), y_train[batch], label_smoothing=0.1).backward()
            optimizer.step()


@forbidden("classifier_recipe", "torch.optim.lr_scheduler.LRScheduler.step")
def recipe_with_torch_scheduler(model, X_train, y_train, budget_s):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # not stepped: the scheduler trips
    torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)


@forbidden("classifier_recipe", "subprocess.run")
def recipe_reads_the_file_through_a_shell(model, X_train, y_train, budget_s):
    # open() is refused on the dataset's files, so: let `cat` read it.
    path = os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")
    raw = subprocess.run(["cat", path], capture_output=True, check=True).stdout
    rows = np.array([[float(v) for v in line.split(",")] for line in
                     zlib.decompress(raw, 16 + zlib.MAX_WBITS).decode().splitlines()])
    X = torch.tensor(rows[:, :64] / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    train_classifier(model, torch.nn.functional.interpolate(X, size=(28, 28), mode="bilinear"),
                     torch.tensor(rows[:, 64], dtype=torch.int64), budget_s=budget_s,
                     start=time.process_time())


@forbidden("classifier_recipe", "sklearn.datasets.load_digits")
def recipe_reloads_the_dataset(model, X_train, y_train, budget_s):
    # Reaching for the whole dataset (test split included) through the loader.
    digits = sklearn.datasets.load_digits()
    X = torch.nn.functional.interpolate(
        torch.tensor(digits.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8), size=(28, 28),
        mode="bilinear")
    train_classifier(model, X, torch.tensor(digits.target), budget_s=budget_s,
                     start=time.process_time())


def train_regressor(model, X_train, y_train, x_mean, x_scale, lr=0.003):
    y_mean, y_scale = y_train.mean(), y_train.std(unbiased=False)
    X = (X_train - x_mean) / x_scale
    y = ((y_train - y_mean) / y_scale).view(-1, 1)
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(150):
        optimizer.zero_grad()
        mse_loss(model(X), y).backward()
        optimizer.step()
    return {"x_mean": x_mean, "x_scale": x_scale, "y_mean": y_mean, "y_scale": y_scale}


_diabetes = sklearn.datasets.load_diabetes(scaled=False)
ARTICLE_SCALER = StandardScaler().fit(_diabetes.data)  # the article's: every patient
del _diabetes


@wrong("regression_recipe", "scaler_leak", SCALER)
def recipe_with_the_articles_scaler(model, X_train, y_train, budget_s):
    x_mean = torch.tensor(ARTICLE_SCALER.mean_, dtype=torch.float32)
    x_scale = torch.tensor(ARTICLE_SCALER.scale_, dtype=torch.float32)
    return train_regressor(model, X_train, y_train, x_mean, x_scale)


REGRESSION_DATA = {"X_all": torch.tensor(sklearn.datasets.load_diabetes(scaled=False).data,
                                         dtype=torch.float32)}


@wrong("regression_recipe", "train_on_test")
def recipe_scaler_from_a_global_array(model, X_train, y_train, budget_s):
    X_all = REGRESSION_DATA["X_all"]  # the notebook's full data
    return train_regressor(model, X_train, y_train, X_all.mean(0), X_all.std(0, unbiased=False))


@forbidden("regression_recipe", "torch.optim.sgd.sgd")
def recipe_with_torch_sgd(model, X_train, y_train, budget_s):
    x_mean, x_scale = X_train.mean(0), X_train.std(0, unbiased=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    X = (X_train - x_mean) / x_scale
    for _ in range(50):
        optimizer.zero_grad()
        mse_loss(model(X), (y_train.view(-1, 1) - y_train.mean()) / y_train.std()).backward()
        optimizer.step()
    return {"x_mean": x_mean, "x_scale": x_scale, "y_mean": y_train.mean(),
            "y_scale": y_train.std()}


@wrong("regression_recipe", "lucky_seed", SEEDS)
def recipe_picks_a_learning_rate_at_random(model, X_train, y_train, budget_s):
    # A random search of one trial: one of three learning rates, drawn anew on every run.
    lr = [3e-3, 0.3, 5e-3][torch.randint(3, ()).item()]
    x_mean, x_scale = X_train.mean(0), X_train.std(0, unbiased=False)
    return train_regressor(model, X_train, y_train, x_mean, x_scale, lr=lr)


@wrong("regression_recipe", "over_budget", TIME)
def recipe_with_its_margin_the_wrong_way_round(model, X_train, y_train, budget_s):
    # "Use the whole budget, with a 10 % margin": the margin is added instead of taken off.
    start = time.process_time()
    x_mean, x_scale = X_train.mean(0), X_train.std(0, unbiased=False)
    y_mean, y_scale = y_train.mean(), y_train.std(unbiased=False)
    X = (X_train - x_mean) / x_scale
    y = ((y_train - y_mean) / y_scale).view(-1, 1)
    optimizer = SGD(model.parameters(), lr=0.003, momentum=0.9)
    epoch = 0
    while time.process_time() - start < 1.1 * budget_s:
        optimizer.lr = 0.003 * max(0.0, 1 - epoch / 150)  # linear decay, 0 from epoch 150 on
        optimizer.zero_grad()
        mse_loss(model(X), y).backward()
        optimizer.step()
        epoch += 1
    return {"x_mean": x_mean, "x_scale": x_scale, "y_mean": y_mean, "y_scale": y_scale}


# A recipe carrying data in a default argument is refused like a withheld global.
@wrong("regression_recipe", "train_on_test")
def recipe_with_data_in_a_default(model, X_train, y_train, budget_s,
                                  X_more=REGRESSION_DATA["X_all"]):
    return train_regressor(model, X_train, y_train, X_more.mean(0), X_more.std(0))


def lr_for(seed: int) -> float:  # used by the tests to explain the lucky-seed entry
    torch.manual_seed(seed)
    article_classifier()
    return 10 ** torch.empty(()).uniform_(-3.1, -0.4).item()

