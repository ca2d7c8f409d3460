"""Data parallelism with sharded training state, on any number of ranks:
DDP + AdamW (ZeRO stage 0), DDP + ZeroRedundancyOptimizer (stage 1) and
FSDP2's fully_shard (stage 3), plus gradient accumulation under each.

Every rank trains the same model on its own slice of one global batch, then
reports the bytes it holds (counted from the tensors: local shards for
FSDP2), the collectives it issued, how far its parameters are from one
process trained on the whole batch, and on a GPU what the caching allocator
read. Two ways to start the ranks:

    # every GPU of one machine, NCCL (torchrun sets RANK, WORLD_SIZE, ...):
    torchrun --nproc-per-node=gpu -m snippets.sharded_training --out DIR

    # N CPU processes over gloo, from Python (the tests and the page):
    spawn(N, CPU_CONFIG)

examples/zero_fsdp.py spawns it on every visible GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from snippets.cuda_memory import MemoryMeter
from snippets.ddp_no_sync import (
    ddp_accumulate_gradients,
    free_port,
    leave_without_teardown,
)

with warnings.catch_warnings():
    # torch.distributed.optim's own modules still use torch.jit.script and
    # torch.jit.interface, which torch 2.13 deprecates, on import: torch's
    # warning, not this code's
    warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated",
                            DeprecationWarning)
    from torch.distributed.optim import ZeroRedundancyOptimizer

# Multicast NVLink (NVLS) and symmetric-memory multicast stay off: they need
# fabric support a lent machine may lack, and they would change what NCCL
# allocates. Set for every launch, GPU or not.
LAUNCH_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}

CPU_CONFIG = {
    "width": 16, "depth": 4,   # 4 blocks of Linear(16, 16): P = 1,088
    "local_batch": 8, "steps": 3, "lr": 1e-2, "micro_batches": 4,
    "runs": [["ddp", "fp32"], ["ddp_bucket_view", "fp32"], ["zero1", "fp32"],
             ["fsdp2", "fp32"], ["ddp", "bf16"], ["zero1", "bf16"],
             ["fsdp2", "bf16"], ["fsdp2", "mixed"]],
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16,
          "mixed": torch.float32}  # mixed: fp32 master, bf16 compute


# --8<-- [start:model]
class Block(nn.Module):
    """One FSDP unit: Linear then ReLU. `log`, when given, records when its
    forward and its backward run (see FSDP2's prefetching)."""

    def __init__(self, width: int, index: int, log: list | None = None):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.index, self.log = index, log

    def forward(self, x):
        y = torch.relu(self.linear(x))
        return y if self.log is None else _Probe.apply(y, self)


def block_model(width: int, depth: int, dtype=torch.float32,
                device="cpu", log: list | None = None) -> nn.Sequential:
    torch.manual_seed(0)  # the same weights on every rank and reference
    with torch.device(device):
        blocks = [Block(width, i, log) for i in range(depth)]
        return nn.Sequential(*blocks).to(dtype)
# --8<-- [end:model]


class _Probe(torch.autograd.Function):
    """Identity that logs 'forward i' now and 'backward i' when autograd
    reaches it: inside the unit, after FSDP2's own hooks."""

    @staticmethod
    def forward(ctx, y, block):
        ctx.block = block
        block.log.append(f"forward {block.index}")
        return y.clone()  # a new tensor, not a view (FSDP2 warns on views)

    @staticmethod
    def backward(ctx, grad):
        ctx.block.log.append(f"backward {ctx.block.index}")
        return grad, None


# --8<-- [start:setups]
def ddp_adamw(model, lr: float, bucket_view: bool = False):
    """Stage 0: every rank holds everything. DDP all-reduces the gradients
    bucket by bucket during backward."""
    ddp = DistributedDataParallel(model, gradient_as_bucket_view=bucket_view)
    return ddp, torch.optim.AdamW(ddp.parameters(), lr=lr)


def ddp_zero1(model, lr: float):
    """Stage 1: DDP as above, but each rank keeps AdamW state for its
    share of the parameters only, steps that share, and broadcasts it."""
    ddp = DistributedDataParallel(model)
    zero = ZeroRedundancyOptimizer(ddp.parameters(), torch.optim.AdamW,
                                   lr=lr)
    return ddp, zero


def fsdp2(model, lr: float, policy=MixedPrecisionPolicy()):
    """Stage 3: each block is a unit whose parameters (so gradients and
    AdamW state) are sharded on dim 0; a unit is all-gathered just before
    its forward and again before its backward."""
    for block in model:
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)  # the root unit: starts it all
    return model, torch.optim.AdamW(model.parameters(), lr=lr)
