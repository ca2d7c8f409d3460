"""Activation checkpointing, measured: peak memory and step time for every
strategy.

Two models where activations dominate. "blocks" is a stack of
transformer-like MLP blocks (LayerNorm, d -> 4d, GELU, 4d -> d, residual),
run five ways: no checkpointing, one checkpoint around everything,
checkpoint_sequential over a sweep of segment counts, a checkpoint per block,
and selective checkpointing that saves matmul outputs. "uniform" is the
study plan's flat DeepMLP, whose layers all keep the same bytes, so Chen et
al.'s sqrt(n) analysis applies exactly; it is swept over segment counts.

"blocks_no_down_bias" is an A/B test of the blocks: the same stack with
bias=False on every down-projection. Autograd sums the down-projection's
[tokens, d] output gradient over the batch for that bias, and the CUDA
reduction kernel allocates a staging buffer for itself, which no operator
returns (so LiveBytes cannot count it). Without the bias, that buffer must
vanish from the peaks. `reduction_scratch_bytes` measures the buffer
directly: the peak growth of one such sum.

For each strategy: the allocator's peak above the persistent baseline and
its bytes held after forward, the median ms of a training step and of a
forward alone, the same step counted by LiveBytes (bytes) and
FlopCounterMode (matmul FLOPs) as the prediction, and whether the gradients
equal those without checkpointing.
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
from snippets.cuda_memory import MemoryMeter, allocator_bytes
from snippets.timing import median_ms

SIZES = {
    # blocks: 16 blocks of width 1024 (134 M parameters) on 8192 tokens,
    # about 5 GiB of activations. uniform: the study plan's DeepMLP,
    # 32 × (Linear(1024, 1024), GELU) = 64 layers, 2 GiB of activations.
    "full": {"blocks": {"d": 1024, "depth": 16, "tokens": 8192,
                        "segments": [1, 2, 4, 8, 16]},
             "uniform": {"d": 1024, "depth": 32, "tokens": 8192,
                         "segments": [1, 2, 4, 8, 16, 32, 64]},
             "warmup": 1, "repeat": 5},
    "smoke": {"blocks": {"d": 8, "depth": 4, "tokens": 32,
                         "segments": [1, 2, 4]},
              "uniform": {"d": 8, "depth": 4, "tokens": 32,
                          "segments": [1, 2, 4, 8]},
              "warmup": 1, "repeat": 2},
}


def strategies(kind: str, model_cfg: dict) -> list[tuple]:
    """(name, segments, forward) in the order the tables show them."""
    rows = [("none", None, no_checkpoint),
            ("one checkpoint", None, one_checkpoint)]
    if kind == "blocks_no_down_bias":
        # the runs whose peaks the bias gradient's buffer separates
        k = model_cfg["depth"]
        return rows + [(f"segments={k}", k, segments(k)),
                       ("per block", None, per_block)]
    rows += [(f"segments={k}", k, segments(k))
             for k in model_cfg["segments"]]
    if kind == "blocks":
        rows += [("per block", None, per_block),
                 ("selective", None, selective)]
    return rows


# --8<-- [start:measure]
def measure(blocks: nn.Sequential, x: torch.Tensor, forward, cfg: dict,
            device: torch.device) -> dict:
    """Allocator peak above the persistent baseline, and median ms of a
    step and of a forward."""
    meter = MemoryMeter(device)

    def step() -> None:
        # gradients are born inside the step, as in training
        blocks.zero_grad(set_to_none=True)
        loss_of(forward(blocks, x)).backward()

    blocks.zero_grad(set_to_none=True)
    meter.release_cache()
    baseline = meter.allocated()  # parameters, batch, reference gradients
    meter.reset_peak()
    out = forward(blocks, x)
    after_forward = meter.allocated()  # what forward left for backward
    loss_of(out).backward()
    del out
    peak = meter.peak()
    timing = {"warmup": cfg["warmup"], "repeat": cfg["repeat"]}
    return {
        "held_bytes": None if baseline is None else after_forward - baseline,
        "peak_bytes": None if baseline is None else peak - baseline,
        "step_ms": median_ms(step, device, **timing),
        # a forward alone, with grad enabled: what it saves is built and
        # then dropped
        "forward_ms": median_ms(lambda: forward(blocks, x), device,
                                **timing),
    }
# --8<-- [end:measure]


def sweep(kind: str, blocks: nn.Sequential, model_cfg: dict, cfg: dict,
          device: torch.device) -> dict:
    d, tokens, layers = model_cfg["d"], model_cfg["tokens"], len(blocks)
    x = torch.randn(tokens, d, device=device)
    reference = None
    rows = []
    for name, k, forward in strategies(kind, model_cfg):
        counted = count_step(blocks, x, forward)
        # count_step leaves this step's gradients
        grads = [p.grad.clone() for p in blocks.parameters()]
        if reference is None:
            reference = grads
        measured = measure(blocks, x, forward, cfg, device)
        diff = max(float((g - r).abs().max())
                   for g, r in zip(grads, reference))
        rows.append({
            "name": name,
            "segments": k,
            "counted": counted,
            "measured": measured,
            "grads_bitwise_equal": all(torch.equal(g, r)
                                       for g, r in zip(grads, reference)),
            "grads_max_abs_diff": diff,
        })
        del grads
    none = rows[0]
    for row in rows:  # recompute, in forward passes of the unchecked model
        row["recompute_forwards_counted"] = (
            (row["counted"]["step_flops"] - none["counted"]["step_flops"])
            / none["counted"]["forward_flops"])
        row["recompute_forwards_measured"] = (
            (row["measured"]["step_ms"] - none["measured"]["step_ms"])
            / none["measured"]["forward_ms"])
    params = sum(p.numel() for p in blocks.parameters())
    uniform = kind == "uniform"
    return {
        "model": {"d": d, "layers": layers, "tokens": tokens,
                  "params": params, "param_bytes": 4 * params},
        # a: one d-wide fp32 activation (the residual stream, a checkpoint's
        # input); per_layer: what one layer (block) keeps for backward
        # without checkpointing
        "a_bytes": tokens * d * 4,
        "per_layer_bytes": tokens * d * 4 if uniform
        else (10 * d + 2) * tokens * 4,
        "strategies": rows,
    }


def reduction_scratch(tokens: int, d: int, device: torch.device):
    """Bytes the sum kernel allocates for itself when it sums a [tokens, d]
    gradient over the batch, as autograd does for a Linear's bias: the peak
    growth of one such sum, less its output's allocator block."""
    meter = MemoryMeter(device)
    grad = torch.randn(tokens, d, device=device)
    meter.release_cache()
    before = meter.allocated()
    meter.reset_peak()
    bias_grad = grad.sum(0)
    peak = meter.peak()
    if before is None:
        return None
    return peak - before - allocator_bytes(bias_grad.nbytes)


