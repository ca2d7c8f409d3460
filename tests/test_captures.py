"""Every example has a capture that was taken on CUDA, at full size, from the code as it is now.

A stale capture (its example or a module it imports changed since) fails here, naming the example
and the command that refreshes it. CI has no GPU, so this is how it knows the site's GPU numbers
still describe the code in the repository.
"""

from __future__ import annotations

import re

import pytest

from examples import EXAMPLES
from examples.render import FONT_SIZE_PT, Chart, renderer, svg
from snippets.captures import CAPTURES_DIR, ROOT, load_capture, refresh_command, source_files, source_sha256

NOT_EXAMPLES = {"__init__", "__main__", "standalone"}
MARKER = re.compile(r"<!--\s*(capture|figure):\s*([a-z0-9_]+)/([a-z0-9_]+)\s*-->")
VALUE = re.compile(r"\{\{\s*([a-z0-9_]+)/([a-z0-9_]+)\s*\}\}")


def test_every_example_module_is_registered():
    modules = {p.stem for p in (ROOT / "examples").glob("*.py")} - NOT_EXAMPLES
    assert modules == set(EXAMPLES), "examples/*.py and examples.EXAMPLES disagree"


def test_every_capture_file_belongs_to_an_example():
    orphans = {p.stem for p in CAPTURES_DIR.glob("*.json")} - set(EXAMPLES)
    assert not orphans, f"captures without an example: {sorted(orphans)}"


@pytest.mark.claim("Every GPU number on the site comes from a full-size capture taken on CUDA",
                   page="measured.md#the-captures")
@pytest.mark.parametrize("name", EXAMPLES)
def test_capture_exists_from_cuda_at_full_size(name):
    capture = load_capture(name)  # a missing one fails with the command that makes it
    p = capture["provenance"]
    assert p["device"] == "cuda" and p["gpu"] and p["cuda"], \
        f"{name}: captured on {p['device']}, not a CUDA GPU; refresh: {refresh_command(name)}"
    assert capture["size"] == "full", f"{name}: a {capture['size']} run; refresh: {refresh_command(name)}"
    assert capture["name"] == name
    for field in ("torch", "python", "date", "wall_s", "source_sha256", "sources"):
        assert p.get(field) is not None, f"{name}: provenance lacks {field}"


@pytest.mark.claim("Every capture was made by the code now in the repository (fresh)",
                   page="measured.md#the-captures")
@pytest.mark.parametrize("name", EXAMPLES)
def test_capture_is_fresh(name):
    capture = load_capture(name)
    recorded, now = capture["provenance"]["source_sha256"], source_sha256(name)
    files = ", ".join(p.relative_to(ROOT).as_posix() for p in source_files(name))
    assert recorded == now, (
        f"docs/captures/{name}.json is stale: {files} changed since it was captured. "
        f"Refresh it on a CUDA machine: {refresh_command(name)}")


@pytest.mark.parametrize("name", EXAMPLES)
def test_renderer_draws_every_table_and_figure(name):
    module = renderer(name)
    capture = load_capture(name)
    assert getattr(module, "TABLES", {}) or getattr(module, "FIGURES", {}), f"examples/render/{name}.py draws nothing"
    for item, draw in getattr(module, "TABLES", {}).items():
        assert draw(capture).count("\n|") >= 2, f"{name}/{item}: an empty table"
    for item, draw in getattr(module, "FIGURES", {}).items():
        check_chart(draw(capture), f"{name}/{item}")
    for item, value in getattr(module, "VALUES", {}).items():
        text = value(capture)
        assert isinstance(text, str) and text.strip() and "nan" not in text.lower(), f"{name}/{item}: {text!r}"


def check_chart(chart, where: str) -> None:
    """A figure with data, alt text and a caption, whose every text is at least the site's size."""
    assert isinstance(chart, Chart), f"{where}: FIGURES must return examples.render.Chart"
    assert any(ax.has_data() for ax in chart.figure.axes), f"{where}: an empty figure"
    sizes = [float(s) for s in re.findall(r"font-size: ([0-9.]+)px", svg(chart.figure))]
    assert sizes and min(sizes) >= FONT_SIZE_PT, f"{where}: text at {min(sizes)} pt; at least {FONT_SIZE_PT}"


def test_page_figures_draw():
    """Figures of CPU-computed data (renderer modules with no capture) draw, with words."""
    modules = [p.stem for p in (ROOT / "examples" / "render").glob("*.py")
               if p.stem != "__init__" and p.stem not in EXAMPLES]
    for name in modules:
        module = renderer(name)
        assert getattr(module, "FIGURES", {}), f"examples/render/{name}.py draws no figure and has no capture"
        for item, draw in module.FIGURES.items():
            check_chart(draw(), f"{name}/{item}")


def test_every_marker_on_a_page_names_a_capture_and_an_item():
    bad = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for kind, name, item in MARKER.findall(text):
            if kind == "capture":
                module = renderer(name) if name in EXAMPLES else None
                items = {**getattr(module, "TABLES", {}), **getattr(module, "FIGURES", {})} if module else {}
            else:
                module = renderer(name) if (ROOT / "examples" / "render" / f"{name}.py").is_file() else None
                items = getattr(module, "FIGURES", {}) if module and name not in EXAMPLES else {}
            if item not in items:
                bad.append(f"{page.name}: {kind} {name}/{item}")
        for name, item in VALUE.findall(text):
            if name not in EXAMPLES or item not in getattr(renderer(name), "VALUES", {}):
                bad.append(f"{page.name}: value {name}/{item}")
    assert not bad, bad


def test_editing_an_imported_snippet_makes_the_capture_stale(tmp_path, monkeypatch):
    """The hash covers the example and what it imports, transitively: touch one byte, it changes."""
    import shutil

    import snippets.captures as captures

    for folder in ("examples", "snippets"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(captures, "ROOT", tmp_path)
    before = captures.source_sha256("zero_grad")
    unrelated = captures.source_sha256("optimizer_state")  # does not import snippets/timing.py
    assert "snippets/timing.py" in [p.relative_to(tmp_path).as_posix() for p in captures.source_files("zero_grad")]
    timing = tmp_path / "snippets" / "timing.py"
    timing.write_text(timing.read_text() + "\n# an edit\n")
    assert captures.source_sha256("zero_grad") != before
    assert captures.source_sha256("optimizer_state") == unrelated
