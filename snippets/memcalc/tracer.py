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

PRECISIONS = ("fp32", "bf16-autocast", "bf16-mixed", "bf16")
CATEGORIES = ("params", "grads", "optimizer_state", "master_weights",
              "activations", "weight_copies", "transients", "workspace")
PHASES = ("forward", "backward", "optimizer step")
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


def _param_specs(model: nn.Module, itemsize: int | None) -> list[opt.Param]:
    return [opt.Param(tuple(p.shape), itemsize or p.element_size())
            for p in model.parameters() if p.requires_grad]


def _largest_layer(model: nn.Module) -> int:
    """Bytes of the biggest element of an nn.ModuleList or nn.Sequential:
    the unit ZeRO-3 gathers at once."""
    sizes = [0]
    for module in model.modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            sizes += [sum(round_block(p.nbytes) for p in m.parameters())
                      for m in module]
    return max(sizes)


def check_options(optimizer: str, precision: str, implementation: str,
                  micro_batches: int, ranks: int, zero_stage: int) -> None:
    opt.check(optimizer, implementation)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of "
                         + ", ".join(PRECISIONS))
    if micro_batches < 1 or ranks < 1:
        raise ValueError("micro_batches and ranks must be at least 1")
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError("zero_stage must be 0, 1, 2 or 3")
    if zero_stage and ranks < 2:
        raise ValueError("a ZeRO stage shards over ranks: give ranks >= 2")


def zero_weights(zero_stage: int, ranks: int) -> dict[str, float]:
    """The share of each family one rank holds (Rajbhandari et al. §3)."""
    share = 1 / ranks
    weights = dict.fromkeys(CATEGORIES, 1.0)
    if zero_stage >= 1:
        weights["optimizer_state"] = weights["master_weights"] = share
    if zero_stage >= 2:
        weights["grads"] = share
    if zero_stage >= 3:
        weights["params"] = share
    return weights


def estimate(build_model, loss_fn, *, optimizer: str = "adamw",
             precision: str = "fp32", implementation: str = "foreach",
             micro_batches: int = 1, ranks: int = 1, zero_stage: int = 0,
             capability: tuple[int, int] = (9, 0)) -> Estimate:
    """Predict the peak of torch.cuda.max_memory_allocated() over a
    steady-state training step (step >= 2), above what was allocated before
    the model was built, for the model `build_model()` returns.

    `loss_fn(model)` makes its own inputs on the model's device (and in its
    dtype, for floating inputs) and returns the loss; autocast is applied
    by `precision`, not by loss_fn. The step is: `micro_batches` forward and
    backward passes, `optimizer.step()`, `zero_grad(set_to_none=True)`.
    """
    check_options(optimizer, precision, implementation, micro_batches,
                  ranks, zero_stage)
    start = time.perf_counter()
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
    try:
        with fake, live, rules:
            for _ in range(min(micro_batches, 2)):
                live.phase, live.default = "forward", "activations"
                rules.casting = autocast is not None
                losses = [loss_fn(model)]
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
        for h in handles + hooks:
            h.remove()

    # The optimizer step, by rule.
    specs = _param_specs(model, 4 if precision == "bf16-mixed" else None)
    state = opt.state_bytes(optimizer, implementation, specs)
    master = (sum(round_block(p.numel * 4) for p in specs)
              if precision == "bf16-mixed" else 0)
    workspace = workspace_bytes(bool(live.ops["forward"]),
                                bool(live.ops["backward"]),
                                live.bias_matmul, capability)
    after = dict(live.totals)
    moments = [(phase, dict(zip(CATEGORIES, values)))
               for phase, values in live.timeline]
    grads = after["grads"]
    if precision == "bf16-mixed":
        # master.grad = p.grad.float(); p.grad = None, one tensor at a time
        fp32_grads = sum(round_block(p.numel * 4) for p in specs)
        last = round_block(specs[-1].numel * 2)
        moments.append(("optimizer step", {**after, "grads":
                                           fp32_grads + last}))
        grads = fp32_grads
    extra = opt.step_peak_extra(optimizer, implementation, specs)
    moments.append(("optimizer step", {**after, "grads": grads,
                                       "transients": after["transients"]
                                       + extra}))
    for _, m in moments:
        m["optimizer_state"] = state
        m["master_weights"] = master
        m["workspace"] = workspace
    weights = zero_weights(zero_stage, ranks)
    if zero_stage == 3:   # the layer being gathered, and the next one
        gathered = 2 * _largest_layer(model)
        for phase, m in moments:
            if phase != "optimizer step":
                m["transients"] += gathered

    def total(m):
        return sum(round(m[c] * weights[c]) for c in CATEGORIES)

    phase_peaks = {p: 0 for p in PHASES}
    best = moments[0]
    for phase, m in moments:
        phase_peaks[phase] = max(phase_peaks[phase], total(m))
        if total(m) > total(best[1]):
            best = (phase, m)
    breakdown = {c: round(best[1][c] * weights[c]) for c in CATEGORIES}
    persistent_parts = {**after, "grads": 0, "activations": 0,
                        "transients": 0, "weight_copies": 0,
                        "optimizer_state": state, "master_weights": master,
                        "workspace": workspace}
    persistent = total(persistent_parts)
    return Estimate(
        peak=total(best[1]), phase=best[0], persistent=persistent,
        breakdown=breakdown, phase_peaks=phase_peaks,
        parameters=sum(p.numel for p in specs),
        attention=dict(rules.backends),
        seconds=time.perf_counter() - start)


def largest_micro_batch(build_model, loss_fn_for, budget: int,
                        limit: int = 4096, **options) -> int:
    """The largest micro-batch whose estimated peak fits `budget` bytes.

    `loss_fn_for(batch)` returns the loss_fn for that micro-batch; the
    other options are estimate()'s. 0 when not even one fits."""
    def fits(batch: int) -> bool:
        return estimate(build_model, loss_fn_for(batch),
                        **options).peak <= budget
    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:            # fits(low) and not fits(high)
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low
