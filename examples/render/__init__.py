"""Draw the site's tables and figures from committed captures (no GPU needed).

`examples/render/<name>.py` renders `docs/captures/<name>.json` and defines

    TABLES  = {"item": lambda capture: "<markdown table>"}
    FIGURES = {"item": lambda capture: matplotlib Figure}

A page embeds one with a line `<!-- capture: <name>/<item> -->`; hooks/captures.py replaces it at
build time with the table or the SVG figure and the capture's provenance line. Rendering code is
kept out of examples/<name>.py on purpose: restyling a figure must not make its capture stale.
"""

from __future__ import annotations

import importlib
import io
from types import ModuleType


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


def figure(width: float = 7.0, height: float = 3.6):
    """A new figure in the site's style (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def svg(fig) -> str:
    """The figure as SVG text, byte-identical for identical input (no date, fixed ids)."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "optimizers-as-state-machines", "svg.fonttype": "none"}):
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()
