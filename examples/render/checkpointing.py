"""Tables and figures for docs/captures/checkpointing.json: the headline five strategies, every
strategy's bytes and time, the segment sweep against Chen et al.'s formula, and the step times."""

from __future__ import annotations

import math

from examples.render import Chart, gib, markdown_table

HEADLINE = ("none", "one checkpoint", "best segments", "per block", "selective")


def _rows(capture: dict, kind: str) -> dict[str, dict]:
    return {r["name"]: r for r in capture["data"][kind]["strategies"]}


def best_segments(capture: dict, kind: str = "blocks") -> dict:
    """The checkpoint_sequential run with the lowest measured peak."""
    segmented = [r for r in capture["data"][kind]["strategies"] if r["segments"]]
    return min(segmented, key=lambda r: r["measured"]["peak_bytes"])


def _fraction(value: float | None, reference: float | None, style: str) -> str:
    if value is None or not reference:
        return "—"
    return f"{value / reference:.0%}" if style == "percent" else f"×{value / reference:.2f}"


def _forwards(value: float) -> str:
    return f"{value:+.2f}".replace("-0.00", "+0.00")  # a median a hair below none's is no saving


def _model_line(capture: dict, kind: str) -> str:
    m = capture["data"][kind]["model"]
    what = "MLP blocks" if kind == "blocks" else "layers of the seed's DeepMLP (Linear, GELU, Linear, GELU, …)"
    return (f"{m['layers']} {what}, d = {m['d']}, {m['tokens']:,} tokens, {m['params']:,} fp32 parameters "
            f"({gib(m['param_bytes'])}). Bytes are above the persistent baseline; times are medians of "
            f"{capture['data']['repeat']} CUDA-event timings after warm-up.")


def headline(capture: dict) -> str:
    """The five strategies' peak and step time, side by side, relative to no checkpointing."""
    rows = _rows(capture, "blocks")
    best = best_segments(capture)
    chosen = [rows["none"], rows["one checkpoint"], best, rows["per block"], rows["selective"]]
    labels = ["none", "one checkpoint", f"best segments ({best['name']})", "per block", "selective"]
    none = rows["none"]["measured"]
    table = []
    for r, label in zip(chosen, labels):
        m = r["measured"]
        table.append([label, gib(m["peak_bytes"]), _fraction(m["peak_bytes"], none["peak_bytes"], "percent"),
                      f"{m['step_ms']:.1f}", _fraction(m["step_ms"], none["step_ms"], "times"),
                      f"{_forwards(r['recompute_forwards_measured'])} ({r['recompute_forwards_counted']:.2f})"])
    headers = ["strategy", "peak memory", "peak ÷ none", "step (ms)", "step ÷ none",
               "extra time in forwards: measured (counted)"]
    return f"{_model_line(capture, 'blocks')}\n\n{markdown_table(headers, table, 'lrrrrr')}"


def _sweep_table(kind: str):
    def draw(capture: dict) -> str:
        rows = []
        for r in capture["data"][kind]["strategies"]:
            m, c = r["measured"], r["counted"]
            equal = "bitwise" if r["grads_bitwise_equal"] else f"max diff {r['grads_max_abs_diff']:.1e}"
            rows.append([r["name"], gib(m["held_bytes"]), gib(c["held_bytes"]), gib(m["peak_bytes"]),
                         gib(c["max_live_bytes"]), f"{m['step_ms']:.1f}", f"{m['forward_ms']:.1f}",
                         _forwards(r["recompute_forwards_measured"]), f"{r['recompute_forwards_counted']:.2f}", equal])
        headers = ["strategy", "held after forward", "held, counted", "peak", "peak, counted", "step (ms)",
                   "forward (ms)", "recompute (forwards)", "recompute, counted", "gradients vs none"]
        return f"{_model_line(capture, kind)}\n\n{markdown_table(headers, rows, 'lrrrrrrrrl')}"
    return draw


