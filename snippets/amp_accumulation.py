"""Gradient accumulation under automatic mixed precision, with the current
torch.amp API.

torch.autocast(device_type, dtype) runs the forward pass in float16 or
bfloat16; torch.amp.GradScaler(device_type) multiplies the loss so that
float16 gradients do not underflow, and unscales them again before they are
clipped or applied. The deprecated spellings torch.cuda.amp.autocast and
torch.cuda.amp.GradScaler warn (FutureWarning) since torch 2.4.
"""

import torch
from torch import nn


# --8<-- [start:amp_accumulation_step]
def amp_accumulation_step(model: nn.Module, optimizer, scaler, loss_fn,
                          micro_batches, *, device_type: str,
                          dtype: torch.dtype, max_norm: float) -> dict:
    """One optimizer step over len(micro_batches) micro-batches, under
    autocast and a torch.amp.GradScaler (enabled=False: a pass-through)."""
    K = len(micro_batches)
    optimizer.zero_grad()
    for inputs, targets in micro_batches:
        with torch.autocast(device_type=device_type, dtype=dtype):
            loss = loss_fn(model(inputs), targets) / K  # forward, loss only
        # Backward outside autocast. One scale for the whole effective
        # batch: every micro-batch adds gradients times the same factor.
        scaler.scale(loss).backward()
    # After the LAST micro-batch: divide the scale out of p.grad, once ...
    scaler.unscale_(optimizer)
    # ... so that clipping sees the true norm (max_norm keeps its meaning).
    total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scale = scaler.get_scale()
    scaler.step(optimizer)  # skips optimizer.step() on an inf or NaN grad
    scaler.update()         # once per effective batch; halves after a skip
    return {"total_norm": total_norm.item(), "scale": scale,
            "skipped": scaler.get_scale() < scale}
# --8<-- [end:amp_accumulation_step]


def relative_grad_error(got: list[torch.Tensor],
                        expected: list[torch.Tensor]) -> float:
    """||got - expected|| / ||expected||, all gradients as one vector."""
    squared_error = sum(((g.float() - e) ** 2).sum()
                        for g, e in zip(got, expected))
    norm = sum((e**2).sum() for e in expected)
    return (squared_error / norm).sqrt().item()