# --8<-- [end:setups]


BF16_COMPUTE = MixedPrecisionPolicy(param_dtype=torch.bfloat16,
                                    reduce_dtype=torch.float32)
SETUPS = {  # name: (ZeRO stage, build(model, lr, recipe))
    "ddp": (0, lambda m, lr, recipe: ddp_adamw(m, lr)),
    "ddp_bucket_view": (0, lambda m, lr, recipe: ddp_adamw(m, lr, True)),
    "zero1": (1, lambda m, lr, recipe: ddp_zero1(m, lr)),
    "fsdp2": (3, lambda m, lr, recipe: fsdp2(
        m, lr, BF16_COMPUTE if recipe == "mixed" else MixedPrecisionPolicy())),
}


def train_step(model, optimizer, x, y) -> None:
    optimizer.zero_grad()  # set_to_none=True: the previous step's go
    loss = nn.functional.mse_loss(model(x).to(y.dtype), y)
    loss.backward()
    optimizer.step()


# --8<-- [start:held_bytes]
def local(t: torch.Tensor) -> torch.Tensor:
    """What this rank stores of a tensor: a DTensor's local shard."""
    return t.to_local() if isinstance(t, DTensor) else t


def held_bytes(model, optimizer) -> dict[str, int]:
    """Bytes this rank holds, family by family (Tensor.nbytes)."""
    params = list(model.parameters())
    inner = getattr(optimizer, "optim", optimizer)  # ZeRO wraps an AdamW
    state = [s for s in inner.state.values()]
    return {
        "params": sum(local(p).nbytes for p in params),
        "grads": sum(local(p.grad).nbytes for p in params
                     if p.grad is not None),
        # the two moments; `step` is a 4-byte counter per tensor
        "state": sum(local(v).nbytes for s in state
                     for key, v in s.items() if key != "step"),
        "step_counters": sum(s["step"].nbytes for s in state),
    }
# --8<-- [end:held_bytes]


def ddp_buckets(ddp) -> dict[str, int] | None:
    """Bytes of DDP's gradient buckets, and how many separate storages the
    gradients live in (as many as buckets under gradient_as_bucket_view)."""
    if not isinstance(ddp, DistributedDataParallel):
        return None
    sizes = str(ddp._get_ddp_logging_data().get("bucket_sizes", ""))
    storages = {p.grad.untyped_storage().data_ptr()
                for p in ddp.parameters() if p.grad is not None}
    return {"bucket_bytes": sum(int(s) for s in sizes.split(",") if s.strip()),
            "buckets": len([s for s in sizes.split(",") if s.strip()]),
            "grad_storages": len(storages)}


# --8<-- [start:collective_log]
COLLECTIVES = {  # torch.distributed function: what it does
    "all_reduce": "all-reduce", "broadcast": "broadcast",
    "all_gather_into_tensor": "all-gather", "all_gather_single": "all-gather",
    "reduce_scatter_tensor": "reduce-scatter",
    "reduce_scatter_single": "reduce-scatter",
}


class CollectiveLog(contextlib.ContextDecorator):
    """Log every collective that Python code starts through
    torch.distributed (FSDP2, ZeroRedundancyOptimizer, DDP's comm hooks):
    its kind and the bytes of the full-size tensor it covers."""

    def __init__(self, events: list | None = None):
        self.events = [] if events is None else events

    def __enter__(self):
        self._saved = {n: getattr(dist, n) for n in COLLECTIVES
                       if hasattr(dist, n)}  # names differ by version
        for name, original in self._saved.items():
            setattr(dist, name, self._logged(original, COLLECTIVES[name]))
        return self

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            setattr(dist, name, original)

    def _logged(self, original, kind: str):
        def call(*args, **kwargs):
            self.events.append((kind, _full_size(kind, args, kwargs).nbytes))
            return original(*args, **kwargs)
        return call

    def tally(self) -> dict[str, list[int]]:
        """kind: [how many, total bytes]"""
        totals: dict[str, list[int]] = {}
        for kind, nbytes in (e for e in self.events if type(e) is tuple):
            count = totals.setdefault(kind, [0, 0])
            count[0], count[1] = count[0] + 1, count[1] + nbytes
        return dict(sorted(totals.items()))
# --8<-- [end:collective_log]


