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


@pytest.mark.claim("The accuracy figures on this site's own models are in-sample; the models the "
                   "project did not write are scored out of sample, fitted and held-out sets named",
                   page="memory-calculator.md#checked-on-the-gpu")
def test_the_page_says_which_figures_are_in_sample_and_which_are_held_out():
    """Issue 17.12: the rules were fitted on the capture that scores them. The fold that shows that
    capture must say so before its table, and the out-of-sample section must name its sets."""
    from snippets.captures import ROOT

    text = (ROOT / "docs" / "memory-calculator.md").read_text(encoding="utf-8")
    fold = text[text.index('??? info "All configurations: measured against predicted"'):]
    assert fold.index("in-sample") < fold.index("<!-- capture: memory_calculator/validation -->")
    assert "compute capability" in fold[:fold.index("<!-- capture: memory_calculator/validation -->")]
    models = " ".join(text[text.index("### On models this project did not write"):].split())
    assert "{{ memcalc_models/held_out_median_error }}" in models.split("??? ")[0]
    assert "fitted on Llama" in models and "held out" in models
