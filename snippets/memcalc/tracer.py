"""Trace one training step with fake tensors and count what the GPU holds.

`estimate(build_model, loss_fn, ...)` builds the model on the meta device,
moves its parameters to fake tensors (shapes and dtypes, no memory), and
runs the forward and backward passes of the user's own code once, or twice
with gradient accumulation (the second micro-batch meets the first one's
gradients). A dispatch mode sees every tensor an operator creates and
watches it die, so the live bytes at every moment are known, in the
allocator's 512-byte blocks. The optimizer step is added by rule
(snippets/memcalc/optimizers.py): it is the one part of a step whose code
is data-dependent, and the part whose memory is known exactly.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from snippets.memcalc import optimizers as opt
from snippets.memcalc.allocator import round_block, workspace_bytes
from snippets.memcalc.cuda_rules import CudaRules
from snippets.memcalc.search import largest_that_fits
from snippets.memcalc.sharding import FAMILIES, PHASES, Sharding, Traced
from snippets.memcalc.sharding import check as check_sharding
from snippets.memcalc.sharding import from_stage, per_rank

PRECISIONS = ("fp32", "bf16-autocast", "bf16-mixed", "bf16")
CATEGORIES = FAMILIES
TRACED = ("params", "grads", "activations", "weight_copies", "transients")
MATMULS = {"mm", "addmm", "bmm", "baddbmm", "addmv", "mv", "dot",
           "_addmm_activation"}


@dataclass
class Estimate:
    """A training step's memory on one GPU, as torch.cuda counts it."""

    peak: int                   # max_memory_allocated above the start
    phase: str                  # forward, backward or optimizer step
    persistent: int             # what stays allocated between steps
    breakdown: dict[str, int]   # the peak, by family
    phase_peaks: dict[str, int]
    parameters: int             # trainable scalars
    attention: dict[str, int] = field(default_factory=dict)
    cpu: int = 0                # offloaded to the CPU, per rank
    seconds: float = 0.0        # how long the estimate took

    def table(self) -> str:
        gib = 2 ** 30
        rows = [f"{name.replace('_', ' '):15} {nbytes / gib:9.3f} GiB"
                for name, nbytes in self.breakdown.items() if nbytes]
        rows.append(f"{'peak':15} {self.peak / gib:9.3f} GiB"
                    f"  ({self.phase})")
        rows.append(f"{'persistent':15} {self.persistent / gib:9.3f} GiB")
        return "\n".join(rows)


class _LiveTensors(TorchDispatchMode):
    """Bytes of every storage an operator creates, until it is freed."""

    def __init__(self) -> None:
        super().__init__()
        self.totals = dict.fromkeys(CATEGORIES, 0)
        self.default = "activations"
        self.phase = "forward"
        self.timeline: list[tuple[str, tuple[int, ...]]] = []
        self.ops: dict[str, set[str]] = {"forward": set(), "backward": set()}
        self.bias_matmul = False
        self._pending = None
        self._watched: dict[int, tuple[weakref.ref, int, str]] = {}

    def add(self, t: torch.Tensor, category: str) -> None:
        storage = t.untyped_storage()
        key, nbytes = id(storage), round_block(storage.nbytes())
        if key in self._watched or nbytes == 0:
            return
        ref = weakref.ref(storage, lambda _, k=key: self._freed(k))
        self._watched[key] = (ref, nbytes, category)
        self.totals[category] += nbytes

    def drop(self, t: torch.Tensor) -> None:
        """Not on the GPU after all (a CPU-side seed, say)."""
        self._freed(id(t.untyped_storage()))

    def retag(self, t: torch.Tensor, category: str) -> None:
        key = id(t.untyped_storage())
        if key in self._watched:
            ref, nbytes, old = self._watched[key]
            self._watched[key] = (ref, nbytes, category)
            self.totals[old] -= nbytes
            self.totals[category] += nbytes

    def _freed(self, key: int) -> None:
        entry = self._watched.pop(key, None)
        if entry is not None:
            self.totals[entry[2]] -= entry[1]

    def record(self) -> None:
        now = tuple(self.totals.values())
        if not self.timeline or self.timeline[-1] != (self.phase, now):
            self.timeline.append((self.phase, now))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.settle()
        out = func(*args, **kwargs)
        name = func.__name__.split(".")[0]
        if self.phase in self.ops and name in MATMULS:
            self.ops[self.phase].add(name)
            if name == "addmm" and self.phase == "forward" \
                    and args[0].dim() == 1:
                self.bias_matmul = True   # nn.Linear's bias: cuBLASLt
        if name == "add" and self.phase == "backward" \
                and isinstance(out, torch.Tensor) \
                and out.shape == args[0].shape:
            # Summing gradients (autograd's input buffer, AccumulateGrad):
            # on the GPU `old += new` when nothing else holds `old`; fake
            # tensors are a subclass, summed out of place. If `old` dies
            # right after, the sum took its place: settle() corrects.
            self._pending = id(args[0].untyped_storage())
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.add(t, self.default)
        self.record()
        if self._pending is not None:
            entry = self._watched.get(self._pending)
            self._pending = (len(self.timeline) - 1, self._pending,
                             entry) if entry else None
        return out

    def settle(self) -> None:
        """Undo the sum's double count if its first operand just died."""
        if self._pending is None:
            return
        index, key, (_, nbytes, category) = self._pending
        self._pending = None
        if key not in self._watched:
            phase, values = self.timeline[index]
            values = list(values)
            values[CATEGORIES.index(category)] -= nbytes
            self.timeline[index] = (phase, tuple(values))


