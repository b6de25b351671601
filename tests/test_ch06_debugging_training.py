"""Chapter 6's checks (first version: the clipping trio).

- the reference answers (tests/corpus/ch06_debugging_training.py until the solution notebook exists)
  score full marks on the public and hidden checks over several seeds;
- an ``if total > max_norm`` branch without the 1e-6 loses the scaled-gradients facet;
- an answer calling torch's own clip_grad_norm_ scores 0.
"""

from __future__ import annotations

import pytest
import torch

from grader.chapters.ch06_debugging_training import EXERCISES
from corpus.ch06_debugging_training import RIGHT
from nbutils import facet_scores

@pytest.fixture(scope="module")
def ns():
    return {fn.__name__: fn for _, fn in RIGHT}


@pytest.mark.parametrize("name", sorted(EXERCISES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_full_marks(ns, name, seed):
    score, _, report = facet_scores(EXERCISES[name], ns[name], hidden=True, seed=seed)
    assert score == EXERCISES[name].points, report


def test_branch_without_eps_loses_scaling(ns):
    def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
        if isinstance(parameters, torch.Tensor):
            parameters = [parameters]
        grads = [p.grad for p in parameters if p.grad is not None]
        total = ns["get_total_norm"](grads, norm_type)
        if total > max_norm:
            for g in grads:
                g.mul_(max_norm / total)
        return total

    _, per_facet, report = facet_scores(EXERCISES["clip_grad_norm_"], clip_grad_norm_, hidden=True, seed=0)
    assert per_facet["scaled gradients"] == 0 and per_facet["returned norm"] == 1, report


def test_torch_call_forbidden():
    score, _, _ = facet_scores(EXERCISES["clip_grad_norm_"], torch.nn.utils.clip_grad_norm_, hidden=True, seed=0)
    assert score == 0
