"""Read the CUDA caching allocator: bytes held now, and the peak since a reset.

On a CPU these return None: there is no allocator counter to read, and a
made-up number would be worse than none. The examples record None there and
the smoke tests check the shape of the data.
"""

import torch

# The caching allocator rounds every block up to a multiple of 512 bytes.
ALLOCATOR_BLOCK = 512


# --8<-- [start:allocator_rounding]
def allocator_bytes(nbytes: int) -> int:
    """What the caching allocator reserves for `nbytes`: a multiple of 512."""
    return max(1, -(-nbytes // ALLOCATOR_BLOCK)) * ALLOCATOR_BLOCK
# --8<-- [end:allocator_rounding]


# --8<-- [start:memory_meter]
class MemoryMeter:
    """memory_allocated() and max_memory_allocated() for one device,
    synchronised first."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"

    def allocated(self) -> int | None:
        if not self.cuda:
            return None
        # Kernels still queued may allocate or free.
        torch.cuda.synchronize(self.device)
        return torch.cuda.memory_allocated(self.device)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int | None:
        if not self.cuda:
            return None
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device)

    def release_cache(self) -> None:
        # Hand cached, unused blocks back to the driver, so that the next
        # measurement starts clean.
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
# --8<-- [end:memory_meter]
