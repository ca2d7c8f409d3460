"""What a foreach step runs on each device, read off torch itself.

`ForeachOps` records the `_foreach_*` operators a step calls, overloads
included. `registered_kernels` looks each one up in the
`native_functions.yaml` that ships with torch (under torchgen/packaged): the
kernel registered for the CPU and for CUDA. `per_tensor_operators` profiles a
step on the CPU and counts the operators it runs on single tensors, those
inside each `_foreach_*` call included.
"""

import functools
import re
from collections import Counter
from pathlib import Path

import torchgen
from torch.profiler import ProfilerActivity, profile

NATIVE_FUNCTIONS = (Path(torchgen.__file__).parent / "packaged" / "ATen"
                    / "native" / "native_functions.yaml")


# --8<-- [start:foreach_ops]
from torch.utils._python_dispatch import TorchDispatchMode


class ForeachOps(TorchDispatchMode):
    """Inside `with ForeachOps() as ops:`, `ops.names` lists each
    `_foreach_*` operator called, with its overload: '_foreach_add_.List'."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.name().removeprefix("aten::")
        if name.startswith("_foreach_") and name not in self.names:
            self.names.append(name)
        return func(*args, **(kwargs or {}))


def registered_kernels(op: str) -> dict[str, str]:
    """The kernels torch registers for `op` ('_foreach_add_.List'), by
    device: a device without an entry of its own runs the
    CompositeExplicitAutograd kernel, the same on every device."""
    dispatch = _dispatch_entries()[op]
    shared = dispatch.get("CompositeExplicitAutograd")
    return {device: dispatch.get(device, shared) for device in ("CPU", "CUDA")}
# --8<-- [end:foreach_ops]


@functools.cache
def _dispatch_entries() -> dict[str, dict[str, str]]:
    """{'_foreach_add_.List': {'CompositeExplicitAutograd': ..., 'CUDA':
    ...}} for every operator of native_functions.yaml with a dispatch:
    entry (its blocks are read as text; no YAML parser needed)."""
    entries = {}
    for block in NATIVE_FUNCTIONS.read_text().split("\n- func: ")[1:]:
        name = block.split("(", 1)[0]
        found = re.search(r"^  dispatch:\n((?:    \S.*\n)+)", block, re.M)
        if not found:
            continue
        kernels = {}
        for line in found[1].splitlines():
            line = line.split("#", 1)[0].strip()  # drop a trailing comment
            if ":" not in line:
                continue
            keys, kernel = line.split(":", 1)
            for key in keys.split(","):
                kernels[key.strip()] = kernel.strip()
        entries[name] = kernels
    return entries


# --8<-- [start:per_tensor_operators]
def per_tensor_operators(step) -> Counter:
    """Profile `step()` on the CPU and count the operators it runs on
    single tensors: those it calls itself, and those each `_foreach_*` call
    runs inside it."""
    with profile(activities=[ProfilerActivity.CPU]) as run:
        step()
    (top,) = [e for e in run.events() if e.name.startswith("Optimizer.step")]
    counted = Counter()
    for call in top.cpu_children:
        if call.name.startswith("aten::_foreach_"):
            counted.update(inner.name for inner in call.cpu_children)
        else:
            counted[call.name] += 1
    return counted
# --8<-- [end:per_tensor_operators]
