"""MkDocs hook: a provenance line at the foot of every page.

"Tested with torch X (CPU) at commit abc1234": the torch this build ran under (the same
environment as the test suite) and the commit the site was built from; a page that shows
captures adds each capture's provenance (GPU, torch, CUDA, date).
"""

from __future__ import annotations

import re
import subprocess

import torch

from snippets.captures import ROOT, CaptureError, load_capture, provenance_line

CAPTURE_USE = re.compile(r"<!--\s*capture:\s*(?P<a>[a-z0-9_]+)/|\{\{\s*(?P<b>[a-z0-9_]+)/")


def _commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return (result.stdout.strip() or "unknown") + (" with local changes" if dirty else "")


_state: dict[str, object] = {}


def on_pre_build(config) -> None:
    _state["commit"] = _commit()
    _state["uses"] = {}


def on_page_markdown(markdown: str, page, config, files) -> str:
    # The source, not `markdown`: the captures hook has already replaced the markers.
    source = page.file.content_string if page.file.abs_src_path else markdown
    names = {m["a"] or m["b"] for m in CAPTURE_USE.finditer(source)}
    _state["uses"][page.file.src_uri] = sorted(names)
    return markdown


def on_page_content(html: str, page, config, files) -> str:
    lines = [f"Tested with torch {torch.__version__} on the CPU · built from commit {_state['commit']}"]
    for name in _state["uses"].get(page.file.src_uri, []):
        try:
            lines.append(f"Capture <code>{name}</code>: {provenance_line(load_capture(name))}")
        except CaptureError:
            continue  # the captures hook has already failed the build, naming page and line
    items = "".join(f"<li>{line}</li>" for line in lines)
    return html + f'\n<footer class="page-provenance" data-search-exclude><ul>{items}</ul></footer>\n'
