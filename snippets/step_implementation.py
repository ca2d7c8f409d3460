"""Which implementation an optimizer step runs (for-loop, foreach or fused),
told by the kernels it calls, and how much new memory its largest single call
returns.

torch.overrides.TorchFunctionMode sees every torch function a step calls, on
any device, so this works on the CPU, where there is no peak-memory counter.
"""

import torch
from torch.overrides import TorchFunctionMode


def tensors_in(obj) -> list[torch.Tensor]:
    """Every tensor inside nested lists, tuples and dicts (foreach kernels
    take lists)."""
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in tensors_in(item)]
    return []


# --8<-- [start:step_kernels]
class StepKernels(TorchFunctionMode):
    """Inside `with StepKernels() as kernels:`, log each torch function called
    and the bytes of the NEW tensors it returned (an in-place op returns its
    input: 0)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", repr(func))
        if name == "__get__":  # reading p.grad or p.data allocates nothing
            return result
        seen = {t.untyped_storage().data_ptr()
                for t in tensors_in([args, kwargs])}
        new = [t for t in tensors_in(result)
               if t.untyped_storage().data_ptr() not in seen]
        self.calls.append((name, sum(t.nbytes for t in new)))
        return result

    def implementation(self) -> str:
        names = {name for name, _ in self.calls}
        if any(name.startswith("_fused_") for name in names):
            return "fused"     # one kernel: param, grad and state together
        if any(name.startswith("_foreach_") for name in names):
            return "foreach"   # one call per operation, over all tensors
        return "for-loop"      # one call per operation, per parameter tensor

    def largest_new_nbytes(self) -> int:
        """The most memory one call brought into being: a lower bound on
        the extra peak."""
        return max((nbytes for _, nbytes in self.calls), default=0)
# --8<-- [end:step_kernels]
