"""Gradient accumulation under DistributedDataParallel: all-reduce once per effective batch.

DDP all-reduces gradients during every backward(). With K micro-batches that is K all-reduces
where one would do: wrap the forward AND backward of the first K - 1 micro-batches in
ddp_model.no_sync(), and let the last backward all-reduce the accumulated sum.

`two_process_demo` runs this with two CPU processes over gloo (tests/test_accum_ddp.py);
`single_process_group` gives a one-process group, enough to count all-reduces on a page.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel


# --8<-- [start:ddp_accumulate_gradients]
def ddp_accumulate_gradients(ddp_model: DistributedDataParallel, loss_fn, micro_batches) -> None:
    """Accumulate K micro-batches; gradients are all-reduced only in the last backward."""
    K = len(micro_batches)
    for i, (inputs, targets) in enumerate(micro_batches):
        last = i == K - 1
        # no_sync() must cover the forward too: DDP decides in forward() whether the coming
        # backward all-reduces. Inside it, backward only adds into the local p.grad.
        with contextlib.nullcontext() if last else ddp_model.no_sync():
            loss = loss_fn(ddp_model(inputs), targets) / K
            loss.backward()  # the last one all-reduces the accumulated sum, averaged over ranks
# --8<-- [end:ddp_accumulate_gradients]


# --8<-- [start:backward_only_no_sync]
def backward_only_no_sync(ddp_model: DistributedDataParallel, loss_fn, micro_batches) -> None:
    """WRONG: the forward runs outside no_sync(), so every backward still all-reduces."""
    K = len(micro_batches)
    for i, (inputs, targets) in enumerate(micro_batches):
        loss = loss_fn(ddp_model(inputs), targets) / K
        with contextlib.nullcontext() if i == K - 1 else ddp_model.no_sync():
            loss.backward()
# --8<-- [end:backward_only_no_sync]


# --8<-- [start:allreduce_log]
class AllReduceLog:
    """Which micro-batch's backward all-reduced each gradient bucket (0 = the first forward seen)."""

    def __init__(self, ddp_model: DistributedDataParallel):
        self.forwards = 0
        self.micro_batches: list[int] = []
        ddp_model.module.register_forward_pre_hook(self._count_forward)
        # A comm hook replaces DDP's all-reduce; this one logs, then does what DDP does by default.
        ddp_model.register_comm_hook(None, self._allreduce)

    def _count_forward(self, module, args) -> None:
        self.forwards += 1

    def _allreduce(self, state, bucket):
        self.micro_batches.append(self.forwards - 1)  # the backward of the latest forward
        return default_hooks.allreduce_hook(None, bucket)  # None: the default process group
# --8<-- [end:allreduce_log]


@contextlib.contextmanager
def single_process_group():
    """A gloo process group of one rank, in this process, destroyed on the way out."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))  # port 0: the OS picks one nobody uses
        return s.getsockname()[1]


def all_local(ddp_model: DistributedDataParallel, loss_fn, micro_batches) -> None:
    """Every micro-batch inside no_sync(): no all-reduce at all, each rank keeps its own sum."""
    with ddp_model.no_sync():
        for inputs, targets in micro_batches:
            (loss_fn(ddp_model(inputs), targets) / len(micro_batches)).backward()


def small_model() -> nn.Module:
    torch.manual_seed(0)  # the same weights on every rank (DDP would broadcast rank 0's anyway)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


VARIANTS = {"no_sync": ddp_accumulate_gradients, "backward_only": backward_only_no_sync, "all_local": all_local}


def _worker(rank: int, world_size: int, port: int, K: int, local_batch: int, out_dir: str) -> None:
    warnings.simplefilter("error")  # as under pytest: a warning in a worker fails the demo
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        generator = torch.Generator().manual_seed(1)  # the same global batch on every rank ...
        X = torch.randn(world_size * local_batch, 8, generator=generator)
        Y = torch.randint(0, 3, (world_size * local_batch,), generator=generator)
        mine = slice(rank * local_batch, (rank + 1) * local_batch)  # ... of which each takes a shard
        b = local_batch // K
        micro_batches = list(zip(X[mine].split(b), Y[mine].split(b)))
        loss_fn = nn.functional.cross_entropy

        reference = small_model()  # one process, the whole global batch at once
        loss_fn(reference(X), Y).backward()
        result = {"reference": [p.grad for p in reference.parameters()]}
        for name, accumulate in VARIANTS.items():
            ddp = DistributedDataParallel(small_model())
            log = AllReduceLog(ddp)
            accumulate(ddp, loss_fn, micro_batches)
            result[name] = {"allreduced_after": log.micro_batches, "grads": [p.grad for p in ddp.module.parameters()]}
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def two_process_demo(K: int = 4, local_batch: int = 8) -> list[dict]:
    """Run every variant on two CPU processes over gloo; return each rank's gradients and log."""
    world_size = 2
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(world_size, free_port(), K, local_batch, out_dir), nprocs=world_size, join=True)
        return [torch.load(Path(out_dir) / f"rank{rank}.pt") for rank in range(world_size)]
