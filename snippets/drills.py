"""Small computations behind the drills: each answer is one of these, called
on the page, on top of the code the chapters test."""

import torch

from snippets.checkpointing import (
    DeepMLP, block_stack, count_step, no_checkpoint, one_checkpoint,
)


# --8<-- [start:smallest_k]
def smallest_k(batch: int, activation_bytes, budget: int) -> int:
    """The fewest micro-batches K (K divides the batch) whose micro-batch's
    activations, activation_bytes(batch // K), fit in `budget` bytes."""
    for k in range(1, batch + 1):
        if batch % k == 0 and activation_bytes(batch // k) <= budget:
            return k
    raise ValueError("not even one example fits")
# --8<-- [end:smallest_k]


# --8<-- [start:token_weights]
def token_weights(tokens: list[int]) -> tuple[list[float], float]:
    """The weight of one token of each micro-batch when each micro-batch's
    token mean is divided by K, and the weight the big batch gives every
    token (1 / all tokens)."""
    k = len(tokens)
    return [1 / (k * n) for n in tokens], 1 / sum(tokens)
# --8<-- [end:token_weights]


# --8<-- [start:one_checkpoint_trims]
def one_checkpoint_trims(layers: int, *, blocks: bool = False,
                         d: int = 16, tokens: int = 256) -> float:
    """How much one checkpoint around the whole network lowers the peak of a
    step, in activations a (tokens x d fp32): on a chain of `layers` equal
    layers (chapter 6's DeepMLP), or on `layers` MLP blocks."""
    torch.manual_seed(0)
    net = block_stack(d, layers) if blocks else DeepMLP(d, layers // 2).seq
    x = torch.randn(tokens, d)
    plain, once = (count_step(net, x, forward)["max_live_bytes"]
                   for forward in (no_checkpoint, one_checkpoint))
    return (plain - once) / (tokens * d * 4)
# --8<-- [end:one_checkpoint_trims]
