"""Each interactive figure in Chromium, at 1280 and 390 px: move its controls, read its numbers.

The test loads the chapter, moves at least two controls (a slider with the keyboard in every
figure), and after each move reads every number the figure shows: each table cell carries
data-key (a path into the module's output) and data-value. The figure's data-state names the
settings; the golden case with those settings (tests/golden/figures/) must hold data-value
exactly, and the text shown must be that value rounded. tests/figures_golden.py's VISITED lists
the settings reached here, so the golden files always hold them.

Without Chromium or Playwright these tests skip with a one-line reason; under CI=true they fail.
"""

from __future__ import annotations

import json
import re

import pytest

from tests import browser, figures_golden

pytestmark = [pytest.mark.build, pytest.mark.browser]

browser.require_browser()

VIEWPORTS = browser.VIEWPORTS
SHOWN = re.compile(r"^(?P<mantissa>[-+]?\d+(?:\.(?P<decimals>\d+))?)(?:e(?P<exp>[-+]?\d+))?$")


def _golden(name: str) -> list[dict]:
    path = figures_golden.GOLDEN_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))["cases"]


def _resolve(output, key: str):
    for part in key.split("."):
        output = output[int(part)] if isinstance(output, list) else output[part]
    return output


def _matches_shown(text: str, value: float) -> bool:
    """The text is the value rounded to the digits it shows (a minus may be U+2212)."""
    match = SHOWN.match(text.replace("\u2212", "-").replace(" ", ""))
    if not match:
        return False
    last_digit = 10.0 ** (int(match["exp"] or 0) - len(match["decimals"] or ""))
    shown = float(match["mantissa"]) * 10.0 ** int(match["exp"] or 0)
    return abs(shown - value) <= 0.5 * last_digit * (1 + 1e-9)


def _in_gib(text: str, nbytes: float) -> bool:
    """A figure that shows bytes (data-unit="GiB") shows them in GiB to two decimals."""
    return text == f"{nbytes / 2**30:.2f}"


def check(host, name: str) -> dict:
    """Every number `host` shows against the golden case of its settings; returns the settings.
    A cell with data-unit="GiB" holds bytes and shows them in GiB."""
    state = json.loads(host.get_attribute("data-state"))
    cases = [c for c in _golden(name) if c["input"] == state]
    assert cases, f"{name}: no golden case for the settings {state} (add them to VISITED)"
    cells = host.locator("[data-key]")
    assert cells.count() >= 3, f"{name}: the figure shows {cells.count()} numbers"
    for i in range(cells.count()):
        cell = cells.nth(i)
        key, value = cell.get_attribute("data-key"), float(cell.get_attribute("data-value"))
        assert value == _resolve(cases[0]["output"], key), f"{name} {state}: {key}"
        text = cell.inner_text().strip()
        shown = _in_gib if cell.get_attribute("data-unit") == "GiB" else _matches_shown
        assert shown(text, value), f"{name} {state}: {key} shows {text!r} for {value!r}"
    return {k: v for k, v in state.items() if k != "part"}


def open_figure(chromium, url, path: str, name: str, viewport: dict):
    page, visit = browser.open_page(chromium, url + path, viewport)
    host = page.locator(f"[data-interactive={name}][data-ready]")
    host.wait_for(state="attached", timeout=5000)
    host.scroll_into_view_if_needed()
    return page, visit, host


def keyboard(host, label: str, *keys: str) -> None:
    """Focus the control labelled `label` and press `keys`: the keyboard alone moves it."""
    control = host.get_by_label(label, exact=True)
    control.focus()
    for key in keys:
        control.press(key)  # the figure redraws in the input event's handler, before this returns
    assert control.evaluate("el => getComputedStyle(el).outlineStyle") != "none", f"{label}: no visible focus"


def choose(host, label: str, value: str) -> None:
    host.get_by_label(label, exact=True).select_option(value)


def no_trouble(visit, page) -> None:
    assert not visit.console_errors, visit.console_errors
    assert not visit.offsite, visit.offsite
    assert not browser.overflow_problems(page, strict=page.viewport_size["width"] > 1000)


@VIEWPORTS
def test_momentum_figure(chromium, site, url, viewport):
    page, visit, host = open_figure(chromium, url, "sgd-momentum/", "momentum", viewport)
    try:
        visited = figures_golden.VISITED["momentum"]
        assert check(host, "momentum")["mu"] == 0.9
        keyboard(host, "momentum \u03bc", "End")
        assert check(host, "momentum") == {"lr": 0.1, **visited[0]}
        choose(host, "gradient sequence", "alternating")
        assert check(host, "momentum") == {"lr": 0.1, **visited[1]}
        keyboard(host, "Nesterov", "Space")
        assert check(host, "momentum") == {"lr": 0.1, **visited[2]}
        keyboard(host, "dampening \u03c4", "ArrowRight")  # Nesterov needs tau = 0: it switches off
        assert host.get_by_label("Nesterov").is_disabled()
        assert check(host, "momentum") == {"lr": 0.1, **visited[3]}
        no_trouble(visit, page)
    finally:
        page.close()


