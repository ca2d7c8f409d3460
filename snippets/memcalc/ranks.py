"""Rank 0 of N in one process: torch's fake process group, and what a rank
holds, counted from its tensors.

`fake_process_group(N)` makes this process rank 0 of N: collectives do
nothing, but DDP's buckets, ZeroRedundancyOptimizer's partition and
fully_shard's shards are the real ones, allocated by the real code. `shard`
wraps a model as DDP, DDP + ZeroRedundancyOptimizer or fully_shard (each
block a unit, then the root); `held` counts the bytes of the parameters,
gradients and optimizer state the rank keeps, in the allocator's 512-byte
blocks; `Allocations` gives the peak and the end of the bytes allocated in
labelled parts of a run (on a GPU from torch.cuda's counters, on the CPU
from the profiler's memory events, each rounded to a block). The tests
compare these with snippets/memcalc/sharding.py on the CPU;
examples/memcalc_ranks.py does the same on a GPU.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings

import torch
import torch.distributed as dist
from torch import nn

from snippets.memcalc.allocator import round_block
from snippets.memcalc.training import make_optimizers

STRATEGIES = ("ddp", "zero-redundancy", "fsdp2")


def fake_process_group(ranks: int) -> None:
    """Make this process rank 0 of `ranks` (torch's fake backend)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore
    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", rank=0, world_size=ranks,
                            store=FakeStore())


def _no_op_allreduce(state, bucket):
    """DDP's communication hook on a fake group: the bucket as it is (the
    fake all-reduce returns nothing; a real one averages in place)."""
    future = torch.futures.Future()
    future.set_result(bucket.buffer())
    return future


def units_of(model: nn.Module) -> list[nn.Module]:
    """The blocks fully_shard wraps one by one: the elements of the
    nn.ModuleList or nn.Sequential with the most parameters (as the
    calculator's trace takes them, snippets/memcalc/tracer.py)."""
    best, most = [], 0
    for module in model.modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            size = sum(p.numel() for p in module.parameters())
            if len(module) > 1 and size > most:
                best, most = list(module), size
    return best


def shard(model: nn.Module, strategy: str,
          reshard_after_forward: bool | None = None,
          mixed: bool = False) -> nn.Module:
    """Wrap `model` as `strategy` would on a real group. `mixed`: fully_
    shard's MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)."""
    if strategy in ("ddp", "zero-redundancy"):
        from torch.nn.parallel import DistributedDataParallel
        wrapped = DistributedDataParallel(model)
        wrapped.register_comm_hook(None, _no_op_allreduce)
        return wrapped
    if strategy != "fsdp2":
        raise ValueError(f"strategy: one of {', '.join(STRATEGIES)}")
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    options = {}
    if reshard_after_forward is not None:
        options["reshard_after_forward"] = reshard_after_forward
    if mixed:
        options["mp_policy"] = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for unit in units_of(model):
        fully_shard(unit, **options)
    fully_shard(model, **options)
    return model


def optimizers_for(model: nn.Module, strategy: str, optimizer: str,
                   implementation: str) -> list:
    params = [p for p in model.parameters() if p.requires_grad]
    if strategy != "zero-redundancy":
        return make_optimizers(optimizer, implementation, params)
    with warnings.catch_warnings():
        # torch.distributed.optim still scripts with torch.jit on import,
        # which torch 2.13 deprecates: torch's warning, not this code's
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated",
                                DeprecationWarning)
        from torch.distributed.optim import ZeroRedundancyOptimizer
    inner = make_optimizers(optimizer, implementation, params[:1])
    if len(inner) != 1:
        raise ValueError(f"{optimizer}: one optimizer class per model")
    cls = type(inner[0])
    accepted = inspect.signature(cls.__init__).parameters
    options = {k: v for k, v in inner[0].defaults.items() if k in accepted}
    return [ZeroRedundancyOptimizer(params, optimizer_class=cls,
                                    **options)]


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def _blocks(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        storage = _local(t).untyped_storage()
        if id(storage) not in seen:
            seen.add(id(storage))
            total += round_block(storage.nbytes())
    return total


def held(model: nn.Module, optimizers: list) -> dict[str, int]:
    """Bytes this rank keeps: its parameters (local shards) and buffers,
    its gradients and its optimizer state (the CPU step counters of
    non-fused optimizers left out, as they are off the GPU)."""
    params = list(model.parameters()) + list(model.buffers())
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    state = [t for o in optimizers
             for per_param in getattr(o, "optim", o).state.values()
             for key, t in per_param.items()
             if torch.is_tensor(t)
             and not (key == "step" and t.device.type == "cpu")]
    return {"params": _blocks(params), "grads": _blocks(grads),
            "optimizer_state": _blocks(state)}


class Allocations:
    """Bytes allocated inside labelled parts of a run, in 512-byte blocks:
    `with a.part("step"): ...` then `a.peak("step")`, `a.end("step")`
    (above what was allocated when the part began). On a GPU from
    torch.cuda's counters; on the CPU from one profiler session's memory
    events (`scalars=False` leaves out allocations of 8 bytes or less: the
    copies an optimizer makes of its step counters, which a GPU keeps on
    the CPU)."""

    def __init__(self, scalars: bool = True):
        self.scalars = scalars
        self.cuda = torch.cuda.is_available()
        self.results: dict[str, tuple[int, int]] = {}
        self._parts: list[str] = []
        self._prof = None

    def __enter__(self):
        if not self.cuda:
            from torch.profiler import ProfilerActivity, profile
            self._prof = profile(activities=[ProfilerActivity.CPU],
                                 profile_memory=True)
            self._prof.__enter__()
        return self

    def __exit__(self, *exc):
        if self._prof is None:
            return
        self._prof.__exit__(*exc)
        if exc[0] is not None:
            return
        events = list(self._prof.profiler.kineto_results.events())
        spans = {e.name(): (e.start_ns(), e.end_ns()) for e in events
                 if e.name() in self._parts}
        memory = sorted((e.start_ns(), e.nbytes()) for e in events
                        if e.name() == "[memory]")
        for name, (begin, end) in spans.items():
            live = peak = 0
            for when, nbytes in memory:
                if not begin <= when <= end:
                    continue
                if not self.scalars and abs(nbytes) <= 8:
                    continue
                live += round_block(nbytes) if nbytes > 0 \
                    else -round_block(-nbytes)
                peak = max(peak, live)
            self.results[name] = (peak, live)

    @contextlib.contextmanager
    def part(self, name: str):
        self._parts.append(name)
        if self.cuda:
            torch.cuda.synchronize()
            start = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            yield
            torch.cuda.synchronize()
            self.results[name] = (torch.cuda.max_memory_allocated() - start,
                                  torch.cuda.memory_allocated() - start)
        else:
            with torch.profiler.record_function(name):
                yield

    def peak(self, name: str) -> int:
        return self.results[name][0]

    def end(self, name: str) -> int:
        return self.results[name][1]
