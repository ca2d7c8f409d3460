"""fp16 training with dynamic loss scaling (torch.amp.GradScaler), traced.

GradScaler multiplies the loss by a scale S before backward, so that fp16
gradients of activations stay above fp16's smallest numbers. If any
gradient came out inf or NaN, `step` skips the optimizer step and `update`
halves S (back-off); after `growth_interval` clean steps in a row it
doubles S (growth).
"""

import torch
from torch import nn


# --8<-- [start:scale_trace]
def scale_trace(steps: int = 24, init_scale: float = 2.0**20,
                growth_interval: int = 4, seed: int = 0) -> list[dict]:
    """Train a small regression net in fp16 autocast on the CPU; record,
    at every step, the scale used and whether the step was skipped."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale,
                                  growth_interval=growth_interval)
    x, y = torch.randn(256, 32), 10 * torch.randn(256, 1)
    trace = []
    for _ in range(steps):
        before = [p.detach().clone() for p in model.parameters()]
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.mse_loss(model(x), y)
        scale = scaler.get_scale()
        scaler.scale(loss).backward()   # fp16 gradients, times the scale
        scaler.step(optimizer)          # unscales; skips on inf or NaN
        scaler.update()                 # halves or (sometimes) doubles
        unchanged = all(torch.equal(a, p) for a, p in
                        zip(before, model.parameters()))
        trace.append({"scale": scale, "skipped": unchanged})
    return trace
# --8<-- [end:scale_trace]
