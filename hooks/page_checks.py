"""MkDocs hook: fail the strict build on a broken include, link or anchor, naming file and line.

pymdownx.snippets and MkDocs' own link validation catch the same mistakes, but they name the page
only. This hook names the line, so `docs/memory.md:42: ...` points at what to fix.
Warnings logged here count as errors under `strict: true`.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mkdocs.exceptions import PluginError

from snippets.fences import outside_fences

log = logging.getLogger("mkdocs.hooks.page_checks")

INCLUDE = re.compile(r"""^[ \t]*-{1,}8<-{1,}[ \t]+(["'])(?P<target>.+?)\1[ \t]*$""")
SECTION_MARK = "--8<-- [{kind}:{name}]"
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target><[^>\n]+>|[^)\s]+)(?:[ \t]+\"[^\"\n]*\")?\)")
ANCHOR_ID = re.compile(r"""\sid=["']([^"']+)["']""")

# (page src path, line number, link target) for every relative link, checked once all pages are rendered
_links: list[tuple[str, int, str]] = []
_anchors: dict[str, set[str]] = {}
_doc_paths: set[str] = set()


def _check_include(config, src: str, lineno: int, target: str) -> None:
    base = Path(config["config_file_path"]).parent
    path, _, section = target.partition(":")
    file = base / path
    if not file.is_file():
        raise PluginError(f"docs/{src}:{lineno}: include target '{path}' does not exist")
    if section:
        text = file.read_text(encoding="utf-8")
        for kind in ("start", "end"):
            if SECTION_MARK.format(kind=kind, name=section) not in text:
                raise PluginError(
                    f"docs/{src}:{lineno}: '{path}' has no section '{section}' "
                    f"(missing '# {SECTION_MARK.format(kind=kind, name=section)}')"
                )


def on_pre_build(config) -> None:
    _links.clear()
    _anchors.clear()
    _doc_paths.clear()


def on_page_markdown(markdown: str, page, config, files) -> str:
    src = page.file.src_uri
    lines = markdown.split("\n")
    for lineno, line in enumerate(lines, start=1):
        include = INCLUDE.match(line)
        if include:
            _check_include(config, src, lineno, include["target"])
    # the page with code blanked out (same length and lines), for the link scan
    prose = [""] * len(lines)
    for i in outside_fences(lines):
        prose[i] = INLINE_CODE.sub(lambda m: " " * len(m[0]), lines[i])
    text = "\n".join(prose)
    for match in LINK.finditer(text):
        target = match["target"].strip("<>")
        if not urlsplit(target).scheme:
            _links.append((src, text.count("\n", 0, match.start("target")) + 1, target))
    return markdown


def on_page_content(html: str, page, config, files) -> str:
    _anchors[page.file.src_uri] = set(ANCHOR_ID.findall(html))
    return html


def on_env(env, config, files):
    _doc_paths.update(f.src_uri for f in files)
    return env


def on_post_build(config) -> None:
    for src, lineno, target in _links:
        parts = urlsplit(target)
        path = unquote(parts.path)
        if path:
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(src), path))
        else:
            resolved = src
        if resolved not in _doc_paths:
            log.warning(f"docs/{src}:{lineno}: link '{target}': no file docs/{resolved}")
            continue
        if parts.fragment and resolved.endswith(".md"):
            if parts.fragment not in _anchors.get(resolved, set()):
                log.warning(f"docs/{src}:{lineno}: link '{target}': docs/{resolved} has no anchor '#{parts.fragment}'")
