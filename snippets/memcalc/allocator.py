"""What the CUDA caching allocator counts, and the workspaces libraries keep.

`torch.cuda.max_memory_allocated()` counts allocator blocks, and every block
is a multiple of 512 bytes: a 4-byte scalar takes 512. cuBLAS keeps a
workspace per (thread, stream) once it has run a matrix product there, taken
from the same allocator and never given back while the process lives: one
for the thread that runs the forward pass and one for autograd's thread that
runs the backward pass on a GPU. cuBLASLt (used by `addmm` with a bias, as
`nn.Linear` does) keeps its own.
"""

from __future__ import annotations

import os

BLOCK = 512  # c10/cuda/CUDACachingAllocator.cpp: kMinBlockSize
MiB = 1 << 20
GiB = 1 << 30

# torch/csrc/cuda/CublasHandlePool.cpp: 32 MiB on compute capability 9.0
# (Hopper), else ":4096:2:16:8" = 4096 KiB x 2 + 16 KiB x 8.
CUBLAS_WORKSPACE_SM90 = 32 * MiB
CUBLAS_WORKSPACE_OTHER = 4096 * 1024 * 2 + 16 * 1024 * 8
CUBLASLT_WORKSPACE = 1 * MiB  # CUBLASLT_WORKSPACE_SIZE default, in KiB


def round_block(nbytes: int) -> int:
    """Bytes the allocator hands out for a request of `nbytes` (0 for 0)."""
    if nbytes <= 0:
        return 0
    return -(-nbytes // BLOCK) * BLOCK


def cublas_workspace(capability: tuple[int, int] = (9, 0)) -> int:
    """One cuBLAS workspace: CUBLAS_WORKSPACE_CONFIG if set, else the default
    for the compute capability (the default of this module: 9.0)."""
    config = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if config:
        # ":SIZE_KiB:COUNT" pairs, e.g. ":4096:8" or ":4096:2:16:8"
        parts = [int(p) for p in config.strip(":").split(":") if p]
        return sum(a * b * 1024 for a, b in zip(parts[::2], parts[1::2]))
    if tuple(capability) == (9, 0):
        return CUBLAS_WORKSPACE_SM90
    return CUBLAS_WORKSPACE_OTHER


def workspace_bytes(forward_matmul: bool, backward_matmul: bool,
                    bias_matmul: bool,
                    capability: tuple[int, int] = (9, 0)) -> int:
    """The library workspaces a training step leaves allocated."""
    one = cublas_workspace(capability)
    return (one * forward_matmul + one * backward_matmul
            + CUBLASLT_WORKSPACE * bias_matmul)
