"""Look inside an optimizer: what `optimizer.state` holds, what `state_dict()`
hands out, and what both cost in memory and in a checkpoint file.

Byte counts are numel × element size (`Tensor.nbytes`); a checkpoint's size is
measured by really writing it, with `torch.save`, into memory.
"""

import io

import torch
from torch import nn

from snippets.formatting import format_table


# --8<-- [start:state_table]
def state_table(optimizer: torch.optim.Optimizer, param) -> str:
    """What `optimizer` keeps for one parameter: one line per state key."""
    # optimizer.state is a defaultdict: indexing it would CREATE an entry.
    rows = []
    for key, value in optimizer.state.get(param, {}).items():
        if torch.is_tensor(value):
            dtype = str(value.dtype).removeprefix("torch.")
            shape = str(tuple(value.shape))
            rows.append([key, shape, dtype, str(value.device)])
        else:  # e.g. the None buffers of SGD(momentum=0) up to torch 2.3
            rows.append([key, repr(value), "-", "-"])
    return format_table(["key", "shape", "dtype", "device"], rows)
# --8<-- [end:state_table]


# --8<-- [start:tensor_nbytes]
def tensor_nbytes(obj) -> int:
    """Bytes of every tensor in a nested dict / list / tuple (a state_dict)."""
    if torch.is_tensor(obj):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(tensor_nbytes(value) for value in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_nbytes(item) for item in obj)
    return 0  # hyperparameters: floats, bools, ints


def checkpoint_nbytes(obj) -> int:
    """The size of `torch.save(obj)`: what a checkpoint of it takes on disk."""
    # Into memory, not onto the disk. torch.save names the zip records after
    # the file (a buffer gets "archive"): other names differ by a few bytes.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer().nbytes
# --8<-- [end:tensor_nbytes]


# --8<-- [start:persistent_scalars]
def persistent_scalars(model: nn.Module, optimizer) -> dict:
    """Scalars that live from one step to the next: params, grads, state.

    State tensors shaped like their parameter count as "state"; the rest
    (Adam's 0-d `step` counters, one per parameter *tensor*) as
    "other state".
    """
    params = list(model.parameters())
    full_size, other = 0, 0
    for p, per_param in optimizer.state.items():
        for value in per_param.values():
            if torch.is_tensor(value) and value.shape == p.shape:
                full_size += value.numel()
            elif torch.is_tensor(value):
                other += value.numel()
    grads = [p.grad for p in params if p.grad is not None]
    return {
        "params": sum(p.numel() for p in params),
        "grads": sum(g.numel() for g in grads),
        "state": full_size,
        "other state": other,
    }


def in_units_of_p(scalars: int, P: int) -> str:
    """3 * 35594 -> '3P'. Fails loudly unless it is a whole multiple of P."""
    assert scalars % P == 0, f"{scalars} scalars is not a multiple of P = {P}"
    return f"{scalars // P}P"
# --8<-- [end:persistent_scalars]
