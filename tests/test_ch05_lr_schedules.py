"""Chapter 5's checks: right answers score full marks, wrong ones lose exactly their facets and
are named, cheats are caught.

- the reference answers, taken from the solution notebook, the grader's bug-free models, and
  correct answers written in other ways (``RIGHT`` in ``tests/corpus/ch05_lr_schedules.py``)
  score full marks on the public and hidden checks;
- every wrong implementation of the corpus loses exactly the facets it is registered with, public
  and hidden, with the diagnosis of its ``Mistake.key``; every mistake of the grader's tables
  has a corpus entry;
- a wrong ``LRScheduler`` base costs nothing to a ``StepLR`` built on it, and the report says so;
- every forbidden path resolves and trips; subclassing or calling torch's scheduler (or the
  grader's own reference for ``lr_find``/``suggest_lr``) scores 0 with the path named;
- bad answers get clear messages; hidden cases are plain data that depend on the seed only;
- the torch 2.13 facts the exercise text states hold.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest
import torch

from corpus.ch05_lr_schedules import CORPUS, LOSES, RIGHT
from grader.chapters.ch05_lr_schedules import CHAPTER, EXERCISES, MODELS, check
from grader.core.wire import decode, encode
from grader.kit.exercise import ForbiddenCallError, check_exercise, resolve, tripwires
from nbutils import SOLUTIONS, score_and_lost, solution_namespace
from nbutils import assert_full_marks as full_marks

NOTEBOOK = SOLUTIONS / CHAPTER / f"{CHAPTER}.ipynb"
SEEDS = (0, 1)
RUNS = [{}, {"hidden": True, "seed": 0}]
POINTS = {"LRScheduler": 2, "StepLR": 1, "MultiStepLR": 1, "ExponentialLR": 1, "LinearLR": 2,
          "CosineAnnealingLR": 2, "OneCycleLR": 3, "ReduceLROnPlateau": 3, "SequentialLR": 2,
          "lr_find": 2, "suggest_lr": 1}


def scored(name, impl, **kwargs):
    """(score, facets lost, report) of an answer, checked in this process."""
    return score_and_lost(EXERCISES[name], impl, **kwargs)


def assert_full_marks(name, impl, runs=RUNS):
    full_marks(EXERCISES[name], impl, runs)


@pytest.fixture(scope="module")
def answers():
    if not NOTEBOOK.exists():
        pytest.skip("the solution notebook of chapter 5 is not written yet")
    return solution_namespace(NOTEBOOK)


# ---------------------------------------------------------------------------------------------
# Right answers


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_answers_score_full_marks(answers, name):
    assert_full_marks(name, answers[name], [{}] + [{"hidden": True, "seed": s} for s in SEEDS])


@pytest.mark.parametrize("name", list(EXERCISES))
def test_bug_free_models_score_full_marks(name):
    assert_full_marks(name, MODELS[name], [{}, {"hidden": True, "seed": 5}])


@pytest.mark.parametrize(("name", "impl"), RIGHT, ids=[f"{n}-{f.__name__}" for n, f in RIGHT])
def test_answers_written_differently_score_full_marks(name, impl):
    assert_full_marks(name, impl, [{}, {"hidden": True, "seed": 3}])


def test_points_are_as_announced():
    assert {name: ex.points for name, ex in EXERCISES.items()} == POINTS
    assert list(EXERCISES) == list(POINTS)  # the notebook's order
    assert sum(POINTS.values()) == 20
    for ex in EXERCISES.values():
        assert len(ex.facet_list()) >= 2
        assert abs(sum(f.points for f in ex.facet_list()) - ex.points) < 1e-9, ex.name


def test_check_prints_the_report_and_returns_the_score():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        value = check("StepLR", MODELS["StepLR"])
    assert value == 1.0 and "StepLR: 1 / 1 points" in out.getvalue()


# ---------------------------------------------------------------------------------------------
# Wrong answers: each loses exactly its facets, with its diagnosis


@pytest.mark.parametrize(("name", "key", "impl"), CORPUS,
                         ids=[f"{n}-{k}-{f.__name__}" for n, k, f in CORPUS])
def test_wrong_answers_lose_exactly_their_facets_with_the_diagnosis(name, key, impl):
    ex = EXERCISES[name]
    message = next(m.message for m in ex.mistakes if m.key == key)
    for kwargs in RUNS:
        result, report = check_exercise(ex, impl, **kwargs)
        lost = {f.name for f in result.lost()}
        assert lost == LOSES[impl.__name__], f"{kwargs}:\n{report}"
        for facet in result.lost():
            assert facet.mistake() is not None and facet.mistake().key == key, report
        assert f"Likely mistake: {message}" in report


def test_every_mistake_has_a_corpus_entry():
    covered = {(name, key) for name, key, _ in CORPUS}
    for name, ex in EXERCISES.items():
        for mistake in ex.mistakes:
            assert (name, mistake.key) in covered, (name, mistake.key)
            assert mistake.facet in {f.name for f in ex.facet_list()}, (name, mistake.key)


def test_the_issues_wrong_implementations_are_all_in_the_corpus():
    keys = {key for _, key, _ in CORPUS}
    assert keys >= {
        "no_initial_step", "one_base_lr", "closed_form_only", "decay_at_zero", "decay_one_early",
        "milestone_set", "clamped", "period_minus_1", "divide_by_total_iters_minus_1",
        "past_total_iters", "overwrite_initial_lr", "phase_end_without_minus_1",
        "min_lr_from_max_lr", "momentum_not_cycled", "momentum_same_way",
        "raises_at_total_steps", "patience_ge", "non_strict", "rel_as_abs",
        "bad_epochs_not_reset", "cooldown_ignored", "no_eps", "linear_sweep", "lr_after_step",
        "optimizer_not_restored", "raw_loss_stop"}


def step_lr_on(base):
    """A chainable StepLR, as a learner writes it, on the base class ``base``."""
    class StepLR(base):
        def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
            self.step_size, self.gamma = step_size, gamma
            super().__init__(optimizer, last_epoch)

        def get_lr(self):
            if self.last_epoch == 0 or self.last_epoch % self.step_size:
                return [g["lr"] for g in self.optimizer.param_groups]
            return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    return StepLR


def test_a_wrong_base_costs_nothing_to_the_schedulers_built_on_it():
    from corpus.ch05_lr_schedules import LRSchedulerNoFirstStep

    # The learner's own base, named LRScheduler as in the notebook, without the first step.
    LRScheduler = type("LRScheduler", (LRSchedulerNoFirstStep,), {})

    score, lost, report = scored("StepLR", step_lr_on(LRScheduler), hidden=True, seed=0)
    assert score == 1.0 and not lost, report
    assert "your `LRScheduler` fails" in report


# ---------------------------------------------------------------------------------------------
# Forbidden calls


def test_every_forbidden_path_resolves_and_trips():
    for ex in EXERCISES.values():
        assert ex.forbidden, ex.name
        for path in ex.forbidden:
            owner, attr, original = resolve(path)
            if isinstance(original, type):
                continue
            with tripwires([path]) as calls, pytest.raises(ForbiddenCallError):
                getattr(owner, attr)()
            assert calls == [path]
            assert getattr(owner, attr) is original  # put back as it was


@pytest.mark.parametrize("name", [n for n in EXERCISES if n not in ("lr_find", "suggest_lr")])
def test_subclassing_torchs_scheduler_scores_zero(name):
    cheat = type(name, (getattr(torch.optim.lr_scheduler, name),), {})
    score, _, report = scored(name, cheat)
    assert score == 0 and f"torch.optim.lr_scheduler.{name}" in report


def test_calling_torchs_scheduler_inside_scores_zero():
    class StepLR:  # delegates to torch's
        def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
            self.inner = torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma, last_epoch)

        def step(self):
            self.inner.step()

        def get_last_lr(self):
            return self.inner.get_last_lr()

    score, _, report = scored("StepLR", StepLR)
    assert score == 0 and "torch.optim.lr_scheduler.StepLR" in report

    class LRScheduler(torch.optim.lr_scheduler.LambdaLR):  # the base handed to torch's
        def __init__(self, optimizer, last_epoch=-1):
            super().__init__(optimizer, lambda epoch: 1.0, last_epoch)

    score, _, report = scored("LRScheduler", LRScheduler)
    assert score == 0 and "torch.optim.lr_scheduler.LRScheduler" in report


def test_calling_the_graders_reference_scores_zero():
    from grader.chapters import ch05_lr_schedules as module

    def lr_find(*args, **kwargs):
        return module.lr_find_model()(*args, **kwargs)

    def suggest_lr(lrs, losses):
        return module.suggest_lr_reference(lrs, losses)

    for name, impl in (("lr_find", lr_find), ("suggest_lr", suggest_lr)):
        score, _, report = scored(name, impl)
        assert score == 0 and "off-limits" in report, report


# ---------------------------------------------------------------------------------------------
# Bad answers and the cases


def test_bad_answers_get_clear_messages():
    with pytest.raises(AssertionError, match="not defined"):
        check("StepLR", None)

    class StepLR(MODELS["StepLR"]):
        def get_last_lr(self):
            return "0.1"

    _, _, report = scored("StepLR", StepLR)
    assert "get_last_lr() must be a list" in report

    def lr_find(model, loss_fn, optimizer, loader, **kwargs):
        return [1e-3]

    _, _, report = scored("lr_find", lr_find)
    assert "must return a tuple (lrs, losses)" in report


def test_a_stub_raises_not_implemented_error():
    class LRScheduler:
        def __init__(self, optimizer, last_epoch=-1):
            raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check("LRScheduler", LRScheduler)

    def suggest_lr(lrs, losses):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check("suggest_lr", suggest_lr)


def encoded(cases):
    return [json.dumps([c.label, encode(dict(c.args))], sort_keys=True) for c in cases]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_hidden_cases_are_plain_data_that_depend_on_the_seed_only(name):
    ex = EXERCISES[name]
    first = encoded(ex.cases(hidden=True, seed=11))
    assert first == encoded(ex.cases(hidden=True, seed=11))
    assert first != encoded(ex.cases(hidden=True, seed=12))
    for case in ex.cases(hidden=False) + ex.cases(hidden=True, seed=0):
        text = json.dumps(encode(dict(case.args)), sort_keys=True)
        back = decode(json.loads(text))
        assert back.keys() == case.args.keys(), case.label
    covered = {ex.facet_of(c) for c in ex.cases(hidden=False) + ex.cases(hidden=True, seed=0)}
    assert covered == {f.name for f in ex.facet_list()}, name


def test_cases_cover_what_the_issue_asks():
    labels = " ".join(c.label for ex in EXERCISES.values() for c in ex.cases(hidden=False))
    for words in ("2 group(s)", "from outside", "on the same optimizer", "state_dict() at step",
                  "eps swallows", "cooldown", "negative metrics", "chapter 3's SGD", "Adam"):
        assert words in labels, words
    # pct_start * total_steps is not an integer in the public one-cycle cases
    a = next(c.args for c in EXERCISES["OneCycleLR"].cases(hidden=False)
             if c.args["kind"] == "trace")
    assert a["kwargs"]["pct_start"] * a["kwargs"]["total_steps"] % 1 != 0


# ---------------------------------------------------------------------------------------------
# torch 2.13 facts the exercise text states


def _sgd(lr=0.1):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)


def test_the_torch_facts_the_text_states():
    sched = torch.optim.lr_scheduler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = _sgd()
        opt.param_groups[0]["initial_lr"] = 0.1
        sched.StepLR(opt, step_size=3, last_epoch=2)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01)  # decays in the constructor
        opt = _sgd()
        sched.MultiStepLR(opt, milestones=[0, 3])
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
        opt = _sgd()
        opt.param_groups[0]["initial_lr"] = 0.1
        sched.ExponentialLR(opt, gamma=0.5, last_epoch=2)
        assert opt.param_groups[0]["lr"] == 0.1  # does not decay in the constructor
        # OneCycleLR: the step to total_steps extrapolates (linear: below min_lr, negative),
        # only the next one raises
        opt = _sgd()
        s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="linear")
        for _ in range(10):
            opt.step()
            s.step()
        assert opt.param_groups[0]["lr"] < 0
        with pytest.raises(ValueError):
            s.step()
        # ReduceLROnPlateau, min/rel: a negative metric getting worse counts as better
        opt = _sgd()
        s = sched.ReduceLROnPlateau(opt, patience=0, threshold=0.1)
        for metric in (-10.0, -9.5, -9.2, -9.0):
            s.step(metric)
        assert opt.param_groups[0]["lr"] == 0.1 and s.best == -9.0
        # CosineAnnealingLR is not clamped after T_max: it rises again
        opt = _sgd()
        s = sched.CosineAnnealingLR(opt, T_max=4)
        lrs = []
        for _ in range(8):
            opt.step()
            s.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert lrs[3] == pytest.approx(0.0, abs=1e-12) and lrs[7] == pytest.approx(0.1)
    assert np.isfinite(lrs).all()


@pytest.mark.parametrize("name", list(EXERCISES))
def test_outputs_are_arrays_that_cross_the_wire(name):
    """What ``run`` returns goes back from the sandbox as arrays only (numpy scalars are not)."""
    from grader.kit.exercise import capture

    ex = EXERCISES[name]
    for case in ex.cases(hidden=False) + ex.cases(hidden=True, seed=0):
        out = capture(ex, ex.prepare(MODELS[name]), case, forbid=True)
        for key, value in out.items():
            assert type(value) is np.ndarray, (case.label, key, type(value))
        back = decode(json.loads(json.dumps(encode(out))))
        assert back.keys() == out.keys()


def test_a_scheduler_on_torchs_base_class_is_allowed():
    assert_full_marks("StepLR", step_lr_on(torch.optim.lr_scheduler.LRScheduler))
