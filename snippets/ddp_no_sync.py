"""Gradient accumulation under DistributedDataParallel: all-reduce once per
effective batch.

DDP all-reduces gradients during every backward(). With K micro-batches that
is K all-reduces where one would do: wrap the forward AND backward of the
first K - 1 micro-batches in ddp_model.no_sync(), and let the last backward
all-reduce the accumulated sum.

`two_process_demo` runs this with two CPU processes over gloo, and in the same
processes the token-weighted loss across ranks (tests/test_accum_ddp.py);
`single_process_group` gives a one-process group, enough to count all-reduces
on a page.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from snippets.token_loss import (
    IGNORE_INDEX, ddp_token_weighted_backward, token_count, token_losses_sum,
)


# --8<-- [start:ddp_accumulate_gradients]
def ddp_accumulate_gradients(ddp_model, loss_fn, micro_batches) -> None:
    """Accumulate K micro-batches; all-reduce only in the last backward."""
    K = len(micro_batches)
    for i, (inputs, targets) in enumerate(micro_batches):
        last = i == K - 1
        # no_sync() must cover the forward too: DDP decides in forward()
        # whether the coming backward all-reduces. Inside it, backward only
        # adds into the local p.grad.
        with contextlib.nullcontext() if last else ddp_model.no_sync():
            loss = loss_fn(ddp_model(inputs), targets) / K
            loss.backward()  # the last one all-reduces (averages) the sum
# --8<-- [end:ddp_accumulate_gradients]


# --8<-- [start:backward_only_no_sync]
def backward_only_no_sync(ddp_model, loss_fn, micro_batches) -> None:
    """WRONG: the forward runs outside no_sync(), so every backward still
    all-reduces."""
    K = len(micro_batches)
    for i, (inputs, targets) in enumerate(micro_batches):
        loss = loss_fn(ddp_model(inputs), targets) / K
        with contextlib.nullcontext() if i == K - 1 else ddp_model.no_sync():
            loss.backward()
# --8<-- [end:backward_only_no_sync]


# --8<-- [start:allreduce_log]
class AllReduceLog:
    """Which micro-batch's backward all-reduced each gradient bucket
    (0 = the first forward seen)."""

    def __init__(self, ddp_model: DistributedDataParallel):
        self.forwards = 0
        self.micro_batches: list[int] = []
        ddp_model.module.register_forward_pre_hook(self._count_forward)
        # A comm hook replaces DDP's all-reduce; this one logs, then does
        # what DDP does by default.
        ddp_model.register_comm_hook(None, self._allreduce)

    def _count_forward(self, module, args) -> None:
        self.forwards += 1

    def _allreduce(self, state, bucket):
        self.micro_batches.append(self.forwards - 1)  # the latest forward's
        # None: the default process group
        return default_hooks.allreduce_hook(None, bucket)
# --8<-- [end:allreduce_log]


@contextlib.contextmanager
def single_process_group():
    """A gloo process group of one rank, in this process, destroyed on the
    way out."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0,
                            world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))  # port 0: the OS picks one nobody uses
        return s.getsockname()[1]


def all_local(ddp_model, loss_fn, micro_batches) -> None:
    """Every micro-batch inside no_sync(): no all-reduce at all, each rank
    keeps its own sum."""
    with ddp_model.no_sync():
        for inputs, targets in micro_batches:
            loss = loss_fn(ddp_model(inputs), targets) / len(micro_batches)
            loss.backward()


def small_model() -> nn.Module:
    torch.manual_seed(0)  # the same weights on every rank (DDP would
    # broadcast rank 0's anyway)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


VARIANTS = {"no_sync": ddp_accumulate_gradients,
            "backward_only": backward_only_no_sync, "all_local": all_local}


def _init(rank: int, world_size: int, port: int) -> None:
    warnings.simplefilter("error")  # as under pytest: a warning fails it
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=world_size)