def _full_size(kind: str, args: tuple, kwargs: dict) -> torch.Tensor:
    """The unsharded tensor of a collective: an all-gather's output, a
    reduce-scatter's input, the one tensor of the others."""
    if kind == "all-gather":
        return kwargs.get("output_tensor", args[0] if args else None)
    if kind == "reduce-scatter":
        return kwargs.get("input", args[1] if len(args) > 1 else None)
    return kwargs.get("tensor", args[0] if args else None)


# --8<-- [start:fsdp2_accumulate]
def fsdp2_accumulate(model, loss_fn, micro_batches, *, sync_each=False,
                     keep_unsharded=False) -> None:
    """Accumulate K micro-batches under FSDP2. By default the gradients are
    reduce-scattered in the last backward only; keep_unsharded also keeps
    the parameters gathered from one backward to the next forward."""
    K = len(micro_batches)
    for i, (x, y) in enumerate(micro_batches):
        last = i == K - 1
        # False: backward adds into full-size, unsharded gradients that
        # this rank keeps; no reduce-scatter until the last micro-batch
        model.set_requires_gradient_sync(last or sync_each)
        if keep_unsharded:  # skip re-gathering before the next forward
            model.set_reshard_after_backward(last)
        loss = loss_fn(model(x), y) / K
        loss.backward()
# --8<-- [end:fsdp2_accumulate]


def plain_accumulate(model, loss_fn, micro_batches) -> None:
    """DDP without no_sync: every backward all-reduces."""
    for x, y in micro_batches:
        (loss_fn(model(x), y) / len(micro_batches)).backward()


ACCUMULATIONS = {  # name: (setup, accumulate(model, loss_fn, micro_batches))
    "ddp_every_micro_batch": ("ddp", plain_accumulate),
    "ddp_no_sync": ("ddp", ddp_accumulate_gradients),
    "fsdp2_every_micro_batch": ("fsdp2", lambda m, f, b: fsdp2_accumulate(
        m, f, b, sync_each=True)),
    "fsdp2_no_sync": ("fsdp2", fsdp2_accumulate),
    "fsdp2_no_sync_unsharded": ("fsdp2", lambda m, f, b: fsdp2_accumulate(
        m, f, b, keep_unsharded=True)),
}


# ---- one rank ---------------------------------------------------------------

def _batches(cfg: dict, rank: int, world_size: int, device, dtype):
    """The global batch (the reference trains on it) and this rank's slice."""
    generator = torch.Generator().manual_seed(1)
    n, b = world_size * cfg["local_batch"], cfg["local_batch"]
    X = torch.randn(n, cfg["width"], generator=generator)
    Y = torch.randn(n, cfg["width"], generator=generator)
    X, Y = X.to(device, dtype), Y.to(device, dtype)
    mine = slice(rank * b, (rank + 1) * b)
    return X, Y, X[mine], Y[mine]


def _reference(cfg: dict, X, Y, dtype, device, steps: int):
    """One process, the whole global batch: the parameters to match, and
    how far training moved them (what a tolerance is measured against)."""
    model = block_model(cfg["width"], cfg["depth"], dtype, device)
    start = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    for _ in range(steps):
        train_step(model, optimizer, X, Y)
    moved = max((p.detach() - s).float().abs().max().item()
                for p, s in zip(model.parameters(), start))
    return [p.detach().float().cpu() for p in model.parameters()], moved


def _difference(model, reference: list) -> float:
    """Largest |parameter - reference| (FSDP2 gathers its shards first)."""
    params = [p.full_tensor() if isinstance(p, DTensor) else p
              for p in model.parameters()]
    return max((p.detach().float().cpu() - r).abs().max().item()
               for p, r in zip(params, reference))


def _allocated(meter: MemoryMeter, floor: int | None) -> int | None:
    value = meter.allocated()
    return None if value is None else value - floor


