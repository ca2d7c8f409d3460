"""The in-page calculator in Chromium: changing the step (ranks, accumulation,
micro-batch, sequence) keeps the chosen model; changing a shape makes it
"custom"."""

from __future__ import annotations

import pytest

from tests import browser

pytestmark = pytest.mark.browser


@pytest.mark.claim("Changing ranks or accumulation in the in-page calculator keeps the model; changing a "
                   "shape makes it custom", page="memory-calculator.md#the-calculator")
def test_step_options_keep_the_model_and_shapes_make_it_custom(chromium, url):
    page, _ = browser.open_page(chromium, url + "memory-calculator/",
                                browser.LAPTOP)
    try:
        page.wait_for_selector("#memcalc-result strong")
        model = page.input_value("#memcalc-preset")
        for name, value in (("ranks", "8"), ("micro_batches", "4"),
                            ("batch", "2"), ("seq", "512")):
            page.fill(f"#memcalc-{name}", value)
            assert page.input_value("#memcalc-preset") == model, name
        page.fill("#memcalc-layers", "7")
        assert page.input_value("#memcalc-preset") == "custom"
    finally:
        page.close()