def rng_check(device: torch.device) -> dict:
    """Dropout inside a checkpoint: gradients equal the unchecked ones only
    if the RNG state is preserved."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Dropout(0.5),
                          nn.Linear(256, 64)).to(device)
    x = torch.randn(32, 64, device=device)

    def grads(forward) -> list[torch.Tensor]:
        block.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same dropout mask in every forward pass
        loss_of(forward(x)).backward()
        return [p.grad.clone() for p in block.parameters()]

    plain = grads(block)
    result = {}
    for preserve in (True, False):
        ckpt = grads(lambda t: checkpoint(block, t, use_reentrant=False,
                                          preserve_rng_state=preserve))
        result[f"preserve_rng_state={preserve}"] = {
            "grads_bitwise_equal": all(torch.equal(a, b)
                                       for a, b in zip(ckpt, plain)),
            "grads_max_abs_diff": max(float((a - b).abs().max())
                                      for a, b in zip(ckpt, plain)),
        }
    return result


def omitted_use_reentrant(device: torch.device) -> dict:
    """What this torch does when use_reentrant is not passed: warn (which
    category) and fall back to which variant?"""
    layer = nn.Linear(8, 8).to(device)
    x = torch.randn(2, 8, device=device, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = checkpoint(layer, x)
            raised = None
        except Exception as error:  # a future torch may raise, as promised
            out, raised = None, f"{type(error).__name__}: {error}"
    return {
        "raised": raised,
        "warnings": [{"category": w.category.__name__,
                      "message": str(w.message)} for w in caught],
        # the reentrant variant is one autograd Function, CheckpointFunction
        "grad_fn": None if out is None else type(out.grad_fn).__name__,
    }


def _release(device: torch.device) -> None:
    gc.collect()
    MemoryMeter(device).release_cache()


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    b, u = cfg["blocks"], cfg["uniform"]
    result = {}
    torch.manual_seed(0)
    blocks = block_stack(b["d"], b["depth"]).to(device)
    result["blocks"] = sweep("blocks", blocks, b, cfg, device)
    for block in blocks:  # the A/B test: no bias on the down-projections
        block.down = nn.Linear(4 * b["d"], b["d"], bias=False).to(device)
    result["blocks_no_down_bias"] = sweep("blocks_no_down_bias", blocks, b,
                                          cfg, device)
    del blocks
    _release(device)
    result["reduction_scratch_bytes"] = reduction_scratch(b["tokens"],
                                                          b["d"], device)
    _release(device)
    uniform = DeepMLP(u["d"], u["depth"]).seq.to(device)
    result["uniform"] = sweep("uniform", uniform, u, cfg, device)
    del uniform
    _release(device)
    result["rng"] = rng_check(device)
    result["use_reentrant_omitted"] = omitted_use_reentrant(device)
    result["repeat"] = cfg["repeat"]
    return result


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
