"""Activation checkpointing: the models, the strategies, and what each keeps
and recomputes.

Every strategy is a function `forward(blocks, x)` over an nn.Sequential of
blocks, so that the same model, the same input and the same loss can be run
five ways and compared: by the bytes it keeps between forward and backward,
the most bytes alive at once, the matmul FLOPs it spends, and its gradients.
"""

from typing import Callable

import torch
from torch import nn
from torch.utils.checkpoint import (
    CheckpointPolicy,
    checkpoint,
    checkpoint_sequential,
    create_selective_checkpoint_contexts,
)
from torch.utils.flop_counter import FlopCounterMode

from snippets.live_bytes import LiveBytes

Forward = Callable[[nn.Sequential, torch.Tensor], torch.Tensor]


# --8<-- [start:deep_mlp]
class DeepMLP(nn.Module):
    """The study plan's model: depth × (Linear(d, d), GELU), one Sequential."""

    def __init__(self, d: int = 2048, depth: int = 12):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(d, d), nn.GELU()]
        self.seq = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)
# --8<-- [end:deep_mlp]


# --8<-- [start:mlp_block]
class MLPBlock(nn.Module):
    """A transformer's feed-forward half: x + W2·GELU(W1·LayerNorm(x))."""

    def __init__(self, d: int):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.up = nn.Linear(d, 4 * d)
        self.act = nn.GELU()
        self.down = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Only the residual stream x (d wide) flows from block to block;
        # inside, the block keeps LayerNorm's output and statistics and
        # two 4d-wide tensors for backward.
        return x + self.down(self.act(self.up(self.norm(x))))


def block_stack(d: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*[MLPBlock(d) for _ in range(depth)])
# --8<-- [end:mlp_block]


# --8<-- [start:strategies]
def no_checkpoint(blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    return blocks(x)


def one_checkpoint(blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    # A single checkpoint around the whole network.
    return checkpoint(blocks, x, use_reentrant=False)


def segments(k: int) -> Forward:
    # Cut the blocks into k segments; checkpoint all but the last.
    def forward(blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        return checkpoint_sequential(blocks, k, x, use_reentrant=False)
    return forward


def per_block(blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    # Every block: Megatron's "full recompute", Hugging Face's
    # gradient_checkpointing.
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False)
    return x
# --8<-- [end:strategies]


# --8<-- [start:selective]
MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default,
           torch.ops.aten.bmm.default}


def save_matmuls(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    # Called for every aten op of the forward: keep what is expensive to
    # recompute (matmul outputs), recompute what is cheap (LayerNorm, GELU,
    # views, the residual add).
    if op in MATMULS:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def save_matmuls_contexts():
    # A fresh pair of dispatch modes per checkpoint call: one caches in
    # forward, one replays the cache in the recompute.
    return create_selective_checkpoint_contexts(save_matmuls)


def selective(blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False,
                       context_fn=save_matmuls_contexts)
    return x
# --8<-- [end:selective]


# --8<-- [start:count_step]
def loss_of(out: torch.Tensor) -> torch.Tensor:
    return out.pow(2).mean()


def count_step(blocks: nn.Sequential, x: torch.Tensor,
               forward: Forward) -> dict:
    """One forward+backward, counted: bytes held after forward, most bytes
    live at once, matmul FLOPs."""
    blocks.zero_grad(set_to_none=True)
    with LiveBytes() as live:
        out = forward(blocks, x)
        held = live.live  # what forward left for backward, output included
        loss_of(out).backward()
    blocks.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as flops:
        out = forward(blocks, x)
        forward_flops = flops.get_total_flops()
        loss_of(out).backward()
    return {"held_bytes": held, "max_live_bytes": live.peak,
            "forward_flops": forward_flops,
            "step_flops": flops.get_total_flops()}


def gradients(blocks: nn.Sequential, x: torch.Tensor,
              forward: Forward) -> list[torch.Tensor]:
    blocks.zero_grad(set_to_none=True)
    loss_of(forward(blocks, x)).backward()
    return [p.grad.clone() for p in blocks.parameters()]
# --8<-- [end:count_step]


# --8<-- [start:forward_calls]
def forward_calls(blocks: nn.Sequential, x: torch.Tensor,
                  forward: Forward) -> list[int]:
    """How often each block's forward runs in one step: 2 = recomputed."""
    calls = [0] * len(blocks)

    def counter(i):
        return lambda module, args: calls.__setitem__(i, calls[i] + 1)

    hooks = [block.register_forward_pre_hook(counter(i))
             for i, block in enumerate(blocks)]
    try:
        loss_of(forward(blocks, x)).backward()
    finally:
        for hook in hooks:
            hook.remove()
    blocks.zero_grad(set_to_none=True)
    return calls
# --8<-- [end:forward_calls]
