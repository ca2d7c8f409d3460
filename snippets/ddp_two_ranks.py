"""DDP gradient accumulation on two real ranks: with and without no_sync(),
against one process's big batch. Two CPU processes over gloo.

At world size 1 an all-reduce is the identity, so the loops with and without
no_sync() give bitwise the same gradient. On two ranks the all-reduce adds
the ranks' gradients: once, to the accumulated sums, with no_sync(); after
every micro-batch, to partial sums, without it. The two add the same numbers
in another order, so they agree within float32 rounding, not bitwise.

The ranks meet through a file in a fresh temporary folder (no port to pick),
and each leaves with `leave_without_teardown` once its results are saved.
Starting two Pythons is most of the cost, so a process runs them once.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from snippets.ddp_no_sync import (
    AllReduceLog, ddp_accumulate_gradients, leave_without_teardown,
    small_model,
)


# --8<-- [start:without_no_sync]
def without_no_sync(ddp_model, loss_fn, micro_batches) -> None:
    """No no_sync(): every backward all-reduces, K all-reduces a step."""
    for inputs, targets in micro_batches:
        loss = loss_fn(ddp_model(inputs), targets) / len(micro_batches)
        loss.backward()
# --8<-- [end:without_no_sync]


LOOPS = {"with no_sync": ddp_accumulate_gradients,
         "without no_sync": without_no_sync}


def _rank(rank: int, world_size: int, K: int, local_batch: int,
          folder: str) -> None:
    warnings.simplefilter("error")  # as under pytest: a warning fails it
    dist.init_process_group("gloo", init_method=f"file://{folder}/store",
                            rank=rank, world_size=world_size)
    try:
        # the same global batch on every rank, of which each takes a shard
        generator = torch.Generator().manual_seed(3)
        X = torch.randn(world_size * local_batch, 8, generator=generator)
        Y = torch.randint(0, 3, (world_size * local_batch,),
                          generator=generator)
        mine = slice(rank * local_batch, (rank + 1) * local_batch)
        micro_batches = list(zip(X[mine].split(local_batch // K),
                                 Y[mine].split(local_batch // K)))
        reference = small_model()  # one process, the whole global batch
        F.cross_entropy(reference(X), Y).backward()
        result = {"reference": [p.grad for p in reference.parameters()]}
        for name, accumulate in LOOPS.items():
            ddp = DistributedDataParallel(small_model())
            log = AllReduceLog(ddp)
            accumulate(ddp, F.cross_entropy, micro_batches)
            result[name] = {"grads": [p.grad for p in ddp.module.parameters()],
                            "allreduced_after": log.micro_batches}
        torch.save(result, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    leave_without_teardown()


@functools.cache  # deterministic: one run per process serves every caller
def two_ranks(K: int = 4, local_batch: int = 8) -> list[dict]:
    """Each rank's gradients after both loops, the all-reduce logs, and one
    process's gradient over the global batch ("reference"). Read-only: the
    same result is handed to every caller."""
    world_size = 2
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_rank, args=(world_size, K, local_batch, folder),
                 nprocs=world_size, join=True)
        return [torch.load(Path(folder) / f"rank{rank}.pt")
                for rank in range(world_size)]