def _to_fake(model: nn.Module, fake: FakeTensorMode,
             dtype: torch.dtype | None) -> None:
    """Give every meta parameter and buffer a fake CPU tensor (shared ones
    stay shared), in `dtype` if it is floating point."""
    made: dict[int, torch.Tensor] = {}

    def convert(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in made:
            want = dtype if (dtype and t.is_floating_point()) else t.dtype
            with fake:
                made[id(t)] = torch.empty_strided(
                    t.shape, t.stride(), dtype=want, device="cpu")
        return made[id(t)]

    params: dict[int, nn.Parameter] = {}   # tied weights stay one object
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                if id(p) not in params:
                    params[id(p)] = nn.Parameter(
                        convert(p), requires_grad=p.requires_grad)
                module._parameters[name] = params[id(p)]
        for name, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[name] = convert(b)


MUON_PARTITIONS = ("hidden", "every-matrix")


def _param_specs(model: nn.Module, outside: set[int]) -> list[opt.Param]:
    """The trainable parameters, in the dtype they are stored in; those in
    `outside` (embeddings, the head) are not hidden-layer matrices."""
    return [opt.Param(tuple(p.shape), p.element_size(),
                      hidden=id(p) not in outside)
            for p in model.parameters() if p.requires_grad]


def _embeddings_and_head(model: nn.Module, ran: list[nn.Module]) -> set[int]:
    """Ids of the parameters Muon leaves to AdamW besides vectors: every
    nn.Embedding's, and the output head's, the last module of the forward
    pass to own a 2-D parameter (a Linear or a tied embedding)."""
    outside = {id(p) for m in model.modules() if isinstance(m, nn.Embedding)
               for p in m.parameters()}
    for module in reversed(ran):
        own = [p for p in module.parameters(recurse=False) if p.dim() == 2]
        if own:
            outside.update(id(p) for p in own)
            break
    return outside


def _units(model: nn.Module) -> list[list[int]]:
    """The blocks a sharded model gathers one at a time: the elements of
    the nn.ModuleList or nn.Sequential that holds the most parameters, as
    indices into the trainable parameters (the rest is the root unit)."""
    index = {id(p): i for i, p in enumerate(
        p for p in model.parameters() if p.requires_grad)}
    best, most = [], 0
    for module in model.modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            units = [[index[id(p)] for p in child.parameters()
                      if id(p) in index] for child in module]
            held = sum(len(u) for u in units)
            size = sum(p.numel() for p in module.parameters())
            if held and len(units) > 1 and size > most:
                best, most = units, size
    return best


def check_options(optimizer: str, precision: str, implementation: str,
                  micro_batches: int, sharding: Sharding) -> None:
    opt.check(optimizer, implementation)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of "
                         + ", ".join(PRECISIONS))
    if micro_batches < 1:
        raise ValueError("micro_batches must be at least 1")
    check_sharding(sharding, optimizer, precision)


def sharding_of(ranks: int, zero_stage: int,
                sharding: Sharding | None) -> Sharding:
    """`sharding`, or the shorthand `ranks` and `zero_stage` (0: DDP)."""
    if sharding is not None:
        return sharding
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError("zero_stage must be 0, 1, 2 or 3")
    if zero_stage and ranks < 2:
        raise ValueError("a ZeRO stage shards over ranks: give ranks >= 2")
    if ranks < 1:
        raise ValueError("ranks must be at least 1")
    return from_stage(ranks, zero_stage)


def estimate(build_model, loss_fn, *, optimizer: str = "adamw",
             precision: str = "fp32", implementation: str = "foreach",
             micro_batches: int = 1, ranks: int = 1, zero_stage: int = 0,
             sharding: Sharding | None = None,
             capability: tuple[int, int] = (9, 0),
             muon_partition: str = "hidden") -> Estimate:
    """Predict the peak of torch.cuda.max_memory_allocated() over a
    steady-state training step (step >= 2), above what was allocated before
    the model was built, for the model `build_model()` returns.

    `loss_fn(model)` makes its own inputs on the model's device (and in its
    dtype, for floating inputs) and returns the loss; autocast is applied
    by `precision`, not by loss_fn. The step is: `micro_batches` forward and
    backward passes, `optimizer.step()`, `zero_grad(set_to_none=True)`.
    `muon_partition` "hidden" gives Muon the 2-D weights of hidden layers
    (embeddings, the head, vectors to AdamW); "every-matrix" every 2-D
    parameter, as the harness of the captured Muon row did.
    """
    if muon_partition not in MUON_PARTITIONS:
        raise ValueError("muon_partition: one of "
                         + ", ".join(MUON_PARTITIONS))
    sharding = sharding_of(ranks, zero_stage, sharding)
    check_options(optimizer, precision, implementation, micro_batches,
                  sharding)
    start = time.perf_counter()
    traced, backends = trace(build_model, loss_fn, precision=precision,
                             micro_batches=micro_batches,
                             capability=capability,
                             every_matrix=muon_partition == "every-matrix")
    result = per_rank(traced, optimizer, implementation, precision,
                      sharding)
    return Estimate(
        peak=result["peak"], phase=result["phase"],
        persistent=result["persistent"], breakdown=result["breakdown"],
        phase_peaks=result["phases"], parameters=result["parameters"],
        attention=backends, cpu=result["cpu"],
        seconds=time.perf_counter() - start)


