"""FSDP2's defaults, read on one CPU process: rank 0 of N over torch's fake
process group (collectives do nothing; sharding, dtypes and the buffers
FSDP2 allocates are real). Chapter 8 shows what fully_shard does when
left at its defaults: which unit stays gathered between forward and
backward, and in which dtype gradients are reduced and accumulated.

The readers of FSDP2's private state (`FSDPParam`, the reduce-scatter
copy-in) follow torch 2.13's layout and fail loudly where it differs.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.fsdp._fully_shard import _fsdp_collectives
from torch.distributed.tensor import DTensor


@contextlib.contextmanager
def fake_ranks(world_size: int):
    """This process as rank 0 of `world_size` ranks, over the "fake"
    backend: the shards are real, the collectives are no-ops."""
    from torch.testing._internal.distributed.fake_pg import FakeStore
    if dist.is_initialized():
        raise RuntimeError("a process group already exists in this process")
    dist.init_process_group("fake", rank=0, world_size=world_size,
                            store=FakeStore())
    try:
        yield
    finally:
        dist.destroy_process_group()


# --8<-- [start:tiny_lm]
def tiny_lm(vocab: int = 32, width: int = 16, depth: int = 2,
            **fully_shard_options) -> nn.Sequential:
    """Embedding, `depth` hidden Linear units, head. The hidden layers are
    FSDP units of their own; the embedding and the head stay in the root
    unit, as in most language-model recipes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(vocab, width),
                          *[nn.Linear(width, width) for _ in range(depth)],
                          nn.Linear(width, vocab))
    for layer in model[1:-1]:
        fully_shard(layer, **fully_shard_options)
    fully_shard(model, **fully_shard_options)      # the root unit
    return model


def gathered(model: nn.Module) -> list[str]:
    """Parameters registered unsharded right now (not DTensor shards)."""
    return [name for name, p in model.named_parameters()
            if not isinstance(p, DTensor)]
# --8<-- [end:tiny_lm]


@contextlib.contextmanager
def reduce_scatter_copies():
    """Record, for each reduce-scatter FSDP2 prepares, the unsharded
    gradients and the buffer they are copied into, at the moment of the
    copy (both alive): [(grad dtype, grad bytes, buffer dtype, buffer
    bytes), ...]. Wraps torch 2.13's foreach_reduce_scatter_copy_in."""
    original = _fsdp_collectives.foreach_reduce_scatter_copy_in
    copies: list[tuple] = []

    def copy_in(grads, buffer, world_size):
        copies.append((grads[0].dtype, sum(g.nbytes for g in grads),
                       buffer.dtype, buffer.nbytes))
        return original(grads, buffer, world_size)

    _fsdp_collectives.foreach_reduce_scatter_copy_in = copy_in
    try:
        yield copies
    finally:
        _fsdp_collectives.foreach_reduce_scatter_copy_in = original


def accumulated_grad_dtypes(model: nn.Module) -> set[torch.dtype]:
    """The dtypes FSDP2 accumulates unsharded gradients in while gradient
    sync is off (its private FSDPParam state, torch 2.13's layout)."""
    dtypes = set()
    for module in model.modules():
        state = getattr(module, "_get_fsdp_state", None)
        if state is None:
            continue
        for group in state()._fsdp_param_groups:
            for param in group.fsdp_params:
                grad = param.unsharded_accumulated_grad
                if grad is None:                     # kept in .grad
                    grad = param._unsharded_param.grad
                if grad is not None:
                    dtypes.add(grad.dtype)
    return dtypes
