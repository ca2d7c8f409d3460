"""The memory numbers of the cheat sheet, computed by the code the chapters
test.

* `STATE_TENSORS` and `state_tensors`: k, the full-size tensors an optimizer
  keeps per parameter, typed once and read off a live optimizer (chapters 2
  and 3 count them the same way);
* `bytes_per_param(recipe, optimizer)`: where the persistent bytes of one
  parameter go under each precision recipe, by formula, and
  `measured_bytes_per_param`, the same read off a live model trained one step
  under that recipe;
* `step_extra(optimizer, implementation)`: what one step holds at its peak
  on top of the persistent bytes (chapter 3b), counted with LiveBytes.

Chapter 7's `snippets/precision.py` has a `bytes_per_param` of the same
shape; `tests/test_study_kit.py` compares the two once both exist.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from snippets.accounting import count_params
from snippets.models import TinyMLP
from snippets.step_peak import step_extra_bytes


# --8<-- [start:recipes]
SGD, Adam, AdamW = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
OPTIMIZERS = {  # name -> constructor(params, **implementation flags)
    "SGD": lambda ps, **kw: SGD(ps, lr=0.1, **kw),
    "SGD momentum": lambda ps, **kw: SGD(ps, lr=0.1, momentum=0.9, **kw),
    "Adam": lambda ps, **kw: Adam(ps, lr=1e-3, **kw),
    "AdamW": lambda ps, **kw: AdamW(ps, lr=1e-3, **kw),
    "Adam AMSGrad": lambda ps, **kw: Adam(ps, lr=1e-3, amsgrad=True, **kw),
}
# k: full-size state tensors per parameter (Adam also keeps a 4-byte `step`
# per parameter *tensor*, which is not per parameter and not counted here).
STATE_TENSORS = {"SGD": 0, "SGD momentum": 1, "Adam": 2, "AdamW": 2,
                 "Adam AMSGrad": 3}
# Bytes per scalar of what lives from step to step: (weights, gradients,
# fp32 master copy, one state element). torch.optim makes its state like
# the tensor it updates, so an fp32 master copy gets fp32 state.
RECIPES = {
    "fp32":               (4, 4, 0, 4),
    "autocast bf16":      (4, 4, 0, 4),  # + a bf16 copy while a step runs
    "bf16 + fp32 master": (2, 2, 4, 4),
    "pure bf16":          (2, 2, 0, 2),
}


def bytes_per_param(recipe: str, optimizer: str = "AdamW") -> dict:
    """Persistent bytes per parameter under `recipe`, by what holds them."""
    params, grads, master, element = RECIPES[recipe]
    parts = {"params": params, "grads": grads, "master": master,
             "state": STATE_TENSORS[optimizer] * element}
    return {**parts, "total": sum(parts.values()),
            # not in total: the bf16 weight copies autocast caches
            "autocast_copies": 2 if recipe.startswith("autocast") else 0}
# --8<-- [end:recipes]


def state_tensors(optimizer: str) -> int:
    """k, read off a live optimizer after one step on TinyMLP."""
    model, opt, _ = _one_step("fp32", optimizer)
    full_size = sum(value.numel() for p, state in opt.state.items()
                    for value in state.values()
                    if torch.is_tensor(value) and value.shape == p.shape)
    P = count_params(model)
    assert full_size % P == 0, (optimizer, full_size, P)
    return full_size // P


class AutocastCopies(TorchDispatchMode):
    """Bytes of the copies autocast makes of `params` (it caches them until
    its region exits; backward keeps what it needs until it has used it)."""

    def __init__(self, params):
        super().__init__()
        self.pointers = {p.data_ptr() for p in params}
        self.nbytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if (func is torch.ops.aten._to_copy.default
                and args[0].data_ptr() in self.pointers):
            self.nbytes += out.nbytes
        return out


def _one_step(recipe: str, optimizer: str):
    """TinyMLP trained one step under `recipe`: (model, optimizer, bytes)."""
    torch.manual_seed(0)
    model = TinyMLP()
    if recipe in ("bf16 + fp32 master", "pure bf16"):
        model = model.to(torch.bfloat16)
    params = list(model.parameters())
    # bf16 + fp32 master: the optimizer steps fp32 copies of the weights
    master = ([p.detach().float() for p in params]
              if recipe == "bf16 + fp32 master" else [])
    opt = OPTIMIZERS[optimizer](master or params)
    x, y = torch.randn(32, 128, dtype=params[0].dtype), torch.arange(32) % 10
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16)
                if recipe.startswith("autocast") else contextlib.nullcontext())
    with AutocastCopies(params) as copies:
        with autocast:
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
    nbytes = {"params": sum(p.nbytes for p in params),
              "grads": sum(p.grad.nbytes for p in params),
              "master": sum(m.nbytes for m in master),
              "autocast_copies": copies.nbytes}
    for p, m in zip(params, master):
        m.grad = p.grad.float()  # widened, stepped in fp32, then dropped
    opt.step()
    for p, m in zip(params, master):
        p.data.copy_(m)  # rounded to bf16 once a step
    nbytes["state"] = sum(value.nbytes for p in opt.state
                          for value in opt.state[p].values()
                          if torch.is_tensor(value) and value.dim() > 0)
    return model, opt, nbytes


def measured_bytes_per_param(recipe: str, optimizer: str = "AdamW") -> dict:
    """`bytes_per_param`'s dictionary, read off a live model and optimizer."""
    model, _, nbytes = _one_step(recipe, optimizer)
    P = count_params(model)
    assert all(n % P == 0 for n in nbytes.values()), nbytes
    parts = {key: nbytes[key] // P
             for key in ("params", "grads", "master", "state")}
    return {**parts, "total": sum(parts.values()),
            "autocast_copies": nbytes["autocast_copies"] // P}


# --8<-- [start:step_extra]
IMPLEMENTATIONS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True},
                   "fused": {"fused": True}}


def step_extra(optimizer: str, implementation: str, *, tensors: int = 8,
               numel: int = 1024) -> float:
    """Extra bytes at the peak of one step (the state already exists), in
    units of one parameter tensor, over `tensors` equal fp32 tensors."""
    params = [torch.nn.Parameter(torch.randn(numel)) for _ in range(tensors)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = OPTIMIZERS[optimizer](params, **IMPLEMENTATIONS[implementation])
    opt.step()  # makes the state
    return step_extra_bytes(opt) / params[0].nbytes
# --8<-- [end:step_extra]


# --8<-- [start:saved_bf16_weights]
def saved_bf16_weights(input_requires_grad: bool) -> list[bool]:
    """For each of TinyMLP's two layers, whether backward keeps the bf16
    copy autocast made of its weight (a saved bf16 tensor of the weight's
    shape, or of its transpose)."""
    torch.manual_seed(0)
    model = TinyMLP()
    weights = [m.weight for m in model.modules()
               if isinstance(m, torch.nn.Linear)]
    x = torch.randn(8, 128, requires_grad=input_requires_grad)
    saved = []

    def pack(t):
        saved.append((t.dtype, tuple(t.shape)))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)
    shapes = {shape for dtype, shape in saved if dtype == torch.bfloat16}
    return [tuple(w.shape) in shapes or tuple(w.T.shape) in shapes
            for w in weights]
# --8<-- [end:saved_bf16_weights]
