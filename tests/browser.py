"""Look at the built site in a real browser (Debian's Chromium, driven by Playwright).

What the checks below ask of every page, at a laptop's and a phone's width, and on paper:

* no console error, no request that leaves the local server;
* every formula typeset by KaTeX (no raw \\( \\) or \\[ \\] left, no KaTeX error);
* nothing wider than the column: no element sticks out of the article unless it sits in a
  scroll container; at 1280 px not even those may need scrolling (code, tables and equations
  fit), on a phone a wide table scrolls inside its box, with a visible shadow cue;
* every figure has a caption and alt text, and its smallest text stays legible;
* printed (A4), nothing is clipped: paper cannot scroll;
* axe-core (from npm, node_modules/axe-core) finds no serious or critical accessibility
  violation, in the light and in the dark palette.

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


def _viewports():
    import pytest

    return pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["1280", "390"])


VIEWPORTS = _viewports()   # a test's decorator: at 1280 and at 390 px
A4_WIDTH_PX = 703          # 210 mm less site.css's 12 mm page margins, at 96 px per inch
MIN_FIGURE_TEXT_PX = 9.0   # the smallest figure text we accept on screen, in CSS pixels
AXE_JS = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
PALETTES = ("default", "slate")     # Material's light and dark schemes (mkdocs.yml)
PALETTE_NAMES = {"default": "light", "slate": "dark"}
BLOCKING_IMPACTS = ("serious", "critical")


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


def require_browser() -> None:
    """At a test module's top: skip the module, saying why, when Chromium or Playwright is
    missing; under CI=true fail instead (CI installs both, and a silently skipped browser test
    proves nothing)."""
    import pytest

    reason = unavailable_reason()
    if reason and os.environ.get("CI") == "true":
        raise RuntimeError(f"CI=true but the browser tests cannot run: {reason}")
    if reason:
        pytest.skip(reason, allow_module_level=True)


def broken_copy(site: Path, tmp_path: Path, insertion: str, page: str = "memory") -> Path:
    """A copy of the built site with `insertion` (HTML) right after `page`'s h1: a page broken on
    purpose, to show that a check notices."""
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    file = copy / page / "index.html"
    html = file.read_text(encoding="utf-8")
    marker = '<h1 id="'
    assert marker in html, f"the {page} page has no h1 to insert after"
    at = html.index("</h1>", html.index(marker)) + len("</h1>")
    file.write_text(html[:at] + insertion + html[at:], encoding="utf-8")
    return copy


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A page closed while a file was still on its way (the tests move on once the page has
        loaded): the browser hung up, nothing failed. Anything else is printed as usual."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(site: Path):
    """Serve a built site on 127.0.0.1 (a free port) for the duration of the block."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = _QuietServer(("127.0.0.1", 0), handler)
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
    # "load": every script, style sheet, font and image the page names has arrived. The request
    # listener stays on for the whole test, so a request a script makes later still counts as
    # long as the caller reads `visit.offsite` last (waiting for the network to fall idle cost
    # half a second a page and caught nothing more).
    page.goto(url, wait_until="load")
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


# --- Accessibility: axe-core, injected from node_modules (never fetched), in both palettes ------

def axe_unavailable_reason() -> str | None:
    """Why the accessibility audit cannot run here, in one line; None when it can."""
    if not AXE_JS.is_file():
        return "axe-core is not installed (make test runs npm ci; needs Node.js and npm)"
    return None


@functools.cache
def _axe_source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


# Switch Material's palette the way its toggle does. axe reads computed colours, which mid-
# transition are neither palette's: the first switch turns CSS transitions off for the rest of
# the audit (the page is thrown away after it), so colours change at once; any animation still
# running is waited for, except an endless one (a spinner), and never more than five seconds.
SET_PALETTE = """async (scheme) => {
  if (!document.getElementById('audit-no-transitions')) {  // a switch then needs no waiting
    const style = document.createElement('style');
    style.id = 'audit-no-transitions';
    style.textContent = '*, *::before, *::after { transition: none !important; }';
    document.head.appendChild(style);
  }
  document.body.setAttribute('data-md-color-scheme', scheme);
  const ending = document.getAnimations().filter(
    (a) => a.effect && Number.isFinite(a.effect.getComputedTiming().endTime));
  await Promise.race([Promise.all(ending.map((a) => a.finished.catch(() => null))),
                      new Promise((resolve) => setTimeout(resolve, 5000))]);
}"""

