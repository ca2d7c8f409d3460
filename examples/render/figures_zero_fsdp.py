"""Figure for docs/zero-fsdp.md, drawn from snippets.zero_formulas (tested on
the CPU, no capture): what one rank holds at each ZeRO stage, family by
family, for the ZeRO paper's example. GB (10^9 bytes), the unit of the table
beside it and of the paper."""

from __future__ import annotations

import matplotlib

from examples.render import PALETTE, STYLE, Chart, figure
from snippets.zero_formulas import RECIPES, zero_bytes_per_rank

P, N = 7_500_000_000, 64  # the paper's Figure 1: 7.5 B parameters, 64 GPUs
FAMILIES = (("params", "parameters", PALETTE[0]),
            ("grads", "gradients", PALETTE[1]),
            ("state", "optimizer state", PALETTE[3]))
STAGES = ("0: DDP", "1: state", "2: + grads", "3: + params")


def _gb(stage: int) -> dict[str, float]:
    held = zero_bytes_per_rank(P, N, stage, RECIPES["mixed"])
    return {family: getattr(held, family) / 1e9 for family, _, _ in FAMILIES}


def _draw(ax) -> None:
    bottoms = [0.0] * len(STAGES)
    for family, label, colour in FAMILIES:
        heights = [_gb(stage)[family] for stage in range(len(STAGES))]
        ax.bar(STAGES, heights, 0.6, bottom=bottoms, label=label,
               color=colour)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    for x, total in enumerate(bottoms):
        ax.annotate(f"{total:.1f}", (x, total), xytext=(0, 3),
                    textcoords="offset points", ha="center")
    ax.set_ylabel("GB per rank")
    ax.set_xlabel("ZeRO stage: what is sharded")
    ax.set_ylim(0, max(bottoms) * 1.15)
    ax.legend(loc="upper right", frameon=False, reverse=True)


def stages() -> Chart:
    fig, ax = figure(5.6, 3.4)
    with matplotlib.rc_context(STYLE):  # 11 pt for every text drawn below
        _draw(ax)
    totals = [sum(_gb(stage).values()) for stage in range(len(STAGES))]
    first = _gb(0)
    alt = (f"Stacked bar chart of one rank's persistent memory in GB at ZeRO "
           f"stages 0 to 3, for 7.5 billion parameters on 64 GPUs with "
           f"mixed-precision Adam: {', '.join(f'{t:.1f}' for t in totals)} "
           f"GB. At stage 0 the optimizer state is {first['state']:.0f} GB "
           f"of the {totals[0]:.0f}; stage 1 shards it, stage 2 the "
           f"gradients, stage 3 the parameters.")
    caption = ("One rank's parameters, gradients and optimizer state at each "
               "ZeRO stage (GB, the table's numbers): the paper's Figure 1, "
               "recomputed by `zero_bytes_per_rank`.")
    return Chart(fig, alt=alt, caption=caption)


FIGURES = {"stages": stages}
