"""The extra memory at the peak of one for-loop Adam step: predicted from the
tensors' sizes, and counted on the CPU.

The for-loop (`_single_tensor_adam` in torch/optim/adam.py) runs, per tensor,

    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)

`sqrt()` makes one new tensor and the division a second; the first is freed
when the line ends and the second becomes `denom`. Until then the name `denom`
still holds the previous tensor's, so three tensors' worth are alive at once.
Adam with L2 `weight_decay` first makes `grad = grad.add(param, ...)`, a
fourth. AdamW's decoupled decay multiplies in place and adds nothing.
"""

from snippets.live_bytes import LiveBytes


# --8<-- [start:predict]
def for_loop_adam_extra_bytes(sizes: list[int], l2: bool = False) -> int:
    """Peak bytes one for-loop Adam/AdamW step allocates, for parameter
    tensors of `sizes` bytes stepped in that order."""
    new_per_tensor = 3 if l2 else 2      # sqrt and quotient (+ g + λθ)
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
