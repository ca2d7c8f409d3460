"""Count the bytes of tensors alive right now, and their peak, on any device.

SavedActivations (snippets/activations.py) asks autograd which tensors it
saves; that misses what lives outside autograd's saved tensors, such as the
outputs a selective-checkpoint policy caches. LiveBytes instead watches every
tensor that an operator creates while it is active, and forgets it the moment
its memory is released: a small, exact model of what the CUDA caching
allocator would count (before its rounding to 512 bytes, and without the
private scratch that some kernels allocate for themselves).
"""

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


# --8<-- [start:live_bytes]
class LiveBytes(TorchDispatchMode):
    """Bytes of storages created by operators inside the `with` block that
    are still alive: `live` now, `peak` the highest it reached.

    Memory that existed before (the parameters, the input batch) is not
    counted, nor are views and in-place results, which reuse their input's
    storage.
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._watched: dict[int, weakref.ref] = {}

    def _released(self, key: int, nbytes: int, _ref: weakref.ref) -> None:
        # Runs when the storage's memory is freed: torch keeps the storage's
        # Python object alive exactly as long as its memory.
        self._watched.pop(key, None)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage())
                  for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, nbytes = id(storage), storage.nbytes()
            if key in inputs or key in self._watched or nbytes == 0:
                continue  # a view, an in-place result, or already counted
            self._watched[key] = weakref.ref(
                storage,
                lambda ref, k=key, n=nbytes: self._released(k, n, ref))
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        return out
# --8<-- [end:live_bytes]
