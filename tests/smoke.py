"""Each example's smoke-size run on the CPU, made once per test process.

Several test files check the same smoke run (the runner's wrapping in test_examples_smoke, the
counts in test_checkpointing, test_accumulation and test_memory_page); the scheduler in
tests/conftest.py sends those files to one worker, and this cache runs each example there once.
Callers get their own deep copy, so no test sees another's edits. Warnings are errors in the
suite (pyproject.toml), so a run that warns fails whichever test makes it first."""

from __future__ import annotations

import copy
import functools

import torch

CPU = torch.device("cpu")
# The files that read smoke runs: one unit of work for the xdist scheduler (tests/conftest.py).
READERS = ("tests/test_examples_smoke.py", "tests/test_checkpointing.py",
           "tests/test_accumulation.py", "tests/test_memory_page.py")


@functools.cache
def _capture(name: str) -> dict:
    from examples.__main__ import run_one

    capture, _ = run_one(name, CPU, "smoke")
    return capture


def smoke_capture(name: str) -> dict:
    """What `python -m examples NAME --size smoke` would write (provenance included)."""
    return copy.deepcopy(_capture(name))


def smoke_data(name: str) -> dict:
    """The example's own data from its smoke run, as `examples.NAME.run(cpu, "smoke")` gives it."""
    return copy.deepcopy(_capture(name)["data"])
