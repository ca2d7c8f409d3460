"""Look at the built site in a real browser (Debian's Chromium, driven by Playwright).

What the checks below ask of every page, at a laptop's and a phone's width, and on paper:

* no console error, no request that leaves the local server;
* every formula typeset by KaTeX (no raw \\( \\) or \\[ \\] left, no KaTeX error);
* nothing wider than the column: no element sticks out of the article unless it sits in a
  scroll container; at 1280 px not even those may need scrolling (code, tables and equations
  fit), on a phone a wide table scrolls inside its box, with a visible shadow cue;
* every figure has a caption and alt text, and its smallest text stays legible;
* printed (A4), nothing is clipped: paper cannot scroll.

The functions take a Playwright page and return a list of problems (empty: all good), so the
tests can also show that each check fails on a copy of the site broken on purpose.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
A4_WIDTH_PX = 703          # 210 mm less site.css's 12 mm page margins, at 96 px per inch
MIN_FIGURE_TEXT_PX = 9.0   # the smallest figure text we accept on screen, in CSS pixels


def chromium_path() -> str | None:
    """Debian's Chromium (CHROMIUM overrides); None when there is none."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, in one line; None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if chromium_path() is None:
        return "no Chromium at /usr/bin/chromium (apt-get install chromium)"
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(site: Path):
    """Serve a built site on 127.0.0.1 (a free port) for the duration of the block."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def launched():
    """Chromium, headless, as this machine allows (root: --no-sandbox), for the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Visit:
    """One page load: what the console said and which requests went elsewhere."""

    console_errors: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)


def open_page(browser, url: str, viewport: dict, *, media: str = "screen"):
    """Load `url` in a fresh page; return (page, visit). The caller closes the page."""
    page = browser.new_page(viewport=viewport)
    visit = Visit()
    local = urlsplit(url).netloc
    page.on("console", lambda m: m.type == "error" and visit.console_errors.append(m.text))
    page.on("pageerror", lambda e: visit.console_errors.append(str(e)))

    def request(req) -> None:
        parts = urlsplit(req.url)
        if parts.scheme in {"data", "blob", "about"}:
            return
        if parts.netloc != local:
            visit.offsite.append(req.url)

    page.on("request", request)
    page.emulate_media(media=media)
    page.goto(url, wait_until="networkidle")
    page.wait_for_function("() => document.readyState === 'complete'")
    return page, visit


UNTYPESET_MATH = """() => {
  const problems = [];
  document.querySelectorAll('.md-content .arithmatex').forEach((el) => {
    if (!el.querySelector('.katex')) problems.push('not typeset: ' + el.textContent.slice(0, 60));
  });
  document.querySelectorAll('.md-content .katex-error').forEach((el) => {
    problems.push('KaTeX error: ' + (el.title || el.textContent).slice(0, 80));
  });
  const walker = document.createTreeWalker(document.querySelector('.md-content') || document.body,
                                           NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!parent || parent.closest('pre, code, .search-only, script, style, annotation')) continue;
    if (/\\\\[\\(\\[]|\\\\[\\)\\]]|\\$\\$/.test(node.textContent)
        && parent.getClientRects().length) {
      problems.push('raw math delimiters in text: ' + node.textContent.trim().slice(0, 60));
    }
  }
  return problems;
}"""

OVERFLOW = """(strict) => {
  // The column: Material's content area (code blocks run to its edges on a phone).
  const article = document.querySelector('.md-content__inner') || document.body;
  const box = (document.querySelector('.md-content') || article).getBoundingClientRect();
  const style = (el) => getComputedStyle(el);
  const scrolls = (el) => ['auto', 'scroll'].includes(style(el).overflowX);
  const describe = (el) => {
    const id = el.id ? '#' + el.id : '';
    const cls = el.className && typeof el.className === 'string'
      ? '.' + el.className.trim().split(/\\s+/).slice(0, 2).join('.') : '';
    const text = (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 50);
    return `${el.tagName.toLowerCase()}${id}${cls} "${text}"`;
  };
  const problems = [];
  const reported = [];  // report the outermost element only, not each of its descendants
  for (const el of article.querySelectorAll('*')) {
    if (reported.some((r) => r.contains(el))) continue;
    if (!el.getClientRects().length) continue;
    // KaTeX's MathML copy is clipped away for screen readers; SVG internals move with their svg.
    if (el.closest('.md-clipboard, .headerlink, .search-only, .katex-mathml')) continue;
    if (el.ownerSVGElement) continue;
    let inScroller = false;
    for (let a = el.parentElement; a && a !== article; a = a.parentElement) {
      if (scrolls(a)) { inScroller = true; break; }
    }
    const rect = el.getBoundingClientRect();
    // An inline element broken across lines may carry its padding a few px past the column
    // (into the page's margin on paper; no text is cut there); past that, it is.
    const slack = style(el).display === 'inline' ? 10 : 1;
    const limit = box.right + slack;
    if (!inScroller && rect.right > limit && rect.width > 0) {
      problems.push(`sticks out of the column by ${Math.round(rect.right - box.right)} px: ${describe(el)}`);
      reported.push(el);
    }
    if (scrolls(el) && el.scrollWidth > el.clientWidth + 1) {
      const kind = el.matches('.md-typeset__scrollwrap, .md-typeset__table') ? 'table' : 'block';
      if (strict) {
        problems.push(`needs ${el.scrollWidth - el.clientWidth} px of sideways scrolling: ${describe(el)}`);
      } else if (kind === 'table' && style(el).backgroundImage === 'none') {
        problems.push(`scrolls with no visible cue: ${describe(el)}`);
      }
    }
  }
  return problems;
}"""

