"""Where training memory goes when activations dominate: parameters, gradients, AdamW state and
activations of one model, measured by the CUDA allocator and predicted by counting.

The model is the checkpointing chapter's stack of MLP blocks. The allocator's growth is read at
each stage of one AdamW step: after the model is on the device (parameters), after the forward
(activations, the output included), after backward (gradients: the activations are gone) and
after optimizer.step() (AdamW's two moments). A sweep over the number of tokens shows which
families grow with the batch and which do not.
"""

from __future__ import annotations

import gc

import torch

from snippets.checkpointing import block_stack, loss_of
from snippets.cuda_memory import MemoryMeter
from snippets.live_bytes import LiveBytes

SIZES = {
    "full": {"d": 1024, "depth": 16, "tokens": [1024, 2048, 4096, 8192]},
    "smoke": {"d": 8, "depth": 2, "tokens": [4, 8, 16, 32]},
}


def stages(d: int, depth: int, tokens: int, device: torch.device) -> dict:
    meter = MemoryMeter(device)
    meter.release_cache()
    start = meter.allocated()
    torch.manual_seed(0)
    blocks = block_stack(d, depth).to(device)
    x = torch.randn(tokens, d, device=device)
    optimizer = torch.optim.AdamW(blocks.parameters(), lr=1e-4)
    after_params = meter.allocated()
    meter.reset_peak()
    with LiveBytes() as live:  # the count, beside the allocator
        out = blocks(x)
        counted_activations = live.live
    after_forward = meter.allocated()
    loss_of(out).backward()
    del out
    after_backward = meter.allocated()
    optimizer.step()
    after_step = meter.allocated()
    peak = meter.peak()
    P = sum(p.numel() for p in blocks.parameters())
    step_devices = sorted({s["step"].device.type for s in optimizer.state.values()})
    del blocks, x, optimizer
    gc.collect()
    meter.release_cache()
    measured = None if start is None else {
        "params": after_params - start - tokens * d * 4,  # less the batch, allocated with them
        "activations": after_forward - after_params,
        "grads": after_backward - after_params,
        "adamw_state": after_step - after_backward,
        "step_peak_above_start": peak - start,
    }
    return {
        "tokens": tokens,
        "P": P,
        "predicted": {
            "params": 4 * P,
            "grads": 4 * P,
            # two fp32 moments per parameter; `step` counters live on the CPU unless fused/capturable
            "adamw_state": 8 * P,
            # per block and token: LayerNorm output and 2 statistics, two 4d-wide tensors, the block's output
            "activations": depth * (10 * d + 2) * tokens * 4,
        },
        "counted_activations": counted_activations,
        "step_counter_devices": step_devices,
        "measured": measured,
    }


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    # Warm-up, not recorded: the first matmuls create cuBLAS's workspace, which then persists.
    stages(cfg["d"], cfg["depth"], cfg["tokens"][0], device)
    return {"model": {"d": cfg["d"], "depth": cfg["depth"]},
            "by_tokens": [stages(cfg["d"], cfg["depth"], t, device) for t in cfg["tokens"]]}


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
