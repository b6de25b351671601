"""Chapter 7's checks: right answers score full marks, wrong ones lose exactly their facets and
are named, cheats are caught, and the grader's models are themselves held to PyTorch.

- the reference answers, taken from the solution notebook, and correct answers written in other
  ways (``RIGHT`` in ``tests/corpus/ch07_gpu_training.py``) score full marks on the public and
  hidden checks; so do the grader's bug-free models;
- every wrong implementation of the corpus scores exactly the points of the facets it keeps,
  public and hidden, with the diagnosis of its ``Mistake.key``; every mistake in the tables has a
  corpus entry;
- the reference ``train_accumulated`` equals the full-batch step (uneven micro-batches too);
- the torch 2.13 facts the exercise text states hold (float32 scale, error classes, the
  unavailable-device behaviour, a disabled scaler's ``load_state_dict({})``);
- torch's own GradScaler, subclassed, wrapped or called through its kernels, scores 0;
- the simulated clock is restored after a check, and an answer's own imported clock is
  simulated too.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch

from corpus.ch07_gpu_training import CORPUS, LOSES, RIGHT
from grader.chapters.ch07_gpu_training import (CHAPTER, EXERCISES, ScalerModel, SimulatedDevice,
                                               measured_memory, model_accumulated, model_amp_step,
                                               model_benchmark, model_memory, model_move_to,
                                               simulated_clock)
from nbutils import SOLUTIONS, score_and_lost, solution_namespace
from nbutils import assert_full_marks as full_marks

NOTEBOOK = SOLUTIONS / CHAPTER / f"{CHAPTER}.ipynb"
RUNS = [{}, {"hidden": True, "seed": 0}]


def facets(name):
    return {f.name: f.points for f in EXERCISES[name].facet_list()}


def scored(name, impl, **kwargs):
    """(score, facets lost, report) of an answer, checked in this process."""
    return score_and_lost(EXERCISES[name], impl, **kwargs)


def assert_full_marks(name, impl, runs=RUNS):
    full_marks(EXERCISES[name], impl, runs)


@pytest.fixture(scope="module")
def answers():
    return solution_namespace(NOTEBOOK)


# ---------------------------------------------------------------------------------------------
# Right answers


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_answers_score_full_marks(answers, name):
    assert_full_marks(name, answers[name], RUNS + [{"hidden": True, "seed": 1}])


@pytest.mark.parametrize(("name", "impl"), [
    ("GradScaler", ScalerModel), ("amp_train_step", model_amp_step()),
    ("train_accumulated", model_accumulated()), ("move_to", model_move_to()),
    ("benchmark", model_benchmark()), ("estimate_train_memory", model_memory())])
def test_bug_free_models_score_full_marks(name, impl):
    assert_full_marks(name, impl, [{"hidden": True, "seed": 3}])


@pytest.mark.parametrize(("name", "impl"), RIGHT, ids=[f"{n}-{f.__name__}" for n, f in RIGHT])
def test_answers_written_differently_score_full_marks(name, impl):
    assert_full_marks(name, impl)


def test_points_are_as_announced():
    assert {n: ex.points for n, ex in EXERCISES.items()} == {
        "GradScaler": 5, "amp_train_step": 3, "train_accumulated": 3, "move_to": 2,
        "benchmark": 1, "estimate_train_memory": 1}
    assert facets("GradScaler") == {"scale and unscale_": 1.5, "skipping and update": 1.5,
                                    "errors": 1.0, "state_dict": 0.5,
                                    "disabled and unavailable device": 0.5}


# ---------------------------------------------------------------------------------------------
# Wrong answers


def mistake_message(exercise, key):
    messages = {m.message for m in EXERCISES[exercise].mistakes if m.key == key}
    assert len(messages) == 1, f"{exercise}: no single mistake with key {key!r}"
    return messages.pop()


@pytest.mark.parametrize(("exercise", "key", "impl"), CORPUS,
                         ids=[f"{e}-{k}" for e, k, _ in CORPUS])
def test_wrong_answers_lose_exactly_their_facets_and_are_named(exercise, key, impl):
    message = mistake_message(exercise, key)
    loses = LOSES[impl.__name__]
    kept = sum(points for facet, points in facets(exercise).items() if facet not in loses)
    for kwargs in RUNS:
        score, lost, report = scored(exercise, impl, **kwargs)
        assert lost == loses, f"{kwargs}: lost {sorted(lost)}, expected {sorted(loses)}\n{report}"
        assert score == kept, f"{kwargs}: {score} points, expected {kept}\n{report}"
        assert f"Likely mistake: {message}" in report, f"{kwargs}: diagnosed as\n{report}"


def test_every_mistake_in_the_tables_has_a_corpus_entry():
    corpus = {(exercise, key) for exercise, key, _ in CORPUS}
    table = {(name, m.key) for name, ex in EXERCISES.items() for m in ex.mistakes}
    assert table == corpus
    keys = [(name, m.key) for name, ex in EXERCISES.items() for m in ex.mistakes]
    assert len(keys) == len(set(keys))


def test_the_issue_corpus_is_covered():
    """Issue 14's list of wrong implementations, each by its key."""
    wanted = {"loss_checked_not_grads", "isinf_only", "tracker_not_reset_on_backoff",
              "growth_off_by_one", "growth_to_inf", "unscales_twice", "update_per_optimizer",
              "found_inf_never_reset", "unavailable_silent", "unavailable_ignored",
              "clip_before_unscale", "model_half", "loss_outside_autocast", "scheduler_on_skip",
              "loss_not_divided", "zero_grad_every_micro_step", "update_every_micro_step",
              "tuples_to_lists", "drops_non_tensors", "no_sync", "no_warmup",
              "no_optimizer_state", "frozen_counted"}
    assert wanted <= {key for _, key, _ in CORPUS}


