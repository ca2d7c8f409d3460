"""Gradient accumulation under automatic mixed precision, with the current torch.amp API.

torch.autocast(device_type, dtype) runs the forward pass in float16 or bfloat16;
torch.amp.GradScaler(device_type) multiplies the loss so that float16 gradients do not underflow,
and unscales them again before they are clipped or applied. The deprecated spellings
torch.cuda.amp.autocast / torch.cuda.amp.GradScaler warn (FutureWarning) since torch 2.4.
"""

import torch
from torch import nn


# --8<-- [start:amp_accumulation_step]
def amp_accumulation_step(model: nn.Module, optimizer, scaler: torch.amp.GradScaler, loss_fn, micro_batches,
                          *, device_type: str, dtype: torch.dtype, max_norm: float) -> dict:
    """One optimizer step over len(micro_batches) micro-batches, under autocast and a GradScaler.

    The same function runs float16 + GradScaler("cuda") on a GPU, float16 + GradScaler("cpu"), or
    bfloat16 with a disabled scaler (enabled=False makes scale/unscale_/update no-ops).
    """
    K = len(micro_batches)
    optimizer.zero_grad()
    for inputs, targets in micro_batches:
        with torch.autocast(device_type=device_type, dtype=dtype):  # forward and loss only
            loss = loss_fn(model(inputs), targets) / K
        # Backward outside autocast. The scale stays fixed for the whole effective batch, so every
        # micro-batch adds gradients multiplied by the same factor.
        scaler.scale(loss).backward()
    # After the LAST micro-batch: divide the scale out of p.grad, in place, once ...
    scaler.unscale_(optimizer)
    # ... so that clipping sees the true gradient norm (and max_norm keeps its meaning).
    total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scale = scaler.get_scale()
    scaler.step(optimizer)  # skips optimizer.step() if any gradient is inf or NaN
    scaler.update()         # once per effective batch: lowers the scale after a skipped step
    return {"total_norm": total_norm.item(), "scale": scale, "skipped": scaler.get_scale() < scale}
# --8<-- [end:amp_accumulation_step]


def relative_grad_error(got: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    """||got - expected|| / ||expected||, over all parameters' gradients taken as one vector."""
    squared_error = sum(((g.float() - e) ** 2).sum() for g, e in zip(got, expected))
    return (squared_error / sum((e**2).sum() for e in expected)).sqrt().item()
