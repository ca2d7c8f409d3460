"""Gradient accumulation on a GPU: the same effective batch at K = 1, 2, 4, 8
micro-batches.

The model is wide and deep enough that its saved activations at the full batch
(2 GiB at full size) dwarf its persistent memory (parameters + gradients +
AdamW's two moments, 16 bytes a parameter, 0.5 GiB), and the batch is split K
ways. For each K we record the allocator's baseline between steps (persistent
memory and the data), the peak of one accumulation step above it, the median
step time, and the activation bytes one micro-batch saves, predicted by a
formula and counted by autograd's saved-tensor hooks. Then the same step runs
under AMP (float16 autocast, torch.amp.GradScaler, unscale_ before
clip_grad_norm_), and its gradients are compared with the float32 big batch's.
"""

from __future__ import annotations

import copy
import gc

import torch
import torch.nn.functional as F

from snippets.accounting import (
    count_params, grads_nbytes, optimizer_state_nbytes, params_nbytes,
)
from snippets.accumulation import (
    accumulate_gradients, accumulation_step, gradients, max_abs_difference,
)
from snippets.activations import SavedActivations
from snippets.amp_accumulation import amp_accumulation_step, relative_grad_error
from snippets.cuda_memory import MemoryMeter, allocator_bytes
from snippets.models import wide_mlp
from snippets.timing import median_ms

SIZES = {
    # 8 x Linear(2048, 2048) + a 10-way head: 33.6 M parameters (0.5 GiB
    # persistent with AdamW); a batch of 32768 saves 8 hidden outputs of
    # 32768 x 2048 fp32 = 2 GiB of activations.
    "full": {"width": 2048, "depth": 8, "classes": 10, "batch": 32768,
             "ks": [1, 2, 4, 8], "warmup": 3, "repeat": 9, "amp_k": 4,
             "max_norm": 1.0},
    "smoke": {"width": 16, "depth": 2, "classes": 10, "batch": 16,
              "ks": [1, 2, 4, 8], "warmup": 1, "repeat": 2, "amp_k": 4,
              "max_norm": 1.0},
}


# --8<-- [start:predicted_activation_bytes]
def predicted_activation_bytes(width: int, depth: int, classes: int,
                               micro_batch: int) -> int:
    """What autograd saves for one micro-batch of wide_mlp, beyond its
    inputs and targets (fp32).

    Each of the `depth` hidden Linear outputs is saved as the next Linear's
    input (b x width); cross_entropy saves its log-softmax (b x classes) and
    nll_loss's total weight (one fp32 scalar). The first layer's input is
    the data itself, there before the step.
    """
    return 4 * micro_batch * (depth * width + classes) + 4
# --8<-- [end:predicted_activation_bytes]


def counted_activation_bytes(model, x: torch.Tensor, y: torch.Tensor) -> int:
    """The same, counted by autograd's saved-tensor hooks on fresh copies of
    one micro-batch."""
    x, y = x.clone(), y.clone()  # own storages: count only this micro-batch
    with SavedActivations(model) as saved:
        F.cross_entropy(model(x), y)
    return saved.nbytes - x.nbytes - y.nbytes  # the data was there before


# --8<-- [start:measure_k]
def measure_k(model, optimizer, X, Y, K: int, cfg: dict,
              device: torch.device) -> dict:
    """Peak memory above the between-steps baseline, and median time, of
    one step at K."""
    meter = MemoryMeter(device)

    def step():
        accumulation_step(model, optimizer, F.cross_entropy, X, Y, K)

    step()  # warm-up: AdamW's state exists from here on, p.grad stays
    meter.release_cache()
    baseline = meter.allocated()  # params + grads + AdamW state + data
    meter.reset_peak()
    step()
    peak = meter.peak()
    return {
        "K": K,
        "micro_batch": len(X) // K,
        "baseline_allocated_bytes": baseline,
        "peak_above_baseline_bytes": None if baseline is None
        else peak - baseline,
        "ms": median_ms(step, device, warmup=cfg["warmup"],
                        repeat=cfg["repeat"]),
    }