def trace(build_model, loss_fn, *, precision: str = "fp32",
          micro_batches: int = 1, capability: tuple[int, int] = (9, 0),
          every_matrix: bool = False) -> tuple[Traced, dict]:
    """The forward and backward passes of the whole model, traced on fake
    tensors: the moments the sharding layer turns into one rank's step,
    and how often each attention kernel ran."""
    low = precision in ("bf16-mixed", "bf16")
    with torch.device("meta"):
        model = build_model()
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    _to_fake(model, fake, torch.bfloat16 if low else None)

    live = _LiveTensors()
    seen = set()
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            live.add(t, "params")
    scratch: list[torch.Tensor] = []

    def on_attention(backend, out, nbytes, untracked):
        for t in untracked:
            live.drop(t)
        if nbytes and out.grad_fn is not None:
            def allocate(grad_outputs):
                scratch.append(torch.empty(nbytes, dtype=torch.uint8))

            def release(grad_inputs, grad_outputs):
                scratch.clear()
            out.grad_fn.register_prehook(allocate)
            out.grad_fn.register_hook(release)

    autocast = torch.bfloat16 if precision == "bf16-autocast" else None
    rules = CudaRules(autocast, capability,
                      tag_copy=lambda t: live.retag(t, "weight_copies"),
                      on_attention=on_attention)
    handles = [p.register_post_accumulate_grad_hook(
        lambda p: live.retag(p.grad, "grads"))
        for p in model.parameters() if p.requires_grad]
    depth = [0]

    # A checkpointed module recomputes in the backward pass, where autograd
    # drops torch-function modes: the rules go back on for it, and so does
    # autocast (torch.utils.checkpoint restores it on the GPU too).
    def enter(module, args):
        depth[0] += 1
        if depth[0] == 1:
            rules.__enter__()
            rules.casting = autocast is not None

    def leave(module, args, output):
        depth[0] -= 1
        if depth[0] == 0:
            rules.casting = False
            rules.clear_cache()
            rules.__exit__(None, None, None)

    hooks = []
    losses = []
    ran: list[nn.Module] = []      # modules in the order they return
    order = nn.modules.module.register_module_forward_hook(
        lambda module, args, output: ran.append(module))
    try:
        with fake, live, rules:
            for _ in range(min(micro_batches, 2)):
                live.phase, live.default = "forward", "activations"
                rules.casting = autocast is not None
                losses = [loss_fn(model)]
                order.remove()
                rules.casting = False
                rules.clear_cache()         # autocast's exit
                live.phase, live.default = "backward", "transients"
                hooks = [
                    nn.modules.module.register_module_forward_pre_hook(enter),
                    nn.modules.module.register_module_forward_hook(
                        leave, always_call=True)]   # early-stopped too
                losses[0].backward()
                for h in hooks:
                    h.remove()
                live.settle()
                live.record()
    finally:
        for h in handles + hooks + [order]:
            h.remove()

    specs = _param_specs(model, set() if every_matrix
                         else _embeddings_and_head(model, ran))
    after = dict(live.totals)
    trainable = sum(round_block(p.nbytes) for p in specs)
    moments = [(phase, {k: v for k, v in zip(CATEGORIES, values)
                        if k in TRACED})
               for phase, values in live.timeline]
    traced = Traced(
        moments=moments, specs=specs, units=_units(model),
        fixed=after["params"] - trainable,
        workspace=workspace_bytes(bool(live.ops["forward"]),
                                  bool(live.ops["backward"]),
                                  live.bias_matmul, capability),
        after={k: after[k] for k in ("activations", "weight_copies",
                                     "transients")})
    return traced, dict(rules.backends)


def largest_micro_batch(build_model, loss_fn_for, budget: int,
                        limit: int = 4096, **options) -> int:
    """The largest micro-batch whose estimated peak fits `budget` bytes.

    `loss_fn_for(batch)` returns the loss_fn for that micro-batch; the
    other options are estimate()'s. 0 when not even one fits."""
    def fits(batch: int) -> bool:
        return estimate(build_model, loss_fn_for(batch),
                        **options).peak <= budget
    return largest_that_fits(fits, limit)
