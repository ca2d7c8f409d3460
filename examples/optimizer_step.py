"""How fast one optimizer step runs, for-loop vs foreach vs fused, and how
much memory it needs on top of what persists, over two layouts of parameters.

An optimizer step does little arithmetic per byte, so its floor is memory
bandwidth: SGD with momentum must read p, g, buf and write p, buf (5 x 4P
bytes); Adam and AdamW read p, g, m, v and write p, m, v (7 x 4P bytes).
Those bytes divided by the measured step time give an effective bandwidth,
compared with a device-to-device copy measured in the same run.

Two layouts of parameters, because which implementation wins depends on it:
"mixed" is 96 tensors of a transformer's sizes (big matrices, small biases):
launch-bound; "large" is a few tensors of 64 MiB each: bandwidth-bound.

Each step is timed with CUDA events (median, after warm-up steps that also
create the state); the peak during one steady-state step, above what was
allocated before it, shows the temporaries each implementation needs.
Last, a step that torch.amp.GradScaler skips (an inf gradient) is run with
stock and fused optimizers, to record what state it leaves behind.
"""

from __future__ import annotations

import functools
import gc
import math

import torch

from snippets.cuda_memory import MemoryMeter
from snippets.scaler_skip import skip_then_step
from snippets.timing import median_ms

SIZES = {
    # mixed: 8 transformer-like layers of width 1024, 100.8 M parameters in
    # 96 tensors; large: 16 tensors of 64 MiB (268.4 M parameters)
    "full": {"layers": 8, "width": 1024, "large_tensors": 16,
             "large_mib": 64, "warmup": 5, "repeat": 30, "copy_mib": 1024},
    "smoke": {"layers": 1, "width": 16, "large_tensors": 2,
              "large_mib": 1 / 16, "warmup": 1, "repeat": 2, "copy_mib": 1},
}

# name -> (constructor, keyword arguments, bytes moved per parameter)
OPTIMIZERS = {
    "SGD momentum": (torch.optim.SGD, {"lr": 1e-3, "momentum": 0.9}, 5 * 4),
    "Adam": (torch.optim.Adam, {"lr": 1e-3}, 7 * 4),
    "AdamW": (torch.optim.AdamW, {"lr": 1e-3}, 7 * 4),
}
# name -> flags; "default" passes none and lets torch choose
IMPLEMENTATIONS = {
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
    "default": {},
}


def transformer_like_shapes(layers: int, width: int) -> list[tuple]:
    w = width
    # qkv, attention out, MLP in, MLP out (each with its bias), 2 LayerNorms
    layer = [(3 * w, w), (3 * w,), (w, w), (w,), (4 * w, w), (4 * w,),
             (w, 4 * w), (w,), (w,), (w,), (w,), (w,)]
    return layer * layers


def large_shapes(tensors: int, mib: float) -> list[tuple]:
    return [(int(mib * 2**20) // 4,)] * tensors


def parameters(shapes: list[tuple], device) -> list[torch.nn.Parameter]:
    params = []
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
def measure(params, optimizer_name: str, implementation: str,
            cfg: dict, device: torch.device) -> dict:
    constructor, kwargs, bytes_per_param = OPTIMIZERS[optimizer_name]
    flags = IMPLEMENTATIONS[implementation]
    meter = MemoryMeter(device)
    optimizer = constructor(params, **kwargs, **flags)
    for _ in range(cfg["warmup"]):  # the first step also makes the state
        optimizer.step()
    before = meter.allocated()      # persistent: params, grads, state
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


def layout_data(params: list[torch.nn.Parameter], description: str) -> dict:
    return {
        "description": description,
        "P": sum(p.numel() for p in params),
        "tensors": len(params),
        "bytes": sum(p.nbytes for p in params),
        "largest_bytes": max(p.nbytes for p in params),
        "tensor_bytes": [p.nbytes for p in params],  # in the order stepped
    }


def finite_or_text(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)  # JSON has no nan or inf


def scaler_skip(device: torch.device) -> list[dict]:
    """State left by a step GradScaler skips, and θ after it and 2 more."""
    cases = {"SGD momentum": functools.partial(
                 torch.optim.SGD, lr=0.1, momentum=0.9),
             "Adam": functools.partial(torch.optim.Adam, lr=0.1),
             "AdamW": functools.partial(torch.optim.AdamW, lr=0.1)}
    records = []
    for name, make in cases.items():
        for implementation, flags in (("stock", {}),
                                      ("fused", {"fused": True})):
            kept, thetas = skip_then_step(functools.partial(make, **flags),
                                          device=device.type)
            records.append({"optimizer": name,
                            "implementation": implementation,
                            "state_after_skip": kept,
                            "theta": [finite_or_text(t) for t in thetas]})
    return records


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    torch.manual_seed(0)
    copy = copy_bandwidth(cfg["copy_mib"], device)
    layouts = {
        "mixed": (transformer_like_shapes(cfg["layers"], cfg["width"]),
                  f"{cfg['layers']} transformer-like layers of width "
                  f"{cfg['width']}"),
        "large": (large_shapes(cfg["large_tensors"], cfg["large_mib"]),
                  f"{cfg['large_tensors']} tensors of {cfg['large_mib']} MiB"),
    }
    described, results = {}, []
    for layout, (shapes, description) in layouts.items():
        params = parameters(shapes, device)
        described[layout] = layout_data(params, description)
        for o in OPTIMIZERS:
            for i in IMPLEMENTATIONS:
                results.append({"layout": layout,
                                **measure(params, o, i, cfg, device)})
        del params
        gc.collect()
        MemoryMeter(device).release_cache()
    return {
        "layouts": described,
        "copy": copy,
        "repeat": cfg["repeat"],
        "results": results,
        "scaler_skip": scaler_skip(device),
    }


if __name__ == "__main__":
    from examples.standalone import standalone

    standalone(run, SIZES)