def measure_run(setup: str, recipe: str, cfg: dict, rank: int,
                world_size: int, device: torch.device) -> dict:
    """Train `steps` steps; count what this rank holds; on a GPU read the
    allocator after the last step, between steps, and the last step's
    peak (with AdamW's state alive), all above what was there before."""
    stage, build = SETUPS[setup]
    dtype = DTYPES[recipe]
    X, Y, x, y = _batches(cfg, rank, world_size, device, dtype)
    reference, moved = _reference(cfg, X, Y, dtype, device, cfg["steps"])
    meter = MemoryMeter(device)
    meter.release_cache()
    floor = meter.allocated()  # the data, nothing else
    model, optimizer = build(block_model(cfg["width"], cfg["depth"], dtype,
                                         device), cfg["lr"], recipe)
    allocated_after_wrap = _allocated(meter, floor)
    _log_ddp_all_reduces(model)
    log = CollectiveLog()
    for step in range(cfg["steps"]):
        last = step == cfg["steps"] - 1
        if last:
            meter.reset_peak()
        with log if last else contextlib.nullcontext():
            train_step(model, optimizer, x, y)
    peak = meter.peak()
    result = {
        "setup": setup, "recipe": recipe, "stage": stage,
        "held": held_bytes(model, optimizer),
        "ddp": ddp_buckets(model),
        "collectives": log.tally(),  # in the last step
        "allocated_after_wrap_bytes": allocated_after_wrap,
        "allocated_after_step_bytes": _allocated(meter, floor),
        "peak_allocated_bytes": None if peak is None else peak - floor,
    }
    optimizer.zero_grad()
    result["allocated_between_steps_bytes"] = _allocated(meter, floor)
    result["max_difference"] = _difference(model, reference)
    result["reference_moved"] = moved
    del model, optimizer
    gc.collect()
    return result


