"""lossopt_helpers.bugzoo: the data, the determinism the grader relies on, and each planted bug
showing the symptom chapter 6 describes (measured, not assumed)."""

from __future__ import annotations

import math

import pytest
import torch

from grader.chapters.ch06_debugging_training import EXERCISES
from grader.kit.threads import one_thread
from lossopt_helpers import bugzoo
from lossopt_helpers.bugzoo import Bug

# The hyperparameters of each zoo exercise's public case, as the grader runs it.
PUBLIC = {name: EXERCISES[name].public_hyper for name in ("zoo_1", "zoo_2", "zoo_3", "zoo_4")}


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    # Tiny models: threads only fight over a busy CPU (the chapter's notebook does the same).
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data():
    return bugzoo.digits(384, 0)


def run(loop, data, zoo, **changes):
    return torch.tensor(loop(*data, **{**PUBLIC[zoo], **changes}), dtype=torch.float64)


def test_digits_are_standardised_deterministic_and_all_classes():
    X, y = bugzoo.digits(300, 5)
    assert X.shape == (300, 64) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert set(y.tolist()) == set(range(10))
    assert torch.allclose(X.mean(0), torch.zeros(64), atol=1e-5)
    X2, y2 = bugzoo.digits(300, 5)
    assert torch.equal(X, X2) and torch.equal(y, y2)
    assert not torch.equal(bugzoo.digits(300, 6)[1], y)


def test_the_taxonomy_covers_the_issues_bugs_and_the_zoo_plants_four_of_them():
    names = {b.name for b in Bug}
    assert {"MISSING_ZERO_GRAD", "SOFTMAX_BEFORE_CROSS_ENTROPY", "BROADCAST_MSE_SHAPES",
            "LABELS_SHUFFLED_APART", "EVAL_MODE_WHILE_TRAINING", "TRAIN_MODE_IN_EVAL",
            "LOSS_ACCUMULATED_WITHOUT_ITEM", "WRONG_SOFTMAX_DIM", "SCHEDULER_STEPPED_PER_BATCH",
            "NO_SHUFFLE_SORTED_DATA", "LR_TOO_HIGH"} <= names
    assert set(bugzoo.PLANTED) == set(bugzoo.BUGGY) == set(bugzoo.REFERENCE)
    assert len(set(bugzoo.PLANTED.values())) == 4


@pytest.mark.parametrize("zoo", sorted(bugzoo.BUGGY))
def test_loops_are_deterministic_and_the_bug_changes_the_trajectory(data, zoo):
    reference = run(bugzoo.REFERENCE[zoo], data, zoo)
    assert torch.equal(reference, run(bugzoo.REFERENCE[zoo], data, zoo))
    assert torch.isfinite(reference).all()
    buggy = run(bugzoo.BUGGY[zoo], data, zoo)
    assert not torch.allclose(buggy, reference, rtol=1e-2)
    other_seed = run(bugzoo.REFERENCE[zoo], data, zoo, seed=1)
    assert not torch.equal(other_seed, reference)


def test_missing_zero_grad_makes_the_loss_climb(data):
    buggy, fixed = run(bugzoo.buggy_1, data, "zoo_1"), run(bugzoo.reference_1, data, "zoo_1")
    assert buggy[-1] > buggy[0] and fixed[-1] < 0.5 * fixed[0]


def test_softmax_before_cross_entropy_stalls_above_its_floor(data):
    buggy, fixed = run(bugzoo.buggy_2, data, "zoo_2"), run(bugzoo.reference_2, data, "zoo_2")
    floor = math.log(1 + 9 / math.e)  # ~1.461: probabilities in [0, 1] as logits
    assert (buggy > floor).all() and fixed[-1] < floor / 2


def test_eval_mode_while_training_matches_until_the_first_evaluation(data):
    buggy, fixed = run(bugzoo.buggy_3, data, "zoo_3"), run(bugzoo.reference_3, data, "zoo_3")
    assert buggy.shape == (4, 2)
    assert torch.equal(buggy[0], fixed[0])  # the first epoch trains in train mode in both
    assert buggy[1, 0] < fixed[1, 0]  # then no dropout: a training loss that falls too fast


def test_scheduler_stepped_per_batch_freezes_on_a_plateau(data):
    buggy, fixed = run(bugzoo.buggy_4, data, "zoo_4"), run(bugzoo.reference_4, data, "zoo_4")
    assert buggy[-1] > 0.9 * buggy[1] and fixed[-1] < 0.5 * fixed[1]
