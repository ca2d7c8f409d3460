"""Count what training keeps in memory, in bytes: parameters, gradients and
optimizer state.

These count the bytes of the elements (numel × element size). The CUDA caching
allocator rounds every block up, so `torch.cuda.memory_allocated()` reads a
little more; the captures show by how much.
"""

import torch
from torch import nn


# --8<-- [start:count_params]
def count_params(model: nn.Module) -> int:
    """P: the number of trainable scalars, whichever optimizer trains them."""
    # model.parameters() yields a shared (tied) parameter once: counted once.
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
# --8<-- [end:count_params]


# --8<-- [start:params_grads_nbytes]
def params_nbytes(model: nn.Module) -> int:
    # Tensor.nbytes is numel() * element_size(): 4 B per scalar in fp32.
    return sum(p.nbytes for p in model.parameters())


def grads_nbytes(model: nn.Module) -> int:
    # A gradient set to None holds no memory; a zero-filled one holds it all.
    return sum(p.grad.nbytes for p in model.parameters()
               if p.grad is not None)
# --8<-- [end:params_grads_nbytes]


# --8<-- [start:optimizer_state_nbytes]
def state_nbytes_by_key(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of optimizer state per key ('momentum_buffer', 'exp_avg', ...)."""
    totals: dict[str, int] = {}
    # optimizer.state maps each parameter to a dict; empty until step().
    for per_param in optimizer.state.values():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                totals[key] = totals.get(key, 0) + value.nbytes
    return dict(sorted(totals.items()))


def optimizer_state_nbytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(state_nbytes_by_key(optimizer).values())
# --8<-- [end:optimizer_state_nbytes]
