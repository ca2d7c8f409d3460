"""Dropout whose masks are drawn once for the whole effective batch, then
handed out row by row.

nn.Dropout draws a fresh mask at every forward call from the global
generator, so a big batch and K micro-batches consume random numbers in a
different order and drop different units. Drawing the effective batch's masks
up front, and giving each micro-batch the rows of its own examples, makes
accumulation reproduce the big batch exactly; that is all this module is for.
"""

import torch
from torch import nn


# --8<-- [start:presampled_dropout]
class PresampledDropout(nn.Module):
    """Inverted dropout (like nn.Dropout) reading its keep-mask from rows
    drawn in advance."""

    def __init__(self, features: int, p: float):
        super().__init__()
        self.features, self.p = features, p
        self.mask: torch.Tensor | None = None
        self.next_row = 0

    def draw(self, batch_size: int, generator: torch.Generator) -> None:
        """Draw the masks of a whole effective batch: one row per example."""
        keep = torch.full((batch_size, self.features), 1 - self.p)
        self.mask = torch.bernoulli(keep, generator=generator)
        self.next_row = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        rows = slice(self.next_row, self.next_row + len(x))
        self.next_row += len(x)  # the next micro-batch: the next examples
        return x * self.mask[rows] / (1 - self.p)


def draw_masks(model: nn.Module, batch_size: int, seed: int) -> None:
    """Give every PresampledDropout in `model` masks for one batch."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, PresampledDropout):
            module.draw(batch_size, generator)
# --8<-- [end:presampled_dropout]
