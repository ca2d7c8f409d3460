"""Every example has a capture that was taken on CUDA, at full size, from the code as it is now.

A stale capture (its example or a module it imports changed since) fails here, naming the example
and the command that refreshes it. CI has no GPU, so this is how it knows the site's GPU numbers
still describe the code in the repository.
"""

from __future__ import annotations

import re

import pytest

from examples import AWAITING_CAPTURE, EXAMPLES, PREDICTION_SOURCES
from examples.render import FONT_SIZE_PT, Chart, renderer, svg
from snippets.captures import (CAPTURES_DIR, ROOT, capture_path, changed_sources, load_capture,
                               measurement_files, refresh_command, source_files)

MAX_AWAITING = 3


def _captured(name: str) -> None:
    """Skip, saying why, for an example whose first GPU capture is still to be made."""
    if name in AWAITING_CAPTURE and not capture_path(name).is_file():
        pytest.skip(f"{name} awaits its first GPU capture: {AWAITING_CAPTURE[name]}")

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
    _captured(name)
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
    _captured(name)
    changed = changed_sources(load_capture(name), PREDICTION_SOURCES.get(name, ()))
    assert not changed, (
        f"docs/captures/{name}.json is stale: {', '.join(changed)} changed since it was captured. "
        f"Refresh it on a CUDA machine: {refresh_command(name)}")


def test_awaiting_examples_are_few_explained_and_uncaptured():
    assert set(AWAITING_CAPTURE) <= set(EXAMPLES)
    assert len(AWAITING_CAPTURE) <= MAX_AWAITING, f"{len(AWAITING_CAPTURE)} examples await a capture"
    for name, reason in AWAITING_CAPTURE.items():
        assert len(reason.split()) >= 4, f"{name}: say why it has no capture yet"
        assert not capture_path(name).is_file(), (
            f"{name} has a capture now: remove it from examples.AWAITING_CAPTURE")


def test_prediction_sources_are_modules_the_example_imports():
    for name, modules in PREDICTION_SOURCES.items():
        imported = {p.relative_to(ROOT).as_posix() for p in source_files(name)}
        assert set(modules) <= imported, f"{name}: {set(modules) - imported} are not among its sources"
        measuring = {p.relative_to(ROOT).as_posix() for p in measurement_files(name, modules)}
        assert f"examples/{name}.py" in measuring and not measuring & set(modules)


@pytest.mark.parametrize("name", EXAMPLES)
def test_renderer_draws_every_table_and_figure(name):
    _captured(name)
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
    """A figure with data, alt text and a caption, whose every text is at least the site's size
    and lies inside the figure (a legend wider than the figure is cut off in the SVG)."""
    assert isinstance(chart, Chart), f"{where}: FIGURES must return examples.render.Chart"
    assert any(ax.has_data() for ax in chart.figure.axes), f"{where}: an empty figure"
    sizes = [float(s) for s in re.findall(r"font-size: ([0-9.]+)px", svg(chart.figure))]
    assert sizes and min(sizes) >= FONT_SIZE_PT, f"{where}: text at {min(sizes)} pt; at least {FONT_SIZE_PT}"
    outside = text_outside_the_figure(chart.figure)
    assert not outside, f"{where}: text runs past the figure's box: {outside}"


def text_outside_the_figure(fig, slack_px: float = 1.0) -> list[str]:
    """What of a drawn figure leaves the figure's box: an axes with its ticks, labels and texts,
    a legend, or a figure-level text (the SVG cuts them off at the box)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer, box = canvas.get_renderer(), fig.bbox
    parts = [(f"axes {i + 1} (its ticks, labels or texts)", ax.get_tightbbox(renderer))
             for i, ax in enumerate(fig.axes) if ax.get_visible()]
    parts += [(f"legend {[t.get_text()[:30] for t in legend.get_texts()]}", legend.get_window_extent(renderer))
              for legend in fig.legends]
    parts += [(repr(t.get_text()[:40]), t.get_window_extent(renderer)) for t in fig.texts
              if t.get_visible() and t.get_text().strip()]
    outside = []
    for what, extent in parts:
        over = max(box.x0 - extent.x0, extent.x1 - box.x1, box.y0 - extent.y0, extent.y1 - box.y1)
        if over > slack_px:
            outside.append(f"{what} by {over:.0f} px")
    return outside


def test_text_past_the_figures_box_is_caught():
    from examples.render import figure

    fig, ax = figure(width=3, height=2)
    ax.plot([0, 1], [0, 1], label="a legend entry far too long to fit a three-inch figure, in three columns")
    ax.plot([0, 1], [1, 0], label="another entry")
    fig.legend(loc="outside lower center", ncols=3)
    assert text_outside_the_figure(fig)
    fig, ax = figure(width=3, height=2)
    ax.plot([0, 1], [0, 1], label="short")
    ax.legend()
    assert text_outside_the_figure(fig) == []


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
        bad += [f"{page.name}: {name} awaits its first capture; no page shows its numbers yet"
                for _, name, _ in MARKER.findall(text) + [(None, *v) for v in VALUE.findall(text)]
                if name in AWAITING_CAPTURE]
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


def test_a_prediction_source_edit_leaves_the_measurement_fresh_a_measuring_edit_does_not(tmp_path, monkeypatch):
    """memory_calculator's captured rows are measurements; the calculator that predicts them is
    recomputed by the page, so editing it keeps the capture fresh, and editing what measures does not."""
    import shutil

    import snippets.captures as captures

    for folder in ("examples", "snippets"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(captures, "ROOT", tmp_path)
    capture = load_capture("memory_calculator")
    modules = PREDICTION_SOURCES["memory_calculator"]
    assert captures.changed_sources(capture, modules) == []
    tracer = tmp_path / "snippets" / "memcalc" / "tracer.py"
    tracer.write_text(tracer.read_text() + "\n# a better rule\n")
    assert captures.changed_sources(capture, modules) == []
    assert captures.changed_sources(capture) != []          # the whole-source hash sees it
    training = tmp_path / "snippets" / "memcalc" / "training.py"
    training.write_text(training.read_text() + "\n# another harness\n")
    assert captures.changed_sources(capture, modules) == ["snippets/memcalc/training.py"]
