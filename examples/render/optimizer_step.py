"""Tables, roofline figure and values for docs/captures/optimizer_step.json."""

from __future__ import annotations

from examples.render import FONT_SIZE_PT, Chart, figure, markdown_table

COLOURS = {"for-loop": "#9e9e9e", "foreach": "#5c6bc0", "fused": "#2e7d32"}
SHOWN = ("for-loop", "foreach", "fused")   # "default" is foreach: a check
LAYOUT_NAMES = {"mixed": "mixed", "large": "large"}
MIB = 2**20


def _results(capture: dict) -> dict:
    return {(r["layout"], r["optimizer"], r["implementation"]): r
            for r in capture["data"]["results"]}


def _optimizers(capture: dict) -> list[str]:
    return list(dict.fromkeys(r["optimizer"]
                              for r in capture["data"]["results"]))


def _layouts(capture: dict) -> list[str]:
    return list(capture["data"]["layouts"])


def _mib(nbytes: int | None) -> str:
    if nbytes is None:
        return "—"
    if nbytes == 0:
        return "0"
    return f"{nbytes / MIB:,.0f}" if nbytes >= 10 * MIB else \
        f"{nbytes / MIB:,.2f}"


def layouts_line(capture: dict) -> str:
    d = capture["data"]
    parts = []
    for name, layout in d["layouts"].items():
        parts.append(f"*{LAYOUT_NAMES[name]}*: {layout['tensors']} tensors, "
                     f"{layout['P'] / 1e6:,.1f} M fp32 parameters "
                     f"({_mib(layout['bytes'])} MiB)")
    return "; ".join(parts) + (f". Copy: {d['copy']['GBps']:,.0f} GB/s "
                               "(read + write).")


def steps(capture: dict) -> str:
    """Median step time and share of copy bandwidth, both layouts."""
    d = capture["data"]
    copy = d["copy"]["GBps"]
    results = _results(capture)
    mixed, large = _layouts(capture)
    rows = []
    for o in _optimizers(capture):
        for impl in SHOWN:
            a, b = results[(mixed, o, impl)], results[(large, o, impl)]
            rows.append([o if impl == SHOWN[0] else "", impl,
                         f"{a['ms']:.2f}", f"{a['GBps'] / copy:.0%}",
                         f"{b['ms']:.2f}", f"{b['GBps'] / copy:.0%}"])
    table = markdown_table(
        ["optimizer", "implementation", "mixed (ms)", "mixed ÷ copy",
         "large (ms)", "large ÷ copy"],
        rows, "llrrrr")
    return f"{layouts_line(capture)}\n\n{table}"


def peaks(capture: dict) -> str:
    """Extra peak of one steady-state step above persistent memory, MiB.
    SGD momentum is left out: it steps in place (0) in every implementation,
    which the page checks."""
    d = capture["data"]
    results = _results(capture)
    rows = []
    for layout in _layouts(capture):
        info = d["layouts"][layout]
        for impl in SHOWN:
            adam, adamw = (results[(layout, o, impl)]["step_peak_extra_bytes"]
                           for o in ("Adam", "AdamW"))
            rows.append([LAYOUT_NAMES[layout] if impl == SHOWN[0] else "",
                         impl, _mib(adam), _mib(adamw),
                         _times(adamw, info["bytes"]),
                         _times(adamw, info["largest_bytes"])])
    headers = ["layout", "implementation", "Adam (MiB)", "AdamW (MiB)",
               "AdamW ÷ params", "AdamW ÷ largest"]
    sizes = "; ".join(
        f"*{LAYOUT_NAMES[k]}*: parameters {_mib(v['bytes'])} MiB, largest "
        f"tensor {_mib(v['largest_bytes'])} MiB"
        for k, v in d["layouts"].items())
    return f"{sizes}.\n\n{markdown_table(headers, rows, 'llrrrr')}"


def _times(nbytes: int | None, unit: int) -> str:
    if nbytes is None:
        return "—"
    return "0" if nbytes == 0 else f"{nbytes / unit:.2f}"


def _title(capture: dict, layout: str) -> str:
    info = capture["data"]["layouts"][layout]
    if layout == "mixed":
        return f"{info['tensors']} mixed-size tensors"
    return f"{info['tensors']} × {_mib(info['largest_bytes'])} MiB"


def roofline(capture: dict):
    d = capture["data"]
    copy = d["copy"]["GBps"]
    results = _results(capture)
    optimizers = _optimizers(capture)
    labels = [o.replace(" ", "\n") for o in optimizers]
    fig, axes = figure(5.6, 3.6, ncols=2)
    width = 0.8 / len(SHOWN)
    for ax, layout in zip(axes, _layouts(capture)):
        for j, impl in enumerate(SHOWN):
            values = [results[(layout, o, impl)]["GBps"] / 1000
                      for o in optimizers]
            xs = [i + (j - (len(SHOWN) - 1) / 2) * width
                  for i in range(len(optimizers))]
            ax.bar(xs, values, width, label=impl, color=COLOURS[impl])
        ax.axhline(copy / 1000, color="#c62828", linestyle="--",
                   linewidth=1.2, label="copy")
        ax.set_xticks(range(len(optimizers)), labels)
        ax.set_title(_title(capture, layout), fontsize=FONT_SIZE_PT)
        ax.set_ylim(0, copy / 1000 * 1.08)
    axes[0].set_ylabel("effective bandwidth (TB/s)", fontsize=FONT_SIZE_PT)
    axes[1].tick_params(labelleft=False)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncols=4,
               frameon=False, fontsize=FONT_SIZE_PT)
    return fig


