"""Mixed-precision recipes and smaller optimizer states on one model.

For a GPT-shaped model without attention (embedding, residual MLP blocks
with LayerNorm, untied head), each configuration (a precision recipe and an
optimizer, fused where torch has it) is built fresh and trained for a few
steps. Measured in the steady state, from step 3 on: the bytes the
allocator holds for weights, for gradients, for optimizer state (with any
fp32 master copy, Kahan buffer or scaler), the peak of one training step,
and its median time. Each measured byte count sits beside its prediction
from the shapes alone (snippets/precision.py, every tensor rounded up to
the allocator's 512-byte blocks); the tests check they are equal.

8-bit Adam comes from bitsandbytes: on CUDA it must be importable (put the
unpacked wheel on PYTHONPATH); on a CPU without it, its row is None.
"""

from __future__ import annotations

import gc
import importlib.util
import math

import torch
import torch.nn.functional as F
from torch import nn

from snippets.cuda_memory import MemoryMeter, allocator_bytes
from snippets.low_precision_updates import Bf16AdamW
from snippets.precision import (
    RECIPES, MasterWeights, bytes_per_param, forward_context, prepare,
    state_tensor_nbytes,
)
from snippets.quantized_state import (
    ADAM8BIT_SHARED_NBYTES, dynamic_map, quantize_blockwise,
)
from snippets.small_states import muon_and_adamw
from snippets.timing import median_ms

SIZES = {
    # 8 blocks of width 1024 and a vocabulary of 8192: 83.9 M parameters,
    # 336 MB in fp32; 8 sequences of 512 tokens a step.
    "full": {"vocab": 8192, "width": 1024, "layers": 8, "batch": 8,
             "seq": 512, "repeat": 10},
    "smoke": {"vocab": 64, "width": 32, "layers": 1, "batch": 2, "seq": 8,
              "repeat": 2},
}
# Our teaching AdamW keeps what torch's AdamW keeps (Kahan: the recipe's)
FORMULA_NAMES = {"Bf16AdamW kahan": "AdamW", "Bf16AdamW stochastic": "AdamW"}
WARMUP_STEPS = 2          # measure from step 3: the state exists by then

# (recipe, optimizer): the rows of the capture
CONFIGS = [
    ("fp32", "AdamW"),
    ("autocast bf16", "AdamW"),
    ("bf16 + fp32 master", "AdamW"),
    ("pure bf16", "AdamW"),
    ("pure bf16 + Kahan", "Bf16AdamW kahan"),
    ("pure bf16", "Bf16AdamW stochastic"),
    ("autocast fp16", "AdamW"),
    ("autocast bf16", "Adafactor"),
    ("autocast bf16", "Muon"),
    ("autocast bf16", "Adam8bit"),
]


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, x):
        return x + self.down(F.gelu(self.up(self.norm(x))))


class TokenMLP(nn.Module):
    """Embedding, residual MLP blocks, final norm, untied head."""

    def __init__(self, vocab: int, width: int, layers: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, tokens):
        h = self.embed(tokens)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def make_optimizer(name: str, model: nn.Module):
    """The optimizer(s) of a configuration: fused where torch has it."""
    if name == "AdamW":
        return lambda params: torch.optim.AdamW(params, lr=1e-4, fused=True)
    if name.startswith("Bf16AdamW"):
        rounding = name.split()[1]
        return lambda params: Bf16AdamW(params, lr=1e-4, rounding=rounding)
    if name == "Adafactor":      # no fused version; foreach on a GPU
        return lambda params: torch.optim.Adafactor(params, lr=1e-2)
    if name == "Muon":
        return lambda params: muon_and_adamw(model, adamw_lr=1e-4,
                                             fused=True)
    if name == "Adam8bit":
        import bitsandbytes as bnb
        return lambda params: bnb.optim.Adam8bit(params, lr=1e-4)
    raise ValueError(name)


def optimizers_of(stepper) -> list:
    if isinstance(stepper, MasterWeights):
        return [stepper.optimizer]
    return stepper if isinstance(stepper, list) else [stepper]


# --8<-- [start:predict]
def predict(recipe: str, optimizer: str, shapes: dict[str, list[int]],
            linear: list[str], hidden: list[str]) -> dict:
    """Allocator bytes of weights, gradients, state and autocast's cache,
    from the parameter shapes alone: every tensor rounded up to 512 bytes.

    linear: the parameters of nn.Linear modules (autocast casts them);
    hidden: the 2-D hidden weights (Muon's; AdamW takes the others).
    """
    weight_size, _, master, element, _ = RECIPES[recipe]
    n = {name: math.prod(shape) for name, shape in shapes.items()}
    params = sum(allocator_bytes(weight_size * k) for k in n.values())
    state = []
    for name, shape in shapes.items():
        which = optimizer
        if optimizer == "Muon" and name not in hidden:
            which = "AdamW"
        fused_step = which == "AdamW"          # fused: `step` on the GPU
        state += state_tensor_nbytes(which, shape, element,
                                     step_counter=fused_step)
        if master:
            state.append(master * n[name])
    if optimizer == "Adam8bit":
        state += ADAM8BIT_SHARED_NBYTES
    if recipe == "autocast fp16":
        state += [4, 4]                        # GradScaler's scale, tracker
    cache = [2 * n[name] for name in linear] if "autocast" in recipe else []
    return {"params": params, "grads": params,  # grads: like the weights
            "state": sum(allocator_bytes(b) for b in state),
            "autocast_cache": sum(allocator_bytes(b) for b in cache)}
# --8<-- [end:predict]


