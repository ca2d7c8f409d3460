"""The site builds strictly, every navigation page is written, and nothing links off-site or to nowhere."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from mkdocs.config import load_config

from tests.sitebuild import ROOT

pytestmark = pytest.mark.build


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (tag, url)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "a" and attributes.get("name"):
            self.ids.add(attributes["name"])
        for name in ("href", "src"):
            if attributes.get(name):
                self.refs.append((tag, attributes[name]))


def _parse(page: Path) -> _Tags:
    tags = _Tags()
    tags.feed(page.read_text(encoding="utf-8"))
    return tags


def _nav_pages() -> list[str]:
    config = load_config(str(ROOT / "mkdocs.yml"))
    pages: list[str] = []

    def walk(items):
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            if isinstance(value, list):
                walk(value)
            else:
                pages.append(value)

    walk(config["nav"])
    return pages


def _html_for(src: str) -> str:
    # use_directory_urls: memory.md -> memory/index.html, index.md -> index.html,
    # notebooks/week1.py (a notebook page) -> notebooks/week1/index.html
    if src == "index.md":
        return "index.html"
    return src.removesuffix(".md").removesuffix(".py") + "/index.html"


def test_every_navigation_page_is_written(site):
    pages = _nav_pages()
    assert "index.md" in pages and "memory.md" in pages
    missing = [p for p in pages if not (site / _html_for(p)).is_file()]
    assert not missing, f"navigation pages not written: {missing}"


def test_no_internal_link_points_to_a_missing_file_or_anchor(site):
    parsed = {page: _parse(page) for page in site.rglob("*.html")}
    broken = []
    for page, tags in parsed.items():
        base = "/" + page.relative_to(site).as_posix()
        for tag, url in tags.refs:
            parts = urlsplit(url)
            if parts.scheme or url.startswith(("//", "mailto:", "javascript:")):
                continue
            target_path = unquote(urlsplit(urljoin(base, url)).path)
            target = site / target_path.lstrip("/")
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: <{tag}> {url} (no {target.relative_to(site)})")
            elif parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if parts.fragment not in ids:
                    broken.append(f"{page.relative_to(site)}: <{tag}> {url} (no #{parts.fragment})")
    assert not broken, "\n".join(broken)


def test_no_script_stylesheet_or_image_comes_from_elsewhere(site):
    offsite = []
    for page in site.rglob("*.html"):
        for tag, url in _parse(page).refs:
            if tag in {"script", "link", "img", "iframe", "source"} and re.match(r"(https?:)?//", url):
                offsite.append(f"{page.relative_to(site)}: <{tag}> {url}")
    assert not offsite, "\n".join(offsite)


def test_math_is_typeset_by_files_the_site_serves(site):
    page = site / "memory/index.html"
    html = page.read_text(encoding="utf-8")
    assert html.count('class="arithmatex"') >= 5, "the memory page should carry arithmatex math"
    scripts = [url for tag, url in _parse(page).refs if tag == "script"]
    katex = [url for url in scripts if url.endswith("katex.min.js")]
    assert katex, f"KaTeX is not loaded by the page: {scripts}"
    assert (page.parent / katex[0]).resolve().is_file()
    assert any(url.endswith("javascripts/math.js") for url in scripts)
    fonts = list((site / "assets/katex/fonts").glob("KaTeX_Main-Regular.woff2"))
    assert fonts, "KaTeX fonts are not served"


def test_search_previews_carry_no_raw_latex_and_no_code_listings(site):
    import json

    docs = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]
    latex = [d["location"] for d in docs if re.search(r"\\[(\[]|\\(?:frac|theta|lambda|sqrt)\b", d["text"])]
    assert not latex, f"raw LaTeX in the search index: {latex[:5]}"
    doctests = [d["location"] for d in docs if "&gt;&gt;&gt; " in d["text"] or ">>> " in d["text"]]
    assert not doctests, f"doctest listings in the search index: {doctests[:5]}"
    boosted = {d["location"].split("#")[0] for d in docs if d.get("boost")}
    assert "weight-decay/" in boosted and "index.html" not in boosted and "" not in boosted


@pytest.mark.claim("Every page carries a footer with the torch of the test run and the commit; a page "
                   "that shows captures adds their provenance", page="measured.md#the-captures")
def test_every_page_has_the_provenance_footer(site):
    import torch

    missing, uncaptured = [], []
    for src in _nav_pages():
        html = (site / _html_for(src)).read_text(encoding="utf-8")
        footer = re.search(r'<footer class="page-provenance".*?</footer>', html, re.S)
        if not footer or f"Tested with torch {torch.__version__}" not in footer[0] or "commit" not in footer[0]:
            missing.append(src)
            continue
        shows_captures = "capture:" in (ROOT / "docs" / src).read_text(encoding="utf-8") if src.endswith(".md") else False
        if shows_captures and "Capture <code>" not in footer[0]:
            uncaptured.append(src)
    assert not missing, f"pages without the provenance footer: {missing}"
    assert not uncaptured, f"pages that show captures but do not name them in the footer: {uncaptured}"


def test_no_hook_imports_the_tests():
    """A hook that imports tests/ works only under `python -m mkdocs` from the repository root;
    `mkdocs build` typed in the venv then fails. What the build and the tests share lives in snippets/."""
    import ast

    offenders = []
    for hook in sorted((ROOT / "hooks").glob("*.py")):
        for node in ast.walk(ast.parse(hook.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"hooks/{hook.name}: {n}" for n in names if n == "tests" or n.startswith("tests.")]
    assert not offenders, offenders


@pytest.mark.claim("`mkdocs serve` and `mkdocs build`, typed in the project's venv, work",
                   page="index.md")
def test_mkdocs_serve_typed_in_the_venv_serves_the_site(site, tmp_path):
    """The session's site was built by the plain `mkdocs build` (tests/sitebuild.py); this runs the
    plain `mkdocs serve` the README names, from the repository root, with no PYTHONPATH."""
    import os
    import socket
    import subprocess
    import time
    import urllib.request

    from tests.sitebuild import mkdocs_command

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", OASM_NOTEBOOK_EXECUTE="false")  # the site fixture ran it
    env.pop("PYTHONPATH", None)
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen([str(mkdocs_command()), "serve", "--no-livereload", "--dev-addr",
                                   f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=sink, stderr=sink)
    try:
        deadline, body = time.monotonic() + 150, ""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert server.poll() is None, f"mkdocs serve exited: {log.read_text()[-2000:]}"
        assert "Optimizers as State Machines" in body
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_home_comes_first_and_the_evening_pages_right_after(site):
    """Home has no "Previous" page; its "Next" is the first page of "Before the meeting"."""
    config = load_config(str(ROOT / "mkdocs.yml"))
    first, second = config["nav"][:2]
    assert first == {"Home": "index.md"}, first
    assert list(second) == ["Before the meeting"], second
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "md-footer__link--prev" not in home, "Home shows a Previous link"
    nxt = re.search(r'<a href="([^"]+)" class="md-footer__link md-footer__link--next"', home)
    assert nxt and nxt[1].rstrip("/").endswith("cheat-sheet"), nxt and nxt[1]