# Rules axe runs by default (WCAG 2.0-2.2 A and AA, best practices) in `context`: only `rules`
# when given, all but `off` otherwise; only violations are collected, which keeps a run cheap.
# Each node carries its own impact.
AXE_RUN = """async ([blocking, context, rules, off]) => {
  const options = {resultTypes: ['violations'], iframes: false, elementRef: false,
                   xpath: false, ancestry: false};
  if (rules) options.runOnly = {type: 'rule', values: rules};
  if (off) options.rules = Object.fromEntries(off.map((r) => [r, {enabled: false}]));
  const result = await axe.run(context, options);
  const found = [];
  for (const rule of result.violations) {
    for (const node of rule.nodes) {
      if (!blocking.includes(node.impact)) continue;
      found.push({rule: rule.id, impact: node.impact, help: rule.help,
                  target: node.target.join(' '), html: node.html,
                  why: (node.failureSummary || '').split('\\n').slice(1).join(' ').trim()});
    }
  }
  return found;
}"""
# The rules whose outcome depends on the colours: each palette runs these, every other rule runs
# once per load (Material's schemes differ only in CSS colour variables).
PALETTE_RULES = ["color-contrast", "link-in-text-block"]

# Where the colour rules look, so that each colour is judged where it can differ and not again
# where it cannot (they are most of the audit's cost; the other rules always see the whole page):
# * inside code blocks, a token whose class chain and computed colours, font and backgrounds up
#   to its <pre> match an earlier token's gets the same verdict: all but the first are marked
#   data-audit-same and hidden with visibility (layout unchanged; recomputed in each palette);
# * at a width other than LAPTOP's, the article's colours are those already judged at 1280 px
#   except where a width-dependent CSS rule (any @media or stylesheet condition on width) sets a
#   colour, background, opacity, filter, visibility, display, content or custom property: those
#   elements are marked data-audit-narrow and judged again with everything outside the article
#   (header, navigation, footer). A width-dependent rule that reaches an ancestor of the article,
#   or a stylesheet that cannot be read, puts the whole article back in.
# Returns axe's context for the colour rules.
COLOUR_SCOPE = r"""(narrow) => {
  let hide = document.getElementById('audit-same');
  if (hide) hide.remove();
  document.querySelectorAll('[data-audit-same], [data-audit-kept]').forEach((el) => {
    el.removeAttribute('data-audit-same');
    el.removeAttribute('data-audit-kept');
  });
  const seen = new Set();
  for (const pre of document.querySelectorAll('pre')) {
    for (const el of pre.querySelectorAll('*')) {
      const text = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!text) continue;
      const key = [];
      for (let x = el; x; x = x === pre ? null : x.parentElement) {
        const s = getComputedStyle(x);
        key.push(x.className, s.color, s.fontSize, s.fontWeight, s.fontStyle, s.textShadow,
                 s.opacity, s.backgroundColor, s.backgroundImage, s.filter, s.visibility);
      }
      const id = key.join('|');
      el.setAttribute(seen.has(id) ? 'data-audit-same' : 'data-audit-kept', '');
      seen.add(id);
    }
  }
  // Hidden text is not judged; layout is unchanged, and a kept token inside a hidden one shows.
  hide = document.createElement('style');
  hide.id = 'audit-same';
  hide.textContent = 'pre [data-audit-same] { visibility: hidden !important; } ' +
                     'pre [data-audit-kept] { visibility: visible !important; }';
  document.head.appendChild(hide);
  const context = {include: [['html']], exclude: []};
  const article = document.querySelector('article');
  if (!narrow || !article) return context;
  const SETS = new RegExp('^(' + ['color', 'background', 'opacity', 'filter', 'mix-blend-mode',
    'visibility', 'display', 'content', 'text-shadow', '-webkit-text-fill-color', 'fill', 'stroke',
    '--'].join('|') + ')');
  const PSEUDO = new RegExp('::?(' + ['before', 'after', 'marker', 'placeholder', 'selection',
    'first-line', 'first-letter', 'backdrop', '-webkit-[\\w-]+', '-moz-[\\w-]+'].join('|') + ')', 'g');
  let whole = false;
  const found = new Set();
  const visit = (rules, byWidth) => {
    for (const rule of rules) {
      const widthRule = byWidth ||
        (rule.conditionText !== undefined && /width/.test(rule.conditionText));
      if (rule.selectorText !== undefined && widthRule &&
          Array.from(rule.style).some((p) => SETS.test(p))) {
        let hits = [];
        try { hits = document.querySelectorAll(rule.selectorText.replace(PSEUDO, '') || '*'); }
        catch (e) { whole = true; }
        for (const el of hits) {
          if (el !== article && article.contains(el)) found.add(el);
          else if (el.contains(article)) whole = true;
        }
      }
      if (rule.cssRules) visit(rule.cssRules, widthRule);
    }
  };
  for (const sheet of document.styleSheets) {
    let rules;
    try { rules = sheet.cssRules; } catch (e) { whole = true; continue; }
    visit(rules, /width/.test((sheet.media && sheet.media.mediaText) || ''));
  }
  if (whole) return context;
  // the outermost only: axe would judge a nested include's elements twice
  const outermost = Array.from(found).filter((el) => {
    for (let x = el.parentElement; x; x = x.parentElement) if (found.has(x)) return false;
    return true;
  });
  outermost.forEach((el) => el.setAttribute('data-audit-narrow', ''));
  if (outermost.length) context.include.push(['[data-audit-narrow]']);
  context.exclude.push(['article']);
  return context;
}"""


