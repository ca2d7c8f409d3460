"""The small models the pages train.

Deterministic given torch.manual_seed; no dropout unless asked.
"""

import torch
from torch import nn


# --8<-- [start:tiny_mlp]
class TinyMLP(nn.Module):
    """128 -> 256 -> 10: P = 128·256 + 256 + 256·10 + 10 = 35,594."""

    def __init__(self, d_in: int = 128, d_hidden: int = 256,
                 d_out: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(),
                                 nn.Linear(d_hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
# --8<-- [end:tiny_mlp]


# --8<-- [start:wide_mlp]
def wide_mlp(width: int, depth: int, classes: int) -> nn.Sequential:
    """depth × Linear(width, width) and a small head.

    width=4096, depth=7 holds 117.5 M parameters. The head's bias (`classes`
    floats) is deliberately tiny: on a GPU each of its state tensors still
    takes a whole 512-byte allocator block.
    """
    hidden = [nn.Linear(width, width) for _ in range(depth)]
    return nn.Sequential(*hidden, nn.Linear(width, classes))
# --8<-- [end:wide_mlp]
