"""What a step that torch.amp.GradScaler skips leaves behind, for the stock
and the fused implementation of an optimizer.

GradScaler skips `optimizer.step()` when a gradient is inf or NaN. An
optimizer that sets `_step_supports_amp_scaling` (every fused one) is called
anyway, with `found_inf` and `grad_scale` attached, and must skip by itself.
"""

import torch


# --8<-- [start:skip_then_step]
def skip_then_step(make_optimizer, device: str = "cpu", steps: int = 2):
    """θ = 1; one step whose gradient overflows (inf), then `steps` steps of
    gradient 1, through a GradScaler. Returns the state keys the skipped
    step left behind and θ after each step."""
    theta = torch.nn.Parameter(torch.ones(1, device=device))
    optimizer = make_optimizer([theta])
    scaler = torch.amp.GradScaler(device, init_scale=1.0)
    kept, thetas = None, []
    for g in [float("inf")] + [1.0] * steps:
        optimizer.zero_grad()
        scaler.scale(g * theta.sum()).backward()
        scaler.step(optimizer)      # to be skipped when a gradient is inf
        scaler.update()
        if kept is None:
            kept = sorted(optimizer.state.get(theta, {}))
        thetas.append(round(theta.item(), 4))
    return kept, thetas
# --8<-- [end:skip_then_step]


# --8<-- [start:uninitialised_as_nan]
class UninitialisedAsNaN:
    """Inside `with UninitialisedAsNaN():`, torch.empty and empty_like fill
    new floating tensors with NaN (a switch of deterministic mode), so a
    read of memory nobody wrote shows up instead of passing for a number."""

    def __enter__(self):
        self.was = torch.are_deterministic_algorithms_enabled()
        self.fill = torch.utils.deterministic.fill_uninitialized_memory
        torch.use_deterministic_algorithms(True)
        torch.utils.deterministic.fill_uninitialized_memory = True
        return self

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.was)
        torch.utils.deterministic.fill_uninitialized_memory = self.fill
# --8<-- [end:uninitialised_as_nan]
