"""Checks for Chapter 8, the capstone: the source article's two examples, as written, then better.

Four exercises:

- ``classifier_as_written(X_train, y_train, seed=0, num_epochs=10)``: the article's MNIST loop
  with the learner's own ``cross_entropy`` and ``Adam``. Its per-step losses must equal those of
  the same loop with ``torch.nn.functional.cross_entropy`` and ``torch.optim.Adam`` (computed
  here) within ``rtol=1e-4, atol=1e-5`` (float32: a correct answer differs by about 1e-6).
- ``regression_as_written(X_train, y_train, seed=0, num_epochs=100)``: the article's regression
  with the learner's ``mse_loss`` and ``SGD``, features and target standardised with statistics
  of the training split (population std, as ``StandardScaler``); per-epoch losses, same
  tolerance.
- ``classifier_recipe(model, X_train, y_train, budget_s)`` and ``regression_recipe(...)``: a
  training recipe, run here under fixed seeds and a CPU-time budget, scored on a test split it
  never receives.

How a recipe is run (:meth:`RecipeExercise.run`), and why training on the test split is
impossible rather than merely detected:

1. A case holds only the *training* split (drawn by the grader; for hidden cases from the
   grading seed, which the sandbox never sees) and the model seeds. The test split is rebuilt in
   the grader's own process (:meth:`RecipeExercise.reference`: every example of the dataset that
   is not in the training split) and the trained weights are evaluated there: the test images
   never enter the process that runs the recipe.
2. The dataset loaders (scikit-learn's, the course's, NumPy's and gzip's file readers) are
   forbidden calls while a recipe runs.
3. The recipe runs rebuilt on the notebook's globals *minus every piece of data*
   (:func:`withhold_data`): tensors, arrays, models, data loaders, splits... of the notebook are
   not visible to it, so it cannot reach the notebook's own test split (or its full data) by a
   global name; defaults and closures that carry data are refused the same way.

4. While a recipe runs, an audit hook refuses to open the dataset folders and their files
   (scikit-learn's bundled data, ``$MNIST_DIR``): reading the data by its path fails with a
   ``PermissionError`` that names the rule (:func:`dataset_files_closed`); the shell functions
   (``os.system``, ``subprocess.run``...) are forbidden calls.

What is left needs code written to defeat the grader (disarming its hook, spawning a process
by hand), not a mistake: the static scan flags the introspection such code usually needs, and
an instructor sees it in the notebook.

Scoring (facets, stated in the exercise text): each facet is a case; the cases of a split share
one set of training runs (one per seed, cached by :meth:`RecipeExercise.run`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import signal
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from grader.chapters import ch01_classification_losses as ch01
from grader.chapters import ch02_regression_losses as ch02
from grader.chapters import ch03_sgd as ch03
from grader.chapters import ch04_adaptive_optimizers as ch04
from grader.kit.depends import Rebinder
from grader.kit.exercise import (ERROR_KEY, Case, Exercise, Facet, Mistake, Outputs, capture,
                                 compare_outputs, make_check, tensor, to_plain)
from grader.kit.threads import one_thread
from lossopt_helpers import capstone
from lossopt_helpers.data import _split

CHAPTER = "08_capstone"

_cpu = time.process_time  # bound at import, before any learner code runs

# ---------------------------------------------------------------------------------------------
# What the answers may not call

LOSSES_FORBIDDEN = tuple(dict.fromkeys(
    path for ex in (*ch01.EXERCISES.values(), *ch02.EXERCISES.values()) for path in ex.forbidden
    if not path.startswith("grader.")))
OPTIMIZERS_FORBIDDEN = tuple(dict.fromkeys((
    *(p for ex in ch04.EXERCISES.values() for p in ex.forbidden if not p.startswith("grader.")),
    *ch03.FORBIDDEN,
    "torch.optim.Adamax", "torch.optim.adamax.adamax", "torch.optim.NAdam",
    "torch.optim.nadam.nadam", "torch.optim.RAdam", "torch.optim.radam.radam",
    "torch.optim.Adadelta", "torch.optim.adadelta.adadelta", "torch.optim.ASGD",
    "torch.optim.asgd.asgd", "torch.optim.Rprop", "torch.optim.rprop.rprop",
    "torch.optim.LBFGS", "torch.optim.LBFGS.step", "torch.optim.Adafactor",
    "torch.optim._adafactor._single_tensor_adafactor",
)))
SCHEDULERS_FORBIDDEN = (
    "torch.optim.lr_scheduler.LRScheduler.step",  # every scheduler's __init__ calls it
    "torch.optim.lr_scheduler.ReduceLROnPlateau.step",
    "torch.optim.lr_scheduler.SequentialLR.step",
    "torch.optim.lr_scheduler.ChainedScheduler.step",
    "torch.optim.swa_utils.SWALR.step",
)
CLIPPING_FORBIDDEN = (
    "torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grads_with_norm_",
    "torch.nn.utils.get_total_norm", "torch.nn.utils.clip_grad.clip_grad_norm_",
    "torch.nn.utils.clip_grad_value_",
    "torch.nn.utils.clip_grad.clip_grad_value_",
)
DATA_FORBIDDEN = (
    "sklearn.datasets.load_digits", "sklearn.datasets.load_diabetes",
    "sklearn.datasets.fetch_openml", "sklearn.datasets._base.load_digits",
    "sklearn.datasets._base.load_diabetes", "sklearn.datasets._base.load_csv_data",
    "sklearn.datasets._base.load_gzip_compressed_csv_data",
    "lossopt_helpers.data.load_digits", "lossopt_helpers.data.load_diabetes",
    "lossopt_helpers.data.load_mnist", "lossopt_helpers.data.read_idx",
    "lossopt_helpers.capstone.digits_arrays", "lossopt_helpers.capstone.diabetes_arrays",
    "lossopt_helpers.capstone.classifier_data", "lossopt_helpers.capstone.regression_data",
    "numpy.loadtxt", "numpy.genfromtxt", "numpy.load", "numpy.fromfile", "gzip.open",
    "pandas.read_csv",
)
# A shell could read the dataset's files for the recipe.
SHELL_FORBIDDEN = ("os.system", "os.popen", "subprocess.run", "subprocess.call",
                   "subprocess.check_call", "subprocess.check_output", "subprocess.getoutput",
                   "subprocess.getstatusoutput")
RECIPE_FORBIDDEN = (*LOSSES_FORBIDDEN, *OPTIMIZERS_FORBIDDEN, *SCHEDULERS_FORBIDDEN,
                    *CLIPPING_FORBIDDEN, *DATA_FORBIDDEN, *SHELL_FORBIDDEN)

CE_FORBIDDEN = ch01.EXERCISES["cross_entropy"].forbidden
ADAM_FORBIDDEN = ch04.ADAM_FORBIDDEN
MSE_FORBIDDEN = ch02.EXERCISES["mse_loss"].forbidden
SGD_FORBIDDEN = ch03.FORBIDDEN


# ---------------------------------------------------------------------------------------------
# Data, as the grader draws it


@functools.lru_cache(maxsize=1)
def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as uint8 pixels 0..16 ``(1797, 64)`` and int64 labels (grader side)."""
    X, y = capstone.digits_arrays()
    return np.rint(X * 16).astype(np.uint8), y


