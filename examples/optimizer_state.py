"""Optimizer state on a 100M+ parameter fp32 model: counted from optimizer.state, seen by the
CUDA allocator, and predicted from the formula k·P·4 bytes.

For each optimizer the model gets fresh random gradients, then one step() creates the state. We
record the state's bytes per key (from optimizer.state), the allocator's growth across that first
step (memory_allocated after minus before), the allocator's exact prediction (every state tensor
on the device rounded up to 512 bytes), and the peak during the step.
"""

from __future__ import annotations

import gc

import torch
from torch import nn

from snippets.accounting import count_params, state_nbytes_by_key
from snippets.cuda_memory import MemoryMeter, allocator_bytes
from snippets.models import wide_mlp

SIZES = {
    # 7 × Linear(4096, 4096) = 117.5 M parameters, plus a 10-way head whose 40-byte bias shows
    # the allocator's 512-byte rounding.
    "full": {"width": 4096, "depth": 7, "classes": 10},
    "smoke": {"width": 32, "depth": 2, "classes": 10},
}

# name -> (constructor, keyword arguments, k = full-size state tensors per parameter)
OPTIMIZERS = {
    "SGD": (torch.optim.SGD, {"lr": 1e-2}, 0),
    "SGD momentum": (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}, 1),
    "Adam": (torch.optim.Adam, {"lr": 1e-3}, 2),
    "AdamW": (torch.optim.AdamW, {"lr": 1e-3}, 2),
    "Adam AMSGrad": (torch.optim.Adam, {"lr": 1e-3, "amsgrad": True}, 3),
    "AdamW fused": (torch.optim.AdamW, {"lr": 1e-3, "fused": True}, 2),
    "AdamW capturable": (torch.optim.AdamW, {"lr": 1e-3, "capturable": True}, 2),
}


def measure(model: nn.Module, name: str, device: torch.device) -> dict:
    constructor, kwargs, k = OPTIMIZERS[name]
    meter = MemoryMeter(device)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer = constructor(model.parameters(), **kwargs)
    meter.release_cache()
    before = meter.allocated()
    meter.reset_peak()
    optimizer.step()
    after, peak = meter.allocated(), meter.peak()

    state_tensors = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    on_device = [t for t in state_tensors if t.device.type == device.type]
    steps = [s["step"] for s in optimizer.state.values() if "step" in s]
    P = count_params(model)
    result = {
        "k": k,
        "P": P,
        "n_param_tensors": len(list(model.parameters())),
        "predicted_state_bytes": k * P * 4,
        "state_bytes_by_key": state_nbytes_by_key(optimizer),
        "state_dtypes": sorted({str(t.dtype) for t in state_tensors}),
        "step_device": steps[0].device.type if steps else None,
        "allocator_prediction_bytes": sum(allocator_bytes(t.nbytes) for t in on_device) if meter.cuda else None,
        "allocated_before_bytes": before,
        "allocated_growth_bytes": None if before is None else after - before,
        "step_peak_extra_bytes": None if before is None else peak - before,
    }
    del optimizer, state_tensors, on_device, steps
    gc.collect()
    return result


def run(device: torch.device, size: str) -> dict:
    torch.manual_seed(0)
    model = wide_mlp(**SIZES[size]).to(device)
    results = {}
    for name, (_, kwargs, _) in OPTIMIZERS.items():
        if kwargs.get("capturable") and device.type == "cpu":
            # capturable=True exists for CUDA graph capture; the CPU implementation refuses it
            results[name] = {"not_run": "capturable needs an accelerator"}
            continue
        results[name] = measure(model, name, device)
    return {"model": SIZES[size], "optimizers": results}


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
