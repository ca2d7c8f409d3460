"""Tables, figures and values for docs/captures/checkpointing.json: the five
strategies side by side, every run's bytes and times, the down-projection
bias A/B test, the segment sweep against Chen et al.'s formula, and the step
times against the FLOP count."""

from __future__ import annotations

import math

import matplotlib

from examples.render import STYLE, Chart, figure, markdown_table

GiB, MiB = 2**30, 2**20
LOSS_SCALARS = 2 * (512 - 4)  # two fp32 scalars, each in a 512-byte block
KINDS = {"blocks": "MLP blocks",
         "blocks_no_down_bias": "MLP blocks, no bias on the down-projection",
         "uniform": "layers of the study plan's DeepMLP (Linear, GELU, …)"}


def _rows(capture: dict, kind: str = "blocks") -> dict[str, dict]:
    return {r["name"]: r for r in capture["data"][kind]["strategies"]}


def best_segments(capture: dict, kind: str = "blocks") -> dict:
    """The checkpoint_sequential run with the lowest measured peak."""
    segmented = [r for r in capture["data"][kind]["strategies"]
                 if r["segments"]]
    return min(segmented, key=lambda r: r["measured"]["peak_bytes"])


def headline_runs(capture: dict) -> list[tuple[str, dict]]:
    """(label, run) of the five strategies, in the order of the table."""
    rows = _rows(capture)
    best = best_segments(capture)
    return [("none", rows["none"]), ("one checkpoint", rows["one checkpoint"]),
            (f"best segments ({best['name']})", best),
            ("per block", rows["per block"]), ("selective", rows["selective"])]


def _forwards(value: float) -> str:
    # a median a hair below none's is no saving
    return f"{value:+.2f}".replace("-0.00", "+0.00")


def _gib(nbytes: int | None) -> str:
    return "—" if nbytes is None else f"{nbytes / GiB:.2f}"


def _mib(nbytes: int | None) -> str:
    return "—" if nbytes is None else f"{nbytes / MiB:,.1f}"


def _model_line(capture: dict, kind: str) -> str:
    m = capture["data"][kind]["model"]
    return (f"{m['layers']} {KINDS[kind]}, d = {m['d']}, {m['tokens']:,} "
            f"tokens, {m['params']:,} fp32 parameters "
            f"({m['param_bytes'] / GiB:.2f} GiB). Bytes are above the "
            f"persistent baseline; times are medians of "
            f"{capture['data']['repeat']} CUDA-event timings after warm-up.")


def headline(capture: dict) -> str:
    """The five strategies' peak and step time, relative to none."""
    none = _rows(capture)["none"]["measured"]
    table = []
    for label, r in headline_runs(capture):
        m = r["measured"]
        table.append([label, _gib(m["peak_bytes"]),
                      f"{m['peak_bytes'] / none['peak_bytes']:.0%}",
                      f"{m['step_ms']:.1f}",
                      f"×{m['step_ms'] / none['step_ms']:.2f}",
                      f"{_forwards(r['recompute_forwards_measured'])} "
                      f"({r['recompute_forwards_counted']:.2f})"])
    headers = ["strategy", "peak (GiB)", "peak ÷ none", "step (ms)",
               "step ÷ none", "extra time, forwards (counted)"]
    return (f"{_model_line(capture, 'blocks')}\n\n"
            + markdown_table(headers, table, "lrrrrr"))


def _bytes_table(kind: str):
    def draw(capture: dict) -> str:
        rows = []
        for r in capture["data"][kind]["strategies"]:
            m, c = r["measured"], r["counted"]
            equal = ("bitwise" if r["grads_bitwise_equal"]
                     else f"max diff {r['grads_max_abs_diff']:.1e}")
            rows.append([r["name"], _gib(m["held_bytes"]),
                         _gib(c["held_bytes"]), _gib(m["peak_bytes"]),
                         _gib(c["max_live_bytes"]), equal])
        headers = ["strategy", "held after forward (GiB)", "held, counted",
                   "peak (GiB)", "peak, counted", "gradients vs none"]
        return (f"{_model_line(capture, kind)}\n\n"
                + markdown_table(headers, rows, "lrrrrl"))
    return draw


