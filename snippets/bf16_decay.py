"""Decoupled weight decay on bf16 weights (chapter 7): AdamW multiplies each
weight by 1 - lr * weight_decay a step, a relative change (1e-4 at lr 1e-3,
weight_decay 0.1) far under half of bf16's spacing, so rounded to nearest
the weight never moves; Kahan summation and stochastic rounding keep it."""

from __future__ import annotations

import torch
from torch import nn

# --8<-- [start:decay_only]
LR, WEIGHT_DECAY, STEPS = 1e-3, 0.1, 200


def decay_only(make_optimizer, dtype=torch.bfloat16, steps=STEPS):
    """Train a 256 x 64 weight on zero gradients, so that only the decay
    acts. Returns (fraction of weights that changed, how much the weight's
    norm shrank), as fractions."""
    torch.manual_seed(0)
    w = nn.Parameter((0.02 * torch.randn(256, 64)).to(dtype))
    start = w.detach().float().clone()
    optimizer = make_optimizer([w])
    for _ in range(steps):
        w.grad = torch.zeros_like(w)    # Adam's update is 0: decay alone
        optimizer.step()
    changed = (w.detach().float() != start).float().mean().item()
    shrunk = 1 - (w.detach().float().norm() / start.norm()).item()
    return changed, shrunk
# --8<-- [end:decay_only]
