"""The "Before the meeting" pages on paper, printed by Chromium from the built site.

* The cheat sheet prints on exactly one page, on A4 and on US Letter, with nothing clipped: the
  sheet itself, without its checks, sources or page footer; its text at 8.5 pt or more, its
  tables at 8 pt or more (issue 19: a page you want in your hand).
* The drills print as a drill sheet: every question, no answer.
* On screen the answers stay folded until clicked.

docs/assets/stylesheets/print-kit.css does it; mkdocs.yml must list it under extra_css (the first
test says so when it does not, and the others then print a copy of the site that lists it).
Without Chromium or Playwright these tests skip with a one-line reason, as tests/test_browser.py
does; under CI=true they fail instead.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
import yaml

from tests import browser
from tests.sitebuild import ROOT
from tests.test_study_kit import drills

pytestmark = [pytest.mark.build, pytest.mark.browser]

PRINT_KIT = "assets/stylesheets/print-kit.css"
SHEET_SECTIONS = ("Update rules", "Memory per parameter", "At real scale", "Rules of thumb",
                  "When to use which")
BODY_PT, TABLE_PT = 8.5, 8.0   # the smallest printed sizes: text, and tables
PT_SLACK = 0.01                # 8.5 pt is 11.333 CSS px, which Chromium keeps as 8.49998 pt
# the checks, the sources section and the page footer
SCREEN_ONLY = ("How every number here is checked", "D. P. Kingma", "Tested with torch")


def _extra_css(config_file: Path) -> list[str]:
    # mkdocs.yml uses !relative tags: read it with a loader that ignores them
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load(config_file.read_text(encoding="utf-8"), Loader=loader).get("extra_css", [])


def test_the_print_stylesheet_is_registered():
    assert PRINT_KIT in _extra_css(ROOT / "mkdocs.yml"), (
        f"mkdocs.yml does not load {PRINT_KIT}: add it under extra_css, after site.css:\n"
        f"  - {PRINT_KIT}")


REASON = browser.unavailable_reason()
if REASON and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true but the browser tests cannot run: {REASON}")

needs_browser = pytest.mark.skipif(REASON is not None, reason=REASON or "")


# The computed size, in points, of every visible piece of text in the sheet: (pt, in a table, text).
# Inside a formula only the formula itself counts (KaTeX sets its scripts smaller, by design).
FONT_SIZES = """() => {
  const sheet = document.querySelector('.md-typeset .kit-sheet');
  const sizes = [];
  const visible = (el) => el.getClientRects().length > 0;
  sheet.querySelectorAll('.katex').forEach((math) => {
    if (visible(math)) sizes.push([parseFloat(getComputedStyle(math).fontSize) * 0.75,
                                   !!math.closest('table'), math.textContent.slice(0, 30)]);
  });
  const walker = document.createTreeWalker(sheet, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || !visible(el) || el.closest('.katex')) continue;
    sizes.push([parseFloat(getComputedStyle(el).fontSize) * 0.75, !!el.closest('table'),
                walker.currentNode.textContent.trim().slice(0, 30)]);
  }
  return sizes;
}"""


def _printed(chromium, url: str, path: str, paper: str, *, fonts: bool = False):
    """(pages, text, clipping problems) of `path` printed on `paper`; with `fonts`, also the
    sheet's text sizes as FONT_SIZES reads them."""
    from pypdf import PdfReader

    width = {"A4": browser.A4_WIDTH_PX, "Letter": 816}[paper]  # 210 mm, 8.5 in at 96 px/in
    page, _ = browser.open_page(chromium, url + path, {"width": width, "height": 1056}, media="print")
    try:
        data = page.pdf(format=paper, print_background=False)
        problems = browser.overflow_problems(page, strict=True)
        sizes = page.evaluate(FONT_SIZES) if fonts else []
    finally:
        page.close()
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in reader.pages)
    return (len(reader.pages), text, problems, sizes) if fonts else (len(reader.pages), text, problems)


@needs_browser
@pytest.mark.claim("The cheat sheet prints on exactly one page, on A4 and on US Letter, its text at "
                   "8.5 pt or more and its tables at 8 pt or more", page="cheat-sheet.md", capture=None)
@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_the_cheat_sheet_prints_on_one_page(chromium, url, paper):
    pages, text, problems, sizes = _printed(chromium, url, "cheat-sheet/", paper, fonts=True)
    assert pages == 1, f"the cheat sheet prints on {pages} {paper} pages"
    body = [(pt, words) for pt, in_table, words in sizes if not in_table]
    tables = [(pt, words) for pt, in_table, words in sizes if in_table]
    assert body and tables
    small = [f"{pt:.2f} pt: {words!r}" for pt, words in body if pt < BODY_PT - PT_SLACK]
    assert not small, f"printed on {paper}, text under {BODY_PT} pt:\n" + "\n".join(small[:10])
    small = [f"{pt:.2f} pt: {words!r}" for pt, words in tables if pt < TABLE_PT - PT_SLACK]
    assert not small, f"printed on {paper}, table text under {TABLE_PT} pt:\n" + "\n".join(small[:10])
    assert not problems, f"printed on {paper}, clipped:\n" + "\n".join(problems)
    for section in SHEET_SECTIONS:
        assert section in text, f"'{section}' is missing from the printed sheet"
    for screen_only in SCREEN_ONLY:
        assert screen_only not in text, f"'{screen_only}' prints; it belongs on screen only"


def _words(markdown: str) -> str:
    """A question as the page shows it: Markdown emphasis and code marks dropped."""
    return " ".join(re.sub(r"[*`]", "", markdown).split())


@needs_browser
def test_the_drills_print_as_a_sheet_without_answers(chromium, url):
    pages, text, problems = _printed(chromium, url, "drills/", "A4")
    assert not problems, "\n".join(problems)
    assert pages <= 2, f"the drill sheet takes {pages} A4 pages"
    for n, question, body in drills():
        shown = _words(question.removesuffix("(plan)"))
        assert f"{n}. {shown[:30]}" in text, f"drill {n} is missing from the printed sheet"
        answer = body.split('??? success answer "Answer"', 1)[1]
        first_words = _words(answer.strip().split("\n\n")[0])[:30]
        assert first_words not in text, f"drill {n}'s answer prints: {first_words!r}"
    assert ">>>" not in text and "(folded" not in text


@needs_browser
def test_the_answers_are_folded_on_screen(chromium, url):
    page, visit = browser.open_page(chromium, url + "drills/", browser.LAPTOP)
    try:
        states = page.eval_on_selector_all(
            ".md-typeset details.answer",
            "els => els.map(d => [d.open, d.querySelector('.highlight') !== null"
            " && d.querySelector('.highlight').checkVisibility()])")
    finally:
        page.close()
    assert len(states) == len(drills())
    assert all(not is_open and not code_visible for is_open, code_visible in states), states
    assert not visit.console_errors