def _time_table(kind: str):
    def draw(capture: dict) -> str:
        rows = []
        for r in capture["data"][kind]["strategies"]:
            m = r["measured"]
            rows.append([r["name"], f"{m['step_ms']:.1f}",
                         f"{m['forward_ms']:.1f}",
                         _forwards(r["recompute_forwards_measured"]),
                         f"{r['recompute_forwards_counted']:.2f}"])
        headers = ["strategy", "step (ms)", "forward (ms)",
                   "extra time (forwards)", "recompute, counted (forwards)"]
        return (f"{_model_line(capture, kind)}\n\n"
                + markdown_table(headers, rows, "lrrrr"))
    return draw


def bias_ab(capture: dict) -> str:
    """Peak minus count, with and without the down-projection's bias."""
    with_bias = _rows(capture, "blocks")
    without = _rows(capture, "blocks_no_down_bias")
    rows = []
    for name, r in without.items():
        w = with_bias[name]

        def excess(run):
            return (run["measured"]["peak_bytes"]
                    - run["counted"]["max_live_bytes"])

        rows.append([name, _gib(w["measured"]["peak_bytes"]),
                     _mib(excess(w)), _gib(r["measured"]["peak_bytes"]),
                     _mib(excess(r))])
    headers = ["strategy", "peak, with bias (GiB)",
               "peak − count, with (MiB)", "peak, no bias (GiB)",
               "peak − count, no bias (MiB)"]
    scratch = capture["data"]["reduction_scratch_bytes"]
    return (f"The sum kernel's own buffer for one bias gradient of this "
            f"size: {_mib(scratch)} MiB.\n\n"
            + markdown_table(headers, rows, "lrrrr"))


def tradeoff_figure(capture: dict):
    with matplotlib.rc_context(STYLE):
        return _tradeoff_figure(capture)


def _tradeoff_figure(capture: dict):
    rows = _rows(capture)
    fig, ax = figure(5.6, 3.9)
    others = [r for r in rows.values() if r["segments"]]
    ax.scatter([r["measured"]["step_ms"] for r in others],
               [r["measured"]["peak_bytes"] / GiB for r in others],
               s=30, color="#9e9e9e", zorder=2,
               label="checkpoint_sequential, k segments")
    best = best_segments(capture)["segments"]
    for r in others:
        if r["segments"] == 1:
            continue  # one segment checkpoints nothing: it sits on none
        m = r["measured"]
        # the best count sits beside per block: label it on its left
        left = r["segments"] == best
        ax.annotate(f"k={r['segments']}", (m["step_ms"], m["peak_bytes"] / GiB),
                    textcoords="offset points", xytext=(-6 if left else 6, -4),
                    ha="right" if left else "left", color="#616161")
    colours = ("#c62828", "#6d4c41", None, "#2e7d32", "#f9a825")
    for (label, r), colour in zip(headline_runs(capture), colours):
        if colour is None:
            continue
        m = r["measured"]
        ax.scatter([m["step_ms"]], [m["peak_bytes"] / GiB], s=70,
                   color=colour, zorder=3, label=label)
    ax.set_xlabel("step time (ms, median of CUDA events)")
    ax.set_ylabel("peak (GiB above the baseline)")
    ax.set_ylim(bottom=0)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(frameon=False, loc="upper center",
              bbox_to_anchor=(0.5, -0.2), ncol=2)
    return fig


def tradeoff_chart(capture: dict) -> Chart:
    none = _rows(capture)["none"]["measured"]
    parts = []
    for label, r in headline_runs(capture):
        m = r["measured"]
        parts.append(f"{label} {m['peak_bytes'] / GiB:.2f} GiB at "
                     f"{m['step_ms']:.0f} ms")
    return Chart(
        tradeoff_figure(capture),
        alt=("Scatter of peak memory in GiB against step time in ms for "
             "each checkpointing strategy on the MLP blocks: "
             + "; ".join(parts) + ". Lower and further left is better; "
             f"no checkpointing is at {none['peak_bytes'] / GiB:.2f} GiB."),
        caption=("Peak memory against step time, one point per strategy "
                 "(the numbers of the table above). Per block and the best "
                 "segment count sit lowest; selective keeps most of the "
                 "speed; one checkpoint around everything pays a whole "
                 "forward for almost no memory."))