def measure_accumulation(name: str, cfg: dict, rank: int, world_size: int,
                         device: torch.device) -> dict:
    """One optimizer step over K micro-batches: collectives, peak, and the
    parameters against one process's step on the whole batch."""
    setup, accumulate = ACCUMULATIONS[name]
    X, Y, x, y = _batches(cfg, rank, world_size, device, torch.float32)
    reference, moved = _reference(cfg, X, Y, torch.float32, device, 1)
    K = cfg["micro_batches"]
    micro_batches = list(zip(x.split(len(x) // K), y.split(len(y) // K)))
    meter = MemoryMeter(device)
    meter.release_cache()
    floor = meter.allocated()
    model, optimizer = SETUPS[setup][1](
        block_model(cfg["width"], cfg["depth"], device=device), cfg["lr"],
        "fp32")
    _log_ddp_all_reduces(model)
    meter.reset_peak()
    with CollectiveLog() as log:
        accumulate(model, nn.functional.mse_loss, micro_batches)
    peak = meter.peak()
    optimizer.step()
    result = {"name": name, "micro_batches": K, "collectives": log.tally(),
              "peak_allocated_bytes": None if peak is None else peak - floor,
              "max_difference": _difference(model, reference),
              "reference_moved": moved}
    del model, optimizer
    gc.collect()
    return result


def unsynced_gradients(cfg: dict, device: torch.device) -> dict:
    """FSDP2 after one micro-batch with gradient sync off: the sharded
    parameters have no gradient yet; the full-size gradient waits in
    FSDP2's private per-parameter state (torch 2.13's layout; feature
    detected, None where it differs)."""
    model, _ = fsdp2(block_model(cfg["width"], cfg["depth"], device=device),
                     cfg["lr"])
    model.set_requires_gradient_sync(False)
    x = torch.randn(cfg["local_batch"], cfg["width"], device=device)
    model(x).sum().backward()
    sharded = sum(local(p.grad).nbytes for p in model.parameters()
                  if p.grad is not None)
    unsharded, found = 0, False
    for module in model.modules():
        state = getattr(module, "_get_fsdp_state", lambda: None)()
        groups = getattr(state, "_fsdp_param_groups", None)
        if groups is None and state is not None:  # before the list
            groups = [getattr(state, "_fsdp_param_group", None)]
        for group in groups or []:
            for param in getattr(group, "fsdp_params", None) or []:
                found = True
                grad = getattr(param, "unsharded_accumulated_grad", None)
                if grad is None:
                    full = getattr(param, "_unsharded_param", None)
                    grad = getattr(full, "grad", None)
                unsharded += 0 if grad is None else local(grad).nbytes
    model.set_requires_gradient_sync(True)
    # "nbytes", not "_bytes": a private layout may be missing (None)
    return {"sharded_grads_nbytes": sharded,
            "unsharded_grads_nbytes": unsharded if found else None}


def prefetch_log(cfg: dict, device: torch.device) -> list[str]:
    """FSDP2's second step, as a sequence of all-gathers, reduce-scatters
    and the moments each unit's forward and backward run."""
    events: list = []
    model = block_model(cfg["width"], cfg["depth"], device=device, log=events)
    model, _ = fsdp2(model, cfg["lr"])
    x = torch.randn(cfg["local_batch"], cfg["width"], device=device)
    for _ in range(2):  # the first step differs (lazy initialisation)
        events.clear()
        with CollectiveLog(events):
            model(x).sum().backward()
    return [e[0] if isinstance(e, tuple) else e for e in events]


def _log_ddp_all_reduces(model) -> None:
    """DDP all-reduces its buckets from C++; its default comm hook does the
    same from Python, where CollectiveLog sees it."""
    if isinstance(model, DistributedDataParallel):
        model.register_comm_hook(None, default_hooks.allreduce_hook)


def _outside_allocator(device: torch.device) -> int | None:
    """Device memory in use that the caching allocator did not reserve:
    the CUDA context, NCCL's buffers, other processes on this GPU."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    return total - free - torch.cuda.memory_reserved(device)


def run_rank(rank: int, world_size: int, cfg: dict, device: torch.device,
             outside_before: int | None = None) -> dict:
    """Everything one rank measures; the process group is already up.
    outside_before: _outside_allocator() before the group was created."""
    dist.barrier()  # a first collective: NCCL's communicator is set up
    result = {
        "rank": rank, "world_size": world_size,
        "backend": dist.get_backend(),
        "device": (torch.cuda.get_device_name(device)
                   if device.type == "cuda" else "cpu"),
        "outside_allocator_before_process_group_bytes": outside_before,
        "outside_allocator_after_first_collective_bytes":
            _outside_allocator(device),
        "runs": [measure_run(setup, recipe, cfg, rank, world_size, device)
                 for setup, recipe in cfg["runs"]],
        "accumulation": [measure_accumulation(name, cfg, rank, world_size,
                                              device)
                         for name in ACCUMULATIONS],
        "prefetch": prefetch_log(cfg, device),
        "unsynced_gradients": unsynced_gradients(cfg, device),
    }
    result["outside_allocator_after_bytes"] = _outside_allocator(device)
    return result


# ---- starting the ranks -----------------------------------------------------

def _device(rank: int, backend: str) -> torch.device:
    if backend == "nccl":
        torch.cuda.set_device(rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _run_and_save(rank: int, world_size: int, cfg: dict, backend: str,
                  out_dir: str, init_method: str) -> None:
    device = _device(rank, backend)
    outside_before = _outside_allocator(device)  # the CUDA context alone
    dist.init_process_group(
        backend, init_method=init_method, rank=rank, world_size=world_size,
        **({"device_id": device} if backend == "nccl" else {}))
    try:
        with warnings.catch_warnings(record=True) as caught:
            if cfg.get("strict_warnings", True):
                warnings.simplefilter("error")  # as under pytest
            result = run_rank(rank, world_size, cfg, device, outside_before)
        result["warnings"] = sorted({str(w.message) for w in caught})
        path = Path(out_dir) / f"rank{rank}.json"
        path.write_text(json.dumps(result, allow_nan=False))
        dist.barrier()  # gloo can abort if a rank leaves mid-collective
    finally:
        dist.destroy_process_group()


def _spawned(rank: int, world_size: int, port: int, cfg: dict, backend: str,
             out_dir: str) -> None:
    _run_and_save(rank, world_size, cfg, backend, out_dir,
                  f"tcp://127.0.0.1:{port}")
    leave_without_teardown()


def spawn(world_size: int, cfg: dict, backend: str = "gloo") -> list[dict]:
    """Run every measurement on `world_size` fresh processes (one per GPU
    with NCCL); return each rank's result, rank 0 first."""
    saved = {k: os.environ.get(k) for k in LAUNCH_ENV}
    os.environ.update(LAUNCH_ENV)  # inherited by the processes spawned
    try:
        with tempfile.TemporaryDirectory() as out_dir:
            mp.spawn(_spawned, args=(world_size, free_port(), cfg, backend,
                                     out_dir), nprocs=world_size, join=True)
            return [json.loads((Path(out_dir) / f"rank{r}.json").read_text())
                    for r in range(world_size)]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv: list[str] | None = None) -> None:
    """The torchrun entry point: one process per rank, results to --out."""
    parser = argparse.ArgumentParser(prog="python -m snippets.sharded_training")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=json.loads, default={},
                        help="JSON to override CPU_CONFIG: '{\"width\": 64}'")
    args = parser.parse_args(argv)
    os.environ.update(LAUNCH_ENV)  # before NCCL reads them
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = {**CPU_CONFIG, "strict_warnings": backend == "gloo", **args.config}
    _run_and_save(rank, world_size, cfg, backend, str(args.out), "env://")
    leave_without_teardown()


if __name__ == "__main__":
    main()