# ---------------------------------------------------------------------------------------------
# What the checks rely on


def test_accumulation_equals_the_full_batch_step():
    torch.manual_seed(0)
    X, Y = torch.randn(17, 3, dtype=torch.float64), torch.randn(17, 2, dtype=torch.float64)
    sizes = [5, 1, 4, 7]

    def fresh():
        torch.manual_seed(1)
        model = torch.nn.Linear(3, 2).double()
        return model, torch.optim.SGD(model.parameters(), lr=0.1)

    model, opt = fresh()
    bounds = np.cumsum([0] + sizes)
    micro = [(X[s:e], Y[s:e]) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]
    losses = model_accumulated()(model, torch.nn.functional.mse_loss, opt, micro, 4)
    full, full_opt = fresh()
    full_opt.zero_grad()
    loss = torch.nn.functional.mse_loss(full(X), Y)
    loss.backward()
    full_opt.step()
    for a, b in zip(model.parameters(), full.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(losses[0], loss.detach(), rtol=1e-12, atol=1e-14)


def test_torch_2_13_scaler_facts_stated_in_the_text():
    scaler = torch.amp.GradScaler("cpu", init_scale=0.1, backoff_factor=0.3)
    assert scaler.get_scale() == 0.1
    scaler.scale(torch.tensor(1.0))
    assert scaler.get_scale() == pytest.approx(0.10000000149011612, rel=0, abs=1e-17)
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=0.1)
    p.grad = torch.tensor([float("inf"), 1.0])
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == pytest.approx(0.030000001192092896, rel=0, abs=1e-17)
    with pytest.raises(AssertionError):
        scaler.update()  # no inf checks since the last update
    p.grad = torch.ones(2)
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError):
        scaler.step(opt)
    with pytest.raises(RuntimeError):
        torch.amp.GradScaler("cpu").load_state_dict({})
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    disabled.load_state_dict({})  # a no-op: only an enabled scaler refuses an empty state dict
    assert disabled.get_scale() == 1.0 and disabled.state_dict() == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the behaviour without CUDA")
def test_torch_disables_a_cuda_scaler_without_cuda_and_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = torch.amp.GradScaler("cuda")
    assert [w.category for w in caught] == [UserWarning]
    assert not scaler.is_enabled() and scaler.get_scale() == 1.0


def test_hidden_scaler_cases_cover_what_the_issue_lists():
    labels = " | ".join(c.label for c in EXERCISES["GradScaler"].cases(hidden=True, seed=3))
    for feature in ("fp16 CPU autocast", "bf16 CPU autocast", "two optimizers", "NaN", "-inf",
                    "inf loss", "clip_grad_norm_", "accumulated", "2**126", "new_scale",
                    "unscale_() then update() without step()", "unscale_ twice",
                    "step twice", "unscale_ after step", "no inf checks", "state_dict()",
                    "torch's state dict", "GradScaler('cuda') on a machine without CUDA",
                    "enabled=False", "backoff_factor=0.3"):
        assert feature in labels, feature