def _panel(ax, capture: dict, kind: str, title: str) -> None:
    data = capture["data"][kind]
    rows = [r for r in data["strategies"] if r["segments"]]
    ks = [r["segments"] for r in rows]
    n, a, per_layer = data["model"]["layers"], data["a_bytes"], data["per_layer_bytes"]
    GiB = 2**30
    ax.plot(ks, [r["measured"]["peak_bytes"] / GiB for r in rows], "o-", color="#3949ab",
            label="peak (allocator)")
    ax.plot(ks, [r["counted"]["max_live_bytes"] / GiB for r in rows], "x", color="#000000", markersize=7,
            label="peak counted by LiveBytes")
    ax.plot(ks, [r["measured"]["held_bytes"] / GiB for r in rows], "s", color="#546e7a", markersize=5,
            label="held after forward (allocator)")
    # Chen et al., as checkpoint_sequential runs it: k - 1 kept boundaries plus one unchecked segment
    ax.plot(ks, [((k - 1) * a + n / k * per_layer) / GiB for k in ks], "--", color="#e65100", linewidth=1.2,
            label="(k−1)·a + (n/k)·A")
    named = {r["name"]: r for r in data["strategies"]}
    for name, colour in (("per block", "#2e7d32"), ("selective", "#f9a825")):
        if name in named:
            ax.axhline(named[name]["measured"]["peak_bytes"] / GiB, color=colour, linewidth=1.2,
                       label=f"peak, {name}")
    ax.set_ylim(bottom=0)
    top = ax.get_ylim()[1]
    ax.axvline(math.sqrt(n), color="#c62828", linewidth=1, linestyle=":")
    ax.text(math.sqrt(n), top, " √n", color="#c62828", va="top", fontsize=8)
    if per_layer != a:  # the optimum of (k-1)a + (n/k)A when a layer keeps more than it passes on
        ax.axvline(math.sqrt(n * per_layer / a), color="#6a1b9a", linewidth=1, linestyle=":")
        ax.text(math.sqrt(n * per_layer / a), top * 0.92, " √(nA/a)", color="#6a1b9a", va="top", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("segments k (checkpoint_sequential)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def segments_figure(capture: dict):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    u, b = capture["data"]["uniform"]["model"], capture["data"]["blocks"]["model"]
    _panel(left, capture, "uniform", f"seed's DeepMLP: {u['layers']} equal layers (A = a)")
    _panel(right, capture, "blocks", f"{b['layers']} MLP blocks (A ≈ 10a)")
    left.set_ylabel("GiB above the persistent baseline")
    handles, labels = right.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=3, frameon=False)
    return fig


def time_figure(capture: dict):
    from examples.render import figure

    rows = list(_rows(capture, "blocks").values())
    none = rows[0]["measured"]
    fig, ax = figure(5.6, 3.8)
    x = range(len(rows))
    ax.bar(x, [r["measured"]["step_ms"] for r in rows], color="#5c6bc0", label="step (forward + backward)")
    ax.bar(x, [r["measured"]["forward_ms"] for r in rows], color="#c5cae9", label="forward alone")
    # what the FLOP count predicts: none's step plus the recomputed fraction of none's forward
    predicted = [none["step_ms"] + r["recompute_forwards_counted"] * none["forward_ms"] for r in rows]
    ax.hlines(predicted, [i - 0.4 for i in x], [i + 0.4 for i in x], colors="#000000", linewidth=2, zorder=3,
              label="predicted from the FLOP count")
    for i, r in enumerate(rows):
        ax.text(i, max(r["measured"]["step_ms"], predicted[i]) * 1.01, _forwards(r["recompute_forwards_measured"]),
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(x), [r["name"] for r in rows])
    ax.set_ylim(0, 1.3 * max(r["measured"]["step_ms"] for r in rows))
    ax.set_ylabel("ms (median of CUDA events)")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(fontsize=8, frameon=False, loc="upper left", ncol=3)
    ax.set_title("above each bar: extra step time, in forwards of the unchecked model", fontsize=8)
    return fig


TABLES = {"headline": headline, "blocks": _sweep_table("blocks"), "uniform": _sweep_table("uniform")}
def segments_chart(capture: dict) -> Chart:
    return Chart(segments_figure(capture),
                 alt="Two panels of peak memory in GiB against the number of checkpoint segments k on a "
                     "log scale, measured and counted, with Chen et al.'s formula as a dashed line.",
                 caption="The segment sweep: peak memory against the number of segments, for the "
                         "uniform stack (left) and the MLP blocks (right).")


def time_chart(capture: dict) -> Chart:
    return Chart(time_figure(capture),
                 alt="Bars of step time in milliseconds for each checkpointing strategy, with the "
                     "forward alone and the time the FLOP count predicts.",
                 caption="What the recompute costs in time, per strategy, on the MLP blocks.")


FIGURES = {"segments": segments_chart, "time": time_chart}
