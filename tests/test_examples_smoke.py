"""Every example runs at smoke size on the CPU and returns plain data the runner can capture."""

from __future__ import annotations

import json

import pytest
import torch

from examples import EXAMPLES
from tests.smoke import smoke_capture as smoke_run

CPU = torch.device("cpu")


@pytest.fixture(scope="module", params=EXAMPLES)
def smoke_capture(request):
    return smoke_run(request.param)


def test_smoke_run_gives_plain_data_with_provenance(smoke_capture):
    json.dumps(smoke_capture, allow_nan=False)
    p = smoke_capture["provenance"]
    assert p["device"] == "cpu" and p["gpu"] is None and p["cuda"] is None
    assert p["sources"][0].startswith("examples/") or f"examples/{smoke_capture['name']}.py" in p["sources"]
    assert len(p["source_sha256"]) == 64


def test_cpu_smoke_never_invents_memory_numbers(smoke_capture):
    """On a CPU there is no allocator counter: every *_bytes field read from it must be None."""
    def walk(value, path=""):
        if isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from walk(item, f"{path}[{i}]")
        else:
            yield path, value

    allocator_fields = [(k, v) for k, v in walk(smoke_capture["data"])
                        if any(w in k for w in ("allocated", "peak", "allocator_prediction"))]
    assert all(v is None for _, v in allocator_fields), allocator_fields
