"""MkDocs hook: put an interactive figure where a page has `<!-- interactive: NAME -->`.

NAME is a module docs/assets/javascripts/figures/NAME.js (shared.js is the helper every module
uses, not a figure). The marker line, outside code blocks, becomes a placeholder
`<div class="interactive" data-interactive="NAME">` that the module fills in the browser: labelled
controls, an SVG chart, and the numbers as a table. The chapter's static figure stays beside it and
is what prints (figures.css hides the widget on paper). The modules compute what
snippets/interactive.py computes; tests/test_figures.py holds them to it.

A figure that computes with another script names it in NEEDS (memory-timeline: the memory
calculator, memcalc.js): the hook puts a <script> for it before the placeholder, once a page, unless
the page loads it itself.

A marker naming no module, or a module that mkdocs.yml does not load under extra_javascript, fails
the build, naming page and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.utils import get_relative_url

from snippets.fences import outside_fences

MARKER = re.compile(r"^\s*<!--\s*interactive\b(?P<rest>.*?)-->\s*$")
NAME = re.compile(r"^:\s*(?P<name>[a-z0-9][a-z0-9-]*)\s*$")
FIGURES = "assets/javascripts/figures"
HELPER = "shared"
# scripts a figure computes with, loaded where it is shown (not on every page)
NEEDS = {"memory-timeline": ("assets/javascripts/memcalc.js",)}

PLACEHOLDER = """
<div class="interactive" data-interactive="{name}">
<p class="interactive-fallback">An interactive version of this figure runs here in a browser with
JavaScript.</p>
</div>
"""


def figure_names(docs_dir: str | Path) -> set[str]:
    """The figures there are: one module each under docs/assets/javascripts/figures/."""
    folder = Path(docs_dir) / FIGURES
    return {p.stem for p in folder.glob("*.js")} - {HELPER}


def _loaded(config) -> set[str]:
    """The scripts mkdocs.yml loads on every page (entries may be strings or objects)."""
    return {str(getattr(item, "path", item)) for item in config["extra_javascript"]}


def on_page_markdown(markdown: str, page, config, files) -> str:
    names = figure_names(config["docs_dir"])
    loaded = _loaded(config)
    lines = markdown.split("\n")
    loaded_here = set()
    for i in outside_fences(lines):
        line = lines[i]
        marker = MARKER.match(line)
        if not marker:
            continue
        where = f"docs/{page.file.src_uri}:{i + 1}"
        named = NAME.match(marker["rest"])
        if not named:
            raise PluginError(f"{where}: write the marker as <!-- interactive: NAME -->, "
                              f"NAME one of {', '.join(sorted(names))}")
        name = named["name"]
        if name not in names:
            raise PluginError(f"{where}: no interactive figure '{name}' (no {FIGURES}/{name}.js; "
                              f"there are: {', '.join(sorted(names))})")
        for script in (HELPER, name):
            if f"{FIGURES}/{script}.js" not in loaded:
                raise PluginError(f"{where}: mkdocs.yml does not load {FIGURES}/{script}.js "
                                  "(add it under extra_javascript)")
        indent = line[: len(line) - len(line.lstrip())]
        block = PLACEHOLDER.format(name=name)
        for script in NEEDS.get(name, ()):
            src = get_relative_url(script, getattr(page, "url", "") or "")
            if script in loaded_here or f'src="{src}"' in markdown:
                continue
            loaded_here.add(script)
            block = f'\n<script src="{src}"></script>\n' + block
        lines[i] = "\n".join(indent + part if part else part for part in block.split("\n"))
    return "\n".join(lines)
