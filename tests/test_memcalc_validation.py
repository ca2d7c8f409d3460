"""The page's validation table shows the calculator's current predictions:
examples/render/memory_calculator.predictions.json must be what the
calculator says now for every captured configuration."""

from __future__ import annotations

import pytest

from examples.memory_calculator import CONFIGS
from snippets.captures import load_capture
from snippets.memcalc.validation import load, predict

STORED = load()


def test_the_file_has_one_row_per_captured_configuration():
    rows = load_capture("memory_calculator")["data"]["configs"]
    assert [r["name"] for r in rows] == [p["name"] for p in STORED]
    assert len(STORED) == len(CONFIGS)


@pytest.mark.claim("The calculator page's validation shows the current calculator's predictions for the "
                   "captured configurations", page="memory-calculator.md#checked-on-the-gpu")
@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_the_stored_prediction_is_what_the_calculator_says_now(index):
    assert predict(index) == STORED[index], (
        "examples/render/memory_calculator.predictions.json is out of "
        "date: python -m snippets.memcalc.validation")
