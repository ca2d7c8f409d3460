"""MkDocs hook: show captures on the pages, with their provenance.

A line `<!-- capture: optimizer_step/bandwidth -->` in a page becomes the table or figure that
examples/render/optimizer_step.py draws from docs/captures/optimizer_step.json, followed by the
capture's provenance (GPU, torch, CUDA, date). Figures are rendered to SVG at build time and served
as captures/<name>-<item>.svg. A marker naming a missing capture or item fails the build, naming
page and line; a stale capture (its example changed since) is shown with a warning, and the tests
fail on it.
"""

from __future__ import annotations

import re

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

from examples import EXAMPLES
from examples.render import markdown_table, renderer, svg
from snippets.captures import ROOT, CaptureError, load_capture, provenance_line, refresh_command, source_sha256

MARKER = re.compile(r"^<!--\s*capture:\s*(?P<name>[a-z0-9_]+)/(?P<item>[a-z0-9_]+)\s*-->[ \t]*$")
INDEX_MARKER = "<!-- capture-index -->"
_figures: dict[tuple[str, str], str] = {}  # (name, item) -> served path of its SVG


def _renderer(name: str, where: str):
    if not (ROOT / "examples" / "render" / f"{name}.py").is_file():
        raise PluginError(f"{where}: no examples/render/{name}.py to draw capture '{name}'")
    return renderer(name)


def _capture(name: str, where: str) -> dict:
    try:
        return load_capture(name)
    except CaptureError as error:
        raise PluginError(f"{where}: {error}") from None


def on_files(files, config):
    _figures.clear()
    for file in list(files):
        match = re.fullmatch(r"captures/([a-z0-9_]+)\.json", file.src_uri)
        if not match:
            continue
        name = match[1]
        capture = _capture(name, f"docs/{file.src_uri}")
        for item, draw in getattr(_renderer(name, f"docs/{file.src_uri}"), "FIGURES", {}).items():
            path = f"captures/{name}-{item}.svg"
            files.append(File.generated(config, path, content=svg(draw(capture))))
            _figures[(name, item)] = path
    return files


def _provenance(capture: dict) -> str:
    line = f'<p class="provenance">Measured: {provenance_line(capture)}</p>'
    name = capture["name"]
    if source_sha256(name) != capture["provenance"]["source_sha256"]:
        line += (f'\n\n!!! warning "Stale capture"\n    examples/{name}.py or a module it imports changed after this '
                 f"capture was made. Refresh it: `{refresh_command(name)}`")
    return line


def _index() -> str:
    """One row per example: where and when its capture was made, and whether it is still fresh."""
    rows, sources = [], []
    for name in EXAMPLES:
        capture = _capture(name, "the capture index")
        p = capture["provenance"]
        fresh = "fresh" if source_sha256(name) == p["source_sha256"] else "**stale**"
        rows.append([f"`{name}`", p["gpu"] or p["device"], p["torch"], p["cuda"] or "—", p["date"][:10],
                     f"{p['wall_s']:.1f}", fresh])
        sources.append(f"- `{name}`: " + ", ".join(f"`{s}`" for s in p["sources"]))
    table = markdown_table(["example", "device", "torch", "CUDA", "date", "run (s)", "state"], rows, "lllllrl")
    return f"{table}\n\nSource hashed into each capture:\n\n" + "\n".join(sources)


def on_page_markdown(markdown: str, page, config, files) -> str:
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == INDEX_MARKER:
            lines[i] = _index()
            continue
        match = MARKER.match(line)
        if not match:
            continue
        name, item = match["name"], match["item"]
        where = f"docs/{page.file.src_uri}:{i + 1}"
        capture = _capture(name, where)
        tables = getattr(_renderer(name, where), "TABLES", {})
        if item in tables:
            body = tables[item](capture)
        elif (name, item) in _figures:
            target = "../" * page.file.src_uri.count("/") + _figures[(name, item)]
            body = f'<figure class="capture-figure" markdown>\n![{name}: {item}]({target})\n</figure>'
        else:
            raise PluginError(f"{where}: examples/render/{name}.py has no table or figure '{item}'")
        lines[i] = f"{body}\n\n{_provenance(capture)}\n"
    return "\n".join(lines)
