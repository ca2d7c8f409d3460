"""What zero_grad() does to GPU memory and time.

Memory: gradients held after backward, released by zero_grad(set_to_none=True),
kept (as zeros) by zero_grad(set_to_none=False).

Time: keeping zeros costs two extra passes over the gradients' bytes, each timed
on its own so that the page can say which one costs what:

* the memset: zero_grad(set_to_none=False) writes zeros into every gradient,
  where set_to_none=True only drops Python references;
* the accumulate: the next backward adds each new gradient into the kept one
  (autograd's AccumulateGrad does `grad += new_grad`), where a gradient that is
  None simply takes the new tensor.

And the whole iteration (forward + backward + zero_grad) each way.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from snippets.accounting import grads_nbytes, params_nbytes
from snippets.cuda_memory import MemoryMeter, allocator_bytes
from snippets.models import wide_mlp
from snippets.timing import median_ms

SIZES = {
    "full": {"width": 4096, "depth": 7, "classes": 10, "batch": 64,
             "repeat": 50},
    "smoke": {"width": 32, "depth": 2, "classes": 10, "batch": 4,
              "repeat": 2},
}


def interleaved_ms(variants: dict[str, tuple[Callable[[], object],
                                             Callable[[], object]]],
                   device: torch.device, warmup: int = 3,
                   repeat: int = 10) -> dict[str, float]:
    """Median time in ms of each variant's fn(), after its untimed setup().

    The variants take turns within every repeat, so that a drift of the
    clocks during the run touches all of them alike.
    """
    cuda = torch.device(device).type == "cuda"
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(warmup + repeat):
        for name, (setup, fn) in variants.items():
            setup()
            if cuda:
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize(device)  # setup's kernels: not timed
                start.record()
                fn()
                end.record()
                end.synchronize()
                elapsed = start.elapsed_time(end)
            else:
                t0 = time.perf_counter()
                fn()
                elapsed = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(t) for name, t in times.items()}


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    torch.manual_seed(0)
    model = wide_mlp(cfg["width"], cfg["depth"], cfg["classes"]).to(device)
    x = torch.randn(cfg["batch"], cfg["width"], device=device)
    y = torch.randint(0, cfg["classes"], (cfg["batch"],), device=device)
    # Only its zero_grad() is used: lr=0 and no step.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    meter = MemoryMeter(device)

    def backward() -> None:
        # The loss and the activations die with this frame.
        F.cross_entropy(model(x), y).backward()

    # One untimed iteration first: the first matmuls allocate cuBLAS workspaces
    # through the caching allocator, and they stay. Measured here so that they
    # are not mistaken for gradients.
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

    def zero(set_to_none: bool) -> Callable[[], None]:
        return lambda: optimizer.zero_grad(set_to_none=set_to_none)

    def fill() -> None:
        # Gradients present, so that zero_grad has something to clear.
        if any(p.grad is None for p in model.parameters()):
            backward()

    def kept_zeros() -> None:
        fill()
        optimizer.zero_grad(set_to_none=False)

    def iteration(set_to_none: bool) -> Callable[[], None]:
        return lambda: (backward(),
                        optimizer.zero_grad(set_to_none=set_to_none))

    repeat = cfg["repeat"]
    ms = interleaved_ms({
        # zero_grad alone, each way, on gradients a backward has just filled
        "zero_grad_none": (fill, zero(True)),
        "zero_grad_zeros": (fill, zero(False)),
        # forward + backward, into gradients that are None or kept zeros
        "backward_into_none": (zero(True), backward),
        "backward_into_zeros": (kept_zeros, backward),
    }, device, repeat=repeat)
    # forward + backward + zero_grad, each way, back to back as in training
    for key, set_to_none in (("iteration_set_to_none", True),
                             ("iteration_zeros", False)):
        ms[key] = median_ms(iteration(set_to_none), device, repeat=repeat)
    return {
        "model": {k: cfg[k] for k in ("width", "depth", "classes", "batch")},
        "params_bytes": params_nbytes(model),
        "param_tensors": len(list(model.parameters())),
        "grads_bytes_after_set_to_none": grads_after_none,
        "grads_bytes_after_zeros": grads_after_zeros,
        "allocator_prediction_grads_bytes": (
            sum(allocator_bytes(p.nbytes) for p in model.parameters())
            if meter.cuda else None),
        "allocated": {
            "before_first_iteration": before_warmup,
            "baseline": baseline,
            "after_backward": after_backward,
            "after_zero_grad_set_to_none": after_set_to_none,
            "after_zero_grad_zeros": after_zeros,
        },
        "ms": ms,
    }


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