# --8<-- [end:measure_k]


def amp_versus_fp32(model, X, Y, cfg: dict, device: torch.device) -> list:
    """One AMP accumulation step per precision, against the fp32 big
    batch's clipped gradient."""
    reference = copy.deepcopy(model)
    reference.zero_grad()
    accumulate_gradients(reference, F.cross_entropy, X, Y, 1)
    fp32_norm = torch.nn.utils.clip_grad_norm_(reference.parameters(),
                                               cfg["max_norm"]).item()
    expected = gradients(reference)
    del reference
    K = cfg["amp_k"]
    micro_batches = list(zip(X.split(len(X) // K), Y.split(len(Y) // K)))
    results = []
    # float16 needs the scaler (its gradients underflow); bfloat16 has
    # float32's exponent range.
    for dtype, scaled in ((torch.float16, True), (torch.bfloat16, False)):
        amp_model = copy.deepcopy(model)
        optimizer = torch.optim.AdamW(amp_model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler(device.type, enabled=scaled)
        before = [p.detach().clone() for p in amp_model.parameters()]
        out = amp_accumulation_step(
            amp_model, optimizer, scaler, F.cross_entropy, micro_batches,
            device_type=device.type, dtype=dtype, max_norm=cfg["max_norm"])
        got = gradients(amp_model)
        after = amp_model.parameters()
        results.append({
            "dtype": str(dtype).removeprefix("torch."),
            "scaler": f'GradScaler("{device.type}")' if scaled
            else "disabled",
            "K": K,
            "scale": out["scale"],
            "skipped": out["skipped"],
            "stepped": any(not torch.equal(b, p)
                           for b, p in zip(before, after)),
            "total_norm": out["total_norm"],
            "fp32_total_norm": fp32_norm,
            "max_abs_grad_difference": max_abs_difference(got, expected),
            "max_abs_fp32_grad": max(e.abs().max().item() for e in expected),
            "relative_grad_error": relative_grad_error(got, expected),
        })
        del amp_model, optimizer, before, got, after
        gc.collect()
    return results


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    torch.manual_seed(0)
    model = wide_mlp(cfg["width"], cfg["depth"], cfg["classes"]).to(device)
    X = torch.randn(cfg["batch"], cfg["width"], device=device)
    Y = torch.randint(0, cfg["classes"], (cfg["batch"],), device=device)
    # before any step changes the weights
    amp = amp_versus_fp32(model, X, Y, cfg, device)

    # foreach=False: the for-loop step's temporaries are a few tensors' worth,
    # so the peak is the activations'; foreach's whole-list temporaries (up to
    # 4P bytes) would hide the smallest K's.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)
    per_k = []
    for K in cfg["ks"]:
        row = measure_k(model, optimizer, X, Y, K, cfg, device)
        b = row["micro_batch"]
        row["predicted_activation_bytes"] = predicted_activation_bytes(
            cfg["width"], cfg["depth"], cfg["classes"], b)
        row["saved_activation_bytes"] = counted_activation_bytes(
            model, X[:b], Y[:b])
        per_k.append(row)

    tensors = list(model.parameters()) + [p.grad for p in model.parameters()]
    tensors += [v for s in optimizer.state.values() for v in s.values()
                if torch.is_tensor(v) and v.device == X.device]
    cuda = device.type == "cuda"
    # what the allocator holds between steps: each tensor rounded up to its
    # 512-byte blocks
    prediction = sum(allocator_bytes(t.nbytes) for t in tensors + [X, Y])
    return {
        "model": {k: cfg[k] for k in ("width", "depth", "classes", "batch")},
        "P": count_params(model),
        "persistent_bytes": {
            "params": params_nbytes(model),
            "grads": grads_nbytes(model),
            "optimizer_state": optimizer_state_nbytes(optimizer),
        },
        "data_bytes": X.nbytes + Y.nbytes,
        "allocator_prediction_baseline_bytes": prediction if cuda else None,
        "per_k": per_k,
        "amp": amp,
    }


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
