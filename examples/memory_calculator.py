"""The memory calculator against the GPU: predicted and measured peak of a
training step, for models of this repository across optimizers,
precisions, checkpointing, micro-batches and accumulation.

For each configuration, estimate() traces the step on fake tensors (no GPU
memory) and predicts the peak of torch.cuda.max_memory_allocated() over a
steady-state step and the memory that persists between steps; then the
model is built on the GPU and trained three steps (snippets/memcalc/
training.py), and the third is measured, phase by phase, above what was
allocated before the model was built. cuBLAS workspaces are released
before each configuration, so that each starts as a fresh process would.
Beside ours, two published estimates: accelerate's 4x rule and Korthikanti
et al.'s per-layer formula (transformers only).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time

import torch

from snippets.checkpointing import block_stack
from snippets.memcalc.baselines import accelerate_rule, korthikanti
from snippets.memcalc.models import (ConvNet, gpt_case, image_loss,
                                     mlp_loss)
from snippets.memcalc.tracer import estimate
from snippets.memcalc.training import Trainer
from snippets.memcalc.transformer import Shape, estimate_transformer

GPT = {"full": dict(vocab=32768, seq=1024, layers=6, hidden=768, heads=12),
       "smoke": dict(vocab=96, seq=16, layers=2, hidden=32, heads=4)}
MLP = {"full": dict(width=2048, depth=8, tokens=1024),   # per batch unit
       "smoke": dict(width=32, depth=2, tokens=32)}
CONV = {"full": dict(width=64, size=64), "smoke": dict(width=4, size=16)}

# (family, attention or None, query heads per KV head, checkpointing,
#  micro-batch at full size (GPT: sequences, MLP: 1024-token chunks,
#  conv net: images), optimizer, precision, implementation, micro-batches)
CONFIGS = [
    ("gpt", "sdpa", 1, "none", 8, "adamw", "fp32", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 4, "adamw", "fp32", "foreach", 1),
    ("gpt", "eager", 1, "none", 8, "adamw", "fp32", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 8, "adamw", "bf16-autocast", "foreach", 1),
    ("gpt", "eager", 1, "none", 8, "adamw", "bf16-autocast", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 8, "adamw", "bf16-mixed", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 8, "adamw", "bf16", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 8, "sgd", "fp32", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 8, "sgd-momentum", "fp32", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 8, "adam", "fp32", "for-loop", 1),
    ("gpt", "sdpa", 1, "none", 8, "adamw", "fp32", "fused", 1),
    ("gpt", "sdpa", 1, "none", 8, "amsgrad", "fp32", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 8, "adafactor", "fp32", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 8, "muon", "fp32", "foreach", 1),
    ("gpt", "sdpa", 1, "full", 8, "adamw", "fp32", "foreach", 1),
    ("gpt", "sdpa", 1, "selective", 8, "adamw", "fp32", "foreach", 1),
    ("gpt", "eager", 1, "selective", 4, "adamw", "fp32", "foreach", 1),
    ("gpt", "sdpa", 1, "full", 16, "adamw", "bf16-autocast", "foreach", 1),
    ("gpt", "sdpa", 3, "none", 8, "adamw", "fp32", "foreach", 1),
    ("gpt", "sdpa", 3, "none", 8, "adamw", "bf16-autocast", "foreach", 1),
    ("gpt", "sdpa", 1, "none", 4, "adamw", "fp32", "foreach", 2),
    ("gpt", "sdpa", 1, "none", 1, "adamw", "fp32", "foreach", 1),
    ("mlp", None, 1, "none", 16, "adamw", "fp32", "foreach", 1),
    ("mlp", None, 1, "none", 16, "sgd-momentum", "bf16-autocast",
     "foreach", 1),
    ("mlp", None, 1, "none", 16, "adam", "fp32", "for-loop", 1),
    ("mlp", None, 1, "none", 16, "adafactor", "bf16", "for-loop", 1),
    ("mlp", None, 1, "none", 1, "adamw", "fp32", "foreach", 1),
    ("mlp", None, 1, "none", 1, "adamw", "fp32", "for-loop", 1),
    ("conv", None, 1, "none", 64, "adamw", "fp32", "foreach", 1),
    ("conv", None, 1, "none", 128, "sgd-momentum", "bf16-autocast",
     "foreach", 1),
]
SIZES = {"full": {"configs": len(CONFIGS)},
         "smoke": {"configs": len(CONFIGS)}}   # the same, on tiny models
SDPA_NAMES = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn"}


def case(config: tuple, size: str):
    """(name, build_model, loss_fn, facts for the baselines)."""
    family, attention, group, ckpt, batch, optimizer, precision, impl, \
        micro = config
    batch = batch if size == "full" else 2
    if family == "gpt":
        shape = GPT[size]
        kv_heads = shape["heads"] // group if group > 1 else None
        if size == "smoke" and kv_heads:
            kv_heads = 2
        build, loss = gpt_case(**shape, kv_heads=kv_heads,
                               attention=attention, checkpointing=ckpt,
                               batch=batch)
        gqa = " GQA" if kv_heads else ""
        name = f"GPT {attention}{gqa} b{batch}"
        facts = {**shape, "batch": batch, "checkpointing": ckpt,
                 "kv_heads": kv_heads or 0}
    elif family == "mlp":
        shape = MLP[size]
        tokens = shape["tokens"] * (batch if size == "full" else 1)

        def build():
            return block_stack(shape["width"], shape["depth"])

        def loss(model):
            return mlp_loss(model, tokens, shape["width"])
        name, facts = f"MLP blocks {tokens} tokens", None
    else:
        shape = CONV[size]

        def build():
            return ConvNet(shape["width"])

        def loss(model):
            return image_loss(model, batch, shape["size"])
        name, facts = f"conv net b{batch}", None
    if ckpt != "none":
        name += f" ckpt {ckpt}"
    if micro > 1:
        name += f" x{micro} accum"
    name += f", {optimizer}"
    if impl != "foreach":
        name += f" {impl}"
    return f"{name}, {precision}", build, loss, facts


def _formula(facts: dict, config: tuple) -> dict:
    """The closed form's answer (the command's, the page's)."""
    _, attention, _, ckpt, _, optimizer, precision, impl, micro = config
    result = estimate_transformer(Shape(
        layers=facts["layers"], hidden=facts["hidden"],
        heads=facts["heads"], vocab=facts["vocab"], seq=facts["seq"],
        kv_heads=facts["kv_heads"], batch=facts["batch"],
        optimizer=optimizer, precision=precision, implementation=impl,
        attention=attention, checkpointing=ckpt, micro_batches=micro))
    return {"max_bytes": result["peak"], "phase": result["phase"],
            "persistent_bytes": result["persistent"]}