FIGURES = """() => {
  const problems = [];
  const figures = [];
  document.querySelectorAll('.md-content figure').forEach((fig) => {
    const caption = fig.querySelector('figcaption');
    const img = fig.querySelector('img, svg');
    if (!caption || !caption.textContent.trim()) problems.push('figure without a caption');
    if (!img) { problems.push('figure without an image'); return; }
    const alt = (img.getAttribute('alt') || img.getAttribute('aria-label') || '').trim();
    if (alt.split(/\\s+/).length < 6) problems.push(`figure alt text too short: "${alt}"`);
    if (img.tagName === 'IMG') {
      figures.push({src: img.getAttribute('src'), shown: img.getBoundingClientRect().width,
                    natural: img.naturalWidth});
    }
  });
  document.querySelectorAll('.md-content img').forEach((img) => {
    if (!(img.getAttribute('alt') || '').trim() && !img.closest('.md-header, .md-footer')) {
      problems.push('image without alt text: ' + img.getAttribute('src'));
    }
  });
  return {problems, figures};
}"""


def math_problems(page) -> list[str]:
    return page.evaluate(UNTYPESET_MATH)


def overflow_problems(page, *, strict: bool) -> list[str]:
    # Open every folded block first: what a reader can unfold must fit too.
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
    return page.evaluate(OVERFLOW, strict)


def _svg_min_font_px(svg: str) -> tuple[float, float] | None:
    """(natural width in CSS px, smallest font size in CSS px at that width) of a matplotlib SVG."""
    width = re.search(r'<svg[^>]*\swidth="([0-9.]+)(pt|px)?"', svg)
    sizes = [float(s) for s in re.findall(r"font-size:\s*([0-9.]+)px", svg)]
    if not width or not sizes:
        return None
    unit = 4 / 3 if width[2] == "pt" else 1.0  # matplotlib writes pt; its user units are pt too
    return float(width[1]) * unit, min(sizes) * unit


def figure_problems(page, site: Path) -> list[str]:
    """Captions and alt text, and the smallest figure text as the reader sees it (in CSS px)."""
    result = page.evaluate(FIGURES)
    problems = list(result["problems"])
    base = page.url
    for fig in result["figures"]:
        path = urlsplit(re.sub(r"[^/]*$", "", urlsplit(base).path) + fig["src"]).path
        file = (site / os.path.normpath(path).lstrip("/")).resolve()
        if file.suffix != ".svg" or not file.is_file():
            continue
        measured = _svg_min_font_px(file.read_text(encoding="utf-8"))
        if measured is None or not fig["shown"]:
            continue
        natural, smallest = measured
        shown_px = smallest * fig["shown"] / natural
        if shown_px < MIN_FIGURE_TEXT_PX:
            problems.append(f"figure text {shown_px:.1f} px at this width (< {MIN_FIGURE_TEXT_PX}): {fig['src']}")
    return problems


def screens(page, viewport: dict) -> float:
    return page.evaluate("document.documentElement.scrollHeight") / viewport["height"]


def pdf_pages(page, paper: str) -> int:
    """Print the page to PDF on `paper` ("A4", "Letter") and count its pages."""
    import io

    from pypdf import PdfReader

    data = page.pdf(format=paper, print_background=False)
    return len(PdfReader(io.BytesIO(data)).pages)
