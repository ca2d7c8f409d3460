"""Activation checkpointing, measured: peak memory and step time for every strategy.

Two models where activations dominate. "blocks" is a stack of transformer-like MLP blocks
(LayerNorm, d -> 4d, GELU, 4d -> d, residual), run five ways: no checkpointing, one checkpoint
around everything, checkpoint_sequential over a sweep of segment counts, a checkpoint per block,
and selective checkpointing that saves matmul outputs. "uniform" is the seed's flat DeepMLP,
whose layers all keep the same bytes, so Chen et al.'s sqrt(n) analysis applies exactly; it is
swept over segment counts.

For each strategy: the allocator's peak above the persistent baseline and its bytes held after
forward, the median ms of a training step and of a forward alone, the same step counted by
LiveBytes (bytes) and FlopCounterMode (matmul FLOPs) as the prediction, and whether the
gradients equal those without checkpointing.
"""

from __future__ import annotations

import gc
import warnings

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from snippets.checkpointing import (
    DeepMLP,
    block_stack,
    count_step,
    loss_of,
    no_checkpoint,
    one_checkpoint,
    per_block,
    segments,
    selective,
)
from snippets.cuda_memory import MemoryMeter
from snippets.timing import median_ms

SIZES = {
    # blocks: 16 blocks of width 1024 (134 M parameters) on 8192 tokens: about 5 GiB of activations.
    # uniform: the seed's DeepMLP, 32 × (Linear(1024, 1024), GELU) = 64 layers, 2 GiB of activations.
    "full": {"blocks": {"d": 1024, "depth": 16, "tokens": 8192, "segments": [1, 2, 4, 8, 16]},
             "uniform": {"d": 1024, "depth": 32, "tokens": 8192, "segments": [1, 2, 4, 8, 16, 32, 64]},
             "warmup": 1, "repeat": 5},
    "smoke": {"blocks": {"d": 8, "depth": 4, "tokens": 32, "segments": [1, 2, 4]},
              "uniform": {"d": 8, "depth": 4, "tokens": 32, "segments": [1, 2, 4, 8]},
              "warmup": 1, "repeat": 2},
}


def strategies(kind: str, sweep: list[int]) -> list[tuple[str, int | None, object]]:
    """(name, segments, forward) in the order the figure shows them."""
    rows = [("none", None, no_checkpoint), ("one checkpoint", None, one_checkpoint)]
    rows += [(f"segments={k}", k, segments(k)) for k in sweep]
    if kind == "blocks":
        rows += [("per block", None, per_block), ("selective", None, selective)]
    return rows


# --8<-- [start:measure]
def measure(blocks: nn.Sequential, x: torch.Tensor, forward, cfg: dict, device: torch.device) -> dict:
    """Allocator peak above the persistent baseline, and median ms of a step and of a forward."""
    meter = MemoryMeter(device)

    def step() -> None:
        blocks.zero_grad(set_to_none=True)  # gradients are born inside the step, as in training
        loss_of(forward(blocks, x)).backward()

    blocks.zero_grad(set_to_none=True)
    meter.release_cache()
    baseline = meter.allocated()  # parameters, batch, reference gradients: what persists
    meter.reset_peak()
    out = forward(blocks, x)
    after_forward = meter.allocated()  # what forward left for backward
    loss_of(out).backward()
    del out
    peak = meter.peak()
    return {
        "held_bytes": None if baseline is None else after_forward - baseline,
        "peak_bytes": None if baseline is None else peak - baseline,
        "step_ms": median_ms(step, device, warmup=cfg["warmup"], repeat=cfg["repeat"]),
        # a forward alone, with grad enabled: what it saves is built and then dropped
        "forward_ms": median_ms(lambda: forward(blocks, x), device, warmup=cfg["warmup"], repeat=cfg["repeat"]),
    }
# --8<-- [end:measure]


