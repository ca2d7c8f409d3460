"""Gradient accumulation: the canonical loop, and the check that it gives the
big batch's gradient.

K micro-batches of b = B / K examples each, every micro-batch loss divided by
K, one backward() per micro-batch (each adds into p.grad), one optimizer step
per effective batch of B.
"""

import copy

import torch
from torch import nn


# --8<-- [start:accumulate_gradients]
def accumulate_gradients(model: nn.Module, loss_fn, inputs, targets,
                         K: int) -> None:
    """Add to p.grad the gradient of loss_fn over all of `inputs`, run as
    K micro-batches. loss_fn reduces by the mean (every torch.nn loss does).
    """
    B = len(inputs)
    if B % K != 0:
        # Unequal micro-batches: 1/K no longer weighs every example alike.
        raise ValueError(f"batch {B} does not split into {K} equal "
                         "micro-batches")
    b = B // K
    for x, y in zip(inputs.split(b), targets.split(b)):
        # mean over b examples / K: the mean over all B once K backwards add
        loss = loss_fn(model(x), y) / K
        loss.backward()  # adds into p.grad; frees this micro-batch's graph
# --8<-- [end:accumulate_gradients]


# --8<-- [start:accumulation_step]
def accumulation_step(model, optimizer, loss_fn, inputs, targets, K: int,
                      max_norm: float | None = None):
    """One optimizer step on an effective batch of len(inputs), K
    micro-batches at a time."""
    optimizer.zero_grad()  # once per effective batch, never in between
    accumulate_gradients(model, loss_fn, inputs, targets, K)
    total_norm = None
    if max_norm is not None:
        # Clip the sum, after the last micro-batch: the big batch's gradient.
        total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                    max_norm)
    optimizer.step()
    return total_norm
# --8<-- [end:accumulation_step]


# --8<-- [start:max_grad_difference]
def gradients(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def max_abs_difference(grads_a, grads_b) -> float:
    return max((a - b).abs().max().item() for a, b in zip(grads_a, grads_b))


def max_grad_difference(model: nn.Module, loss_fn, inputs, targets, K: int,
                        seed: int = 0) -> float:
    """max |g_big - g_accumulated| over every parameter, from two copies of
    `model`, with the same weights and the same RNG state: only the split
    of the batch into K micro-batches differs."""
    big, accumulated = copy.deepcopy(model), copy.deepcopy(model)
    torch.manual_seed(seed)
    loss_fn(big(inputs), targets).backward()  # one batch of B
    torch.manual_seed(seed)
    accumulate_gradients(accumulated, loss_fn, inputs, targets, K)
    return max_abs_difference(gradients(big), gradients(accumulated))
# --8<-- [end:max_grad_difference]
