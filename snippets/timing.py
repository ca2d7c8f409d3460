"""Time GPU work correctly: warm up, then CUDA events around each repeat,
report the median.

`time.time()` around a CUDA call measures the launch, not the work (kernels
run asynchronously), and the first calls pay for kernel loading and allocator
growth. On a CPU this falls back to time.perf_counter, which is right there
because CPU work is synchronous.
"""

import statistics
import time

import torch


# --8<-- [start:median_ms]
def median_ms(fn, device: torch.device, warmup: int = 3,
              repeat: int = 10) -> float:
    """Median wall time of fn() (no arguments) in ms, after `warmup`
    untimed calls."""
    cuda = torch.device(device).type == "cuda"
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            # wait for this repeat's kernels, then read the GPU's own clock
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
# --8<-- [end:median_ms]
