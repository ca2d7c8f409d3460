"""What zero_grad() does to GPU memory: gradients held after backward, released by
zero_grad(set_to_none=True), kept (as zeros) by zero_grad(set_to_none=False); and what each
costs in time per training iteration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snippets.accounting import grads_nbytes, params_nbytes
from snippets.cuda_memory import MemoryMeter, allocator_bytes
from snippets.models import wide_mlp
from snippets.timing import median_ms

SIZES = {
    "full": {"width": 4096, "depth": 7, "classes": 10, "batch": 64, "repeat": 20},
    "smoke": {"width": 32, "depth": 2, "classes": 10, "batch": 4, "repeat": 2},
}


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    torch.manual_seed(0)
    model = wide_mlp(cfg["width"], cfg["depth"], cfg["classes"]).to(device)
    x = torch.randn(cfg["batch"], cfg["width"], device=device)
    y = torch.randint(0, cfg["classes"], (cfg["batch"],), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # only its zero_grad() is used
    meter = MemoryMeter(device)

    def backward() -> None:
        F.cross_entropy(model(x), y).backward()  # the loss and activations die with this frame

    # One untimed iteration first: the first matmuls allocate cuBLAS workspaces through the caching
    # allocator, and they stay. Measured here so that they are not mistaken for gradients.
    meter.release_cache()
    before_warmup = meter.allocated()
    backward()
    optimizer.zero_grad(set_to_none=True)
    meter.release_cache()
    baseline = meter.allocated()
    backward()
    after_backward = meter.allocated()
    optimizer.zero_grad(set_to_none=True)
    after_set_to_none = meter.allocated()
    grads_after_none = grads_nbytes(model)
    backward()
    optimizer.zero_grad(set_to_none=False)
    after_zeros = meter.allocated()
    grads_after_zeros = grads_nbytes(model)

    def iteration(set_to_none: bool):
        return lambda: (backward(), optimizer.zero_grad(set_to_none=set_to_none))

    repeat = cfg["repeat"]
    return {
        "model": {k: cfg[k] for k in ("width", "depth", "classes", "batch")},
        "params_bytes": params_nbytes(model),
        "grads_bytes_after_set_to_none": grads_after_none,
        "grads_bytes_after_zeros": grads_after_zeros,
        "allocator_prediction_grads_bytes": (
            sum(allocator_bytes(p.nbytes) for p in model.parameters()) if meter.cuda else None),
        "allocated": {
            "before_first_iteration": before_warmup,
            "baseline": baseline,
            "after_backward": after_backward,
            "after_zero_grad_set_to_none": after_set_to_none,
            "after_zero_grad_zeros": after_zeros,
        },
        "ms": {
            # zero_grad(set_to_none=False) alone: a memset over every gradient
            "zero_grad_zeros": median_ms(lambda: optimizer.zero_grad(set_to_none=False), device, repeat=repeat),
            # forward + backward + zero_grad, each way: with zeros kept, backward accumulates into them
            "iteration_set_to_none": median_ms(iteration(True), device, repeat=repeat),
            "iteration_zeros": median_ms(iteration(False), device, repeat=repeat),
        },
    }


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
