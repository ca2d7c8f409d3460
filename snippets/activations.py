"""Measure activation memory on any device: the bytes autograd saves for
backward."""

import torch
from torch import nn


# --8<-- [start:saved_activations]
class SavedActivations:
    """Count the bytes autograd keeps for backward during the `with` block.

    Parameters are excluded (they live on anyway); a storage saved twice
    (ReLU's output is the next Linear's input) is counted once.
    """

    def __init__(self, model: nn.Module):
        self._param_storages = {p.untyped_storage().data_ptr()
                                for p in model.parameters()}
        self._seen: set[int] = set()
        self.nbytes = 0

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self._param_storages and key not in self._seen:
            self._seen.add(key)
            self.nbytes += storage.nbytes()
        # A detached alias: the same storage, so no extra bytes. Returning
        # `tensor` itself can leak a graph (chapter 5, "a trap for anyone
        # who writes a saved-tensor hook").
        return tensor.detach()

    def __enter__(self) -> "SavedActivations":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(
            self._pack, lambda tensor: tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._hooks.__exit__(*exc_info)
# --8<-- [end:saved_activations]
