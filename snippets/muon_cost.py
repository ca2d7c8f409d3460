"""What one torch.optim.Muon step costs: the matrix products it runs per
weight, counted at the dispatcher (chapter 7)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode


# --8<-- [start:count]
class MatmulCount(TorchDispatchMode):
    """Count the matrix products (mm, addmm, bmm) run inside the block."""

    PRODUCTS = {torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in self.PRODUCTS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def muon_products_per_step(shape=(64, 32), **muon_options) -> int:
    """Matrix products one Muon step runs on one weight of `shape`."""
    weight = nn.Parameter(torch.randn(shape))
    weight.grad = torch.randn(shape)
    muon = torch.optim.Muon([weight], **muon_options)
    with MatmulCount() as products:
        muon.step()
    return products.count
# --8<-- [end:count]
