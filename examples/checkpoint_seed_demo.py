"""The study plan's checkpointing demo, run as written, then taken apart.

The plan builds DeepMLP(d=2048, depth=14) twice on the GPU, feeds a batch of
8, wraps the whole network in one checkpoint, times five steps with
time.time() and reads torch.cuda.max_memory_allocated() after a reset. We
record exactly the numbers it prints, then what they contain: both models'
parameters and the other model's leftover gradients sit inside each "peak",
and the activations that checkpointing could save are a fraction of a percent
of the parameters. Beside them: the peak above the persistent baseline and
CUDA-event medians, and LiveBytes' count of what each variant holds between
forward and backward.

And the time. At batch 8 a step is a chain of small kernels over 224 MiB
of weights; the example times a plain copy of that many bytes on the device
(reading and writing each weight once), to show how far the step is from
what moving the weights costs, and it repeats the plain/checkpointed timing
several times, because a ratio of such short steps moves between runs.
"""

from __future__ import annotations

import time

import torch
from torch.utils.checkpoint import checkpoint

from snippets.checkpointing import DeepMLP
from snippets.cuda_memory import MemoryMeter
from snippets.live_bytes import LiveBytes
from snippets.timing import median_ms

SIZES = {
    "full": {"d": 2048, "depth": 14, "batch": 8, "rounds": 5},  # the plan's
    "smoke": {"d": 32, "depth": 2, "batch": 2, "rounds": 2},
}


# The plan's cell, in substance: one forward+backward, with or without one
# checkpoint around model.seq.
def forward_backward_step(model: DeepMLP, x: torch.Tensor,
                          use_ckpt: bool) -> float:
    model.train()
    if use_ckpt:
        out = checkpoint(lambda inp: model.seq(inp), x, use_reentrant=False)
    else:
        out = model(x)
    loss = out.pow(2).mean()
    loss.backward()
    return float(loss.detach().cpu().item())


def seed_timed(fn, device: torch.device, n: int = 5) -> float:
    # The plan's timer: wall clock around n calls, synchronising after
    # each; no warm-up of its own.
    t0 = time.time()
    for _ in range(n):
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return (time.time() - t0) / n


def seed_measure_peak(fn, device: torch.device):
    # The plan's measure_peak_cuda, plus what it does not show: the bytes
    # already allocated at the reset, which max_memory_allocated() includes.
    if device.type != "cuda":
        return None, None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    allocated_at_reset = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return allocated_at_reset, torch.cuda.max_memory_allocated(device)


def held_and_peak(model: DeepMLP, x: torch.Tensor, use_ckpt: bool) -> dict:
    """LiveBytes' count of one step: held between forward and backward, and
    the peak."""
    model.zero_grad(set_to_none=True)
    with LiveBytes() as live:
        if use_ckpt:
            out = checkpoint(model.seq, x, use_reentrant=False)
        else:
            out = model(x)
        held = live.live
        out.pow(2).mean().backward()
    return {"held_bytes": held, "max_live_bytes": live.peak}


def step_fn(model: DeepMLP, x: torch.Tensor, use_ckpt: bool):
    def step() -> None:
        model.zero_grad(set_to_none=True)
        forward_backward_step(model, x, use_ckpt)
    return step


def above_baseline(model: DeepMLP, x: torch.Tensor, use_ckpt: bool,
                   device: torch.device) -> dict:
    """The peak of one step above what persists (parameters, batch), and
    the median of CUDA-event timings."""
    meter = MemoryMeter(device)
    model.zero_grad(set_to_none=True)
    meter.release_cache()
    baseline = meter.allocated()
    meter.reset_peak()
    forward_backward_step(model, x, use_ckpt)
    peak = meter.peak()
    return {"peak_bytes": None if baseline is None else peak - baseline,
            "step_ms": median_ms(step_fn(model, x, use_ckpt), device,
                                 warmup=3, repeat=20)}


def weights_copy_ms(nbytes: int, device: torch.device) -> float:
    """Median ms to read and write `nbytes` once on the device: what moving
    every weight once costs, the floor of a memory-bound pass."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return median_ms(lambda: dst.copy_(src), device, warmup=3, repeat=20)


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    torch.manual_seed(0)
    model_plain = DeepMLP(d=cfg["d"], depth=cfg["depth"]).to(device)
    model_ckpt = DeepMLP(d=cfg["d"], depth=cfg["depth"]).to(device)
    model_ckpt.load_state_dict(model_plain.state_dict())
    x_big = torch.randn(cfg["batch"], cfg["d"], device=device,
                        requires_grad=True)

    # --- the plan's cell, in its order ---
    for _ in range(2):  # its warm-up: the plain model only
        model_plain.zero_grad(set_to_none=True)
        forward_backward_step(model_plain, x_big, use_ckpt=False)
        model_plain.zero_grad(set_to_none=True)

    run_plain = step_fn(model_plain, x_big, use_ckpt=False)
    run_ckpt = step_fn(model_ckpt, x_big, use_ckpt=True)
    t_plain = seed_timed(run_plain, device)
    t_ckpt = seed_timed(run_ckpt, device)
    at_reset_plain, peak_plain = seed_measure_peak(run_plain, device)
    at_reset_ckpt, peak_ckpt = seed_measure_peak(run_ckpt, device)
    seed = {
        "avg_step_time_plain_s": t_plain,
        "avg_step_time_ckpt_s": t_ckpt,
        "peak_plain_bytes": peak_plain,
        "peak_ckpt_bytes": peak_ckpt,
        "delta_peak_bytes": None if peak_plain is None
        else peak_plain - peak_ckpt,
        # not printed by the plan: what was already allocated when each
        # peak counter was reset
        "allocated_at_reset_plain_bytes": at_reset_plain,
        "allocated_at_reset_ckpt_bytes": at_reset_ckpt,
    }

    # --- what those numbers contain ---
    param_bytes = sum(p.nbytes for p in model_plain.parameters())
    n_layers = len(model_plain.seq)
    model_ckpt.zero_grad(set_to_none=True)  # one set of gradients from here
    measured = {
        "plain": above_baseline(model_plain, x_big, False, device),
        "ckpt": above_baseline(model_plain, x_big, True, device),
    }
    # the same two timings again, several times: how much the ratio moves
    ratios = []
    for _ in range(cfg["rounds"]):
        plain_ms = median_ms(step_fn(model_plain, x_big, False), device,
                             warmup=3, repeat=20)
        ckpt_ms = median_ms(step_fn(model_plain, x_big, True), device,
                            warmup=3, repeat=20)
        ratios.append(ckpt_ms / plain_ms)
    return {
        "model": {"d": cfg["d"], "depth": cfg["depth"],
                  "batch": cfg["batch"], "layers": n_layers,
                  "param_bytes_per_model": param_bytes,
                  "models_on_device": 2},
        "seed": seed,
        # each of the 2·depth layers keeps one batch × d fp32 tensor for
        # backward (the output included)
        "predicted_activation_bytes": n_layers * cfg["batch"] * cfg["d"] * 4,
        "counted": {"plain": held_and_peak(model_plain, x_big, False),
                    "ckpt": held_and_peak(model_plain, x_big, True)},
        "measured": measured,
        "event_ratios": ratios,
        "weights_copy_ms": weights_copy_ms(param_bytes, device),
    }


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
