"""Per-rank memory on one GPU: rank 0 of 2, 8 and 64 on torch's fake process
group, measured against the calculator's per-rank prediction.

The fake group makes one process rank 0 of N: collectives do nothing, but
DDP's gradient buffer, ZeroRedundancyOptimizer's partition and fully_
shard's shards and gathered units are allocated by the real code on the
real GPU. For each world size and strategy (DDP; DDP with
ZeroRedundancyOptimizer; fully_shard by default, with reshard_after_
forward=False, and with MixedPrecisionPolicy(bf16, reduce fp32)), the
model trains three steps and the third is measured, phase by phase, with
torch.cuda's counters; the calculator (snippets/memcalc/sharding.py over
the trace) predicts the same. It measures memory, never communication
time. On the CPU (the tests) the same code runs at smoke size and reads no
allocator.
"""

from __future__ import annotations

import gc

import torch
import torch.nn.functional as F

from snippets.memcalc.models import GPT
from snippets.memcalc.ranks import (Allocations, fake_process_group, held,
                                    optimizers_for, shard)
from snippets.memcalc.sharding import Sharding
from snippets.memcalc.tracer import estimate

SHAPES = {"full": dict(vocab=32768, seq=1024, layers=8, hidden=1024,
                       heads=16, batch=4),
          "smoke": dict(vocab=128, seq=16, layers=2, hidden=32, heads=4,
                        batch=2)}
CASES = [("ddp", None, False), ("zero-redundancy", None, False),
         ("fsdp2", None, False), ("fsdp2", False, False),
         ("fsdp2", None, True)]
SIZES = {"full": {"ranks": [2, 8, 64], "cases": len(CASES)},
         "smoke": {"ranks": [2], "cases": 2}}


def _case(shape):
    def build():
        return GPT(shape["vocab"], shape["seq"], shape["layers"],
                   shape["hidden"], shape["heads"])

    def loss_fn(model):
        device = next(model.parameters()).device
        tokens = torch.randint(shape["vocab"],
                               (shape["batch"], shape["seq"] + 1),
                               device=device)
        logits = model(tokens[:, :-1])
        return F.cross_entropy(logits.float().flatten(0, 1),
                               tokens[:, 1:].flatten())
    return build, loss_fn


def _fresh(cuda: bool) -> int:
    """What is allocated before the model is built, after releasing what
    a fresh process would not have (cuBLAS's workspaces, cached blocks)."""
    gc.collect()
    if not cuda:
        return 0
    torch._C._cuda_clearCublasWorkspaces()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    return torch.cuda.memory_allocated()


def measure(device, shape, ranks, strategy, reshard, mixed) -> dict:
    """Rank 0's third step, phase by phase: each phase's peak above what
    was allocated before the model was built (the calculator's zero), and
    what the rank's tensors hold after it. Peaks are None on the CPU."""
    build, loss_fn = _case(shape)
    fake_process_group(ranks)
    cuda = device.type == "cuda"
    base = _fresh(cuda)
    starts = {}

    def begin(phase):
        if cuda:
            torch.cuda.synchronize()
            starts[phase] = torch.cuda.memory_allocated() - base

    torch.manual_seed(0)
    with torch.device(device):
        model = build()
    with Allocations(scalars=False) as allocated:
        wrapped = shard(model, strategy, reshard, mixed)
        optimizers = optimizers_for(wrapped, strategy, "adamw", "foreach")
        for _ in range(2):
            loss_fn(wrapped).backward()
            for o in optimizers:
                o.step()
                o.zero_grad()
        begin("forward")
        with allocated.part("forward"):
            loss = loss_fn(wrapped)
        begin("backward")
        with allocated.part("backward"):
            loss.backward()
        del loss
        begin("optimizer step")
        with allocated.part("optimizer step"):
            for o in optimizers:
                o.step()
                o.zero_grad()
    kept = held(model, optimizers)
    phases = {p: starts[p] + allocated.peak(p) if cuda else None
              for p in ("forward", "backward", "optimizer step")}
    del wrapped, model, optimizers
    gc.collect()
    torch.distributed.destroy_process_group()
    return {"peak_bytes": phases, "held": kept}


def run(device: torch.device, size: str) -> dict:
    shape = SHAPES[size]
    build, loss_fn = _case(shape)
    rows = []
    for ranks in SIZES[size]["ranks"]:
        for strategy, reshard, mixed in CASES[: SIZES[size]["cases"]]:
            precision = "bf16-mixed" if mixed else "fp32"
            e = estimate(build, loss_fn, precision=precision,
                         sharding=Sharding(strategy, ranks, reshard))
            rows.append({
                "ranks": ranks, "strategy": strategy,
                "reshard_after_forward": reshard, "mixed": mixed,
                "predicted": {"max_bytes": e.peak, "phase": e.phase,
                              "phase_max_bytes": e.phase_peaks,
                              "breakdown": e.breakdown},
                "measured": measure(device, shape, ranks, strategy,
                                    reshard, mixed)})
    return {"shape": shape, "rows": rows}
