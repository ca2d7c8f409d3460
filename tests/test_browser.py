"""Every page of the built site, in Chromium, at 1280 x 900 and 390 x 844, and printed on A4.

Each page load also runs the accessibility audit (axe-core, in the light and the dark palette;
tests/test_a11y.py has the keyboard tests and shows that the audit notices a broken page).
Without Chromium or Playwright these tests skip with a one-line reason; under CI=true they fail
instead, because CI installs both (.ci/run) and a silently skipped browser test proves nothing.
The last tests break a copy of the site on purpose and show that each check notices.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests import browser
from tests.sitebuild import ROOT

pytestmark = [pytest.mark.build, pytest.mark.browser]

browser.require_browser()

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402  (only now we know it is there)


def _pages() -> list[str]:
    """Every page's URL path under use_directory_urls (memory.md -> memory/), and the theme's 404."""
    pages = []
    for md in sorted((ROOT / "docs").rglob("*.md")):
        rel = md.relative_to(ROOT / "docs")
        if rel.parts[0] == "includes":   # snippets appended to every page (mkdocs.yml exclude_docs)
            continue
        folder = "".join(f"{part}/" for part in rel.parts[:-1])
        pages.append(folder if md.stem in ("index", "README") else f"{folder}{md.stem}/")
    for nb in sorted((ROOT / "docs" / "notebooks").glob("*.py")):
        pages.append(f"notebooks/{nb.stem}/")
    return pages + ["404.html"]


PAGES = _pages()
# Without axe-core (npm ci not run) the audit is left out here; tests/test_a11y.py says why.
AUDIT = browser.axe_unavailable_reason() is None
CHAPTER = re.compile(r"^# (?:\d+[a-z]?|[A-Z]) · ", re.MULTILINE)
CHAPTERS = [p for p in PAGES if p and CHAPTER.match((ROOT / "docs" / f"{p.rstrip('/')}.md").read_text(encoding="utf-8")
                                                     if (ROOT / "docs" / f"{p.rstrip('/')}.md").is_file() else "")]


@browser.VIEWPORTS
@pytest.mark.parametrize("path", PAGES, ids=lambda p: p or "index")
def test_page_in_the_browser(chromium, site, url, path, viewport):
    page, visit = browser.open_page(chromium, url + path, viewport)
    try:
        problems = browser.math_problems(page)
        problems += browser.figure_problems(page, site)
        problems += browser.overflow_problems(page, strict=viewport is browser.LAPTOP)
        if AUDIT:  # after the overflow check has opened every fold: folded content is audited too
            problems += browser.accessibility_problems(page)
        # last, so that what the page's scripts did during the checks counts too
        problems += [f"console error: {e}" for e in visit.console_errors]
        problems += [f"request leaves the local server: {u}" for u in visit.offsite]
    finally:
        page.close()
    assert not problems, f"/{path} at {viewport['width']} px:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.rstrip("/"))
def test_chapter_prints_on_a4_with_nothing_clipped(chromium, url, path):
    viewport = {"width": browser.A4_WIDTH_PX, "height": 1123}
    page, _ = browser.open_page(chromium, url + path, viewport, media="print")
    try:
        problems = browser.overflow_problems(page, strict=True)
        assert browser.pdf_pages(page, "A4") >= 1
    finally:
        page.close()
    assert not problems, f"/{path} printed on A4:\n" + "\n".join(problems)


# --- Each check notices what it is for: a copy of the site, broken on purpose ---------------

def _check_copy(chromium, copy: Path, viewport=browser.LAPTOP) -> tuple[list[str], list[str], list[str]]:
    with browser.serve(copy) as base:
        page, visit = browser.open_page(chromium, base + "memory/", viewport)
        try:
            return visit.offsite, browser.overflow_problems(page, strict=True), visit.console_errors
        finally:
            page.close()


def test_a_120_character_code_line_is_caught(chromium, site, tmp_path):
    line = "x = " + "1 + " * 29
    code = f'<div class="highlight"><pre><span></span><code>{line[:120]}</code></pre></div>'
    _, overflow, _ = _check_copy(chromium, browser.broken_copy(site, tmp_path, code))
    assert any("sideways scrolling" in p and ("pre" in p or "code" in p) for p in overflow), overflow


def test_a_12_column_table_is_caught(chromium, site, tmp_path):
    head = "".join(f"<th>column heading {i}</th>" for i in range(12))
    row = "".join(f"<td>{i * 1234567}</td>" for i in range(12))
    table = (f'<div class="md-typeset__scrollwrap"><div class="md-typeset__table"><table><thead><tr>{head}</tr>'
             f"</thead><tbody><tr>{row}</tr></tbody></table></div></div>")
    _, overflow, _ = _check_copy(chromium, browser.broken_copy(site, tmp_path, table))
    assert any("sideways scrolling" in p and ("table" in p or "scrollwrap" in p) for p in overflow), overflow


def test_an_external_script_is_caught(chromium, site, tmp_path):
    script = '<script src="https://cdn.example.com/tracker.js"></script>'
    offsite, _, _ = _check_copy(chromium, browser.broken_copy(site, tmp_path, script))
    assert offsite == ["https://cdn.example.com/tracker.js"], offsite


def test_raw_math_and_a_figure_without_words_are_caught(chromium, site, tmp_path):
    broken = ('<p>raw \\(\\theta\\) here</p><figure><img src="../captures/none.svg" alt=""></figure>')
    copy = browser.broken_copy(site, tmp_path, broken)
    with browser.serve(copy) as base:
        page, _ = browser.open_page(chromium, base + "memory/", browser.LAPTOP)
        try:
            math = browser.math_problems(page)
            figures = browser.figure_problems(page, copy)
        finally:
            page.close()
    assert any("raw math" in p for p in math), math
    assert any("caption" in p for p in figures) and any("alt" in p for p in figures), figures


SEARCHES = {  # a topic a reader types, and the chapter that must come first
    "AdamW": "weight-decay/",
    "gradient accumulation": "grad-accumulation/",
    "checkpointing": "checkpointing/",
    "momentum": "sgd-momentum/",
    "foreach": "optimizer-step/",
    "ZeRO": "zero-fsdp/",         # not chapter 1 or 4c, which say "zero" and "zeros"
}


@pytest.mark.parametrize("query, chapter", SEARCHES.items(), ids=list(SEARCHES))
def test_search_ranks_the_chapter_first_with_a_plain_preview(chromium, url, query, chapter):
    page, _ = browser.open_page(chromium, url, browser.LAPTOP)
    try:
        page.click("label.md-search__icon, .md-search__input", timeout=5000)
        # The search worker loads its index in the background: type again until it answers.
        # Material searches on key events; once results show, let them settle on the whole
        # query before reading (a partial query's results can show first).
        for attempt in range(30):
            page.fill(".md-search__input", "")
            page.type(".md-search__input", query)
            try:
                page.wait_for_selector(".md-search-result__item", timeout=1000)
                page.wait_for_timeout(300)  # let the list settle on the full query's results
                break
            except PlaywrightTimeout:
                if attempt == 29:
                    raise
        first = page.eval_on_selector(".md-search-result__item a", "a => a.getAttribute('href')")
        previews = page.eval_on_selector_all(".md-search-result__article", "els => els.map(e => e.textContent)")
    finally:
        page.close()
    path = urlsplit(urljoin(url, first)).path.lstrip("/")
    assert path == chapter, f"first hit for {query!r}: {first}"
    assert not any(re.search(r"\\[(\[]|\\frac|\\theta", p) for p in previews), previews
