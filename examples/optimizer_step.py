"""How fast one optimizer step runs, for-loop vs foreach vs fused, against the memory roofline.

An optimizer step does little arithmetic per byte, so its floor is memory bandwidth: SGD with
momentum must read p, g, buf and write p, buf (5 × 4P bytes); Adam and AdamW read p, g, m, v and
write p, m, v (7 × 4P bytes). Dividing those bytes by the measured step time gives an effective
bandwidth, compared with a device-to-device copy measured in the same run. Each step is timed with
CUDA events (median, after warm-up steps that also create the state); the peak during one
steady-state step, above what was allocated before it, shows the temporaries each implementation
needs.
"""

from __future__ import annotations

import gc

import torch

from snippets.cuda_memory import MemoryMeter
from snippets.timing import median_ms

SIZES = {
    # 8 transformer-like layers of width 1024: 100.8 M parameters in 96 tensors, big and small
    "full": {"layers": 8, "width": 1024, "warmup": 5, "repeat": 30, "copy_mib": 1024},
    "smoke": {"layers": 1, "width": 16, "warmup": 1, "repeat": 2, "copy_mib": 1},
}

OPTIMIZERS = {  # name -> (constructor, keyword arguments, bytes moved per parameter per step)
    "SGD momentum": (torch.optim.SGD, {"lr": 1e-3, "momentum": 0.9}, 5 * 4),
    "Adam": (torch.optim.Adam, {"lr": 1e-3}, 7 * 4),
    "AdamW": (torch.optim.AdamW, {"lr": 1e-3}, 7 * 4),
}
IMPLEMENTATIONS = {  # name -> flags; "default" passes none and lets torch choose
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
    "default": {},
}


def transformer_like_parameters(layers: int, width: int, device: torch.device) -> list[torch.nn.Parameter]:
    w = width
    shapes = [(3 * w, w), (3 * w,), (w, w), (w,), (4 * w, w), (4 * w,), (w, 4 * w), (w,),
              (w,), (w,), (w,), (w,)]  # qkv, attention out, MLP in, MLP out, two LayerNorms
    params = []
    for _ in range(layers):
        for shape in shapes:
            p = torch.nn.Parameter(torch.randn(shape, device=device) * 0.02)
            p.grad = torch.randn_like(p) * 1e-3
            params.append(p)
    return params


def copy_bandwidth(mib: int, device: torch.device) -> dict:
    source = torch.randn(mib * 2**20 // 4, device=device)
    target = torch.empty_like(source)
    ms = median_ms(lambda: target.copy_(source), device, warmup=3, repeat=20)
    moved = 2 * source.nbytes  # read once, written once
    del source, target
    return {"bytes": moved, "ms": ms, "GBps": moved / ms / 1e6}


# --8<-- [start:measure]
def measure(params, optimizer_name: str, implementation: str, cfg: dict, device: torch.device) -> dict:
    constructor, kwargs, bytes_per_param = OPTIMIZERS[optimizer_name]
    meter = MemoryMeter(device)
    optimizer = constructor(params, **kwargs, **IMPLEMENTATIONS[implementation])
    for _ in range(cfg["warmup"]):  # the first step also allocates the state
        optimizer.step()
    before = meter.allocated()
    meter.reset_peak()
    optimizer.step()
    peak = meter.peak()
    ms = median_ms(optimizer.step, device, warmup=0, repeat=cfg["repeat"])
    moved = bytes_per_param * sum(p.numel() for p in params)
    del optimizer
    gc.collect()
    meter.release_cache()
    return {
        "optimizer": optimizer_name,
        "implementation": implementation,
        "ms": ms,
        "min_bytes": moved,
        "GBps": moved / ms / 1e6,
        "step_peak_extra_bytes": None if before is None else peak - before,
    }
# --8<-- [end:measure]


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    torch.manual_seed(0)
    params = transformer_like_parameters(cfg["layers"], cfg["width"], device)
    copy = copy_bandwidth(cfg["copy_mib"], device)
    results = [measure(params, o, i, cfg, device) for o in OPTIMIZERS for i in IMPLEMENTATIONS]
    return {
        "params": {"P": sum(p.numel() for p in params), "tensors": len(params), "bytes": sum(p.nbytes for p in params),
                   "layers": cfg["layers"], "width": cfg["width"]},
        "copy": copy,
        "repeat": cfg["repeat"],
        "results": results,
    }


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