@functools.lru_cache(maxsize=1)
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    """The diabetes features ``(442, 10)`` and targets, raw units, float64 (grader side)."""
    return capstone.diabetes_arrays()


def images(pixels: np.ndarray) -> torch.Tensor:
    """uint8 pixels 0..16 ``(N, 64)`` -> the article's input ``(N, 1, 28, 28)`` in [0, 1]."""
    return capstone.upsample_digits(pixels.astype(np.float64) / 16.0)


def digits_train(split_seed: int, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training part of the stratified 80/20 split ``split_seed`` (first ``size`` rows)."""
    X, y = digits_pixels()
    X_train, _, y_train, _ = _split(X, y, 0.2, split_seed, stratify=True)
    return X_train[:size], y_train[:size]


def diabetes_train(split_seed: int, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training part of the 80/20 split ``split_seed`` (first ``size`` rows)."""
    X, y = diabetes()
    X_train, _, y_train, _ = _split(X, y, 0.2, split_seed, stratify=False)
    return X_train[:size], y_train[:size]


def held_out(X_all: np.ndarray, y_all: np.ndarray, X_train: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Every example of the dataset whose input is not in ``X_train``: the test split."""
    seen = {row.tobytes() for row in np.ascontiguousarray(X_train)}
    keep = np.array([row.tobytes() not in seen for row in np.ascontiguousarray(X_all)])
    return X_all[keep], y_all[keep]


# ---------------------------------------------------------------------------------------------
# The article's loops with PyTorch's parts (the references of the "as written" exercises)


def torch_classifier_as_written(X_train: torch.Tensor, y_train: torch.Tensor, seed: int = 0,
                                num_epochs: int = 10, *, criterion: Callable = F.cross_entropy,
                                optimizer_class: Any = torch.optim.Adam, normalize: bool = True,
                                shuffle: bool = True, zero_grad: bool = True) -> torch.Tensor:
    """The article's classifier loop (switches: the mistakes of the exercise)."""
    torch.manual_seed(seed)
    model = capstone.article_classifier()
    optimizer = optimizer_class(model.parameters(), lr=1e-3)
    X = (X_train - 0.5) / 0.5 if normalize else X_train
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, y_train), batch_size=64, shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed))
    losses = []
    for _ in range(num_epochs):
        for images_, labels in loader:
            if zero_grad:
                optimizer.zero_grad()
            loss = criterion(model(images_), labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
    return torch.stack(losses)


def torch_regression_as_written(X_train: torch.Tensor, y_train: torch.Tensor, seed: int = 0,
                                num_epochs: int = 100, *, stats_from: torch.Tensor | None = None,
                                ddof: int = 0, scale_y: bool = True, flat_output: bool = False,
                                zero_grad: bool = True) -> torch.Tensor:
    """The article's regression loop (switches: the mistakes of the exercise)."""
    fit_on = X_train if stats_from is None else stats_from
    mean, std = fit_on.mean(dim=0), fit_on.std(dim=0, correction=ddof)
    X = (X_train - mean) / std
    if scale_y:
        y = (y_train - y_train.mean()) / y_train.std(correction=ddof)
    else:
        y = y_train
    y = y.view(-1, 1)
    torch.manual_seed(seed)
    model = capstone.article_regressor(X.shape[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(num_epochs):
        if zero_grad:
            optimizer.zero_grad()
        out = model(X)
        with warnings.catch_warnings():  # the broadcast mistake's own UserWarning: expected
            warnings.simplefilter("ignore")
            loss = F.mse_loss(out, y.view(-1) if flat_output else y)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


def _adam_without_bias_correction(params: Any, lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam whose moving averages are used raw (betas kept): a common own-Adam mistake."""

    class RawAdam(torch.optim.Optimizer):
        def __init__(self) -> None:
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self) -> None:
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state[p]
                    if not state:
                        state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                    state["m"].mul_(0.9).add_(p.grad, alpha=0.1)
                    state["v"].mul_(0.999).addcmul_(p.grad, p.grad, value=0.001)
                    p.addcdiv_(state["m"], state["v"].sqrt().add_(1e-8), value=-group["lr"])

    return RawAdam()


def _ce_on_probabilities(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(torch.softmax(input, dim=1), target)


# ---------------------------------------------------------------------------------------------
# The "as written" exercises


TRAJECTORY_TOL = {"rtol": 1e-4, "atol": 1e-5}
DIAGNOSIS_STEPS, DIAGNOSIS_RTOL = 10, 1e-3  # a mistake is recognised on the first steps


class AsWrittenExercise(Exercise):
    """Per-step losses of the learner's loop against the same loop with PyTorch's parts."""

    rtol, atol = TRAJECTORY_TOL["rtol"], TRAJECTORY_TOL["atol"]
    inputs: Callable[[Case], tuple[torch.Tensor, torch.Tensor]]

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        X, y = self.inputs(case)
        with one_thread():
            out = impl(X, y, seed=int(case.args["seed"]),
                       num_epochs=int(case.args["num_epochs"]))
        return {"out": to_plain(out, "the returned losses")}

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        """The mistake whose first steps the answer's losses follow: a wrong loop drifts
        chaotically later on (accumulated gradients blow up), so only the start is compared."""
        if got.get("out") is None or got["out"].ndim != 1:
            return None
        head = {"out": got["out"][:DIAGNOSIS_STEPS]}
        # Every epoch has a step at least: this many epochs give the mistakes' first steps.
        short = dataclasses.replace(case, args={**case.args, "num_epochs": min(
            int(case.args["num_epochs"]), DIAGNOSIS_STEPS)})
        for mistake in self.mistakes:
            wrong = capture(self, mistake.impl, short, forbid=False)
            if ERROR_KEY in wrong or len(wrong["out"]) < len(head["out"]):
                continue
            if compare_outputs(head, {"out": wrong["out"][:len(head["out"])]},
                               rtol=DIAGNOSIS_RTOL, atol=self.atol) is None:
                return mistake
        return None


class ClassifierAsWritten(AsWrittenExercise):
    name, grade_id, points = "classifier_as_written", "test_classifier_as_written", 3.0
    forbidden = (*CE_FORBIDDEN, *ADAM_FORBIDDEN)
    facets = (Facet("first epochs", 1.0, "2 epochs on 256 images: the loop, the normalisation, "
                                         "the seeding and your parts on their first steps"),
              Facet("as written", 2.0, "the article's 10 epochs on the whole training split, "
                                       "and hidden seeds and subsets"),)
    mistakes = (
        Mistake("no_zero_grad", "optimizer.zero_grad() is never called, so the gradients of "
                "every batch add up in .grad", functools.partial(
                    torch_classifier_as_written, zero_grad=False)),
        Mistake("no_normalize", "the images are not normalised with (x - 0.5) / 0.5 as the "
                "article's transforms.Normalize((0.5,), (0.5,)) does",
                functools.partial(torch_classifier_as_written, normalize=False)),
        Mistake("no_shuffle", "the batches are not shuffled (shuffle=True, with the loader's own "
                "torch.Generator().manual_seed(seed))",
                functools.partial(torch_classifier_as_written, shuffle=False)),
        Mistake("adam_no_bias_correction", "your Adam behaves like Adam without the bias "
                "corrections 1 - beta1^t and 1 - beta2^t (see chapter 4)",
                functools.partial(torch_classifier_as_written,
                                  optimizer_class=_adam_without_bias_correction)),
        Mistake("softmax_then_ce", "the model's outputs go through softmax before "
                "cross_entropy, which applies log_softmax itself: pass the logits",
                functools.partial(torch_classifier_as_written, criterion=_ce_on_probabilities)),
    )

    def inputs(self, case: Case) -> tuple[torch.Tensor, torch.Tensor]:
        return images(case.args["pixels"]), tensor(case.args["labels"])

    def torch_reference(self) -> Callable[..., Any]:
        return torch_classifier_as_written

    def reference(self, case: Case) -> Outputs:
        with one_thread():
            return super().reference(case)

    def public_cases(self) -> list[Case]:
        small, labels = digits_train(0, 256)
        full, all_labels = digits_train(0)
        return [
            Case("256 training images of the split seed 0, seed=0, num_epochs=2",
                 {"pixels": small, "labels": labels, "seed": 0, "num_epochs": 2}, public=True,
                 facet="first epochs"),
            Case(f"the whole training split ({len(full)} images), seed=0, num_epochs=10",
                 {"pixels": full, "labels": all_labels, "seed": 0, "num_epochs": 10},
                 public=True, facet="as written"),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        for _ in range(2):
            split_seed, seed = int(rng.integers(2**31)), int(rng.integers(2**31))
            size = int(rng.integers(300, 700))
            pixels, labels = digits_train(split_seed, size)
            cases.append(Case(f"{size} training images, seed={seed}, num_epochs=3",
                              {"pixels": pixels, "labels": labels, "seed": seed,
                               "num_epochs": 3}, facet="as written"))
        return cases


class RegressionAsWritten(AsWrittenExercise):
    name, grade_id, points = "regression_as_written", "test_regression_as_written", 3.0
    forbidden = (*MSE_FORBIDDEN, *SGD_FORBIDDEN)
    facets = (Facet("first epochs", 1.0, "10 epochs: the scalers, the seeding, the output shape "
                                         "and your parts on their first steps"),
              Facet("as written", 2.0, "the article's 100 epochs on the training split, and "
                                       "hidden seeds and subsets"),)
    mistakes = (
        Mistake("scaler_leak", "the scaler's statistics come from the whole dataset, test split "
                "included (the article's StandardScaler().fit_transform(X) before any split): "
                "fit it on X_train only",
                lambda X, y, seed=0, num_epochs=100: torch_regression_as_written(
                    X, y, seed, num_epochs,
                    stats_from=torch.as_tensor(diabetes()[0], dtype=torch.float32))),
        Mistake("sample_std", "the scaler divides by the sample standard deviation (ddof=1, "
                "torch's std() default); StandardScaler uses the population one: "
                "std(unbiased=False)", functools.partial(torch_regression_as_written, ddof=1)),
        Mistake("y_not_scaled", "the target is not standardised: in raw units (25..346) the "
                "article's SGD(lr=0.01, momentum=0.9) diverges on this data",
                functools.partial(torch_regression_as_written, scale_y=False)),
        Mistake("broadcast_output", "the model's output (N, 1) is compared with a target of "
                "shape (N,): the loss broadcasts to (N, N) (chapter 2's silent bug): use "
                "y.view(-1, 1)", functools.partial(torch_regression_as_written,
                                                    flat_output=True)),
        Mistake("no_zero_grad", "optimizer.zero_grad() is never called, so the gradients of "
                "every epoch add up in .grad",
                functools.partial(torch_regression_as_written, zero_grad=False)),
    )

    def inputs(self, case: Case) -> tuple[torch.Tensor, torch.Tensor]:
        return (tensor(case.args["X"]).to(torch.float32),
                tensor(case.args["y"]).to(torch.float32))

    def torch_reference(self) -> Callable[..., Any]:
        return torch_regression_as_written

    def reference(self, case: Case) -> Outputs:
        with one_thread():
            return super().reference(case)

    def public_cases(self) -> list[Case]:
        X, y = diabetes_train(0)
        return [
            Case(f"the training split of seed 0 ({len(X)} patients), seed=0, num_epochs=10",
                 {"X": X, "y": y, "seed": 0, "num_epochs": 10}, public=True,
                 facet="first epochs"),
            Case(f"the training split of seed 0 ({len(X)} patients), seed=0, num_epochs=100",
                 {"X": X, "y": y, "seed": 0, "num_epochs": 100}, public=True,
                 facet="as written"),
        ]

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        for _ in range(2):
            split_seed, seed = int(rng.integers(2**31)), int(rng.integers(2**31))
            size = int(rng.integers(150, 353))
            X, y = diabetes_train(split_seed, size)
            cases.append(Case(f"{size} training patients, seed={seed}, num_epochs=100",
                              {"X": X, "y": y, "seed": seed, "num_epochs": 100},
                              facet="as written"))
        return cases


# ---------------------------------------------------------------------------------------------
# The recipes: data withheld, budget enforced, scored on a split the recipe never sees


class BudgetExceeded(BaseException):
    """Raised into a recipe that runs past its hard CPU-time limit (a BaseException: a recipe's
    ``except Exception`` does not swallow it)."""


def is_data(value: Any) -> bool:
    """Whether a global of the notebook is (or may hold) data a recipe must not see.

    Visible to a recipe: modules, classes, functions (not bound to an object), numbers, strings,
    dtypes and devices, and scikit-learn estimators (a fitted scaler holds statistics, not
    examples: a leaky one is what the regression's scaler facet detects). Everything else -
    tensors, arrays, lists and dicts, models, data loaders, splits, partials - is withheld.
    """
    if value is None or isinstance(value, bool | int | float | complex | str | bytes |
                                   torch.dtype | torch.device | types.ModuleType | type |
                                   types.FunctionType):
        return False
    if isinstance(value, types.BuiltinFunctionType):
        return not (value.__self__ is None or isinstance(value.__self__, types.ModuleType))
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a dependency of the course
        return True
    return not isinstance(value, BaseEstimator)


class _Withholder(Rebinder):
    """Rebuilds the recipe and the learner's functions on globals without the notebook's data."""

    def __init__(self, names: list[str]) -> None:
        super().__init__({name: None for name in names})

    def namespace(self, source: dict[str, Any]) -> dict[str, Any]:
        new = super().namespace(source)
        for name in self.substitutes:
            new.pop(name, None)
        return new


def withhold_data(recipe: Callable[..., Any]) -> Callable[..., Any]:
    """``recipe`` rebuilt on its globals without any data (see :func:`is_data`).

    A recipe whose defaults or closure hold data is replaced by a function that raises
    :class:`NameError` naming it, as a withheld global does.
    """
    if not isinstance(recipe, types.FunctionType):
        return recipe
    carried = [repr(v)[:40] for v in (*(recipe.__defaults__ or ()),
                                      *(recipe.__kwdefaults__ or {}).values()) if is_data(v)]
    for cell in recipe.__closure__ or ():
        try:
            if is_data(cell.cell_contents):
                carried.append("a closure variable")
        except ValueError:
            continue
    if carried:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise NameError(f"withheld: {recipe.__name__} carries data in its defaults or "
                            f"closure ({carried[0]}); a recipe gets data from its arguments only")
        return refuse
    names = [k for k, v in recipe.__globals__.items() if not k.startswith("__") and is_data(v)]
    if not names:
        return recipe
    rebuilt = _Withholder(names).function(recipe)
    withheld = set(names)

    @functools.wraps(recipe)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return rebuilt(*args, **kwargs)
        except NameError as exc:
            if exc.name not in withheld:
                raise
            raise NameError(f"withheld: the recipe reads the notebook's global {exc.name!r}; a "
                            "recipe gets its data from its arguments only") from None
    return call


class RecipeExercise(Exercise):
    """A training recipe, trained under fixed seeds and a CPU budget, scored on held-out data."""

    budget_s = 4.0  # CPU seconds (time.process_time) per run
    hard_limit = 1.25  # runs are stopped at hard_limit * budget_s
    forbidden = RECIPE_FORBIDDEN
    # A data loader called at the notebook's top level is how the notebook shows its data; a
    # recipe that reads what it built is refused at run time (withheld globals: "train_on_test").
    runtime_only = (*DATA_FORBIDDEN, *SHELL_FORBIDDEN)
    diagnose_errors = True  # a withheld global's NameError is the train_on_test mistake
    metric_name = ""
    low = high = 0.0  # the thresholds (accuracy: at least; RMSE ratio: at most)
    higher_is_better = True
    n_seeds = 3
    LOW, HIGH, SEEDS, TIME = ("lower threshold", "upper threshold", "every seed", "time budget")

    def __init__(self) -> None:
        self._last: tuple[Any, str, Outputs] | None = None  # (recipe, case digest, outputs)

    # -- plain data in, weights out ----------------------------------------------------------
    def build_model(self, case: Case) -> torch.nn.Module:
        raise NotImplementedError

    def train_inputs(self, case: Case) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def after(self, result: Any, prefix: str) -> Outputs:
        """Plain outputs of what the recipe returned (the regression's scaler)."""
        return {}

    def run(self, impl: Callable[..., Any], case: Case) -> Outputs:
        digest = _digest(case.args)
        if self._last is None or self._last[0] is not impl or self._last[1] != digest:
            self._last = None
            self._last = (impl, digest, self._train(impl, case))  # one split's runs at a time
        return dict(self._last[2])

    def _train(self, impl: Callable[..., Any], case: Case) -> Outputs:
        with one_thread():
            return self._train_runs(impl, case)

    def _train_runs(self, impl: Callable[..., Any], case: Case) -> Outputs:
        recipe = withhold_data(impl)
        outputs: Outputs = {}
        times = []
        for i, seed in enumerate(np.asarray(case.args["seeds"]).tolist()):
            X, y = self.train_inputs(case)
            torch.manual_seed(int(seed))
            model = self.build_model(case)
            start = _cpu()
            with dataset_files_closed():
                result = _within(recipe, self.budget_s * self.hard_limit, model, X, y,
                                 self.budget_s)
            times.append(_cpu() - start)
            for name, value in model.state_dict().items():
                outputs[f"seed{i}/{name}"] = to_plain(value, f"the model's {name}")
            outputs.update(self.after(result, f"seed{i}/"))
        outputs["cpu_s"] = np.array(times)
        return outputs

    # -- the grader's side ---------------------------------------------------------------------
    def reference(self, case: Case) -> Outputs:
        """The test split of the case's training split (never sent to the recipe)."""
        X_test, y_test = self.test_split(case)
        return {"X_test": X_test, "y_test": y_test}

    def torch_reference(self) -> Callable[..., Any]:
        raise NotImplementedError("a recipe has no PyTorch reference: it is scored on test data")

    def metrics(self, case: Case, got: Outputs, expected: Outputs) -> list[float]:
        raise NotImplementedError

    def passes(self, value: float, threshold: float) -> bool:
        if not math.isfinite(value):
            return False
        return value >= threshold if self.higher_is_better else value <= threshold

    def compare(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        if ERROR_KEY in got:
            return f"raised {got[ERROR_KEY]}: {got.get('__message__', '')}"
        try:
            values = self.metrics(case, got, expected)
        except (KeyError, RuntimeError, ValueError) as exc:
            return f"the trained model could not be evaluated: {exc}"
        shown = ", ".join(f"{v:.4g}" for v in values)
        middle = float(np.median(values))
        facet = self.facet_of(case)
        better = "at least" if self.higher_is_better else "at most"
        if facet == self.LOW and not self.passes(middle, self.low):
            return (f"median {self.metric_name} {middle:.4g} over the seeds ({shown}); "
                    f"{better} {self.low:g} earns this facet")
        if facet == self.HIGH and not self.passes(middle, self.high):
            return (f"median {self.metric_name} {middle:.4g} over the seeds ({shown}); "
                    f"{better} {self.high:g} earns this facet")
        if facet == self.SEEDS and not all(self.passes(v, self.low) for v in values):
            return (f"{self.metric_name} per seed {shown}: every seed must reach {self.low:g} "
                    f"(seeds {np.asarray(case.args['seeds']).tolist()})")
        if facet == self.TIME:
            cpu = np.asarray(got["cpu_s"])
            if (cpu > self.budget_s).any():
                return (f"CPU time per run {', '.join(f'{t:.2f}' for t in cpu)} s: the budget "
                        f"is {self.budget_s:g} s")
        return self.compare_more(case, got, expected)

    def compare_more(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        return None

    def diagnose(self, case: Case, got: Outputs) -> Mistake | None:
        keys = {m.key: m for m in self.mistakes}
        if ERROR_KEY in got:
            message = str(got.get("__message__", ""))
            if str(got[ERROR_KEY]) in ("NameError", "PermissionError") and \
                    message.startswith("withheld"):
                return keys.get("train_on_test")
            return None
        facet = self.facet_of(case)
        if facet == self.TIME:
            return keys.get("over_budget")
        if facet == self.SEEDS:
            return keys.get("lucky_seed")
        return self.diagnose_more(case, got, keys)

    def diagnose_more(self, case: Case, got: Outputs, keys: dict[str, Mistake]
                      ) -> Mistake | None:
        return None

    # -- cases ------------------------------------------------------------------------------
    def facet_cases(self, label: str, args: dict[str, Any], public: bool) -> list[Case]:
        return [Case(f"{label} [{facet.name}]", args, public=public, facet=facet.name)
                for facet in self.facet_list()]

    def public_cases(self) -> list[Case]:
        return self.facet_cases("the notebook's split (seed 0), model seeds 0, 1, 2",
                                {**self.split_args(0), "seeds": np.arange(3)}, True)

    def hidden_cases(self, rng: np.random.Generator) -> list[Case]:
        split_seed = int(rng.integers(1, 2**31))
        seeds = rng.integers(0, 2**31, self.n_seeds)
        return self.facet_cases(f"a secret split, model seeds {seeds.tolist()}",
                                {**self.split_args(split_seed), "seeds": seeds}, False)

    def split_args(self, split_seed: int) -> dict[str, Any]:
        raise NotImplementedError

    def test_split(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _digest(args: Any) -> str:
    """A fingerprint of a case's arguments (equal cases share their training runs)."""
    h = hashlib.sha256()
    for key in sorted(args):
        value = args[key]
        h.update(key.encode())
        h.update(np.asarray(value).tobytes() if isinstance(value, np.ndarray | list | tuple)
                 else repr(value).encode())
    return h.hexdigest()


# -- the dataset's files, closed to a running recipe ------------------------------------------

_READ_GUARD: dict[str, Any] = {"armed": False, "dirs": (), "names": frozenset(), "hooked": False}


def _dataset_dirs() -> tuple[str, ...]:
    """The folders whose files hold the datasets: scikit-learn's bundled data and $MNIST_DIR."""
    import sklearn.datasets

    dirs = [os.path.join(os.path.dirname(sklearn.datasets.__file__), "data")]
    if os.environ.get("MNIST_DIR"):
        dirs.append(os.environ["MNIST_DIR"])
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs)


def _refuse_dataset_files(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: while a recipe runs, opening a dataset folder or a file in it is refused.

    A relative path is resolved against the working directory; one that may be relative to a
    ``dir_fd`` opened elsewhere (the event does not carry it) is refused by the file's name."""
    if event != "open" or not _READ_GUARD["armed"] or not args or isinstance(args[0], int):
        return
    try:
        given = os.fsdecode(args[0])
        path = os.path.join(os.path.realpath(given), "")
    except (TypeError, ValueError):
        return
    if path.startswith(_READ_GUARD["dirs"]) or (
            not os.path.isabs(given) and os.path.basename(given) in _READ_GUARD["names"]):
        raise PermissionError(f"withheld: a recipe may not open the dataset's own files "
                              f"({os.path.basename(path.rstrip(os.sep))}); it learns from "
                              f"X_train and y_train")


@contextlib.contextmanager
def dataset_files_closed() -> Iterator[None]:
    """While inside, no code of this process can open a dataset folder or file by its path
    (``open``, ``io.open``, ``os.open``, symlinks resolved). With the loaders and shells
    forbidden and the notebook's data withheld, this closes the ways to the test split that
    code written in good faith could take. An audit hook cannot be removed, so it is added once
    and armed only here (nested uses restore what they found)."""
    if not _READ_GUARD["hooked"]:
        sys.addaudithook(_refuse_dataset_files)
        _READ_GUARD["hooked"] = True
    saved = {k: _READ_GUARD[k] for k in ("armed", "dirs", "names")}
    dirs = _dataset_dirs()
    names = {name for d in dirs if os.path.isdir(d) for name in os.listdir(d)
             if not name.startswith("__") and not name.endswith(".py")}  # data, not modules
    _READ_GUARD.update(dirs=dirs, names=frozenset(names), armed=True)
    try:
        yield
    finally:
        _READ_GUARD.update(saved)


def _within(recipe: Callable[..., Any], limit_s: float, *args: Any) -> Any:
    """Call ``recipe(*args)``, stopped with :class:`BudgetExceeded` after ``limit_s`` CPU seconds
    (a profiling timer; where signals cannot be used, the sandbox's own timeout is the limit)."""
    def stop(signum: int, frame: Any) -> None:
        raise BudgetExceeded

    try:
        previous = signal.signal(signal.SIGPROF, stop)
        signal.setitimer(signal.ITIMER_PROF, limit_s)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGPROF
        return recipe(*args)
    try:
        return recipe(*args)
    except BudgetExceeded:
        return None
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


RECIPE_MISTAKES = (
    Mistake("train_on_test", "the recipe reaches for data it was not given (a global of the "
            "notebook such as its X_test, the full dataset, or its files): the grader withholds "
            "every tensor, array and model of the notebook from the recipe and holds the test "
            "split back, so a recipe learns from its X_train and y_train arguments only",
            lambda *a: None),
    Mistake("over_budget", "the recipe runs past its CPU-time budget: measure "
            "time.process_time() from the start and stop (early) before budget_s; a run is cut "
            "off at 1.25 x budget_s and the model is scored as it is then", lambda *a: None),
    Mistake("lucky_seed", "the recipe reaches the threshold on some seeds only: it depends on "
            "luck (a learning rate on the edge of divergence, a random choice of "
            "hyperparameters, no warmup or clipping); make every seed train", lambda *a: None),
)


class ClassifierRecipe(RecipeExercise):
    name, grade_id, points = "classifier_recipe", "test_classifier_recipe", 5.0
    metric_name = "test accuracy"
    low, high = 0.955, 0.975
    facets = (
        Facet(RecipeExercise.LOW, 1.5, "median test accuracy over the seeds >= 0.955"),
        Facet(RecipeExercise.HIGH, 1.5, "median test accuracy over the seeds >= 0.975"),
        Facet(RecipeExercise.SEEDS, 1.0, "every seed's test accuracy >= 0.955"),
        Facet(RecipeExercise.TIME, 1.0, "every run within 4 s of CPU time"),
    )
    mistakes = RECIPE_MISTAKES

    def split_args(self, split_seed: int) -> dict[str, Any]:
        pixels, labels = digits_train(split_seed)
        return {"pixels": pixels, "labels": labels}

    def train_inputs(self, case: Case) -> tuple[torch.Tensor, torch.Tensor]:
        return images(case.args["pixels"]), tensor(case.args["labels"])

    def build_model(self, case: Case) -> torch.nn.Module:
        return capstone.article_classifier()

    def test_split(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        X, y = digits_pixels()
        return held_out(X, y, case.args["pixels"])

    def metrics(self, case: Case, got: Outputs, expected: Outputs) -> list[float]:
        X_test = images(expected["X_test"])
        y_test = torch.as_tensor(expected["y_test"])
        values = []
        for i in range(len(np.asarray(case.args["seeds"]))):
            model = capstone.article_classifier()
            model.load_state_dict(_weights(got, f"seed{i}/", model))
            values.append(capstone.accuracy(model, X_test, y_test))
        return values


class RegressionRecipe(RecipeExercise):
    name, grade_id, points = "regression_recipe", "test_regression_recipe", 5.0
    metric_name = "test RMSE / least-squares RMSE"
    low, high = 1.15, 1.06
    higher_is_better = False
    SCALER = "scaler"
    facets = (
        Facet(RecipeExercise.LOW, 1.0, "median RMSE over the seeds <= 1.15 x the RMSE of least "
                                       "squares fitted on the same training split"),
        Facet(RecipeExercise.HIGH, 1.5, "median RMSE <= 1.06 x least squares'"),
        Facet(RecipeExercise.SEEDS, 1.0, "every seed's RMSE <= 1.15 x least squares'"),
        Facet(RecipeExercise.TIME, 0.5, "every run within 4 s of CPU time"),
        Facet(SCALER, 1.0, "the returned scaler holds X_train's column means and population "
                           "standard deviations"),
    )
    mistakes = (*RECIPE_MISTAKES,
                Mistake("scaler_leak", "the scaler's statistics are those of the whole dataset, "
                        "test split included (a StandardScaler fitted before the split, as the "
                        "article does): fit it on X_train", lambda *a: None))

    def split_args(self, split_seed: int) -> dict[str, Any]:
        X, y = diabetes_train(split_seed)
        return {"X": X, "y": y}

    def train_inputs(self, case: Case) -> tuple[torch.Tensor, torch.Tensor]:
        return (tensor(case.args["X"]).to(torch.float32),
                tensor(case.args["y"]).to(torch.float32))

    def build_model(self, case: Case) -> torch.nn.Module:
        return capstone.article_regressor(np.asarray(case.args["X"]).shape[1])

    def after(self, result: Any, prefix: str) -> Outputs:
        if not isinstance(result, dict):
            raise TypeError("regression_recipe must return the scaler: a dict with x_mean, "
                            f"x_scale, y_mean and y_scale, got {type(result).__name__}")
        return {f"{prefix}{k}": _plain_stat(result[k], k)
                for k in ("x_mean", "x_scale", "y_mean", "y_scale")}

    def test_split(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        X, y = diabetes()
        return held_out(X, y, case.args["X"])

    def metrics(self, case: Case, got: Outputs, expected: Outputs) -> list[float]:
        X_test = torch.as_tensor(expected["X_test"], dtype=torch.float32)
        y_test = torch.as_tensor(expected["y_test"], dtype=torch.float32)
        baseline = least_squares_rmse(case.args["X"], case.args["y"], expected["X_test"],
                                      expected["y_test"])
        values = []
        for i in range(len(np.asarray(case.args["seeds"]))):
            model = capstone.article_regressor(X_test.shape[1])
            model.load_state_dict(_weights(got, f"seed{i}/", model))
            scaler = {k: torch.as_tensor(got[f"seed{i}/{k}"], dtype=torch.float32)
                      for k in ("x_mean", "x_scale", "y_mean", "y_scale")}
            ratio = capstone.rmse(model, scaler, X_test, y_test) / baseline
            values.append(ratio if math.isfinite(ratio) else math.inf)  # diverged: the worst
        return values

    def compare_more(self, case: Case, got: Outputs, expected: Outputs) -> str | None:
        if self.facet_of(case) != self.SCALER:
            return None
        X = np.asarray(case.args["X"])
        want = {"x_mean": X.mean(axis=0), "x_scale": X.std(axis=0)}
        for i in range(len(np.asarray(case.args["seeds"]))):
            problem = compare_outputs({k: got[f"seed{i}/{k}"] for k in want}, want,
                                      rtol=1e-5, atol=1e-6)
            if problem is not None:
                return f"the scaler is not X_train's: {problem}"
        return None

    def diagnose_more(self, case: Case, got: Outputs, keys: dict[str, Mistake]
                      ) -> Mistake | None:
        if self.facet_of(case) != self.SCALER or "seed0/x_mean" not in got:
            return None
        X_all = diabetes()[0]
        leak = {"x_mean": X_all.mean(axis=0), "x_scale": X_all.std(axis=0)}
        mine = {k: got[f"seed0/{k}"] for k in leak}
        if compare_outputs(mine, leak, rtol=1e-4, atol=1e-6) is None:
            return keys["scaler_leak"]
        return None


def _plain_stat(value: Any, key: str) -> np.ndarray:
    """A scaler statistic as float64: a tensor, a number, or a NumPy array (StandardScaler's)."""
    if type(value) is np.ndarray or isinstance(value, np.floating):
        return np.array(value, dtype=np.float64)
    return to_plain(value, f"the scaler's {key!r}").astype(np.float64)


def least_squares_rmse(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                       y_test: np.ndarray) -> float:
    """The test RMSE of ordinary least squares (with an intercept) fitted on the training split."""
    A = np.c_[X_train, np.ones(len(X_train))]
    w = np.linalg.lstsq(A, y_train, rcond=None)[0]
    pred = np.c_[X_test, np.ones(len(X_test))] @ w
    return float(np.sqrt(np.mean((pred - y_test) ** 2)))


def _weights(got: Outputs, prefix: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of one seed's trained model, checked against the architecture's."""
    state = {}
    for name, value in model.state_dict().items():
        array = got[f"{prefix}{name}"]
        if array.shape != tuple(value.shape):
            raise ValueError(f"{name} has shape {array.shape}, expected {tuple(value.shape)}")
        state[name] = torch.as_tensor(np.asarray(array, dtype=np.float32))
    return state


EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in (
    ClassifierAsWritten(), RegressionAsWritten(), ClassifierRecipe(), RegressionRecipe())}
check = make_check(EXERCISES)