def _phase_peaks(trainer: Trainer, base: int) -> dict[str, int]:
    peaks = {"forward": 0, "backward": 0, "optimizer step": 0}

    def mark(phase):
        torch.cuda.synchronize()
        peaks[phase] = max(peaks[phase],
                           torch.cuda.max_memory_allocated() - base)
        torch.cuda.reset_peak_memory_stats()

    torch.cuda.reset_peak_memory_stats()
    for _ in range(trainer.micro_batches):
        trainer.loss = trainer.forward()
        mark("forward")
        trainer.backward()
        mark("backward")
    trainer.update()
    mark("optimizer step")
    return peaks


def _fresh() -> int:
    gc.collect()
    torch._C._cuda_clearCublasWorkspaces()   # as a fresh process starts
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    return torch.cuda.memory_allocated()


def measure(build, loss, optimizer, precision, impl, micro) -> dict:
    base = _fresh()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = build()
    trainer = Trainer(model, loss, optimizer, precision, impl, micro)
    trainer.step()
    trainer.step()                       # steps 1 and 2: state exists
    attention = None
    for module in model.modules():       # which SDPA kernel CUDA picks
        if hasattr(module, "kv_heads") and not module.eager:
            attention = module
    chosen = _sdpa_choice(attention, precision) if attention else None
    peaks = _phase_peaks(trainer, base)  # step 3, measured
    trainer.loss = None
    torch.cuda.synchronize()
    persistent = torch.cuda.memory_allocated() - base
    del trainer, model
    _fresh()
    phase = max(peaks, key=peaks.get)
    return {"peak_bytes": peaks[phase], "persistent_bytes": persistent,
            "phase": phase, "phase_peak_bytes": peaks,
            "attention": chosen}


def _sdpa_choice(attention, precision: str) -> str:
    w = attention.qkv.weight
    dtype = torch.bfloat16 if precision != "fp32" else w.dtype
    d, s = attention.head_dim, 1024

    def t(heads):
        return torch.empty(2, heads, s, d, device="cuda", dtype=dtype,
                           requires_grad=True)
    q, kv = t(attention.heads), t(attention.kv_heads)
    choice = torch._fused_sdp_choice(
        q, kv, kv, is_causal=True,
        enable_gqa=attention.heads != attention.kv_heads)
    return SDPA_NAMES.get(choice, str(choice))


