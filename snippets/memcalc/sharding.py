"""Per-rank memory: one layer, applied to the trace and to the closed form.

Both faces of the calculator describe a training step the same way: the
moments of the forward and backward passes of the *whole* model (what the
trace counts, or what the closed form writes out), the parameters as a list
of shapes, and the units a sharded model is gathered by (its blocks). This
module turns that into what one of N data-parallel ranks holds:

* single: one GPU, no data parallelism.
* ddp: `DistributedDataParallel`: everything replicated, plus the reducer's
  gradient buckets (one flat copy of the gradients, kept for the life of
  the model).
* zero-redundancy: DDP with `torch.distributed.optim.ZeroRedundancyOptimizer`:
  each rank owns whole parameters (the largest first, each to the rank
  with the fewest elements so far) and keeps their optimizer state only.
* zero1, zero2, zero3: the ZeRO paper's stages (Rajbhandari et al. 2019,
  Figure 1 and sections 5.1-5.3) as DeepSpeed implements them: optimizer
  state, then gradients, then parameters cut into one flat partition per
  rank; stage 3 gathers a layer at a time.
* fsdp2: `fully_shard`: every parameter cut on its first dimension
  (padded to a multiple of N); a unit gathered for its forward and its
  backward, the root unit (embeddings, head) kept gathered from forward to
  backward by default (`reshard_after_forward=None`), every unit with
  `reshard_after_forward=False`; gradients reduce-scattered per unit.
  Under bf16-mixed the sharded parameters are the fp32 masters and
  `MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)` applies.

The optimizer step runs over the rank's own shard: its state, its fp32
gradient copies and its temporaries are the shard's, never the model's.
Optional CPU offload (DeepSpeed's ZeRO-Offload) moves the optimizer state,
master weights, fp32 gradients and step temporaries, and with "params" the
sharded parameters too, to a per-rank CPU column.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from snippets.memcalc import optimizers as opt
from snippets.memcalc.allocator import round_block as R

STRATEGIES = ("single", "ddp", "zero-redundancy", "zero1", "zero2", "zero3",
              "fsdp2")
OFFLOAD = ("none", "optimizer", "params")   # params: optimizer and params
RESHARD = (None, True, False)
FAMILIES = ("params", "grads", "optimizer_state", "master_weights",
            "activations", "weight_copies", "transients", "buffers",
            "workspace")
PHASES = ("forward", "backward", "optimizer step")
STEP_LABELS = ("optimizer step: fp32 copies of the gradients",
               "optimizer step: its temporaries")
# torch.distributed: the first bucket is 1 MiB, the others bucket_cap_mb
FIRST_BUCKET = 1024 * 1024
BUCKET_CAP = 25 * 1024 * 1024


@dataclass(frozen=True)
class Sharding:
    """How the step is spread over `ranks` data-parallel GPUs."""

    strategy: str = "single"
    ranks: int = 1
    reshard_after_forward: bool | None = None    # fsdp2 only
    reduce_dtype: str = "fp32"                   # fsdp2 under bf16-mixed
    offload: str = "none"
    gpus_per_node: int = 8                       # for the per-node CPU sum


def from_stage(ranks: int, zero_stage: int) -> Sharding:
    """The old options: `ranks` and `zero_stage` (0: DDP when ranks > 1)."""
    if zero_stage:
        return Sharding(f"zero{zero_stage}", ranks)
    return Sharding("ddp" if ranks > 1 else "single", ranks)


def check(s: Sharding, optimizer: str, precision: str) -> None:
    """Raise ValueError, in one line, for a combination that cannot run."""
    if s.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {s.strategy!r}; choose one of "
                         + ", ".join(STRATEGIES))
    if not isinstance(s.ranks, int) or s.ranks < 1:
        raise ValueError(f"ranks must be a positive whole number, "
                         f"not {s.ranks!r}")
    if s.strategy == "single" and s.ranks != 1:
        raise ValueError("ranks > 1 need a strategy: ddp, zero-redundancy, "
                         "zero1, zero2, zero3 or fsdp2")
    if s.strategy != "single" and s.ranks < 2:
        raise ValueError(f"{s.strategy} shards over data-parallel ranks: "
                         "give ranks >= 2")
    if s.offload not in OFFLOAD:
        raise ValueError(f"unknown offload {s.offload!r}; choose one of "
                         + ", ".join(OFFLOAD))
    if s.offload != "none" and s.strategy not in ("zero1", "zero2",
                                                  "zero3", "fsdp2"):
        raise ValueError("offload needs zero1, zero2, zero3 or fsdp2")
    if s.offload == "params" and s.strategy not in ("zero3", "fsdp2"):
        raise ValueError("offloading parameters needs zero3 or fsdp2")
    if s.reshard_after_forward not in RESHARD:
        raise ValueError("reshard_after_forward is None, True or False")
    if s.reshard_after_forward is not None and s.strategy != "fsdp2":
        raise ValueError("reshard_after_forward is fully_shard's (fsdp2)")
    if s.reduce_dtype not in ("fp32", "bf16"):
        raise ValueError("reduce_dtype is fp32 or bf16")
    flat = s.strategy in ("zero1", "zero2", "zero3")
    if flat and optimizer in ("adafactor", "muon"):
        raise ValueError(f"{optimizer} needs whole matrices; ZeRO's flat "
                         "partitions have none (use zero-redundancy)")
    if s.strategy == "fsdp2" and optimizer == "muon":
        raise ValueError("muon orthogonalises whole matrices; fsdp2 "
                         "holds row shards (use zero-redundancy)")
    if s.strategy == "fsdp2" and precision == "bf16-autocast":
        raise ValueError("with fsdp2 use bf16-mixed (MixedPrecisionPolicy)"
                         " rather than autocast")


def shard_rows(shape: tuple[int, ...], ranks: int) -> tuple[int, ...]:
    """Rank 0's piece of a parameter under fully_shard: Shard(0), the
    first dimension padded to a multiple of the ranks."""
    if not shape:
        return shape
    return (-(-shape[0] // ranks),) + tuple(shape[1:])


def flat_shard(numel: int, ranks: int) -> int:
    """Elements of a flat partition: padded to a multiple of the ranks."""
    return -(-numel // ranks)


def zero_redundancy_partition(numels: list[int], ranks: int) -> list[int]:
    """Indices of the parameters rank 0 owns under ZeroRedundancyOptimizer
    (torch/distributed/optim/zero_redundancy_optimizer.py): largest first,
    each to the rank with the fewest elements so far (the lowest on a
    tie)."""
    order = sorted(range(len(numels)), key=lambda i: -numels[i])
    sizes = [0] * ranks
    mine = []
    for i in order:
        rank = sizes.index(min(sizes))
        sizes[rank] += numels[i]
        if rank == 0:
            mine.append(i)
    return sorted(mine)


def ddp_buckets(nbytes: list[int], itemsizes: list[int]) -> int:
    """The reducer's flat gradient buffer: every gradient once, one
    allocation per dtype (torch 2.13 allocates the buckets as views of
    it; the first bucket is 1 MiB, the others 25 MiB)."""
    per_dtype: dict[int, int] = {}
    for n, item in zip(nbytes, itemsizes):
        per_dtype[item] = per_dtype.get(item, 0) + n
    return sum(R(n) for n in per_dtype.values())


@dataclass
class Traced:
    """A step of the whole model, before the optimizer step.

    `moments` are (phase, families) of the forward and backward passes with
    the families params, grads, activations, weight_copies, transients:
    params count `specs` and `fixed` (buffers, frozen weights) in full,
    grads the gradients made so far. `specs` are the trainable parameters
    in the dtype they are stored in; `units` the indices of `specs` each
    block holds (what fully_shard or ZeRO-3 gathers at once); the rest is
    the root unit."""

    moments: list[tuple[str, dict[str, int]]]
    specs: list[opt.Param]
    units: list[list[int]]
    fixed: int = 0
    workspace: int = 0
    # activations, weight copies and transients left after the backward
    # pass (the last loss, say): the optimizer step runs beside them
    after: dict = field(default_factory=dict)
    # what each moment is ("end of the forward pass: the loss"), if told
    labels: list[str] = field(default_factory=list)


def _unit_bytes(specs, indices, itemsize=None) -> int:
    return sum(R(specs[i].numel * (itemsize or specs[i].itemsize))
               for i in indices)


def holdings(t: Traced, optimizer: str, implementation: str,
             precision: str, s: Sharding) -> dict[str, int]:
    """What rank 0 of `s.ranks` keeps, family by family: `params` (its
    shards, and buffers), `grads` (after the backward pass), `optimizer_
    state`, `master_weights`, `fp32_grads` (the copies a bf16-mixed step
    makes), `step` (the step's temporaries), `buffers` (communication),
    `gathered` (parameters gathered during forward and backward; of
    them `kept_gathered` from the end of forward to backward),
    `unit_grads` (a unit's unsharded gradient before it is reduced) and
    `cpu` (offloaded). tests/test_memcalc_ranks.py counts the same on a
    fake process group."""
    check(s, optimizer, precision)
    N, specs = s.ranks, t.specs
    mixed = precision == "bf16-mixed"
    item = specs[0].itemsize if specs else 4      # stored, computed in
    fsdp = s.strategy == "fsdp2"
    # The tensors the optimizer updates on this rank, in their dtype.
    step_item = 4 if mixed else item
    if s.strategy in ("single", "ddp"):
        owned = [replace(p, itemsize=step_item) for p in specs]
    elif s.strategy == "zero-redundancy":
        mine = zero_redundancy_partition([p.numel for p in specs], N)
        owned = [replace(specs[i], itemsize=step_item) for i in mine]
    elif fsdp:
        owned = [replace(p, shape=shard_rows(p.shape, N),
                         itemsize=step_item) for p in specs]
    else:    # DeepSpeed: one flat fp32 (or model dtype) partition
        total = sum(p.numel for p in specs)
        owned = [opt.Param((flat_shard(total, N),), step_item)]
    full_grads = sum(R(p.nbytes) for p in specs)
    state = opt.state_bytes(optimizer, implementation, owned)
    master = sum(R(p.numel * 4) for p in owned) if mixed and not fsdp \
        else 0
    step_extra = opt.step_peak_extra(optimizer, implementation, owned)
    fp32_grads = sum(R(p.numel * 4) for p in owned) if mixed and not fsdp \
        else 0

    # Parameters each rank keeps, and what a sharded step gathers.
    units = [u for u in t.units if u]
    in_units = {i for u in units for i in u}
    root = [i for i in range(len(specs)) if i not in in_units]
    largest = max([_unit_bytes(specs, u) for u in units] or [0])
    if fsdp:
        stored = 4 if mixed else item         # the fp32 masters, sharded
        local = [opt.Param(shard_rows(p.shape, N), stored) for p in specs]
        params = sum(R(p.nbytes) for p in local)
        reduce_item = (4 if s.reduce_dtype == "fp32" else 2) if mixed \
            else item
        # each unit's gradients are views of one reduce-scatter output
        sharded_grads = sum(R(sum(local[i].numel for i in u) * reduce_item)
                            for u in units + [root] if u)
        # A gathered parameter has its first dimension padded to a
        # multiple of the ranks. Gathered from forward to backward: the
        # root unit by default, every unit without resharding, none with.
        padded = [opt.Param((local[i].shape[0] * N,) + p.shape[1:]
                            if p.shape else p.shape, p.itemsize)
                  for i, p in enumerate(specs)]
        kept = {None: _unit_bytes(padded, root), True: 0,
                False: _unit_bytes(padded, range(len(specs)))}[
                    s.reshard_after_forward]
        largest = max([_unit_bytes(padded, u) for u in units] or [0])
        gathered = kept + 2 * largest
        # a unit's unsharded gradient and its reduce-scatter input
        biggest = max(units, key=lambda u: _unit_bytes(specs, u),
                      default=root)
        rs_input = R(-(-sum(specs[i].numel for i in biggest) // N) * N
                     * reduce_item)
        unit_grads = _unit_bytes(specs, biggest) + rs_input
    elif s.strategy == "zero3":
        params = sum(R(flat_shard(p.numel, N) * item) for p in specs)
        gathered, kept = 2 * largest, 0
    else:
        params = full_grads
    params += t.fixed
    buffers = ddp_buckets([p.nbytes for p in specs],
                          [p.itemsize for p in specs]) \
        if s.strategy in ("ddp", "zero-redundancy") else 0

    cpu = 0
    if s.offload != "none":
        cpu = state + master + fp32_grads + step_extra
        state = master = fp32_grads = step_extra = 0
        if s.offload == "params":
            cpu += params - t.fixed
            params = t.fixed

    if fsdp:
        grads = sharded_grads
    elif s.strategy in ("zero2", "zero3"):
        grads, unit_grads = -(-full_grads // N), largest
    else:
        grads, unit_grads = full_grads, 0
    if s.strategy not in ("zero3", "fsdp2"):
        gathered = kept = 0
    return {"params": params, "grads": grads, "optimizer_state": state,
            "master_weights": master, "fp32_grads": fp32_grads,
            "step": step_extra, "buffers": buffers, "gathered": gathered,
            "kept_gathered": kept,
            "unit_grads": unit_grads, "cpu": cpu, "full_grads": full_grads}


def per_rank(t: Traced, optimizer: str, implementation: str,
             precision: str, s: Sharding, known: dict | None = None) -> dict:
    """What rank 0 of `s.ranks` holds at every moment of the step, the
    optimizer step added by rule over its own shard. Returns the peak, its
    phase, the breakdown at the peak, the largest moment of each phase,
    the persistent bytes, the per-rank CPU bytes, the parameters, and
    every moment (phase, label, bytes, breakdown) in the order of
    `t.moments` and then the step's, with the peak's index among them."""
    # `known`: holdings already computed for the same parameters (they do
    # not depend on the micro-batch), as a search over batches reuses them
    h = known or holdings(t, optimizer, implementation, precision, s)
    specs, full = t.specs, h["full_grads"]
    mixed = precision == "bf16-mixed"
    base = {**dict.fromkeys(FAMILIES, 0), "params": h["params"],
            "optimizer_state": h["optimizer_state"],
            "master_weights": h["master_weights"],
            "buffers": h["buffers"], "workspace": t.workspace}
    moments = []
    for phase, fam in t.moments:
        m = {**base, **fam, "params": h["params"] + h["gathered"]}
        if h["grads"] != full:      # sharded: this rank's part so far,
            # and in the backward pass a unit's gradient before reduction
            m["grads"] = -(-fam["grads"] * h["grads"] // full) + (
                h["unit_grads"] if phase == "backward" else 0)
        moments.append((phase, m))

    # The optimizer step: the gradients this rank keeps, its fp32 copies.
    kept, fp32_grads = h["grads"], h["fp32_grads"]
    left = {k: t.after.get(k, 0) for k in ("activations", "weight_copies",
                                           "transients")}
    labels = [t.labels[i] if i < len(t.labels) else ""
              for i in range(len(moments))]
    if fp32_grads:
        # master.grad = p.grad.float(); p.grad = None, one at a time: the
        # last bf16 gradient meets all the fp32 copies
        labels.append(STEP_LABELS[0])
        if s.strategy in ("single", "ddp"):
            last = R(specs[-1].nbytes) if specs else 0
            moments.append(("optimizer step", {
                **base, **left, "grads": fp32_grads + last}))
            kept = fp32_grads
        else:
            moments.append(("optimizer step", {
                **base, **left, "grads": kept + fp32_grads}))
            kept += fp32_grads
    labels.append(STEP_LABELS[1])
    moments.append(("optimizer step", {
        **base, **left, "grads": kept,
        "transients": left["transients"] + h["step"]}))

    best = max(range(len(moments)),
               key=lambda i: sum(moments[i][1].values()))
    phase, fam = moments[best]
    phases = {}
    for ph, m in moments:
        phases[ph] = max(phases.get(ph, 0), sum(m.values()))
    return {"peak": sum(fam.values()), "phase": phase,
            "breakdown": {k: fam[k] for k in FAMILIES},
            "phases": {p: phases[p] for p in PHASES if p in phases},
            "persistent": sum(base.values()), "cpu": h["cpu"],
            "parameters": sum(p.numel for p in specs),
            "moments": [{"phase": ph, "label": label,
                         "bytes": sum(m.values()),
                         "breakdown": {k: m[k] for k in FAMILIES}}
                        for (ph, m), label in zip(moments, labels)],
            "peak_index": best}


def model_states(parameters: int, ranks: int, stage: int,
                 K: int = 12) -> int:
    """The ZeRO paper's model states per device, in bytes (Figure 1):
    2 + 2 + K bytes a parameter (16-bit weights and gradients, K bytes of
    optimizer state: fp32 master, momentum, variance for Adam), the
    families of stage >= 1, >= 2, >= 3 divided by the ranks."""
    p, g = 2 * parameters, 2 * parameters
    k = K * parameters
    if stage >= 1:
        k /= ranks
    if stage >= 2:
        g /= ranks
    if stage >= 3:
        p /= ranks
    return round(p + g + k)
