"""Where the bytes go in mixed-precision training.

Four recipes and their bytes per parameter (`bytes_per_param`, read by the
cheat sheet too), the exact bytes of each optimizer's state tensors
(`state_tensor_nbytes`), fp32 master weights for a bf16 model
(`MasterWeights`) and a counter for autocast's cached weight copies
(`AutocastCasts`).
"""

import contextlib
import math
import weakref

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from snippets.quantized_state import BLOCK, adam8bit_state_nbytes
from snippets.small_states import adafactor_state_nbytes

# --8<-- [start:recipes]
# Bytes per parameter that each recipe keeps for the whole run:
# (weights, gradients, fp32 master copy, one optimizer-state element,
# Kahan compensation). torch.optim makes its state like the tensor it
# updates: fp32 weights or an fp32 master copy get fp32 state.
RECIPES = {
    "fp32":               (4, 4, 0, 4, 0),
    "autocast bf16":      (4, 4, 0, 4, 0),   # + 2 while a step runs
    "bf16 + fp32 master": (2, 2, 4, 4, 0),   # the ZeRO paper's 16
    "pure bf16":          (2, 2, 0, 2, 0),
    "pure bf16 + Kahan":  (2, 2, 0, 2, 2),
}
FULL_SIZE_STATES = {"SGD": 0, "SGD momentum": 1, "Muon": 1,
                    "Adam": 2, "AdamW": 2}


def bytes_per_param(recipe: str, optimizer: str = "AdamW") -> dict:
    """Bytes per parameter of a large weight matrix, by what holds them.

    Adam8bit: uint8 moments and one fp32 absmax per 256 values, whatever
    the recipe. Adafactor: 4(m + n) bytes for an m x n matrix, so per
    parameter it tends to 0. Muon: the hidden matrices' one buffer.
    """
    params, grads, master, element, kahan = RECIPES[recipe]
    if optimizer == "Adam8bit":
        state = 2 * (1 + 4 / BLOCK)
    elif optimizer == "Adafactor":
        state = 0
    else:
        state = FULL_SIZE_STATES[optimizer] * element
    parts = {"params": params, "grads": grads, "master": master,
             "state": state, "kahan": kahan}
    return {**parts, "total": sum(parts.values()),
            # not in total: bf16 copies autocast makes during forward
            "autocast_copies": 2 if recipe.startswith("autocast") else 0}
# --8<-- [end:recipes]

# fp16 autocast keeps what bf16 autocast keeps (GradScaler adds 2 scalars).
RECIPES["autocast fp16"] = RECIPES["autocast bf16"]


def state_tensor_nbytes(optimizer: str, shape, itemsize: int, *,
                        step_counter: bool = True) -> list[int]:
    """Bytes of each state tensor `optimizer` keeps for one parameter.

    `step_counter`: count Adam's and Adafactor's 0-d fp32 `step` (on the
    CPU it is always there; on a GPU it lives there only with fused=True).
    Adam8bit's two shared code books are not per parameter: add
    quantized_state.ADAM8BIT_SHARED_NBYTES once per optimizer.
    """
    n = math.prod(shape)
    step = [4] if step_counter else []
    if optimizer in ("Adam", "AdamW"):
        return [n * itemsize, n * itemsize] + step
    if optimizer in ("SGD momentum", "Muon"):
        return [n * itemsize]
    if optimizer == "SGD":
        return []
    if optimizer == "Adafactor":
        return adafactor_state_nbytes(shape, itemsize) + step
    if optimizer == "Adam8bit":
        return adam8bit_state_nbytes(n)
    if optimizer == "Bf16AdamW kahan":
        return [n * itemsize] * 3               # m, v, compensation
    if optimizer.startswith("Bf16AdamW"):
        return [n * itemsize] * 2
    raise ValueError(f"unknown optimizer {optimizer!r}")


# --8<-- [start:master_weights]
class MasterWeights:
    """bf16 weights for forward and backward; fp32 copies that the
    optimizer updates (4 more bytes per parameter, and fp32 state).

    After backward, each bf16 gradient is widened into its fp32 master's
    .grad; the optimizer steps the masters in fp32, where small updates
    survive; the result is rounded once into the bf16 weights.
    """

    def __init__(self, params, make_optimizer):
        self.params = list(params)
        self.master = [p.detach().float() for p in self.params]
        self.optimizer = make_optimizer(self.master)

    @torch.no_grad()
    def step(self):
        for p, m in zip(self.params, self.master):
            if p.grad is not None:
                m.grad, p.grad = p.grad.float(), None
        self.optimizer.step()
        for p, m in zip(self.params, self.master):
            m.grad = None
            p.copy_(m)                    # rounds to bf16, once a step

    def zero_grad(self, set_to_none: bool = True):
        for p in self.params:
            p.grad = None
# --8<-- [end:master_weights]


def prepare(recipe: str, model: nn.Module, make_optimizer):
    """The model in the recipe's dtype, and what steps it (an optimizer,
    a list of optimizers, or MasterWeights)."""
    if recipe in ("bf16 + fp32 master", "pure bf16", "pure bf16 + Kahan"):
        model = model.to(torch.bfloat16)
    if recipe == "bf16 + fp32 master":
        return model, MasterWeights(model.parameters(), make_optimizer)
    return model, make_optimizer(list(model.parameters()))


def forward_context(recipe: str, device_type: str):
    """autocast for the autocast recipes; nothing for the others."""
    if recipe == "autocast bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if recipe == "autocast fp16":
        return torch.autocast(device_type, dtype=torch.float16)
    return contextlib.nullcontext()


# --8<-- [start:autocast_casts]
class AutocastCasts(TorchDispatchMode):
    """Watch the copies autocast makes of `model`'s parameters.

    Autocast caches the bf16 copy of a weight (a leaf that requires grad)
    at its first use, until the outermost autocast region exits; autograd
    keeps the copies backward needs until backward has used them.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.params = {p.data_ptr() for p in model.parameters()}
        self.copies = []                    # weak: we must not keep them

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if (func is torch.ops.aten._to_copy.default
                and args[0].data_ptr() in self.params):
            self.copies.append(weakref.ref(out))
        return out

    def alive_nbytes(self) -> int:
        """Bytes of the copies still held (by autocast or by autograd)."""
        return sum(c().nbytes for c in self.copies if c() is not None)
# --8<-- [end:autocast_casts]