@VIEWPORTS
def test_adam_state_figure(chromium, site, url, viewport):
    page, visit, host = open_figure(chromium, url, "adam/", "adam-state", viewport)
    try:
        visited = figures_golden.VISITED["adam-state"]
        check(host, "adam-state")
        keyboard(host, "step t", "ArrowRight", "ArrowRight", "ArrowRight", "ArrowRight")
        assert host.locator("[data-key='rows.4.update']").count() == 1  # step 5 is shown
        check(host, "adam-state")
        host.get_by_label(re.compile("^gradients")).fill("0.5, -2, 3, 0, 1e-3")
        assert check(host, "adam-state") == {"lr": 0.001, **visited[0]}
        keyboard(host, "\u03b2\u2081", "End")
        assert check(host, "adam-state") == {"lr": 0.001, **visited[1]}
        keyboard(host, "\u03b2\u2082", "Home")
        assert check(host, "adam-state") == {"lr": 0.001, **visited[2]}
        host.get_by_label(re.compile("^gradients")).fill("1, x")
        assert "not a number" in host.locator("[role=status]").inner_text()
        no_trouble(visit, page)
    finally:
        page.close()


@VIEWPORTS
def test_weight_decay_figure(chromium, site, url, viewport):
    page, visit, host = open_figure(chromium, url, "weight-decay/", "weight-decay", viewport)
    try:
        visited = figures_golden.VISITED["weight-decay"]
        check(host, "weight-decay")
        keyboard(host, "weight_decay \u03bb", "ArrowRight", "ArrowRight")
        assert check(host, "weight-decay") == {**visited[0], "scales": [1.0, 0.01]}
        keyboard(host, "lr \u03b3", "End")
        assert check(host, "weight-decay") == {**visited[1], "scales": [1.0, 0.01]}
        choose(host, "steps", "200")
        assert check(host, "weight-decay") == {**visited[2], "scales": [1.0, 0.01]}
        no_trouble(visit, page)
    finally:
        page.close()


@VIEWPORTS
def test_bf16_rounding_figure(chromium, site, url, viewport):
    page, visit, figure = open_figure(chromium, url, "mixed-precision/", "bf16-rounding", viewport)
    try:
        visited = figures_golden.VISITED["bf16-rounding"]
        host = figure.locator("[data-part=update]")
        check(host, "bf16-rounding")
        keyboard(host, "update u", "ArrowLeft")
        assert check(host, "bf16-rounding") == visited[0]
        keyboard(host, "weight", "End")
        assert check(host, "bf16-rounding") == visited[1]
        choose(host, "times N", "1000")
        assert check(host, "bf16-rounding") == visited[2]
        run = figure.locator("[data-part=regression]")
        assert check(run, "bf16-rounding") == {"lr": 0.1}
        choose(run, "learning rate", "0.05")
        assert check(run, "bf16-rounding") == {"lr": 0.05}
        run.get_by_role("button").click()  # the replay ends on the same numbers
        page.wait_for_timeout(300)
        assert check(run, "bf16-rounding") == {"lr": 0.05}
        no_trouble(visit, page)
    finally:
        page.close()


@pytest.mark.parametrize("path, viewport", [
    ("memory/", browser.LAPTOP), ("memory/", browser.PHONE), ("checkpointing/", browser.LAPTOP),
    ("memory-calculator/", browser.LAPTOP), ("memory-calculator/", browser.PHONE)],
    ids=["memory-1280", "memory-390", "checkpointing-1280", "calculator-1280", "calculator-390"])
def test_memory_timeline_figure(chromium, site, url, viewport, path):
    """On each of its pages: the calculator's moments for GPT-2 small, then checkpointing,
    accumulation (the keyboard on the slider), the step's implementation and the precision
    moved; every number shown is the golden one, and the peak is marked in its phase."""
    page, visit, host = open_figure(chromium, url, path, "memory-timeline", viewport)
    try:
        visited = figures_golden.VISITED["memory-timeline"]
        assert check(host, "memory-timeline")["checkpointing"] == "none"
        assert "backward pass (micro-batch 1: start of the backward pass" in host.inner_text()
        choose(host, "checkpointing", "full")
        assert check(host, "memory-timeline") == visited[0]
        keyboard(host, "accumulation steps K", "ArrowRight", "ArrowRight", "ArrowRight")
        assert check(host, "memory-timeline") == visited[1]
        assert "micro-batches 2\u20134" in host.inner_text()
        choose(host, "step implementation", "for-loop")
        assert check(host, "memory-timeline") == visited[2]
        choose(host, "checkpointing", "selective")
        choose(host, "precision", "bf16-mixed")
        assert check(host, "memory-timeline") == visited[3]
        assert host.locator(".ifig-peak").count() == 1
        assert host.locator("tr.ifig-peakrow").count() == 1
        no_trouble(visit, page)
    finally:
        page.close()


def test_printed_the_widgets_give_way_to_the_static_figures(chromium, url):
    viewport = {"width": browser.A4_WIDTH_PX, "height": 1123}
    for path, name in (("sgd-momentum/", "momentum"), ("mixed-precision/", "bf16-rounding"),
                       ("memory/", "memory-timeline")):
        page, _ = browser.open_page(chromium, url + path, viewport, media="print")
        try:
            assert page.locator(f"[data-interactive={name}][data-ready]").count() == 1
            assert not page.locator(f"[data-interactive={name}]").is_visible()
        finally:
            page.close()
