"""Accessibility beyond what axe-core can see: the keyboard alone, and the audit's own test.

tests/test_browser.py runs axe-core (node_modules/axe-core, injected by Playwright, never
fetched) on every page at both widths and in both palettes, in the same page load as its other
checks: every rule once per load, the colour rules in each palette where colours can differ
(browser.COLOUR_SCOPE). Here: axe-core is installed; the audit notices a page broken on purpose; a reader with
only a keyboard reaches every scrolling code block and table with Tab and sees where the focus
is; and the memory calculator works without a mouse.
"""

from __future__ import annotations

import os

import pytest

from tests import browser

pytestmark = [pytest.mark.build, pytest.mark.browser]

browser.require_browser()

AXE_MISSING = browser.axe_unavailable_reason()
needs_axe = pytest.mark.skipif(AXE_MISSING is not None and os.environ.get("CI") != "true",
                               reason=AXE_MISSING or "")

# A page with wide tables and long code lines: on a phone both scroll inside their boxes.
KEYBOARD_PAGE = "memory/"
MAX_TABS = 400


def test_axe_core_is_installed():
    """Without it the page tests leave the audit out; CI installs it (make test runs npm ci)."""
    if AXE_MISSING and os.environ.get("CI") != "true":
        pytest.skip(AXE_MISSING)
    assert AXE_MISSING is None, AXE_MISSING


@needs_axe
def test_the_audit_names_what_a_broken_page_gets_wrong(chromium, site, tmp_path):
    # Mid grey fails in both palettes: 3.9:1 on white, 4.1:1 on the dark background.
    broken = ('<p class="faint" style="color:#808080">Grey text, too faint in either palette.</p>'
              '<img src="../assets/images/favicon.png">'
              '<div role="dialog">a dialog without a name</div>')
    copy = browser.broken_copy(site, tmp_path, broken)
    with browser.serve(copy) as base:
        page, _ = browser.open_page(chromium, base + "memory/", browser.LAPTOP)
        try:
            found = browser.axe_violations(page)
            back = page.evaluate("() => document.body.getAttribute('data-md-color-scheme')")
        finally:
            page.close()
    caught = {(v["rule"], v["palette"]) for v in found}
    # the colours in each palette; every other rule once (a palette changes only colours)
    assert {("color-contrast", "default"), ("color-contrast", "slate")} <= caught, found
    assert ("image-alt", "default") in caught, found          # critical
    assert ("aria-dialog-name", "default") in caught, found   # serious
    # Each report names the rule and the element: its selector and a piece of its HTML.
    line = next(browser.describe_violation(v) for v in found if v["rule"] == "color-contrast")
    assert "p.faint" in line or ".faint" in line, line
    assert 'style="color:#808080"' in line and line.startswith("light palette"), line
    assert back == "default", "the audit leaves the page in the palette it found"


@needs_axe
def test_the_colour_rules_judge_each_colour_where_it_can_differ(chromium, site, tmp_path):
    """COLOUR_SCOPE: a code token repeated a hundred times is judged once (and still caught); a
    different one beside it is judged too; on a phone the article's colours are judged again only
    where a width-dependent CSS rule sets them."""
    faint = "".join('<span class="dim">faint</span> ' for _ in range(100))
    broken = (f'<pre><code>{faint}<span class="dimmer">fainter</span></code></pre>'
              '<p class="wide-grey">Grey at every width.</p>'
              '<p class="phone-grey">Grey on a phone only.</p>'
              '<style>.dim { color: #9a9a9a !important } .dimmer { color: #a0a0a0 !important }'
              '.wide-grey { color: #909090 !important }'
              '@media screen and (max-width: 600px) { .phone-grey { color: #909090 !important } }'
              '</style>')
    copy = browser.broken_copy(site, tmp_path, broken)
    found = {}
    with browser.serve(copy) as base:
        for viewport in (browser.LAPTOP, browser.PHONE):
            page, _ = browser.open_page(chromium, base + "memory/", viewport)
            try:
                found[viewport["width"]] = [v["target"] for v in browser.axe_violations(page, ("default",))
                                            if v["rule"] == "color-contrast"]
                marked = page.evaluate("() => document.querySelectorAll('pre [data-audit-same]').length")
            finally:
                page.close()
            assert marked >= 99, marked
    wide, phone = " ".join(found[1280]), " ".join(found[390])
    assert wide.count(".dim") - wide.count(".dimmer") == 1 and ".dimmer" in wide, found[1280]
    assert ".wide-grey" in wide and ".phone-grey" not in wide, found[1280]
    assert ".phone-grey" in phone and ".wide-grey" not in phone and ".dim" not in phone, found[390]


