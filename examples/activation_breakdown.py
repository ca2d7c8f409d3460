"""Where training memory goes when activations dominate: parameters,
gradients, AdamW state and activations of one model, measured by the CUDA
allocator and predicted by counting, in the steady state of training.

The model is the checkpointing chapter's stack of MLP blocks. Three AdamW
steps run on each batch size. The first is not typical: AdamW creates its two
moments inside `optimizer.step()`, after the activations are gone, so in step
1 they never coexist. From step 2 on the moments are alive through forward
and backward, which is the peak a training run pays for; step 3 shows that
step 2 already is the steady state. For every step the example reads
`torch.cuda.memory_allocated()` after each phase (forward, backward,
optimizer step) and the peak of each phase, above what was allocated before
the model existed.
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
STEPS = 3  # step 1: no moments yet; steps 2 and 3: the steady state
PHASES = ("forward", "backward", "optimizer")


def one_step(blocks, x, optimizer, meter: MemoryMeter, start) -> dict:
    """One training step: allocated before it, and after each phase and the
    peak of each phase, all above `start` (None on a CPU)."""

    def above(nbytes):
        return None if nbytes is None else nbytes - start

    step = {"before": above(meter.allocated())}
    meter.reset_peak()
    out = blocks(x)
    step["forward"] = {"after": above(meter.allocated()),
                       "peak": above(meter.peak())}
    meter.reset_peak()
    loss_of(out).backward()
    del out
    step["backward"] = {"after": above(meter.allocated()),
                        "peak": above(meter.peak())}
    meter.reset_peak()
    optimizer.step()
    step["optimizer"] = {"after": above(meter.allocated()),
                         "peak": above(meter.peak())}
    optimizer.zero_grad(set_to_none=True)  # the default: frees the gradients
    return step


def step_peak(step: dict) -> tuple[int, str]:
    """The step's peak and the phase that set it."""
    phase = max(PHASES, key=lambda p: step[p]["peak"])
    return step[phase]["peak"], phase


def stages(d: int, depth: int, tokens: int, device: torch.device) -> dict:
    meter = MemoryMeter(device)
    meter.release_cache()
    start = meter.allocated()
    torch.manual_seed(0)
    blocks = block_stack(d, depth).to(device)
    x = torch.randn(tokens, d, device=device)
    optimizer = torch.optim.AdamW(blocks.parameters(), lr=1e-4)
    with LiveBytes() as live:  # the count, beside the allocator
        out = blocks(x)
        counted_activations = live.live
    del out
    steps = [one_step(blocks, x, optimizer, meter, start or 0)
             for _ in range(STEPS)]
    P = sum(p.numel() for p in blocks.parameters())
    step_devices = sorted({s["step"].device.type
                           for s in optimizer.state.values()})
    del blocks, x, optimizer
    gc.collect()
    meter.release_cache()
    measured = None
    if start is not None:
        first, steady = steps[0], steps[1]
        peak_first, phase_first = step_peak(first)
        peak_steady, phase_steady = step_peak(steady)
        measured = {
            # less the batch, allocated with them
            "params": first["before"] - tokens * d * 4,
            "activations": steady["forward"]["after"] - steady["before"],
            "grads": steady["backward"]["after"] - steady["before"],
            # created inside step 1's optimizer.step()
            "adamw_state": first["optimizer"]["after"]
            - first["backward"]["after"],
            "peak_first_step": peak_first,
            "peak_first_step_phase": phase_first,
            "peak_steady": peak_steady,
            "peak_steady_phase": phase_steady,
        }
    return {
        "tokens": tokens,
        "P": P,
        "predicted": {
            "params": 4 * P,
            "grads": 4 * P,
            # two fp32 moments per parameter; the `step` counters live on
            # the CPU unless fused or capturable is set
            "adamw_state": 8 * P,
            # per block and token: LayerNorm's output and 2 statistics, two
            # 4d-wide tensors, the block's output
            "activations": depth * (10 * d + 2) * tokens * 4,
        },
        "counted_activations": counted_activations,
        "step_counter_devices": step_devices,
        "steps": steps if start is not None else None,
        "measured": measured,
    }


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    # Warm-up, not recorded: the first matmuls create cuBLAS's workspace,
    # which then persists.
    stages(cfg["d"], cfg["depth"], cfg["tokens"][0], device)
    return {"model": {"d": cfg["d"], "depth": cfg["depth"]},
            "steps": STEPS,
            "by_tokens": [stages(cfg["d"], cfg["depth"], t, device)
                          for t in cfg["tokens"]]}


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