def _batch(cfg: dict, device: torch.device, seed: int):
    g = torch.Generator().manual_seed(seed)
    shape = (cfg["batch"], cfg["seq"])
    tokens = torch.randint(0, cfg["vocab"], shape, generator=g)
    targets = torch.randint(0, cfg["vocab"], shape, generator=g)
    return tokens.to(device), targets.to(device)


def measure(recipe: str, optimizer: str, cfg: dict,
            device: torch.device) -> dict:
    meter = MemoryMeter(device)
    tokens, targets = _batch(cfg, device, seed=1)   # not counted below
    gc.collect()
    meter.release_cache()
    base = meter.allocated()
    torch.manual_seed(0)
    model = TokenMLP(cfg["vocab"], cfg["width"], cfg["layers"]).to(device)
    if RECIPES[recipe][0] == 2:
        model = model.to(torch.bfloat16)
    with_params = meter.allocated()
    model, stepper = prepare(recipe, model,
                             make_optimizer(optimizer, model))
    optimizers = optimizers_of(stepper)
    scaler = (torch.amp.GradScaler(device.type)
              if recipe == "autocast fp16" else None)

    def forward_backward():
        with forward_context(recipe, device.type):
            logits = model(tokens)
        loss = F.cross_entropy(logits.float().flatten(0, 1),
                               targets.flatten())
        (scaler.scale(loss) if scaler else loss).backward()

    def optimizer_step():
        if scaler:
            for o in optimizers:
                scaler.step(o)
            scaler.update()
        elif isinstance(stepper, MasterWeights):
            stepper.step()
        else:
            for o in optimizers:
                o.step()
        model.zero_grad(set_to_none=True)

    def train_step():
        forward_backward()
        optimizer_step()

    for _ in range(WARMUP_STEPS):
        train_step()
    persistent = meter.allocated()          # weights + state, grads None
    meter.reset_peak()
    forward_backward()                       # step 3
    with_grads = meter.allocated()
    optimizer_step()
    peak = meter.peak()
    ms = median_ms(train_step, device, warmup=0, repeat=cfg["repeat"])

    cache = None
    if "autocast" in recipe and meter.cuda:  # casts of weights, held
        with torch.no_grad():                # until autocast exits
            with forward_context(recipe, device.type):
                out = model(tokens)
                inside = meter.allocated()
            cache = inside - meter.allocated()
        del out

    shapes = {n: list(p.shape) for n, p in model.named_parameters()}
    linear = [f"{m}.{n}" for m, mod in model.named_modules()
              if isinstance(mod, nn.Linear)
              for n, _ in mod.named_parameters()]
    hidden = [n for n, p in model.named_parameters()
              if p.ndim == 2 and n.startswith("blocks.")]
    P = sum(p.numel() for p in model.parameters())
    del model, stepper, optimizers, scaler
    gc.collect()
    meter.release_cache()

    def minus(a, b):
        return None if a is None else a - b

    return {
        "recipe": recipe,
        "optimizer": optimizer,
        "P": P,
        "formula_bytes_per_param": bytes_per_param(
            recipe, FORMULA_NAMES.get(optimizer, optimizer))["total"],
        "params_bytes": minus(with_params, base),
        "state_bytes": minus(persistent, with_params),
        "grads_bytes": minus(with_grads, persistent),
        "autocast_cache_bytes": cache,
        "persistent_bytes": minus(persistent, base),
        "peak_bytes": minus(peak, base),
        "step_ms": ms,
        "predicted": predict(recipe, optimizer, shapes, linear, hidden),
    }


def quantiser_agreement(device: torch.device) -> dict | None:
    """Our block-wise quantiser against bitsandbytes' on the same data."""
    if not bitsandbytes_available():
        return None
    import bitsandbytes.functional as bnbf
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1 << 20, generator=g)
    x = (x * torch.exp(2 * torch.randn(1 << 20, generator=g))).to(device)
    code = dynamic_map(signed=True).to(device)
    ours, absmax = quantize_blockwise(x, code)
    theirs, state = bnbf.quantize_blockwise(x, code=code, blocksize=256)
    gap = (ours.int() - theirs.int()).abs()
    return {"numel": x.numel(),
            "same_absmax": bool(torch.equal(absmax, state.absmax)),
            "same_index_fraction": (gap == 0).float().mean().item(),
            "max_index_gap": int(gap.max())}


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    have_bnb = bitsandbytes_available()
    if device.type == "cuda" and not have_bnb:
        raise RuntimeError(
            "bitsandbytes is not importable: put the unpacked wheel on "
            "PYTHONPATH (PYTHONPATH=.:.gpu-vendor python3 -m examples ...)")
    configs = [(r, o) for r, o in CONFIGS if have_bnb or o != "Adam8bit"]
    # Warm up every code path once at smoke size first: cuBLAS workspaces
    # and library handles stay allocated and must not count as state.
    if device.type == "cuda":
        for recipe, optimizer in configs:
            measure(recipe, optimizer, dict(SIZES["smoke"], repeat=1), device)
    rows = [measure(r, o, cfg, device) if (r, o) in configs else
            {"recipe": r, "optimizer": o, "skipped": "no bitsandbytes"}
            for r, o in CONFIGS]
    version = None
    if have_bnb:
        import bitsandbytes
        version = bitsandbytes.__version__
    return {"model": {k: cfg[k] for k in ("vocab", "width", "layers",
                                           "batch", "seq")},
            "warmup_steps": WARMUP_STEPS,
            "bitsandbytes": version,
            "quantiser": quantiser_agreement(device),
            "rows": rows}


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
