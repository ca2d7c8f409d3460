"""A pre-norm transformer layer, to count what per-block checkpointing
recomputes on it (chapter 6).

Attention is written out as two matmuls, so that FlopCounterMode counts it
(it has no FLOP formula for the CPU's fused attention kernel). The
non-reentrant checkpoint's early stop ends the recompute once every tensor
backward needs exists again; the last such tensors are the inputs of the
block's last matmul, the MLP's down-projection, which is therefore the only
matmul the recompute skips.
"""

import math

import torch
from torch import nn


# --8<-- [start:transformer_block]
class TransformerBlock(nn.Module):
    """x + Attention(LayerNorm(x)), then h + MLP(LayerNorm(h)), causal."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)   # 6d² FLOPs a token
        self.proj = nn.Linear(d, d)      # 2d²
        self.up = nn.Linear(d, 4 * d)    # 8d²
        self.act = nn.GELU()
        self.down = nn.Linear(4 * d, d)  # 8d²: the last matmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (b, heads, s, d/heads)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        future = torch.ones(s, s, dtype=torch.bool).triu(1)
        weights = scores.masked_fill(future, float("-inf")).softmax(-1)
        h = x + self.proj((weights @ v).transpose(1, 2).reshape(b, s, d))
        return h + self.down(self.act(self.up(self.norm2(h))))


def transformer_stack(d: int, heads: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*[TransformerBlock(d, heads) for _ in range(depth)])
# --8<-- [end:transformer_block]


# --8<-- [start:predicted_recompute]
def predicted_recompute(d: int, s: int) -> float:
    """Forwards that per-block checkpointing with early stop reruns: every
    matmul but the down-projection. Per token, the forward's matmuls take
    24d² FLOPs (6 + 2 + 8 + 8) and attention's two 4sd (2sd each, causal
    or not: the mask is applied after the product)."""
    return (16 * d * d + 4 * s * d) / (24 * d * d + 4 * s * d)
# --8<-- [end:predicted_recompute]