def test_check_prints_the_report_and_returns_the_score(answers, capsys):
    from grader.chapters.ch07_gpu_training import check

    assert check("move_to", answers["move_to"]) == 2.0
    assert "move_to: 2 / 2 points" in capsys.readouterr().out


def test_scaler_model_matches_torch_on_every_training_script():
    # Infs, NaNs, growth, new_scale, autocast, two optimizers: bit for bit or within tolerance.
    ex = EXERCISES["GradScaler"]
    for case in ex.cases(hidden=True, seed=4):
        if case.args["kind"] != "train":
            continue
        got, want = ex.run(ScalerModel, case), ex.reference(case)
        assert ex.compare(case, got, want) is None, case.label


def test_the_fp16_underflow_the_chapter_shows():
    # A small loss under fp16 autocast gives exactly zero gradients without scaling.
    w = torch.nn.Parameter(torch.ones(4, 4))
    x = torch.full((1, 4), 1e-4)
    with torch.autocast("cpu", dtype=torch.float16):
        out = x @ w
    (out.float().sum() * 1e-4).backward()
    unscaled = w.grad.clone()
    w.grad = None
    with torch.autocast("cpu", dtype=torch.float16):
        out = x @ w
    (out.float().sum() * 1e-4 * 2.0**16).backward()
    assert unscaled.abs().max() == 0 and w.grad.abs().min() > 0


# ---------------------------------------------------------------------------------------------
# Cheats and robustness


class SubclassOfTorch(torch.amp.GradScaler):
    pass


class WrapsTorch:
    def __init__(self, device="cuda", **kwargs):
        self.inner = torch.amp.GradScaler(device, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("impl", [torch.amp.GradScaler, SubclassOfTorch, WrapsTorch,
                                  torch.cpu.amp.GradScaler],
                         ids=["torch", "subclass", "wrapper", "torch.cpu.amp"])
def test_torch_scaler_scores_zero(impl):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score, _, report = scored("GradScaler", impl)
    assert score == 0 and ("off-limits" in report or "must re-implement" in report), report


def test_the_clock_is_restored_and_an_imported_clock_is_simulated():
    from time import perf_counter as imported

    namespace = {"clock": imported}
    exec("def benchmark(fn, *, warmup=3, iters=20, sync=None):\n"
         "    for _ in range(warmup): fn()\n"
         "    if sync: sync()\n"
         "    t = clock()\n"
         "    for _ in range(iters): fn()\n"
         "    if sync: sync()\n"
         "    return (clock() - t) * 1000 / iters\n", namespace)
    original = time.perf_counter
    assert_full_marks("benchmark", namespace["benchmark"])
    assert time.perf_counter is original and namespace["clock"] is imported
    device = SimulatedDevice({"work": 2.0, "launch": 0.01, "first": 30.0, "slow": 0,
                              "asynchronous": True})
    with simulated_clock(device, namespace["benchmark"]):
        start = time.perf_counter()
        device.fn()
        assert time.perf_counter() - start < 0.001  # the host returns at once
        device.sync()
        assert time.perf_counter() - start >= 0.002  # its 2 ms of work, at sync()
    assert time.perf_counter is original


def test_memory_reference_is_what_torch_allocates():
    model = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 3))
    model[0].requires_grad_(False)
    n_frozen, n_train = 110, 33
    assert measured_memory(model, "sgd") == 4 * (n_frozen + 2 * n_train)
    assert measured_memory(model, "adam") == 4 * (n_frozen + 4 * n_train)
    assert measured_memory(model, "adam", amp=True) == 4 * (n_frozen + 4 * n_train) + 2 * n_train
    with pytest.raises(ValueError):
        measured_memory(model, "lion")


def test_answers_that_return_the_wrong_kind_of_thing_get_a_clear_message():
    _, _, report = scored("benchmark", lambda fn, **kw: "fast")
    assert "must be a number" in report
    _, _, report = scored("train_accumulated", lambda *a, **kw: None)
    assert "list of losses" in report


def test_a_check_leaves_the_notebooks_random_stream_alone(answers):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for name in ("GradScaler", "amp_train_step", "train_accumulated"):
        scored(name, answers[name])
    assert torch.equal(torch.rand(3), expected)