@needs_axe
def test_without_a11y_js_the_audit_finds_what_it_fixes(chromium, site, tmp_path):
    """The script is what makes scroll regions reachable and names the search dialog."""
    copy = browser.broken_copy(site, tmp_path, "")
    (copy / "assets" / "javascripts" / "a11y.js").write_text("", encoding="utf-8")
    with browser.serve(copy) as base:
        page, _ = browser.open_page(chromium, base + KEYBOARD_PAGE, browser.PHONE)
        try:
            rules = {v["rule"] for v in browser.axe_violations(page, palettes=("default",))}
        finally:
            page.close()
    assert {"scrollable-region-focusable", "aria-dialog-name"} <= rules, rules


def _scrollers(page) -> list[str]:
    """Tag every visible element of the article that scrolls; return a description of each."""
    return page.evaluate("""() => {
      const out = [];
      document.querySelectorAll('.md-content *').forEach((el) => {
        const s = getComputedStyle(el);
        const x = /auto|scroll/.test(s.overflowX) && el.scrollWidth > el.clientWidth + 1;
        const y = /auto|scroll/.test(s.overflowY) && el.scrollHeight > el.clientHeight + 1;
        if ((x || y) && el.getClientRects().length) {
          el.dataset.scrollerId = String(out.length);
          out.push(el.tagName.toLowerCase() + '.' + (el.className || '') + ' "' +
                   el.textContent.trim().slice(0, 40) + '"');
        }
      });
      return out;
    }""")


FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  return {scroller: el.dataset.scrollerId ?? null, tag: el.tagName.toLowerCase(),
          visible: el.matches(':focus-visible'), outline: s.outlineStyle,
          width: parseFloat(s.outlineWidth), color: s.outlineColor};
}"""


def test_tab_reaches_every_scrolling_table_and_code_block_with_a_visible_ring(chromium, url):
    page, _ = browser.open_page(chromium, url + KEYBOARD_PAGE, browser.PHONE)
    try:
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        page.wait_for_function("() => document.querySelectorAll('[data-scroll-focus=on]').length")
        scrollers = _scrollers(page)
        reached: dict[str, dict] = {}
        for _ in range(MAX_TABS):
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUSED)
            if focused and focused["scroller"] is not None:
                reached.setdefault(focused["scroller"], focused)
            if len(reached) == len(scrollers):
                break
    finally:
        page.close()
    kinds = " ".join(scrollers)
    assert "scrollwrap" in kinds and ("code" in kinds or "pre" in kinds), (
        f"/{KEYBOARD_PAGE} at 390 px should have a scrolling table and code block: {scrollers}")
    missed = [s for i, s in enumerate(scrollers) if str(i) not in reached]
    assert not missed, f"{MAX_TABS} Tabs never reached:\n" + "\n".join(missed)
    unseen = [f"{scrollers[int(i)]}: {f}" for i, f in reached.items()
              if not (f["visible"] and f["outline"] not in ("none", "hidden") and f["width"] >= 1
                      and f["color"] not in ("transparent", "rgba(0, 0, 0, 0)"))]
    assert not unseen, "focused with no visible ring:\n" + "\n".join(unseen)


def test_the_memory_calculator_works_from_the_keyboard(chromium, url):
    page, _ = browser.open_page(chromium, url + "memory-calculator/", browser.LAPTOP)
    result = "() => document.getElementById('memcalc-result').textContent"
    try:
        before = page.evaluate(result)
        assert "Peak" in before, before
        for _ in range(MAX_TABS):   # Tab from the top of the page to the calculator's first field
            page.keyboard.press("Tab")
            if page.evaluate("() => !!document.activeElement.closest('.memcalc-form')"):
                break
        else:
            raise AssertionError(f"{MAX_TABS} Tabs never reached the calculator's form")
        for _ in range(40):         # on to the layers field, still by Tab
            if page.evaluate("() => document.activeElement.id") == "memcalc-layers":
                break
            page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        assert focused["tag"] == "input" and focused["visible"] and focused["outline"] != "none", focused
        page.keyboard.press("Control+A")
        page.keyboard.type("24")
        after_typing = page.evaluate(result)
        assert after_typing != before and "Peak" in after_typing, after_typing
        for _ in range(40):
            if page.evaluate("() => document.activeElement.id") == "memcalc-optimizer":
                break
            page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        assert focused["tag"] == "select" and focused["visible"] and focused["outline"] != "none", focused
        page.keyboard.press("ArrowDown")   # a closed select steps to the next option
        chosen = page.evaluate("() => document.getElementById('memcalc-optimizer').value")
        after_choosing = page.evaluate(result)
    finally:
        page.close()
    assert chosen != "adamw", chosen
    assert after_choosing != after_typing and "Peak" in after_choosing, after_choosing
