"""Chapter 1's figure: the four families of training memory as one stacked bar
per batch size, for TinyMLP trained by AdamW in fp32 (computed on the CPU by
snippets/memory_families.py, the same numbers as the page's table), with the
peak of one iteration counted at each size (snippets/iteration_peak.py): the
stack is not a bound on it."""

from __future__ import annotations

import matplotlib

from examples.render import PALETTE, STYLE, Chart, figure
from snippets.iteration_peak import tiny_mlp_adamw_peaks
from snippets.memory_families import tiny_mlp_adamw

BATCH_SIZES = (32, 128, 512, 2048)
FAMILIES = ("parameters", "gradients", "optimizer state", "activations")
COLOURS = dict(zip(FAMILIES, (PALETTE[0], PALETTE[1], PALETTE[3], PALETTE[2])))
KiB = 1024


def _draw(ax, data: dict[int, dict[str, int]],
          peaks: dict[int, int]) -> None:
    labels = [str(b) for b in BATCH_SIZES]
    bottom = [0.0] * len(BATCH_SIZES)
    for family in FAMILIES:
        kib = [data[b][family] / KiB for b in BATCH_SIZES]
        ax.bar(labels, kib, 0.6, bottom=bottom, label=family,
               color=COLOURS[family])
        bottom = [s + v for s, v in zip(bottom, kib)]
    for i, total in enumerate(bottom):
        ax.text(i, total, f"{total:.1f}", ha="center", va="bottom")
    persistent = sum(data[BATCH_SIZES[0]][f] for f in FAMILIES[:3]) / KiB
    ax.axhline(persistent, color="#757575", linestyle="--", linewidth=1,
               label="persistent part")
    peak_kib = [peaks[b] / KiB for b in BATCH_SIZES]
    # beside each bar, clear of its total's label
    ax.plot([i + 0.42 for i in range(len(BATCH_SIZES))], peak_kib,
            linestyle="none", marker="D", markersize=7,
            color="#212121", markeredgecolor="white",
            label="peak of an iteration")
    ax.set_ylabel("KiB")
    ax.set_xlabel("batch size B")
    ax.set_ylim(0, max(bottom + peak_kib) * 1.12)
    ax.legend(loc="upper left", frameon=False, reverse=True)


def families() -> Chart:
    data = tiny_mlp_adamw(BATCH_SIZES)
    peaks = tiny_mlp_adamw_peaks(BATCH_SIZES)
    fig, ax = figure(4.4, 3.4)  # narrow: legible on a phone
    with matplotlib.rc_context(STYLE):  # 11 pt for every text drawn below
        _draw(ax, data, peaks)
    persistent = sum(data[BATCH_SIZES[0]][f] for f in FAMILIES[:3]) / KiB
    first, last = data[BATCH_SIZES[0]], data[BATCH_SIZES[-1]]
    alt = (
        "Stacked bar chart of TinyMLP's training memory in KiB at batch "
        f"sizes {', '.join(map(str, BATCH_SIZES))}: parameters "
        f"{first['parameters'] / KiB:.1f}, gradients "
        f"{first['gradients'] / KiB:.1f} and AdamW state "
        f"{first['optimizer state'] / KiB:.1f} KiB at every size (a dashed "
        f"line at {persistent:.1f} KiB); activations grow from "
        f"{first['activations'] / KiB:.1f} KiB at batch {BATCH_SIZES[0]} to "
        f"{last['activations'] / KiB:.1f} KiB at batch {BATCH_SIZES[-1]}, "
        "where they are most of the bar. A diamond per batch size marks the "
        "peak of one iteration, counted: "
        + ", ".join(f"{peaks[b] / KiB:.1f}" for b in BATCH_SIZES)
        + " KiB, above the bar at every size shown."
    )
    caption = (
        "The four families for TinyMLP trained by AdamW in fp32 (KiB, the "
        "table's numbers). The dashed line is the persistent part, the same "
        "at every batch size; only the activations grow with the batch. The "
        "diamonds are the peak of one iteration, counted: the step's "
        "temporaries at small batches, backward's own tensors at large ones "
        "put it above the stack."
    )
    return Chart(fig, alt=alt, caption=caption)


FIGURES = {"families": families}
