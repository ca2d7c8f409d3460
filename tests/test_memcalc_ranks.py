"""Per-rank memory, proven on the CPU: rank 0 of 2, 8 and 64 on torch's fake
process group holds, to the 512-byte block, what the calculator's sharding
layer (snippets/memcalc/sharding.py) says it holds.

The fake group makes this process rank 0 of N: collectives do nothing, but
DDP's gradient buffer, ZeroRedundancyOptimizer's partition and fully_
shard's shards are made by the real code. Counted from the tensors: the
parameters (local shards) and buffers, the gradients after the backward
pass, the optimizer state; from the allocations (the profiler's memory
events, each rounded to a block): the optimizer step's temporaries, DDP's
buffer, and what fully_shard keeps gathered from forward to backward. The
GPU adds the allocator's view of the whole step: examples/memcalc_ranks.py.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from snippets.memcalc.models import GPT
from snippets.memcalc.ranks import (Allocations, fake_process_group, held,
                                    optimizers_for, shard)
from snippets.memcalc.sharding import Sharding, holdings
from snippets.memcalc.tracer import trace

# Every 1-D shard stays above 8 bytes at 64 ranks (256 / 64 = 4 floats):
# allocations of 8 bytes or less are the step counters' copies, which a GPU
# makes on the CPU, and are left out. 500 rows: padded shards at 8 ranks.
SHAPE = dict(vocab=500, seq=64, layers=2, hidden=256, heads=4)
BATCH = 2
CASES = [("ddp", None, False), ("zero-redundancy", None, False),
         ("fsdp2", None, False), ("fsdp2", False, False),
         ("fsdp2", True, False), ("fsdp2", None, True)]


def build():
    return GPT(SHAPE["vocab"], SHAPE["seq"], SHAPE["layers"],
               SHAPE["hidden"], SHAPE["heads"])


def loss_fn(model):
    """Next-token loss through whatever wraps the model (DDP too)."""
    device = next(model.parameters()).device
    tokens = torch.randint(SHAPE["vocab"], (BATCH, SHAPE["seq"] + 1),
                           device=device)
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.float().flatten(0, 1),
                           tokens[:, 1:].flatten())


@functools.cache
def traced(precision):
    return trace(build, loss_fn, precision=precision)[0]


def measure(ranks, strategy, reshard, mixed):
    """Rank 0's bytes, family by family, at step 3."""
    fake_process_group(ranks)
    torch.manual_seed(0)
    model = build()
    with Allocations(scalars=False) as allocated:
        with allocated.part("wrap"):
            wrapped = shard(model, strategy, reshard, mixed)
        optimizers = optimizers_for(wrapped, strategy, "adamw", "foreach")
        for _ in range(2):                  # steps 1 and 2: state exists
            loss_fn(wrapped).backward()
            for o in optimizers:
                o.step()
                o.zero_grad()
        with allocated.part("forward"):
            loss = loss_fn(wrapped)
        loss.backward()
        del loss
        grads = held(model, optimizers)["grads"]
        with allocated.part("step"):
            for o in optimizers:
                o.step()
        for o in optimizers:
            o.zero_grad()
    after = held(model, optimizers)
    torch.distributed.destroy_process_group()
    return {"params": after["params"], "grads": grads,
            "optimizer_state": after["optimizer_state"],
            "step": allocated.peak("step"),
            "buffers": allocated.end("wrap"),
            "forward": allocated.end("forward")}


@functools.cache
def forward_unsharded():
    """Bytes a forward pass leaves (activations), unsharded, fp32."""
    return measure(2, "ddp", None, False)["forward"]


@pytest.mark.claim("On a fake process group, rank 0 of 2, 8 and 64 holds the parameters, gradients, "
                   "optimizer state and step temporaries the calculator predicts, to the byte, "
                   "under DDP, ZeroRedundancyOptimizer and fully_shard",
                   page="memory-calculator.md#per-rank-memory")
@pytest.mark.parametrize("strategy,reshard,mixed", CASES)
@pytest.mark.parametrize("ranks", [2, 8, 64])
def test_rank_0_holds_what_the_calculator_predicts(ranks, strategy, reshard,
                                                   mixed):
    precision = "bf16-mixed" if mixed else "fp32"
    predicted = holdings(traced(precision), "adamw", "foreach", precision,
                         Sharding(strategy, ranks, reshard))
    measured = measure(ranks, strategy, reshard, mixed)
    for family in ("params", "grads", "optimizer_state", "step"):
        assert measured[family] == predicted[family], family
    if strategy != "fsdp2":        # fully_shard's swap of parameters
        assert measured["buffers"] == predicted["buffers"]
    elif not mixed:
        kept = measured["forward"] - forward_unsharded()
        assert kept == predicted["kept_gathered"]


def test_sharded_state_shrinks_with_the_ranks():
    state = [holdings(traced("fp32"), "adamw", "foreach", "fp32",
                      Sharding("fsdp2", n))["optimizer_state"]
             for n in (2, 8, 64)]
    assert state[0] > 3 * state[1] > 0 and state[1] > state[2]


@pytest.mark.claim("ZeRO's Figure 1 is reproduced exactly: 120, 31.4, 16.6 and 1.9 GB of model states per "
                   "device for 7.5 B parameters on 64 GPUs",
                   page="memory-calculator.md#per-rank-memory")
def test_zero_figure_1_is_reproduced():
    from snippets.memcalc.sharding import model_states
    gb = [round(model_states(7_500_000_000, 64, stage) / 1e9, 1)
          for stage in range(4)]
    assert gb == [120.0, 31.4, 16.6, 1.9]
