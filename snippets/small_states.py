"""Optimizers that keep less than Adam: Adafactor's factored second moment
and Muon's single momentum buffer, with the parameter groups Muon needs."""

import math

import torch
from torch import nn


# --8<-- [start:adafactor_bytes]
def adafactor_state_nbytes(shape, itemsize: int) -> list[int]:
    """Bytes of each tensor torch.optim.Adafactor keeps for one parameter
    (besides its 0-d fp32 `step`, which stays on the CPU).

    A matrix (or any tensor of two or more dimensions) keeps a row
    statistic (the last dimension averaged away) and a column statistic
    (the second-to-last averaged away): m + n numbers for an m x n matrix
    instead of m * n. A vector keeps a full second moment. No first moment.
    """
    if len(shape) < 2:
        return [math.prod(shape) * itemsize]
    rows = math.prod(shape[:-1])                 # shape[:-1] + (1,)
    cols = math.prod(shape[:-2]) * shape[-1]     # shape[:-2] + (1, n)
    return [rows * itemsize, cols * itemsize]
# --8<-- [end:adafactor_bytes]


# --8<-- [start:muon_groups]
def muon_and_adamw(model: nn.Module, *, skip=(nn.Embedding,),
                   muon_lr=0.02, adamw_lr=3e-4, **adamw_options):
    """Muon for the 2-D weights of hidden layers, AdamW for the rest.

    Muon orthogonalises a matrix update, so it takes 2-D parameters only
    (torch raises ValueError otherwise). Embeddings and the output head are
    2-D too, but Keller Jordan's recipe trains them with AdamW: pass their
    module types in `skip` or name the head `head`.
    """
    skipped = {id(p) for m in model.modules() if isinstance(m, skip)
               for p in m.parameters()}
    muon, adamw = [], []
    for name, p in model.named_parameters():
        hidden_matrix = p.ndim == 2 and not name.startswith("head")
        if hidden_matrix and id(p) not in skipped:
            muon.append(p)
        else:
            adamw.append(p)                      # biases, norms, embeddings
    return [torch.optim.Muon(muon, lr=muon_lr),
            torch.optim.AdamW(adamw, lr=adamw_lr, **adamw_options)]
# --8<-- [end:muon_groups]
