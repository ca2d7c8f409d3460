"""MkDocs hook: put measured and computed results into the pages, with their provenance.

Three markers, outside code blocks:

* a line `<!-- capture: optimizer_step/steps -->` becomes the table or figure that
  examples/render/optimizer_step.py draws from docs/captures/optimizer_step.json, followed by the
  capture's provenance line (GPU, torch, CUDA, date);
* a line `<!-- figure: memory_figures/families -->` becomes a figure that
  examples/render/memory_figures.py draws from data the tests compute on the CPU (no capture);
* `{{ zero_grad/workspace }}` inside a sentence becomes one captured value, formatted by the
  renderer's VALUES, with the provenance on hover. Prose never types a measured number.

Figures are SVG drawn at build time and served under captures/ or figures/, each in a <figure>
with its alt text and caption (examples.render.Chart). A marker naming a missing capture, module
or item fails the build, naming page and line; a stale capture (its example changed since) is
shown with a warning, and the tests fail on it. An example still awaiting its first GPU capture
(examples.AWAITING_CAPTURE) is listed in the index as such; no page may show it.
"""

from __future__ import annotations

import html
import re

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

from examples import AWAITING_CAPTURE, EXAMPLES, PREDICTION_SOURCES
from examples.render import Chart, markdown_table, renderer, svg
from snippets.fences import outside_fences
from snippets.captures import (ROOT, CaptureError, capture_path, changed_sources, load_capture, provenance_line,
                               refresh_command)

MARKER = re.compile(r"^<!--\s*(?P<kind>capture|figure):\s*(?P<name>[a-z0-9_]+)/(?P<item>[a-z0-9_]+)\s*-->[ \t]*$")
VALUE = re.compile(r"\{\{\s*(?P<name>[a-z0-9_]+)/(?P<item>[a-z0-9_]+)\s*\}\}")
INDEX_MARKER = "<!-- capture-index -->"
RENDER_DIR = ROOT / "examples" / "render"

# (kind, name, item) -> (served path, Chart)
_figures: dict[tuple[str, str, str], tuple[str, Chart]] = {}


def _renderer(name: str, where: str):
    if not (RENDER_DIR / f"{name}.py").is_file():
        raise PluginError(f"{where}: no examples/render/{name}.py to draw '{name}'")
    return renderer(name)


def _capture(name: str, where: str) -> dict:
    try:
        return load_capture(name)
    except CaptureError as error:
        raise PluginError(f"{where}: {error}") from None


def _chart(draw, where: str, *args) -> Chart:
    chart = draw(*args)
    if not isinstance(chart, Chart):
        raise PluginError(f"{where}: a figure function must return examples.render.Chart, not {type(chart).__name__}")
    return chart


def _page_figure_modules() -> list[str]:
    """Renderer modules with no capture of the same name: they draw figures of CPU-computed data."""
    captured = set(EXAMPLES)
    return sorted(p.stem for p in RENDER_DIR.glob("*.py") if p.stem != "__init__" and p.stem not in captured)


def on_files(files, config):
    _figures.clear()
    for name in _captured():
        where = f"docs/captures/{name}.json"
        capture = _capture(name, where)
        for item, draw in getattr(_renderer(name, where), "FIGURES", {}).items():
            path = f"captures/{name}-{item}.svg"
            _figures[("capture", name, item)] = (path, _chart(draw, f"examples/render/{name}.py:{item}", capture))
    for name in _page_figure_modules():
        for item, draw in getattr(renderer(name), "FIGURES", {}).items():
            path = f"figures/{name}-{item}.svg"
            _figures[("figure", name, item)] = (path, _chart(draw, f"examples/render/{name}.py:{item}"))
    for path, chart in _figures.values():
        files.append(File.generated(config, path, content=svg(chart.figure)))
    return files


def _captured() -> list[str]:
    return [n for n in EXAMPLES if n not in AWAITING_CAPTURE or capture_path(n).is_file()]


def _stale(capture: dict) -> bool:
    return bool(changed_sources(capture, PREDICTION_SOURCES.get(capture["name"], ())))


def _provenance(capture: dict) -> str:
    line = f'<p class="provenance">Measured: {provenance_line(capture)}</p>'
    name = capture["name"]
    if _stale(capture):
        line += (f'\n\n!!! warning "Stale capture"\n    examples/{name}.py or a module it imports changed after this '
                 f"capture was made. Refresh it: `{refresh_command(name)}`")
    return line


