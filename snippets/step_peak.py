"""The extra memory at the peak of one for-loop Adam step: predicted from the
tensors' sizes, and counted on the CPU.

The for-loop (`_single_tensor_adam` in torch/optim/adam.py) runs, per tensor,

    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)

`sqrt()` makes one new tensor and the division a second; the first is freed
when the line ends and the second becomes `denom`. Until then the name `denom`
still holds the previous tensor's, so three tensors' worth are alive at once.
Adam with L2 `weight_decay` first makes `grad = grad.add(param, ...)`, and
`maximize=True` makes `grad = -grad`: either is a fourth (both together still
one: the negated copy is released when the sum replaces it). AdamW's decoupled
decay multiplies in place and adds nothing.
"""

import torch

from snippets.live_bytes import LiveBytes


# --8<-- [start:predict]
def for_loop_adam_extra_bytes(sizes: list[int],
                              grad_copy: bool = False) -> int:
    """Peak bytes one for-loop Adam/AdamW step allocates, for parameter
    tensors of `sizes` bytes stepped in that order; `grad_copy`: the step
    first copies the gradient (Adam's L2 decay, g + λθ, or maximize, −g)."""
    new_per_tensor = 3 if grad_copy else 2  # sqrt and quotient (+ the copy)
    previous_denom = [0] + sizes[:-1]    # still bound to the name `denom`
    return max(new_per_tensor * size + previous
               for size, previous in zip(sizes, previous_denom))
# --8<-- [end:predict]


# --8<-- [start:count]
def step_extra_bytes(optimizer) -> int:
    """Bytes that one step holds at its worst moment on top of what existed
    before it (counted on any device by watching every new tensor)."""
    with LiveBytes() as live:
        optimizer.step()
    return live.peak
# --8<-- [end:count]


# --8<-- [start:extra_tensors]
def extra_tensors(constructor, tensors: int = 8, numel: int = 1024,
                  **kwargs) -> float:
    """The extra peak of a step once the state exists, in tensors' worth,
    over `tensors` equal fp32 tensors of `numel` elements. `kwargs` go to
    the optimizer (foreach=..., weight_decay=...)."""
    params = [torch.nn.Parameter(torch.randn(numel)) for _ in range(tensors)]
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = constructor(params, lr=1e-3, **kwargs)
    optimizer.step()                    # makes the state
    return step_extra_bytes(optimizer) / params[0].nbytes
# --8<-- [end:extra_tensors]
