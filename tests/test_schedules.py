import math

import torch

from lossopt_helpers.schedules import lr_trace


def test_step_lr_trace_matches_closed_form():
    lrs, _ = lr_trace(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 7)
    assert lrs == [0.1 * 0.5 ** (t // 3) for t in range(7)]


def test_cosine_trace_ends_at_eta_min():
    lrs, _ = lr_trace(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10), 11)
    assert math.isclose(lrs[0], 0.1) and abs(lrs[10]) < 1e-12


def test_one_cycle_moves_momentum_against_lr():
    lrs, moms = lr_trace(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=20), 20)
    peak = max(range(20), key=lrs.__getitem__)
    assert moms[peak] == min(moms) and moms[0] > moms[peak]
