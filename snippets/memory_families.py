"""The four families of training memory, in bytes, for one model, optimizer
and batch: what chapter 1's table and stacked-bar figure show."""

import torch
from torch import nn

from snippets.accounting import (
    grads_nbytes, optimizer_state_nbytes, params_nbytes,
)
from snippets.activations import SavedActivations
from snippets.models import TinyMLP


# --8<-- [start:family_bytes]
def family_bytes(model: nn.Module, optimizer: torch.optim.Optimizer,
                 x: torch.Tensor) -> dict[str, int]:
    """Bytes of each family while `model` trains on the batch `x`.

    Gradients and optimizer state are counted as they stand (after a step,
    both exist); activations are what autograd saves for `x`.
    """
    with SavedActivations(model) as saved:
        model(x)
    return {
        "parameters": params_nbytes(model),
        "gradients": grads_nbytes(model),
        "optimizer state": optimizer_state_nbytes(optimizer),
        "activations": saved.nbytes,
    }
# --8<-- [end:family_bytes]


def tiny_mlp_adamw(batch_sizes: tuple[int, ...]) -> dict[int, dict[str, int]]:
    """family_bytes of TinyMLP trained by AdamW in fp32, after one step, at
    each batch size (the data of chapter 1's figure)."""
    torch.manual_seed(0)
    model = TinyMLP()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(32, 128)
    y = torch.randint(0, 10, (32,))
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    return {b: family_bytes(model, optimizer, torch.randn(b, 128))
            for b in batch_sizes}
