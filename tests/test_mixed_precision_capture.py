"""The mixed-precision capture against the formulas of chapter 7: every byte
count the GPU measured equals the prediction from the parameter shapes,
recomputed here from the code as it is now, to the allocator's rounding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from examples.mixed_precision import CONFIGS, TokenMLP, predict
from snippets.captures import load_capture
from snippets.cuda_memory import allocator_bytes


@pytest.fixture(scope="module")
def capture():
    return load_capture("mixed_precision")["data"]


@pytest.fixture(scope="module")
def rows(capture):
    return {(r["recipe"], r["optimizer"]): r for r in capture["rows"]}


def _shapes(model_cfg: dict):
    with torch.device("meta"):
        model = TokenMLP(model_cfg["vocab"], model_cfg["width"],
                         model_cfg["layers"])
    shapes = {n: list(p.shape) for n, p in model.named_parameters()}
    linear = [f"{m}.{n}" for m, mod in model.named_modules()
              if isinstance(mod, nn.Linear)
              for n, _ in mod.named_parameters()]
    hidden = [n for n, p in model.named_parameters()
              if p.ndim == 2 and n.startswith("blocks.")]
    return shapes, linear, hidden


def test_every_configuration_was_measured(rows):
    assert list(rows) == CONFIGS
    assert all("skipped" not in r for r in rows.values()), \
        "a full capture on CUDA measures 8-bit Adam too"


@pytest.mark.claim("On the GPU every recipe's weight, gradient, state and "
                   "autocast-cache bytes equal the prediction to the byte",
                   page="mixed-precision.md#measured-on-the-gpu",
                   capture="mixed_precision")
def test_measured_bytes_equal_the_prediction_exactly(capture, rows):
    shapes, linear, hidden = _shapes(capture["model"])
    for (recipe, optimizer), r in rows.items():
        expected = predict(recipe, optimizer, shapes, linear, hidden)
        assert r["predicted"] == expected, (recipe, optimizer)
        for key in ("params", "grads", "state"):
            assert r[f"{key}_bytes"] == expected[key], (recipe, optimizer, key)
        if "autocast" in recipe:
            assert r["autocast_cache_bytes"] == expected["autocast_cache"]
        assert r["persistent_bytes"] == r["params_bytes"] + r["state_bytes"]
        assert r["peak_bytes"] >= r["persistent_bytes"] + r["grads_bytes"]


@pytest.mark.claim("On the GPU Kahan adds exactly one bf16 buffer per "
                   "parameter tensor",
                   page="mixed-precision.md#measured-on-the-gpu",
                   capture="mixed_precision")
def test_kahan_adds_one_bf16_buffer_per_parameter(capture, rows):
    shapes, _, _ = _shapes(capture["model"])
    buffers = sum(allocator_bytes(2 * _numel(s)) for s in shapes.values())
    kahan = rows[("pure bf16 + Kahan", "Bf16AdamW kahan")]["state_bytes"]
    plain = rows[("pure bf16", "Bf16AdamW stochastic")]["state_bytes"]
    assert kahan - plain == buffers


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@pytest.mark.claim("8-bit Adam's state is under a third of AdamW's, Muon's "
                   "under 3/4, Adafactor's under 1 %; pure bf16 halves "
                   "persistent bytes",
                   page="mixed-precision.md#measured-on-the-gpu",
                   capture="mixed_precision")
def test_smaller_states_are_smaller(rows):
    adamw = rows[("autocast bf16", "AdamW")]["state_bytes"]
    assert rows[("autocast bf16", "Adam8bit")]["state_bytes"] < adamw / 3
    assert rows[("autocast bf16", "Muon")]["state_bytes"] < adamw * 3 / 4
    assert rows[("autocast bf16", "Adafactor")]["state_bytes"] < adamw / 100
    pure = rows[("pure bf16", "AdamW")]["persistent_bytes"]
    fp32 = rows[("fp32", "AdamW")]["persistent_bytes"]
    assert abs(pure / fp32 - 0.5) < 0.01


@pytest.mark.claim("Autocast and pure bf16 take a step in under half fp32's "
                   "time",
                   page="mixed-precision.md#measured-on-the-gpu",
                   capture="mixed_precision")
def test_autocast_is_faster_than_fp32(rows):
    fp32 = rows[("fp32", "AdamW")]["step_ms"]
    assert rows[("autocast bf16", "AdamW")]["step_ms"] < fp32 / 2
    assert rows[("pure bf16", "AdamW")]["step_ms"] < fp32 / 2


@pytest.mark.claim("The page's quantiser and bitsandbytes on the GPU "
                   "disagree on few values, by at most one code",
                   page="mixed-precision.md#measured-on-the-gpu",
                   capture="mixed_precision")
def test_our_quantiser_agrees_with_bitsandbytes_on_the_gpu(capture):
    q = capture["quantiser"]
    assert q["same_absmax"]
    assert q["same_index_fraction"] > 0.9999 and q["max_index_gap"] <= 1


TF32_SWITCHES = ("set_float32_matmul_precision", "allow_tf32",
                 "fp32_precision")


@pytest.mark.claim("The fp32 row is strict fp32: the capture's code never turns "
                   "TF32 on, and torch's default keeps fp32 matrix products "
                   "at full precision",
                   page="mixed-precision.md#measured-on-the-gpu")
def test_the_fp32_row_ran_with_tf32_off():
    from snippets.captures import ROOT
    sources = load_capture("mixed_precision")["provenance"]["sources"]
    runner = ["examples/__main__.py", "examples/__init__.py"]
    for path in sources + runner:
        text = (ROOT / path).read_text(encoding="utf-8")
        assert not any(switch in text for switch in TF32_SWITCHES), path
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.backends.cuda.matmul.allow_tf32 is False
    page = (ROOT / "docs" / "mixed-precision.md").read_text(encoding="utf-8")
    assert "against strict fp32" in page
    assert 'torch.set_float32_matmul_precision("high")` (TF32) is the row a ' \
           "future capture adds" in " ".join(page.split())


@pytest.mark.claim("The capture ran bitsandbytes 0.50.2, whose 8-bit Adam keeps "
                   "one absmax per 256 values (the paper: 2048)",
                   page="mixed-precision.md#smaller-optimizer-states")
def test_the_capture_ran_the_bitsandbytes_the_page_cites(capture, rows):
    from snippets.quantized_state import BLOCK
    assert capture["bitsandbytes"] == "0.50.2"
    assert BLOCK == 256
    # its state bytes equal the 256-block prediction to the byte (above)
    row = rows[("autocast bf16", "Adam8bit")]
    assert row["state_bytes"] == row["predicted"]["state"]