def sweep(kind: str, blocks: nn.Sequential, cfg: dict, device: torch.device) -> dict:
    model_cfg = cfg[kind]
    d, tokens, layers = model_cfg["d"], model_cfg["tokens"], len(blocks)
    x = torch.randn(tokens, d, device=device)
    reference = None
    rows = []
    for name, k, forward in strategies(kind, model_cfg["segments"]):
        counted = count_step(blocks, x, forward)
        grads = [p.grad.clone() for p in blocks.parameters()]  # count_step leaves this step's gradients
        if reference is None:
            reference = grads
        measured = measure(blocks, x, forward, cfg, device)
        rows.append({
            "name": name,
            "segments": k,
            "counted": counted,
            "measured": measured,
            "grads_bitwise_equal": all(torch.equal(g, r) for g, r in zip(grads, reference)),
            "grads_max_abs_diff": max(float((g - r).abs().max()) for g, r in zip(grads, reference)),
        })
        del grads
    none = rows[0]
    for row in rows:  # recompute overhead, in units of one forward pass of the unchecked model
        row["recompute_forwards_counted"] = (
            (row["counted"]["step_flops"] - none["counted"]["step_flops"]) / none["counted"]["forward_flops"])
        row["recompute_forwards_measured"] = (
            (row["measured"]["step_ms"] - none["measured"]["step_ms"]) / none["measured"]["forward_ms"])
    params = sum(p.numel() for p in blocks.parameters())
    return {
        "model": {"d": d, "layers": layers, "tokens": tokens, "params": params, "param_bytes": 4 * params},
        # a: one d-wide fp32 activation (the residual stream, a checkpoint's input);
        # per_layer: what one layer (block) keeps for backward without checkpointing
        "a_bytes": tokens * d * 4,
        "per_layer_bytes": (10 * d + 2) * tokens * 4 if kind == "blocks" else tokens * d * 4,
        "strategies": rows,
    }


def rng_check(device: torch.device) -> dict:
    """Dropout inside a checkpoint: gradients equal the unchecked ones only if RNG state is preserved."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Dropout(0.5), nn.Linear(256, 64)).to(device)
    x = torch.randn(32, 64, device=device)

    def grads(forward) -> list[torch.Tensor]:
        block.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same dropout mask in every forward pass
        loss_of(forward(x)).backward()
        return [p.grad.clone() for p in block.parameters()]

    plain = grads(block)
    result = {}
    for preserve in (True, False):
        ckpt = grads(lambda t: checkpoint(block, t, use_reentrant=False, preserve_rng_state=preserve))
        result[f"preserve_rng_state={preserve}"] = {
            "grads_bitwise_equal": all(torch.equal(a, b) for a, b in zip(ckpt, plain)),
            "grads_max_abs_diff": max(float((a - b).abs().max()) for a, b in zip(ckpt, plain)),
        }
    return result


def omitted_use_reentrant(device: torch.device) -> dict:
    """What this torch does when use_reentrant is not passed: warn (which category) and fall back to?"""
    layer = nn.Linear(8, 8).to(device)
    x = torch.randn(2, 8, device=device, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = checkpoint(layer, x)
            raised = None
        except Exception as error:  # a future torch may raise here, as its warning promises
            out, raised = None, f"{type(error).__name__}: {error}"
    return {
        "raised": raised,
        "warnings": [{"category": w.category.__name__, "message": str(w.message)} for w in caught],
        # the reentrant variant is one autograd Function, CheckpointFunction
        "grad_fn": None if out is None else type(out.grad_fn).__name__,
    }


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    torch.manual_seed(0)
    b = cfg["blocks"]
    blocks = block_stack(b["d"], b["depth"]).to(device)
    result = {"blocks": sweep("blocks", blocks, cfg, device)}
    del blocks
    gc.collect()
    MemoryMeter(device).release_cache()
    u = cfg["uniform"]
    uniform = DeepMLP(u["d"], u["depth"]).seq.to(device)
    result["uniform"] = sweep("uniform", uniform, cfg, device)
    del uniform
    gc.collect()
    result["rng"] = rng_check(device)
    result["use_reentrant_omitted"] = omitted_use_reentrant(device)
    result["repeat"] = cfg["repeat"]
    return result


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
