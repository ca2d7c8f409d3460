"""The memory calculator against measurements it was not tuned on: chapter 7's capture.

Chapter 7 measured optimizer state on the GPU with the real libraries, bitsandbytes' 8-bit Adam
included, on a model of its own. The calculator's rules must give the same bytes for that model.
"""

from __future__ import annotations

import pytest
import torch

from examples.mixed_precision import TokenMLP
from snippets.captures import load_capture
from snippets.memcalc.optimizers import Param, state_bytes

# chapter 7's optimizer names -> the calculator's, with the implementation it measured
NAMES = {"Adam8bit": ("adam8bit", "for-loop"), "AdamW": ("adamw", "fused")}


def _chapter_7():
    data = load_capture("mixed_precision")["data"]
    m = data["model"]
    with torch.device("meta"):
        model = TokenMLP(m["vocab"], m["width"], m["layers"])
    return data["rows"], [Param(tuple(p.shape), 4) for p in model.parameters()]


@pytest.mark.claim("The calculator's 8-bit Adam layout predicts bitsandbytes' measured state to the byte",
                   page="memory-calculator.md#limits", capture="mixed_precision")
def test_the_calculator_predicts_bitsandbytes_state_measured_in_chapter_7():
    rows, params = _chapter_7()
    row = next(r for r in rows if r["optimizer"] == "Adam8bit")
    assert state_bytes("adam8bit", "for-loop", params) == row["state_bytes"]


def test_the_calculator_predicts_fp32_adamw_state_measured_in_chapter_7():
    rows, params = _chapter_7()
    row = next(r for r in rows if r["optimizer"] == "AdamW" and r["recipe"] == "fp32")
    assert state_bytes("adamw", "fused", params) == row["state_bytes"]


@pytest.mark.claim("The memory calculator predicts chapter 7's measured peaks within 5 % for every "
                   "recipe and optimizer it models",
                   page="mixed-precision.md#measured-on-the-gpu", capture="mixed_precision")
def test_the_calculator_predicts_chapter_7s_peaks_within_five_percent():
    from examples.render.mixed_precision import calculator_predictions

    predictions = calculator_predictions(load_capture("mixed_precision"))
    assert len(predictions) >= 6
    worst = max(predictions, key=lambda p: abs(p["error"]))
    assert abs(worst["error"]) <= 0.05, (worst["row"]["recipe"], worst["row"]["optimizer"], worst["error"])