def axe_violations(page, palettes=PALETTES) -> list[dict]:
    """Serious and critical axe-core violations on the loaded page, in each palette in turn.

    One page load serves every palette: every rule but the colour rules runs once on the whole
    page, then the palette is switched in the page and the colour rules run in each, where
    COLOUR_SCOPE says colours can differ (the whole page at LAPTOP's width).
    Each violation: {palette, rule, impact, help, target, html, why}.
    """
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=_axe_source())
        known = page.evaluate("() => axe.getRules().map((r) => r.ruleId)")
        assert set(PALETTE_RULES) <= set(known), f"axe-core has no rule {set(PALETTE_RULES) - set(known)}"
    narrow = page.viewport_size["width"] != LAPTOP["width"]
    before = page.evaluate("() => document.body.getAttribute('data-md-color-scheme')")
    found = []
    try:
        for i, palette in enumerate(palettes):
            page.evaluate(SET_PALETTE, palette)
            if i == 0:
                found += [dict(v, palette=palette) for v in page.evaluate(
                    AXE_RUN, [list(BLOCKING_IMPACTS), {"include": [["html"]]}, None, PALETTE_RULES])]
            context = page.evaluate(COLOUR_SCOPE, narrow)
            found += [dict(v, palette=palette) for v in page.evaluate(
                AXE_RUN, [list(BLOCKING_IMPACTS), context, PALETTE_RULES, None])]
    finally:
        if before:
            page.evaluate(SET_PALETTE, before)
    return found


def describe_violation(v: dict) -> str:
    html = re.sub(r"\s+", " ", v["html"]).strip()
    html = html if len(html) <= 120 else html[:117] + "..."
    palette = PALETTE_NAMES.get(v["palette"], v["palette"])
    return (f"{palette} palette: {v['rule']} ({v['impact']}: {v['help']}) at {v['target']}: "
            f"{html}" + (f" -- {v['why'][:200]}" if v["why"] else ""))


def accessibility_problems(page, palettes=PALETTES) -> list[str]:
    """axe-core's serious and critical violations in the light and dark palettes, one line each."""
    return [describe_violation(v) for v in axe_violations(page, palettes)]