def calibration() -> dict:
    """The workspaces a fresh step leaves, measured once."""
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        base = _fresh()
        lin = torch.nn.Linear(256, 256, device="cuda", dtype=dtype)
        x = torch.randn(64, 256, device="cuda", dtype=dtype)
        lin(x).float().sum().backward()
        kept = sum(p.nbytes + p.grad.nbytes for p in lin.parameters())
        torch.cuda.synchronize()
        out[str(dtype)[6:]] = (torch.cuda.memory_allocated() - base
                               - kept - x.nbytes)
        del lin, x
    out["after_clear"] = _fresh()
    return {"workspace_bytes": out}


def run(device: torch.device, size: str) -> dict:
    cuda = device.type == "cuda"
    results = []
    for config in CONFIGS[: SIZES[size]["configs"]]:
        name, build, loss, facts = case(config, size)
        family, _, _, ckpt, _, optimizer, precision, impl, micro = config
        est = estimate(build, loss, optimizer=optimizer,
                       precision=precision, implementation=impl,
                       micro_batches=micro)
        itemsize = 2 if precision in ("bf16", "bf16-mixed") else 4
        row = {
            "name": name, "family": family, "optimizer": optimizer,
            "precision": precision, "implementation": impl,
            "checkpointing": ckpt, "micro_batches": micro,
            "parameters": est.parameters,
            "predicted": {"max_bytes": est.peak, "phase": est.phase,
                          "persistent_bytes": est.persistent,
                          "breakdown": est.breakdown,
                          "phase_max_bytes": est.phase_peaks,
                          "attention": est.attention,
                          "seconds": round(est.seconds, 3)},
            "accelerate_bytes": accelerate_rule(est.parameters, itemsize),
            "korthikanti_bytes": None if facts is None else korthikanti(
                est.parameters, facts["layers"], facts["seq"],
                facts["batch"], facts["hidden"], facts["heads"], ckpt),
            "formula": None if facts is None else _formula(
                facts, config),
        }
        if cuda:
            row["measured"] = measure(build, loss, optimizer, precision,
                                      impl, micro)
        else:
            row["measured"] = {"peak_bytes": None, "persistent_bytes": None,
                               "phase": None, "phase_peak_bytes": None,
                               "attention": None}
        results.append(row)
    return {"configs": results,
            "calibration": calibration() if cuda else None}


def _error(predicted: int | None, measured: int | None) -> str:
    if predicted is None or measured is None:
        return "-"
    return f"{100 * (predicted - measured) / measured:+.1f}%"


def table(data: dict) -> str:
    """A plain-text table of the run, for a terminal."""
    gib = 2 ** 30
    lines = [f"{'configuration':52} {'measured':>8} {'ours':>8} {'err':>6}"
             f" {'formula':>7} {'phase (measured/ours)':>24}"
             f" {'4x rule':>7} {'Korth.':>7}"]
    errors = []
    for r in data["configs"]:
        m, p, f = r["measured"], r["predicted"], r["formula"]
        meas = m["peak_bytes"]
        if meas is not None:
            errors.append((abs(p["max_bytes"] - meas) / meas, r["name"]))
        lines.append(
            f"{r['name'][:52]:52} "
            f"{'-' if meas is None else f'{meas / gib:.3f}':>8} "
            f"{p['max_bytes'] / gib:8.3f} {_error(p['max_bytes'], meas):>6}"
            f" {_error(f and f['max_bytes'], meas):>7} "
            f"{(m['phase'] or '-') + ' / ' + p['phase']:>24} "
            f"{_error(r['accelerate_bytes'], meas):>7} "
            f"{_error(r['korthikanti_bytes'], meas):>7}")
    if errors:
        worst = max(errors)
        lines.append(f"median |error| "
                     f"{100 * statistics.median(e for e, _ in errors):.1f}%,"
                     f" worst {100 * worst[0]:.1f}% ({worst[1]})")
    return "\n".join(lines)


if __name__ == "__main__":
    import json

    size = sys.argv[1] if len(sys.argv) > 1 else "smoke"
    if size not in SIZES:
        sys.exit(f"error: size must be one of {', '.join(SIZES)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    data = run(device, size)
    print(table(data))
    print(f"{time.perf_counter() - start:.1f} s")
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as handle:
            json.dump(data, handle, indent=1)