def _panel(ax, capture: dict, kind: str, title: str) -> None:
    data = capture["data"][kind]
    rows = [r for r in data["strategies"] if r["segments"]]
    ks = [r["segments"] for r in rows]
    n, a = data["model"]["layers"], data["a_bytes"]
    per_layer = data["per_layer_bytes"]
    ax.plot(ks, [r["measured"]["peak_bytes"] / GiB for r in rows], "o-",
            color="#3949ab", label="peak (allocator)")
    ax.plot(ks, [r["counted"]["max_live_bytes"] / GiB for r in rows], "x",
            color="#000000", markersize=8, label="peak, counted")
    ax.plot(ks, [r["measured"]["held_bytes"] / GiB for r in rows], "s",
            color="#546e7a", markersize=5, label="held after forward")
    # Chen et al., as checkpoint_sequential runs it: k - 1 kept boundaries
    # plus one unchecked segment
    ax.plot(ks, [((k - 1) * a + n / k * per_layer) / GiB for k in ks], "--",
            color="#e65100", linewidth=1.2, label="(k−1)·a + (n/k)·A")
    named = {r["name"]: r for r in data["strategies"]}
    if "per block" in named:
        ax.axhline(named["per block"]["measured"]["peak_bytes"] / GiB,
                   color="#2e7d32", linewidth=1.2, label="peak, per block")
    ax.set_ylim(bottom=0)
    ax.axvline(math.sqrt(n), color="#c62828", linewidth=1, linestyle=":")
    ax.text(math.sqrt(n), ax.get_ylim()[1], " √n", color="#c62828",
            va="top")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("segments k")
    ax.set_title(title)


def segments_figure(capture: dict):
    with matplotlib.rc_context(STYLE):
        return _segments_figure(capture)


def _segments_figure(capture: dict):
    fig, (left, right) = figure(5.6, 5.2, ncols=2)
    u = capture["data"]["uniform"]["model"]
    b = capture["data"]["blocks"]["model"]
    _panel(left, capture, "uniform", f"{u['layers']} equal layers")
    _panel(right, capture, "blocks", f"{b['layers']} MLP blocks")
    left.set_ylabel("GiB above the baseline")
    handles, labels = right.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2,
               frameon=False)
    return fig


def segments_chart(capture: dict) -> Chart:
    u = _rows(capture, "uniform")
    n = capture["data"]["uniform"]["model"]["layers"]
    best_u, best_b = best_segments(capture, "uniform"), best_segments(capture)
    return Chart(
        segments_figure(capture),
        alt=(f"Two panels of memory in GiB against the number of segments "
             f"k on a log scale. Left, {n} equal layers: a symmetric U from "
             f"{u['segments=1']['measured']['peak_bytes'] / GiB:.2f} GiB at "
             f"k = 1 down to "
             f"{best_u['measured']['peak_bytes'] / GiB:.2f} GiB at "
             f"k = {best_u['segments']}, the square root of {n}. Right, the "
             f"MLP blocks: lowest at k = {best_b['segments']}, and a "
             f"checkpoint per block lower still. Chen et al.'s formula, "
             f"dashed, runs through the held bytes."),
        caption=("The segment sweep, in GiB: peak and held bytes against the "
                 "number of segments, with Chen et al.'s "
                 "\\((k-1)\\,a + \\tfrac{n}{k}A\\) (dashed). Equal layers "
                 "bottom out at \\(\\sqrt n\\); blocks, whose inside is "
                 "bigger than their boundary, further right."))


def _time_panel(ax, capture: dict, kind: str, title: str) -> None:
    runs = list(_rows(capture, kind).values())
    none = runs[0]["measured"]
    y = list(range(len(runs)))[::-1]
    ax.barh(y, [r["measured"]["step_ms"] for r in runs], color="#5c6bc0",
            label="step (forward + backward)")
    ax.barh(y, [r["measured"]["forward_ms"] for r in runs],
            color="#c5cae9", label="forward alone")
    # what the FLOP count predicts: none's step plus the recomputed
    # fraction of none's forward
    predicted = [none["step_ms"] + r["recompute_forwards_counted"]
                 * none["forward_ms"] for r in runs]
    ax.vlines(predicted, [v - 0.4 for v in y], [v + 0.4 for v in y],
              colors="#000000", linewidth=2.5, zorder=3,
              label="predicted by the FLOP count")
    ax.set_yticks(y, [r["name"] for r in runs])
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)


def time_figure(capture: dict):
    with matplotlib.rc_context(STYLE):
        return _time_figure(capture)


def _time_figure(capture: dict):
    fig, _ = figure(5.6, 7.4)
    fig.clear()  # two panels, one above the other
    top, bottom = fig.subplots(2, 1)
    for ax in (top, bottom):
        ax.spines[["top", "right"]].set_visible(False)
    b = capture["data"]["blocks"]["model"]
    u = capture["data"]["uniform"]["model"]
    _time_panel(top, capture, "blocks", f"{b['layers']} MLP blocks")
    _time_panel(bottom, capture, "uniform", f"{u['layers']} equal layers")
    bottom.set_xlabel("ms (median of CUDA events)")
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=1,
               frameon=False)
    return fig


