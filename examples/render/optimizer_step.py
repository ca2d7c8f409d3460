"""Table and roofline figure for docs/captures/optimizer_step.json."""

from __future__ import annotations

from examples.render import Chart, figure, markdown_table

IMPLEMENTATION_COLOURS = {"for-loop": "#9e9e9e", "foreach": "#5c6bc0", "fused": "#2e7d32", "default": "#f9a825"}


def steps(capture: dict) -> str:
    d = capture["data"]
    copy = d["copy"]["GBps"]
    rows = []
    for r in d["results"]:
        extra = r["step_peak_extra_bytes"]
        rows.append([r["optimizer"], r["implementation"], f"{r['ms']:.2f}", f"{r['GBps']:,.0f}",
                     f"{r['GBps'] / copy:.0%}", f"{extra / d['params']['bytes']:.2f}"])
    table = markdown_table(
        ["optimizer", "implementation", "step (ms, median)", "effective GB/s", "of copy bandwidth",
         "extra peak ÷ params bytes"], rows, "llrrrr")
    p = d["params"]
    return (f"{p['P']:,} fp32 parameters in {p['tensors']} tensors; device-to-device copy: "
            f"{copy:,.0f} GB/s (read + write).\n\n{table}")


def roofline(capture: dict):
    d = capture["data"]
    copy = d["copy"]["GBps"]
    optimizers = list(dict.fromkeys(r["optimizer"] for r in d["results"]))
    implementations = list(dict.fromkeys(r["implementation"] for r in d["results"]))
    fig, ax = figure(5.6, 3.6)
    width = 0.8 / len(implementations)
    for j, impl in enumerate(implementations):
        values = [next(r["GBps"] for r in d["results"] if r["optimizer"] == o and r["implementation"] == impl)
                  for o in optimizers]
        xs = [i + (j - (len(implementations) - 1) / 2) * width for i in range(len(optimizers))]
        ax.bar(xs, values, width, label=impl, color=IMPLEMENTATION_COLOURS.get(impl))
    ax.axhline(copy, color="#c62828", linestyle="--", linewidth=1)
    ax.text(len(optimizers) - 0.5, copy, " device-to-device copy", color="#c62828", va="bottom", ha="right", fontsize=8)
    ax.set_xticks(range(len(optimizers)), optimizers)
    ax.set_ylabel("effective bandwidth (GB/s)\n= bytes a step must move / time")
    ax.set_ylim(0, copy * 1.12)
    ax.legend(ncols=len(implementations), fontsize=8, loc="upper left", frameon=False)
    return fig


TABLES = {"steps": steps}
def roofline_chart(capture: dict) -> Chart:
    return Chart(roofline(capture),
                 alt="Bar chart of the effective bandwidth in GB/s of one optimizer step for each optimizer "
                     "and implementation (for-loop, foreach, fused), under a dashed line at the "
                     "device-to-device copy bandwidth.",
                 caption="Effective bandwidth of one step: the bytes the update must read and write, "
                         "divided by its median time. The dashed line is a plain copy, the ceiling.")


FIGURES = {"roofline": roofline_chart}
