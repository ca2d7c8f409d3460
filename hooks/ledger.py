"""MkDocs hook: the ledger of verified claims (docs/claims.md), generated from the tests.

The line `<!-- claims-ledger -->` becomes one table per page: each claim a test checks, the
test's node id, and where it was verified (a capture's GPU, or the CPU under this build's torch).
The entries come from `@pytest.mark.claim(...)` markers (snippets/claims.py), so the ledger cannot
list a claim that no test checks.
"""

from __future__ import annotations

import re

import torch
from markdown.extensions.toc import slugify
from mkdocs.exceptions import PluginError

from examples.render import markdown_table
from snippets.captures import ROOT, CaptureError, load_capture
from snippets.claims import ledger

MARKER = "<!-- claims-ledger -->"


def _verified(capture: str | None) -> str:
    if capture is None:
        return f"CPU, torch {torch.__version__.split('+')[0]}"
    try:
        p = load_capture(capture)["provenance"]
    except CaptureError as error:
        raise PluginError(f"docs/claims.md: {error}") from None
    return f"{p['gpu']}, capture `{capture}`, {p['date'][:10]}"


def _table(nav_titles: dict[str, str]) -> str:
    claims = ledger()
    order = {src: i for i, src in enumerate(nav_titles)}
    pages = sorted({c.page.split("#")[0] for c in claims}, key=lambda s: (order.get(s, len(order)), s))
    unknown = [p for p in pages if p not in nav_titles]
    if unknown:
        raise PluginError(f"docs/claims.md: claims name pages that are not in the navigation: {unknown}")
    parts = [f"{len(claims)} claims, checked by the test suite on every run.\n"]
    for src in pages:
        rows = []
        position = _anchor_positions(src)
        page_claims = [c for c in claims if c.page.split("#")[0] == src]
        for c in sorted(page_claims, key=lambda c: (position.get(c.page.partition("#")[2], 10**9), c.test)):
            file, name = c.test.split("::")
            rows.append([f"[{c.text}]({c.page})", f"`{name}`<br>in `{file}`<br>{_verified(c.capture)}"])
        parts.append(f"## [{nav_titles[src]}]({src})\n\n<div class=\"claims-ledger\" markdown>\n\n"
                     + markdown_table(["claim (links to where the page makes it)", "test, and where it was verified"],
                                      rows, "ll")
                     + "\n\n</div>")
    return "\n\n".join(parts)


def _anchor_positions(src: str) -> dict[str, int]:
    """Line of each heading anchor and `{ #id }` on a page, so the ledger follows the page's order."""
    positions: dict[str, int] = {}
    text = (ROOT / "docs" / src).read_text(encoding="utf-8")
    for lineno, line in enumerate(text.splitlines()):
        for anchor in re.findall(r"\{\s*#([\w-]+)", line):
            positions.setdefault(anchor, lineno)
        heading = re.match(r"^#{1,6}\s+(.*?)\s*(?:\{.*\})?\s*$", line)
        if heading:
            positions.setdefault(slugify(heading[1], "-"), lineno)
    return positions


_nav_titles: dict[str, str] = {}


def on_nav(nav, config, files):
    _nav_titles.clear()
    for page in nav.pages:
        _nav_titles[page.file.src_uri] = page.title or page.file.src_uri
    return nav


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, _table(_nav_titles))
