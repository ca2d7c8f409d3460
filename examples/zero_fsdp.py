"""ZeRO and FSDP on every visible GPU: per-rank memory of DDP + AdamW (with and
without gradient_as_bucket_view), DDP + ZeroRedundancyOptimizer (ZeRO stage
1) and FSDP2's fully_shard (stage 3, fp32 and bf16 compute), beside the bytes
each rank's tensors hold; and gradient accumulation under DDP and FSDP2.

One process per GPU (NCCL, world size = torch.cuda.device_count()), started
by snippets.sharded_training.spawn with NCCL_NVLS_ENABLE=0 and
TORCH_SYMM_MEM_DISABLE_MULTICAST=1 in their environment. Each rank reads the
caching allocator after wrapping, after the last step (parameters, gradients,
state and communication buffers alive), between steps, and the last step's
peak, all above the batch already on the GPU; and how much device memory
lies outside the allocator (CUDA context, NCCL): before the process group
exists, after its first collective, and at the end. Each rank records its
GPU's name.

On a CPU (smoke size) it runs two gloo processes on a tiny model: every
allocator field is None there; the counted bytes are real.
"""

from __future__ import annotations

import torch

from snippets.sharded_training import CPU_CONFIG, spawn

FP32_RUNS = [["ddp", "fp32"], ["ddp_bucket_view", "fp32"], ["zero1", "fp32"],
             ["fsdp2", "fp32"], ["fsdp2", "mixed"]]

SIZES = {
    # 16 blocks of Linear(4096, 4096): P = 268,500,992 (1 GiB in fp32),
    # 16 bytes a parameter with AdamW: 4 GiB a rank before sharding; one
    # FSDP unit is 64 MiB. A local batch of 256 rows keeps activations
    # (4 MiB a tensor) small beside that.
    "full": {**CPU_CONFIG, "width": 4096, "depth": 16, "local_batch": 256,
             "steps": 3, "lr": 1e-4, "micro_batches": 4, "runs": FP32_RUNS},
    "smoke": {**CPU_CONFIG, "runs": FP32_RUNS},
}


def run(device: torch.device, size: str) -> dict:
    cfg = SIZES[size]
    if device.type == "cuda":
        world_size, backend = torch.cuda.device_count(), "nccl"
        cfg = {**cfg, "strict_warnings": False}  # recorded per rank instead
        # hand back this process's cached blocks: the ranks share the GPUs
        torch.cuda.empty_cache()
    else:
        world_size, backend = 2, "gloo"
    return summarize(cfg, world_size, backend, spawn(world_size, cfg, backend))


def summarize(cfg: dict, world_size: int, backend: str,
              ranks: list[dict]) -> dict:
    """The capture's data: the ranks' results, with the model they trained."""
    width, depth = cfg["width"], cfg["depth"]
    return {
        "world_size": world_size,
        "backend": backend,
        "gpus": [r["device"] for r in ranks],
        "model": {"width": width, "depth": depth,
                  "P": depth * (width * width + width),
                  "unit_params": width * width + width,
                  "local_batch": cfg["local_batch"], "steps": cfg["steps"],
                  "micro_batches": cfg["micro_batches"]},
        "ranks": ranks,
    }
