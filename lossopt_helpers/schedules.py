"""Chapter 5 helpers: learning-rate traces of schedulers, for plots and the schedule widget."""

from __future__ import annotations

from collections.abc import Callable

import torch


def lr_trace(make_scheduler: Callable[[torch.optim.Optimizer], object], steps: int,
             lr: float = 0.1, momentum: float = 0.9) -> tuple[list[float], list[float]]:
    """Lrs and momentums of group 0 at steps 0..steps-1 for the scheduler ``make_scheduler`` builds.

    The optimizer is a one-parameter SGD with momentum, so OneCycleLR's momentum cycling shows;
    ``scheduler.step()`` follows ``optimizer.step()`` as torch expects (no order warning).
    """
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=lr, momentum=momentum)
    scheduler = make_scheduler(optimizer)
    lrs, moms = [], []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(float(group["lr"]))
        moms.append(float(group.get("momentum", 0.0)))
        optimizer.step()
        scheduler.step()
    return lrs, moms
