"""The in-page calculator in Chromium: changing the step (ranks, accumulation,
micro-batch, sequence) keeps the chosen model; changing a shape makes it
"custom"; each preset shows its published parameter count and the peak the
Python closed form gives; the keyboard alone reaches a per-rank answer, at
1280 and 390 px."""

from __future__ import annotations

import pytest

from snippets.memcalc.decoder import estimate_decoder
from snippets.memcalc.families import PRESETS
from snippets.memcalc.sharding import Sharding
from snippets.memcalc.transformer import Shape, estimate_transformer
from tests import browser
from tests.test_memcalc_families import PUBLISHED

pytestmark = pytest.mark.browser

# The page's own defaults for the step (memcalc.js, build()).
STEP = dict(optimizer="adamw", precision="bf16-autocast",
            implementation="foreach", checkpointing="none")


def _open(chromium, url, viewport=browser.LAPTOP):
    page, visit = browser.open_page(chromium, url + "memory-calculator/",
                                    viewport)
    page.wait_for_selector("#memcalc-result strong")
    return page, visit


def _shown(page, name: str) -> int:
    return int(page.get_attribute(f"#memcalc-{name}", "data-value"))


@pytest.mark.claim("Changing ranks or accumulation in the in-page calculator keeps the model; changing a "
                   "shape makes it custom", page="memory-calculator.md#the-calculator")
def test_step_options_keep_the_model_and_shapes_make_it_custom(chromium, url):
    page, _ = _open(chromium, url)
    try:
        model = page.input_value("#memcalc-preset")
        for name, value in (("ranks", "8"), ("micro_batches", "4"),
                            ("batch", "2"), ("seq", "512")):
            page.fill(f"#memcalc-{name}", value)
            assert page.input_value("#memcalc-preset") == model, name
        page.select_option("#memcalc-strategy", "zero3")
        page.select_option("#memcalc-offload", "optimizer")
        assert page.input_value("#memcalc-preset") == model
        page.fill("#memcalc-layers", "7")
        assert page.input_value("#memcalc-preset") == "custom"
        page.select_option("#memcalc-preset", "llama-3-8b")
        page.select_option("#memcalc-norm", "layernorm")
        assert page.input_value("#memcalc-preset") == "custom"
    finally:
        page.close()


def _expected_peak(name: str) -> int:
    if name == "gpt2":     # the GPT-style closed form, at GPT-2's 1,024
        return estimate_transformer(Shape(
            layers=12, hidden=768, heads=12, vocab=50257, seq=1024,
            batch=8, **STEP))["peak"]
    return estimate_decoder(PRESETS[name], batch=1, seq=4096,
                            **STEP)["peak"]


@pytest.mark.claim("Each preset of the in-page calculator shows its model's published parameter count",
                   page="memory-calculator.md#the-calculator")
def test_each_preset_shows_its_published_count_and_pythons_peak(chromium,
                                                                 url):
    page, visit = _open(chromium, url)
    try:
        for name in PRESETS:
            page.select_option("#memcalc-preset", name)
            assert _shown(page, "parameters") == PUBLISHED[name], name
            assert page.inner_text("#memcalc-parameters") == \
                f"{PUBLISHED[name]:,}"
            assert _shown(page, "peak") == _expected_peak(name), name
        assert not visit.console_errors, visit.console_errors
    finally:
        page.close()


@browser.VIEWPORTS
def test_the_keyboard_reaches_one_ranks_answer(chromium, url, viewport):
    """Llama-3-8B on eight ranks under FSDP2, bf16-mixed, checkpointed,
    four micro-batches accumulated: every field reached by the keyboard,
    the peak and the largest micro-batch those of the Python."""
    page, visit = _open(chromium, url, viewport)
    try:
        def choose(name: str, value: str) -> None:
            control = page.locator(f"#memcalc-{name}")
            control.focus()
            for _ in range(20):       # arrow keys step through the options
                if control.input_value() == value:
                    break
                control.press("ArrowDown")
            assert control.input_value() == value, name

        def type_in(name: str, value: str) -> None:
            control = page.locator(f"#memcalc-{name}")
            control.focus()
            control.press("Control+a")
            page.keyboard.type(value)
            assert control.input_value() == value, name

        choose("preset", "llama-3-8b")
        choose("precision", "bf16-mixed")
        choose("checkpointing", "full")
        type_in("ranks", "8")
        choose("strategy", "fsdp2")
        type_in("micro_batches", "4")
        outline = page.locator("#memcalc-micro_batches").evaluate(
            "el => getComputedStyle(el).outlineStyle")
        assert outline != "none", "no visible focus"
        options = dict(batch=1, seq=4096, optimizer="adamw",
                       precision="bf16-mixed", implementation="foreach",
                       checkpointing="full", micro_batches=4,
                       sharding=Sharding("fsdp2", 8))
        d = PRESETS["llama-3-8b"]
        assert _shown(page, "peak") == estimate_decoder(d, **options)["peak"]
        from snippets.memcalc.decoder import largest_micro_batch
        options.pop("batch")
        assert _shown(page, "largest") == largest_micro_batch(
            d, 80 * 2**30, **options)
        assert not visit.console_errors, visit.console_errors
        assert not visit.offsite, visit.offsite
        assert not browser.overflow_problems(
            page, strict=viewport["width"] > 1000)
    finally:
        page.close()


def test_a_choice_the_form_cannot_make_is_marked_at_its_field(chromium, url):
    page, _ = _open(chromium, url)
    try:
        page.select_option("#memcalc-preset", "llama-3-8b")
        page.select_option("#memcalc-checkpointing", "selective")
        assert "none or full" in page.inner_text("#memcalc-checkpointing-msg")
        page.select_option("#memcalc-checkpointing", "none")
        page.fill("#memcalc-ranks", "8")
        page.select_option("#memcalc-strategy", "fsdp2")
        page.select_option("#memcalc-precision", "bf16-autocast")
        assert "bf16-mixed" in page.inner_text("#memcalc-precision-msg")
        assert page.inner_text("#memcalc-result") == "Fix the marked fields."
    finally:
        page.close()