def roofline_chart(capture: dict) -> Chart:
    d = capture["data"]
    copy = d["copy"]["GBps"]
    results = _results(capture)

    def share(layout, impl):
        return results[(layout, "AdamW", impl)]["GBps"] / copy

    alt = (f"Two bar charts, one per layout of the parameters, of each "
           f"step's effective bandwidth in TB/s for SGD momentum, Adam and "
           f"AdamW, under a dashed line at the device-to-device copy, "
           f"{copy / 1000:.1f} TB/s. For AdamW over many mixed-size tensors "
           f"the for-loop reaches {share('mixed', 'for-loop'):.0%} of the "
           f"copy, foreach {share('mixed', 'foreach'):.0%}, fused "
           f"{share('mixed', 'fused'):.0%}; over few large tensors "
           f"{share('large', 'for-loop'):.0%}, "
           f"{share('large', 'foreach'):.0%} and "
           f"{share('large', 'fused'):.0%}.")
    caption = ("A roofline view of one step: the bytes the update must read "
               "and write, divided by its median time, against the rate of "
               "a plain copy (dashed), the ceiling for work this light. "
               "Left, the mixed layout (launch-bound); right, the large one "
               "(bandwidth-bound).")
    return Chart(roofline(capture), alt=alt, caption=caption)


# ---- single values for the prose ------------------------------------------

def _ms(layout: str, optimizer: str, impl: str):
    return lambda c: f"{_results(c)[(layout, optimizer, impl)]['ms']:.2f} ms"


def _ratio(layout: str, optimizer: str):
    def value(c):
        r = _results(c)
        loop = r[(layout, optimizer, "for-loop")]["ms"]
        foreach = r[(layout, optimizer, "foreach")]["ms"]
        return f"{loop / foreach:.1f}×"
    return value


def _loop_vs_foreach(layout: str, optimizer: str):
    """'9 % faster' or '4 % slower': the for-loop against foreach."""
    def value(c):
        r = _results(c)
        loop = r[(layout, optimizer, "for-loop")]["ms"]
        foreach = r[(layout, optimizer, "foreach")]["ms"]
        change = loop / foreach - 1
        return f"{abs(change):.0%} {'slower' if change > 0 else 'faster'}"
    return value


def _extra(layout: str, optimizer: str, impl: str):
    def value(c):
        extra = _results(c)[(layout, optimizer, impl)]["step_peak_extra_bytes"]
        return "—" if extra is None else f"{_mib(extra)} MiB"
    return value


def _fused_share(c) -> str:
    copy = c["data"]["copy"]["GBps"]
    shares = [r["GBps"] / copy for r in c["data"]["results"]
              if r["implementation"] == "fused"]
    return f"{min(shares):.0%} to {max(shares):.0%}"


def _floor(layout: str, optimizer: str):
    def value(c):
        r = _results(c)[(layout, optimizer, "fused")]
        return f"{r['min_bytes'] / c['data']['copy']['GBps'] / 1e6:.2f} ms"
    return value


def _theta(optimizer: str, implementation: str):
    def value(c):
        record = next(r for r in c["data"]["scaler_skip"]
                      if r["optimizer"] == optimizer
                      and r["implementation"] == implementation)
        return " → ".join(f"{t:g}" if isinstance(t, float) else str(t)
                          for t in record["theta"])
    return value


VALUES = {
    "fused_sgd_theta": _theta("SGD momentum", "fused"),
    "stock_sgd_theta": _theta("SGD momentum", "stock"),
    "copy_bandwidth": lambda c: f"{c['data']['copy']['GBps'] / 1000:.1f} TB/s",
    "floor_adamw_mixed": _floor("mixed", "AdamW"),
    "floor_adamw_large": _floor("large", "AdamW"),
    "adamw_mixed_loop": _ms("mixed", "AdamW", "for-loop"),
    "adamw_mixed_foreach": _ms("mixed", "AdamW", "foreach"),
    "adamw_mixed_fused": _ms("mixed", "AdamW", "fused"),
    "adamw_large_loop": _ms("large", "AdamW", "for-loop"),
    "adamw_large_foreach": _ms("large", "AdamW", "foreach"),
    "adamw_large_fused": _ms("large", "AdamW", "fused"),
    "adamw_mixed_loop_over_foreach": _ratio("mixed", "AdamW"),
    "sgd_mixed_loop_over_foreach": _ratio("mixed", "SGD momentum"),
    "adamw_large_loop_vs_foreach": _loop_vs_foreach("large", "AdamW"),
    "sgd_large_loop_vs_foreach": _loop_vs_foreach("large", "SGD momentum"),
    "fused_share_of_copy": _fused_share,
    "adamw_mixed_foreach_extra": _extra("mixed", "AdamW", "foreach"),
    "adamw_large_foreach_extra": _extra("large", "AdamW", "foreach"),
    "adamw_mixed_loop_extra": _extra("mixed", "AdamW", "for-loop"),
    "adamw_large_loop_extra": _extra("large", "AdamW", "for-loop"),
}
TABLES = {"steps": steps, "peaks": peaks}
FIGURES = {"roofline": roofline_chart}