def time_chart(capture: dict) -> Chart:
    u = _rows(capture, "uniform")
    n = capture["data"]["uniform"]["model"]["layers"]
    last = u[f"segments={n}"]
    return Chart(
        time_figure(capture),
        alt=(f"Horizontal bars of step time and forward time in ms for "
             f"every strategy, the MLP blocks above and the {n} equal "
             f"layers below, with a black mark where the FLOP count puts "
             f"the step. The marks sit at the bars' ends; {n} one-layer "
             f"segments recompute nothing and took "
             f"{last['measured']['step_ms']:.1f} ms against "
             f"{u['none']['measured']['step_ms']:.1f} ms unchecked."),
        caption=("What the recompute costs in time: each step (dark), its "
                 "forward alone (light) and the step the matmul FLOP count "
                 "predicts (black): the unchecked step plus the counted "
                 "recompute in forwards."))


def _strategy_value(name: str, field: str):
    def value(capture: dict) -> str:
        if name == "best":
            run = best_segments(capture)
        else:
            run = _rows(capture)[name]
        m = run["measured"]
        if field == "peak":
            return f"{m['peak_bytes'] / GiB:.2f} GiB"
        if field == "step":
            return f"{m['step_ms']:.0f} ms"
        none = _rows(capture)["none"]["measured"]
        if field == "peak_share":
            return f"{m['peak_bytes'] / none['peak_bytes']:.0%}"
        if field == "slower":
            return f"{m['step_ms'] / none['step_ms'] - 1:.0%}"
        raise KeyError(field)
    return value


def _one_saving(kind: str):
    def value(capture: dict) -> str:
        r = _rows(capture, kind)
        saved = (r["none"]["measured"]["peak_bytes"]
                 - r["one checkpoint"]["measured"]["peak_bytes"])
        return f"{saved / MiB:,.0f} MiB"
    return value


def _a(kind: str):
    return lambda c: f"{c['data'][kind]['a_bytes'] / MiB:,.0f} MiB"


def _extra_forwards(kind: str, name: str):
    return lambda c: _forwards(
        _rows(c, kind)[name]["recompute_forwards_measured"])


def _extra_one_layer_segments(c: dict) -> str:
    n = c["data"]["uniform"]["model"]["layers"]
    return _extra_forwards("uniform", f"segments={n}")(c)


def _extra_two_layer_segments(c: dict) -> str:
    n = c["data"]["uniform"]["model"]["layers"]
    return _extra_forwards("uniform", f"segments={n // 2}")(c)


def _counted_two_layer_segments(c: dict) -> str:
    n = c["data"]["uniform"]["model"]["layers"]
    row = next(r for r in c["data"]["uniform"]["strategies"] if r["name"] == f"segments={n // 2}")
    return f"{row['recompute_forwards_counted']:.2f}"


VALUES = {
    **{f"{field}_{key}": _strategy_value(name, field)
       for key, name in (("none", "none"), ("one", "one checkpoint"),
                         ("per_block", "per block"),
                         ("selective", "selective"), ("best", "best"))
       for field in ("peak", "step", "peak_share", "slower")},
    "best_k": lambda c: str(best_segments(c)["segments"]),
    "one_saving_blocks": _one_saving("blocks"),
    "one_saving_uniform": _one_saving("uniform"),
    "a_blocks": _a("blocks"),
    "reduction_scratch": lambda c: (
        f"{c['data']['reduction_scratch_bytes'] / MiB:,.0f} MiB"),
    "extra_one_layer_segments": _extra_one_layer_segments,
    "extra_two_layer_segments": _extra_two_layer_segments,
    "counted_two_layer_segments": _counted_two_layer_segments,
    "extra_one_blocks": _extra_forwards("blocks", "one checkpoint"),
    "extra_per_block": _extra_forwards("blocks", "per block"),
    "extra_selective": _extra_forwards("blocks", "selective"),
}
TABLES = {"headline": headline,
          "blocks_bytes": _bytes_table("blocks"),
          "blocks_time": _time_table("blocks"),
          "uniform_bytes": _bytes_table("uniform"),
          "uniform_time": _time_table("uniform"),
          "bias_ab": bias_ab}
FIGURES = {"tradeoff": tradeoff_chart, "segments": segments_chart,
           "time": time_chart}
