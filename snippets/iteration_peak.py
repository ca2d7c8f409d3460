"""The most memory one training iteration holds at once, counted on the CPU:
what chapter 1 sets against its four families stacked.

LiveBytes (snippets/live_bytes.py) counts every tensor an operator creates
until its memory is released. The parameters and the optimizer state exist
before the iteration; everything else (activations, gradients, the gradients
with respect to activations, the step's temporaries) is made inside it.
"""

import torch
from torch import nn

from snippets.accounting import optimizer_state_nbytes, params_nbytes
from snippets.live_bytes import LiveBytes
from snippets.models import TinyMLP


# --8<-- [start:iteration_peak]
def iteration_peak(model, optimizer, x, y) -> dict[str, int]:
    """Bytes alive at the worst moment of each phase of one iteration:
    zero_grad() (gradients to None), forward and backward, then step().

    Call it once the optimizer has stepped (its state exists): a first
    step would understate the peak. The batch itself is not counted.
    """
    optimizer.zero_grad()
    held = params_nbytes(model) + optimizer_state_nbytes(optimizer)
    with LiveBytes() as backward:
        nn.functional.cross_entropy(model(x), y).backward()
    with LiveBytes() as step:
        optimizer.step()
    # backward.live: the new gradients, still alive during the step
    return {"forward and backward": held + backward.peak,
            "step": held + backward.live + step.peak}
# --8<-- [end:iteration_peak]


def tiny_mlp_adamw_peaks(batch_sizes: tuple[int, ...]) -> dict[int, int]:
    """The peak of one iteration, in bytes, of TinyMLP trained by AdamW in
    fp32 (after one step, as in snippets/memory_families.py) at each batch
    size: the markers of chapter 1's figure."""
    torch.manual_seed(0)
    model = TinyMLP()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(32, 128)
    y = torch.randint(0, 10, (32,))
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    peaks = {}
    for b in batch_sizes:
        x, y = torch.randn(b, 128), torch.randint(0, 10, (b,))
        peaks[b] = max(iteration_peak(model, optimizer, x, y).values())
    return peaks
