"""Draw the site's tables and figures from committed captures (no GPU needed).

`examples/render/<name>.py` renders `docs/captures/<name>.json` and defines

    TABLES  = {"item": lambda capture: "<markdown table>"}
    FIGURES = {"item": lambda capture: Chart(figure, alt=..., caption=...)}
    VALUES  = {"item": lambda capture: "65.0 MiB"}      # one number, with its unit

A page embeds a table or figure with a line `<!-- capture: <name>/<item> -->` and a value inside
a sentence with `{{ <name>/<item> }}`; hooks/captures.py replaces them at build time (a figure as
SVG with its caption and alt text, a table or figure followed by the capture's provenance line,
a value with the provenance on hover). Rendering code is kept out of examples/<name>.py on purpose:
restyling a figure must not make its capture stale.

Figures of data that the tests compute on the CPU (no capture) live in a module here too, whose
FIGURES take no argument; a page embeds them with `<!-- figure: <module>/<item> -->`.
"""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# Figures are drawn at their natural size and never scaled up; at 11 pt on a figure at most
# FIGURE_MAX_WIDTH_IN wide, text stays legible when a phone shrinks it to its column.
FIGURE_MAX_WIDTH_IN = 5.6
FONT_SIZE_PT = 11
PALETTE = ("#5c6bc0", "#2e7d32", "#c62828", "#f9a825", "#6d4c41", "#00838f", "#9e9e9e")


@dataclass
class Chart:
    """A figure and the words that go with it.

    alt: what the figure shows, for a reader who cannot see it (the numbers that matter included);
    caption: one or two sentences under it, Markdown allowed; the units are those of the table
    beside it."""

    figure: Any
    alt: str
    caption: str

    def __post_init__(self) -> None:
        if len(self.alt.split()) < 6:
            raise ValueError(f"alt text too short to say what the figure shows: {self.alt!r}")
        if not self.caption.strip():
            raise ValueError("a figure needs a caption")
        width, _ = self.figure.get_size_inches()
        if width > FIGURE_MAX_WIDTH_IN + 1e-9:
            raise ValueError(f"figure {width:.1f} in wide; at most {FIGURE_MAX_WIDTH_IN} in")


def renderer(name: str) -> ModuleType:
    return importlib.import_module(f"examples.render.{name}")


def markdown_table(headers: list[str], rows: list[list[object]], align: str | None = None) -> str:
    """A Markdown table; `align` holds one of l/r/c per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule[a] for a in align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mib(nbytes: int | None) -> str:
    return "—" if nbytes is None else f"{nbytes / 2**20:,.1f} MiB"


def gib(nbytes: int | None) -> str:
    return "—" if nbytes is None else f"{nbytes / 2**30:,.2f} GiB"


STYLE = {
    "font.size": FONT_SIZE_PT, "axes.titlesize": FONT_SIZE_PT, "axes.labelsize": FONT_SIZE_PT,
    "xtick.labelsize": FONT_SIZE_PT, "ytick.labelsize": FONT_SIZE_PT, "legend.fontsize": FONT_SIZE_PT,
    "figure.facecolor": "none", "axes.facecolor": "none", "savefig.transparent": True,
}


def figure(width: float = FIGURE_MAX_WIDTH_IN, height: float = 3.4, ncols: int = 1):
    """A new figure in the site's style (Agg backend: no display needed).

    Transparent, so that dark mode (which inverts figures, see site.css) shows no white box;
    11 pt text, so legends stay legible at a phone's width."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return (fig, axes[0]) if ncols == 1 else (fig, list(axes))


def svg(fig) -> str:
    """The figure as SVG text, byte-identical for identical input (no date, fixed ids)."""
    import matplotlib

    with matplotlib.rc_context({**STYLE, "svg.hashsalt": "optimizers-as-state-machines", "svg.fonttype": "none"}):
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()
