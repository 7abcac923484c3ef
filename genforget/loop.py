"""Training-loop helpers shared by the LM and diffusion trainers."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader


def cycle(loader: DataLoader) -> Iterator[Any]:
    """Batches of ``loader`` forever, re-seeding its sampler each epoch (``set_epoch``) so a
    distributed shuffle differs per epoch but agrees across processes."""
    for epoch in itertools.count():
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader


def clipped_step(loss: torch.Tensor, params, opt: torch.optim.Optimizer, sched) -> None:
    """One plain training step: backward, clip the gradient norm to 1, step the optimizer and the
    learning-rate schedule, clear the gradients (the victims' and oracles' training loops)."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


def top_share_masks(scores: list[torch.Tensor], ratio: float) -> list[torch.Tensor]:
    """``True`` where a score is among the top ``ratio`` share of all entries of ``scores``: one
    threshold over every tensor (SalUn's hard threshold, set by a share as in its code)."""
    flat = torch.cat([s.flatten() for s in scores])
    keep = max(1, math.ceil(ratio * flat.numel()))
    threshold = flat.kthvalue(flat.numel() - keep + 1).values  # the keep-th largest score
    return [s >= threshold for s in scores]


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Index batches over ``n`` examples forever, walking shuffled epochs so every example is
    seen before any is repeated (a batch may span two epochs)."""
    order: list[int] = []
    while True:
        while len(order) < min(batch_size, n):
            order.extend(torch.randperm(n, generator=generator).tolist())
        take, order = order[:batch_size], order[batch_size:]
        yield take