def _figure_html(path: str, chart: Chart, page) -> str:
    # A Markdown image, so that MkDocs resolves the path from the page's source and checks it.
    target = "../" * page.file.src_uri.count("/") + path
    width, height = (round(v * 96) for v in chart.figure.get_size_inches())  # CSS px: 96 per inch
    alt = " ".join(chart.alt.split()).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    alt = html.escape(alt, quote=False)
    return (f'<figure class="chart" markdown>\n![{alt}]({target}){{ width="{width}" height="{height}" }}\n'
            f"<figcaption markdown>\n{chart.caption.strip()}\n</figcaption>\n</figure>")


def _index() -> str:
    """One row per example: where and when its capture was made, whether it is fresh, who shows it."""
    shown_on = _pages_showing()
    rows = []
    for name in EXAMPLES:
        if name not in _captured():
            rows.append([f"`{name}`", "—", "—", "—", "awaiting a GPU"])
            continue
        capture = _capture(name, "the capture index")
        p = capture["provenance"]
        fresh = "**stale**" if _stale(capture) else "fresh"
        pages = ", ".join(f"[{title}]({src})" for src, title in shown_on.get(name, [])) or "—"
        rows.append([f"`{name}`", pages, p["date"][:10], f"{p['wall_s']:.1f}", fresh])
    table = markdown_table(["capture", "shown on", "date", "run (s)", "state"], rows, "lllrl")
    first = load_capture(EXAMPLES[0])
    waiting = [f"- `{n}`: {AWAITING_CAPTURE[n]}." for n in EXAMPLES if n not in _captured()]
    awaiting = ("\n\nWritten, smoke-tested on the CPU, and awaiting their first GPU capture:\n\n"
                + "\n".join(waiting)) if waiting else ""
    return f"{table}\n\n<p class=\"provenance\">Measured: {provenance_line(first)}</p>{awaiting}"


_titles: dict[str, str] = {}
_markers_by_page: dict[str, set[str]] = {}


def _pages_showing() -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    for src, names in sorted(_markers_by_page.items()):
        for name in names:
            result.setdefault(name, []).append((src, _titles.get(src, src)))
    return result


def on_nav(nav, config, files):
    """Before any page is rendered, note which pages show which captures (for the index)."""
    _markers_by_page.clear()
    _titles.clear()
    for page in nav.pages:
        text = (ROOT / "docs" / page.file.src_uri).read_text(encoding="utf-8")
        names = set()
        for match in re.finditer(r"<!--\s*capture:\s*(?P<a>[a-z0-9_]+)/|\{\{\s*(?P<b>[a-z0-9_]+)/", text):
            names.add(match["a"] or match["b"])
        if names:
            _markers_by_page[page.file.src_uri] = names & set(EXAMPLES)
            _titles[page.file.src_uri] = page.title or page.file.src_uri
    return nav


def _value(name: str, item: str, where: str) -> str:
    capture = _capture(name, where)
    values = getattr(_renderer(name, where), "VALUES", {})
    if item not in values:
        raise PluginError(f"{where}: examples/render/{name}.py has no value '{item}' (VALUES: {', '.join(values)})")
    title = html.escape(f"Measured: {provenance_line(capture)}", quote=True)
    return f'<span class="captured" title="{title}">{values[item](capture)}</span>'


def on_page_markdown(markdown: str, page, config, files) -> str:
    lines = markdown.split("\n")
    for i in outside_fences(lines):
        line = lines[i]
        where = f"docs/{page.file.src_uri}:{i + 1}"
        if line.strip() == INDEX_MARKER:
            lines[i] = _index()
            continue
        lines[i] = line = VALUE.sub(lambda m: _value(m["name"], m["item"], where), line)
        match = MARKER.match(line.strip())
        if not match:
            continue
        kind, name, item = match["kind"], match["name"], match["item"]
        indent = line[: len(line) - len(line.lstrip())]
        if kind == "figure":
            if (kind, name, item) not in _figures:
                raise PluginError(f"{where}: examples/render/{name}.py draws no figure '{item}' "
                                  "(or it is a capture's renderer: use <!-- capture: ... -->)")
            body = _figure_html(*_figures[(kind, name, item)], page)
        else:
            capture = _capture(name, where)
            tables = getattr(_renderer(name, where), "TABLES", {})
            if item in tables:
                body = tables[item](capture)
            elif (kind, name, item) in _figures:
                body = _figure_html(*_figures[(kind, name, item)], page)
            else:
                raise PluginError(f"{where}: examples/render/{name}.py has no table or figure '{item}'")
            body = f"{body}\n\n{_provenance(capture)}\n"
        lines[i] = "\n".join(indent + l if l else l for l in body.split("\n"))
    return "\n".join(lines)
