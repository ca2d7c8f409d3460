"""On a CUDA machine: every example runs at smoke size and reads the allocator for real.

Skipped in CI (no GPU); run on the GPU machine with `python3 -m pytest -m cuda tests/test_examples_cuda.py`.
"""

from __future__ import annotations

import json

import pytest
import torch

from examples import EXAMPLES
from examples.__main__ import run_one


@pytest.mark.cuda
def test_every_example_runs_on_cuda_and_reads_the_allocator():
    device = torch.device("cuda")
    for name in EXAMPLES:
        capture, _ = run_one(name, device, "smoke")
        json.dumps(capture, allow_nan=False)
        assert capture["provenance"]["device"] == "cuda" and capture["provenance"]["gpu"], name
        text = json.dumps(capture["data"])
        # on a GPU the allocator fields hold numbers; a None there would be a CPU fallback leaking
        # through. Two fields are None by design: a formula that does not apply to a model
        # (Korthikanti's, for a model without attention) and the autocast cache of a recipe
        # without autocast.
        for legit in ('"korthikanti_bytes": null', '"autocast_cache_bytes": null', '"step_device": null'):
            text = text.replace(legit, "")
        assert '_bytes": null' not in text, name
