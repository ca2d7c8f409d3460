"""Optimizer state and the temporaries of one optimizer step, by rule.

The state is what `optimizer.state` holds between steps; the temporaries are
what `step()` allocates and frees again. Both are modelled here from the
torch 2.13 source (torch/optim/*.py) rather than traced: tracing a step with
fake tensors fails on data-dependent code (Adafactor calls `.item()`), and a
rule never fails. `step_moments` replays the allocations of one step, in
the order the source makes them, tensor by tensor, with the allocator's
512-byte blocks; tests/test_memcalc_optimizers.py checks it against real
steps on the CPU.

A parameter is given as its shape and the bytes per element of the tensor
the optimizer updates (fp32 master weights under bf16-mixed).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from snippets.memcalc.allocator import round_block

OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw", "amsgrad",
              "adafactor", "muon", "adam8bit")
IMPLEMENTATIONS = ("foreach", "for-loop", "fused")
# torch.optim has a fused kernel for these (and Adagrad); Adafactor and
# Muon have none. bitsandbytes' 8-bit Adam is one fused kernel.
FUSED = ("sgd", "sgd-momentum", "adam", "adamw", "amsgrad", "adam8bit")
BNB_BLOCK = 256        # bitsandbytes: one fp32 absmax per 256 elements
BNB_BLOCK_PAPER = 2048  # the paper's block (Dettmers et al. 2021), early bnb
BNB_MIN_8BIT = 4096    # smaller tensors keep 32-bit states
BNB_QMAPS = 2 * round_block(256 * 4)   # the two shared 256-entry maps


@dataclass(frozen=True)
class Param:
    shape: tuple[int, ...]
    itemsize: int          # bytes per element of the tensor being updated
    # False for an embedding table or the output head: 2-D, but Muon's
    # recipe (and torch.optim.Muon's docstring) gives them to AdamW
    hidden: bool = True

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize


def check(optimizer: str, implementation: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of "
                         + ", ".join(OPTIMIZERS))
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {implementation!r}; "
                         "choose one of " + ", ".join(IMPLEMENTATIONS))
    if implementation == "fused" and optimizer not in FUSED + ("muon",):
        raise ValueError(f"{optimizer} has no fused implementation; "
                         "choose foreach or for-loop")


def is_muon_matrix(p: Param) -> bool:
    """Muon takes the 2-D weights of hidden layers; embeddings, the output
    head, biases and norms go to AdamW (torch.optim.Muon's docstring, and
    chapter 7's muon_and_adamw)."""
    return len(p.shape) == 2 and p.hidden


def muon_split(params: list[Param]) -> tuple[list[Param], list[Param]]:
    """(Muon's matrices, AdamW's parameters)."""
    matrices = [p for p in params if is_muon_matrix(p)]
    others = [p for p in params if not is_muon_matrix(p)]
    return matrices, others


def state_tensors(optimizer: str, implementation: str,
                  p: Param) -> list[int]:
    """Bytes of each state tensor the optimizer keeps on the device for p.

    Adam's `step` counter lives on the CPU unless the step is fused (or
    capturable); then it is a 4-byte tensor on the device."""
    n, size = p.numel, p.nbytes
    if optimizer == "sgd":
        return []
    if optimizer == "sgd-momentum":
        return [size]
    if optimizer in ("adam", "adamw", "amsgrad"):
        moments = 3 if optimizer == "amsgrad" else 2
        step = [4] if implementation == "fused" else []
        return [size] * moments + step
    if optimizer == "adafactor":
        if len(p.shape) > 1:       # row and column factors
            rows = n // p.shape[-1]
            cols = n // p.shape[-2]
            return [rows * p.itemsize, cols * p.itemsize]
        return [size]
    if optimizer == "muon":
        if is_muon_matrix(p):
            return [size]              # momentum_buffer
        return state_tensors("adamw", implementation, p)
    if optimizer == "adam8bit":
        if n < BNB_MIN_8BIT:
            return [n * 4, n * 4]     # 32-bit states
        blocks = -(-n // BNB_BLOCK)
        return [n, n, blocks * 4, blocks * 4]   # uint8 states + absmax
    raise ValueError(optimizer)


def state_bytes(optimizer: str, implementation: str,
                params: list[Param]) -> int:
    """All optimizer state on the device, as the allocator counts it."""
    total = sum(round_block(b) for p in params
                for b in state_tensors(optimizer, implementation, p))
    if optimizer == "adam8bit" and any(p.numel >= BNB_MIN_8BIT
                                       for p in params):
        total += BNB_QMAPS
    return total


class _Replay:
    """A tiny allocator: live bytes, their peak, and Python's references."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self.names: dict[str, int] = {}   # variable -> bytes it holds

    def new(self, nbytes: int) -> int:
        size = round_block(nbytes)
        self.live += size
        self.peak = max(self.peak, self.live)
        return size

    def free(self, size: int) -> None:
        self.live -= size

    def assign(self, name: str, size: int) -> None:
        """`name = <a new tensor of size>`: the old value dies after."""
        old = self.names.get(name, 0)
        self.names[name] = size
        self.free(old)

    def scalar(self) -> None:
        """A 0-d temporary such as `x.norm().item()`: made and dropped."""
        self.free(self.new(4))

    def clear(self) -> None:
        for name in list(self.names):
            self.assign(name, 0)


class _Frame:
    """Python references to tensors: a tensor dies with its last name."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self._size: dict[int, int] = {}
        self._refs: dict[int, int] = {}
        self._names: dict[str, int] = {}
        self._next = 0

    def new(self, *nbytes: int) -> int:
        """Allocate tensors (a list of them, for foreach) as one object."""
        self._next += 1
        size = sum(round_block(n) for n in nbytes)
        self._size[self._next], self._refs[self._next] = size, 0
        self.live += size
        self.peak = max(self.peak, self.live)
        return self._next

    def drop(self, obj: int) -> None:
        """An expression's temporary, or a name's last reference, is gone."""
        if self._refs[obj] == 0:
            self.live -= self._size.pop(obj)
            del self._refs[obj]

    def bind(self, name: str, obj: int) -> None:
        """`name = obj`: the object the name held before may die now."""
        self._refs[obj] += 1
        old = self._names.get(name)
        self._names[name] = obj
        if old is not None:
            self._unref(old)

    def unbind(self, name: str) -> None:
        obj = self._names.pop(name, None)
        if obj is not None:
            self._unref(obj)

    def _unref(self, obj: int) -> None:
        self._refs[obj] -= 1
        self.drop(obj)

    def temp(self, nbytes: int) -> None:
        """A temporary made and dropped at once (`x.norm().item()`)."""
        self.drop(self.new(nbytes))

    def exit(self) -> None:
        for name in list(self._names):
            self.unbind(name)


def _adam(f: _Frame, params: list[Param], implementation: str) -> None:
    if implementation == "fused":
        return
    if implementation == "foreach":
        # torch._foreach_sqrt(exp_avg_sqs): one new tensor per parameter
        f.drop(f.new(*[p.nbytes for p in params]))
        return
    for p in params:  # denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
        root = f.new(p.nbytes)
        quotient = f.new(p.nbytes)
        f.drop(root)
        f.bind("denom", quotient)   # the previous denom dies only now
    f.exit()


def _adafactor_forloop(f: _Frame, params: list[Param]) -> None:
    for p in params:
        n, d = p.numel, p.itemsize
        f.temp(d)                              # param.norm(2).item()
        if len(p.shape) > 1:
            f.bind("row_mean", f.new(n // p.shape[-1] * d))
            f.bind("col_mean", f.new(n // p.shape[-2] * d))
            estimate = f.new(n * d)            # row_var @ col_var
            f.bind("var_estimate", estimate)
            f.temp(n // (p.shape[-1] * p.shape[-2]) * d)  # row_var.mean
        else:
            f.bind("grad_squared", f.new(n * d))
            estimate = f.new(n * d)            # variance.clone()
            f.bind("var_estimate", estimate)
        f.bind("update", estimate)
        f.temp(d)                              # update.norm(2).item()
    f.exit()


def _adafactor_foreach(f: _Frame, params: list[Param]) -> None:
    for p in params:
        f.temp(p.itemsize)                     # alphas: p.norm(2).item()
    groups: dict[bool, list[Param]] = {}
    for p in params:                           # matrices vs vectors
        groups.setdefault(len(p.shape) > 1, []).append(p)
    for is_matrix, group in groups.items():
        if is_matrix:
            f.drop(f.new(*[p.numel // p.shape[-1] * p.itemsize
                           for p in group]))   # row_means
            f.drop(f.new(*[p.numel // p.shape[-2] * p.itemsize
                           for p in group]))   # col_means
            estimates = f.new(*[p.nbytes for p in group])
            f.bind("var_estimates", estimates)
            f.drop(f.new(*[p.numel // (p.shape[-1] * p.shape[-2])
                           * p.itemsize for p in group]))  # row_var_means
        else:
            f.drop(f.new(*[p.nbytes for p in group]))   # grads_squared
            estimates = f.new(*[p.nbytes for p in group])
            f.bind("var_estimates", estimates)
        f.bind("updates", estimates)
        for p in group:
            f.temp(p.itemsize)                 # update.norm(2).item()
    f.exit()


def _muon(f: _Frame, matrices: list[Param]) -> None:
    """torch.optim.Muon: for-loop only; Newton-Schulz in bfloat16."""
    for p in matrices:
        n, m = p.numel, min(p.shape)
        f.bind("update", f.new(p.nbytes))      # grad.lerp(buf, momentum)
        if p.itemsize == 2:
            f.bind("ns.ortho", f._names["update"])  # .bfloat16() is a no-op
        else:
            f.bind("ns.ortho", f.new(n * 2))
        norm = f.new(p.itemsize)
        clamped = f.new(p.itemsize)
        f.drop(norm)
        f.drop(clamped)
        for _ in range(5):                     # ns_steps
            f.bind("ns.gram", f.new(m * m * 2))
            f.bind("ns.gram_update", f.new(m * m * 2))
            f.bind("ns.ortho", f.new(n * 2))
        f.bind("result", f._names["ns.ortho"])
        for name in ("ns.gram", "ns.gram_update", "ns.ortho"):
            f.unbind(name)
        f.bind("update", f._names["result"])
        f.unbind("result")
    f.exit()


def step_peak_extra(optimizer: str, implementation: str,
                    params: list[Param]) -> int:
    """The most bytes `optimizer.step()` allocates above its state, at
    steady state (every state tensor exists: step >= 2)."""
    check(optimizer, implementation)
    f = _Frame()
    if optimizer in ("adam", "adamw", "amsgrad"):
        _adam(f, params, implementation)
    elif optimizer == "adafactor":
        if implementation == "foreach":
            _adafactor_foreach(f, params)
        else:
            _adafactor_forloop(f, params)
    elif optimizer == "muon":
        matrices, others = muon_split(params)
        _muon(f, matrices)
        _adam(f, others, implementation)
    # SGD (with or without momentum) updates in place; so do the fused
    # kernels and bitsandbytes' 8-bit step.
    return f.peak