def _worker(rank: int, world_size: int, port: int, K: int, local_batch: int,
            token_K: int, out_dir: str) -> None:
    _init(rank, world_size, port)
    try:
        # the same global batch on every rank ...
        generator = torch.Generator().manual_seed(1)
        X = torch.randn(world_size * local_batch, 8, generator=generator)
        Y = torch.randint(0, 3, (world_size * local_batch,),
                          generator=generator)
        # ... of which each rank takes a shard
        mine = slice(rank * local_batch, (rank + 1) * local_batch)
        b = local_batch // K
        micro_batches = list(zip(X[mine].split(b), Y[mine].split(b)))
        loss_fn = nn.functional.cross_entropy

        reference = small_model()  # one process, the whole global batch
        loss_fn(reference(X), Y).backward()
        result = {"reference": [p.grad for p in reference.parameters()]}
        for name, accumulate in VARIANTS.items():
            ddp = DistributedDataParallel(small_model())
            log = AllReduceLog(ddp)
            accumulate(ddp, loss_fn, micro_batches)
            result[name] = {
                "allreduced_after": log.micro_batches,
                "grads": [p.grad for p in ddp.module.parameters()],
            }
        result["tokens"] = _token_variants(rank, world_size, token_K)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    leave_without_teardown()


def leave_without_teardown() -> None:
    """End a spawned rank once its results are on disk and its process group
    is destroyed, skipping the interpreter's teardown: on torch 2.13 over
    gloo that teardown aborts now and then ("terminate called without an
    active exception", SIGABRT), as C++ threads of the process group outlive
    the interpreter (pytorch PR 179291 describes it)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _spawn(worker, world_size: int, *args) -> list[dict]:
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(worker, args=(world_size, free_port(), *args, out_dir),
                 nprocs=world_size, join=True)
        return [torch.load(Path(out_dir) / f"rank{rank}.pt")
                for rank in range(world_size)]


def two_process_demo(K: int = 4, local_batch: int = 8,
                     token_K: int = 2) -> list[dict]:
    """Run every variant on two CPU processes over gloo; return each rank's
    gradients and all-reduce log, and under "tokens" the token-weighted
    losses across ranks (TOKEN_LENGTHS, token_K micro-batches a rank)."""
    return _spawn(_worker, 2, K, local_batch, token_K)


# ---- the token-weighted loss across ranks ---------------------------------

TOKEN_LENGTHS = [8, 7, 6, 5, 2, 1, 1, 1]  # rank 0: 26 tokens, rank 1: 5


def token_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(16, 32), nn.Linear(32, 16))


def token_batch(lengths: list[int]):
    """Sequences of 8 positions, with lengths[i] real tokens in row i."""
    generator = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, 16, (len(lengths), 8), generator=generator)
    labels = torch.randint(0, 16, (len(lengths), 8), generator=generator)
    for row, n in enumerate(lengths):
        labels[row, n:] = IGNORE_INDEX  # padding
    return tokens, labels


def global_n_only_backward(ddp_model, micro_batches) -> None:
    """WRONG: the global token count, without the world size: DDP's average
    leaves 1 / world_size of the big batch's gradient."""
    N = torch.tensor(sum(token_count(labels) for _, labels in micro_batches))
    dist.all_reduce(N)
    for tokens, labels in micro_batches:
        (token_losses_sum(ddp_model, tokens, labels) / N).backward()


def local_n_backward(ddp_model, micro_batches) -> None:
    """WRONG: each rank's own token count: DDP's average then gives the
    mean of the ranks' token means (the micro-batch bug, across ranks)."""
    n = sum(token_count(labels) for _, labels in micro_batches)
    for tokens, labels in micro_batches:
        (token_losses_sum(ddp_model, tokens, labels) / n).backward()


TOKEN_VARIANTS = {"global_n_times_world_size": ddp_token_weighted_backward,
                  "global_n_only": global_n_only_backward,
                  "local_n": local_n_backward}


def _token_variants(rank: int, world_size: int, K: int) -> dict:
    """Each TOKEN_VARIANT on this rank's share of TOKEN_LENGTHS, against one
    process's token mean over the whole global batch."""
    tokens, labels = token_batch(TOKEN_LENGTHS)
    local = len(TOKEN_LENGTHS) // world_size
    mine = slice(rank * local, (rank + 1) * local)
    b = local // K
    micro_batches = list(zip(tokens[mine].split(b), labels[mine].split(b)))
    reference = token_model()  # one process, the global batch's token mean
    logits = reference(tokens).flatten(0, 1)
    nn.functional.cross_entropy(logits, labels.flatten(),
                                ignore_index=IGNORE_INDEX).backward()
    result = {"reference": [p.grad for p in reference.parameters()],
              "local_tokens": sum(token_count(l) for _, l in micro_batches)}
    for name, backward in TOKEN_VARIANTS.items():
        ddp = DistributedDataParallel(token_model())
        backward(ddp, micro_batches)
        result[name] = [p.grad for p in ddp.module.parameters()]
    return result
