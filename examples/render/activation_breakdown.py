"""Table, figure and values for docs/captures/activation_breakdown.json: the
four families of one training step, measured and predicted, in the steady
state (step 2 on) and in the first step."""

from __future__ import annotations

import matplotlib

from examples.render import STYLE, Chart, figure, gib, markdown_table

FAMILIES = (("params", "parameters"), ("grads", "gradients"),
            ("adamw_state", "AdamW state"), ("activations", "activations"))
GiB = 2**30


def _rows(capture: dict) -> list[dict]:
    return capture["data"]["by_tokens"]


def _others(m: dict) -> int:
    return m["params"] + m["grads"] + m["adamw_state"]


def _exact(capture: dict) -> bool:
    return all(row["measured"][key] == row["predicted"][key]
               for row in _rows(capture) for key, _ in FAMILIES)


def families(capture: dict) -> str:
    d = capture["data"]
    first = _rows(capture)[0]["measured"]
    fixed = ", ".join(f"{label} {gib(first[key])}"
                      for key, label in FAMILIES[:3])
    agreement = ("Each family's reading equals its prediction to the byte."
                 if _exact(capture) else
                 "A reading differs from its prediction (see the blocks).")
    rows = []
    for row in _rows(capture):
        m = row["measured"]
        rows.append([f"{row['tokens']:,}",
                     f"{m['activations'] / GiB:.2f}",
                     f"{m['activations'] / _others(m):.2f}",
                     f"{m['peak_first_step'] / GiB:.2f}",
                     f"{m['peak_steady'] / GiB:.2f}",
                     m["peak_steady_phase"]])
    headers = ["tokens", "activations (GiB)", "activations ÷ the rest",
               "peak, first step (GiB)", "peak, step ≥ 2 (GiB)",
               "step ≥ 2 peaks in"]
    m = d["model"]
    return (f"{m['depth']} MLP blocks, d = {m['d']}, fp32, AdamW; growth of "
            f"`torch.cuda.memory_allocated()`. At every batch size: {fixed}. "
            f"{agreement}\n\n" + markdown_table(headers, rows, "lrrrrl"))


def steady_figure(capture: dict):
    with matplotlib.rc_context(STYLE):
        return _steady_figure(capture)


def _steady_figure(capture: dict):
    rows = _rows(capture)
    fig, ax = figure(5.6, 4.2)
    labels = [f"{r['tokens']:,}" for r in rows]
    x = list(range(len(rows)))
    bottom = [0.0] * len(rows)
    # what is alive when backward starts, from step 2 on
    for key, label, colour in (("params", "parameters", "#9e9e9e"),
                               ("adamw_state", "AdamW moments", "#2e7d32"),
                               ("activations", "activations", "#c62828")):
        values = [r["measured"][key] / GiB for r in rows]
        ax.bar(x, values, bottom=bottom, color=colour, label=label,
               width=0.6)
        bottom = [b + v for b, v in zip(bottom, values)]
    left, right = [i - 0.4 for i in x], [i + 0.4 for i in x]
    ax.hlines([r["measured"]["peak_steady"] / GiB for r in rows], left,
              right, colors="#000000", linewidth=2.5, zorder=3,
              label="peak, step ≥ 2")
    ax.hlines([r["measured"]["peak_first_step"] / GiB for r in rows], left,
              right, colors="#1e88e5", linewidth=2, linestyles="--",
              zorder=3, label="peak, first step only")
    ax.set_xticks(x, labels)
    ax.set_xlabel("tokens in the batch")
    ax.set_ylabel("GiB (CUDA allocator)")
    ax.legend(frameon=False, loc="upper left", ncol=1)
    return fig


def steady_chart(capture: dict) -> Chart:
    rows = _rows(capture)
    last = rows[-1]["measured"]
    first = rows[0]["measured"]
    return Chart(
        steady_figure(capture),
        alt=(f"Stacked bars, in GiB, of parameters, AdamW moments and "
             f"activations for {len(rows)} batch sizes from "
             f"{rows[0]['tokens']:,} to {rows[-1]['tokens']:,} tokens. "
             f"Activations grow from {gib(first['activations'])} to "
             f"{gib(last['activations'])}; the rest stays fixed. A black "
             f"mark shows the peak of a training step from step 2 on, "
             f"{gib(first['peak_steady'])} to {gib(last['peak_steady'])}; a "
             f"dashed mark the first step's peak, lower by the moments once "
             f"backward sets the peak ({gib(last['peak_first_step'])} at "
             f"the largest batch)."),
        caption=("What is alive when backward starts in the steady state "
                 "(step 2 on), in GiB, and the peak of a step (black). On "
                 "small batches the peak comes inside `optimizer.step()` "
                 "(gradients and foreach's temporary copy join in), on "
                 "large ones at the start of backward. The dashed mark is "
                 "the first step's peak: AdamW's moments do not exist yet "
                 "during its backward."))


def _last(key: str):
    return lambda capture: gib(_rows(capture)[-1]["measured"][key])


def _share(capture: dict) -> str:
    m = _rows(capture)[-1]["measured"]
    return f"{m['activations'] / m['peak_steady']:.0%}"


VALUES = {
    "tokens_max": lambda c: f"{_rows(c)[-1]['tokens']:,}",
    "activations_max": _last("activations"),
    "peak_steady_max": _last("peak_steady"),
    "peak_first_max": _last("peak_first_step"),
    "adamw_state": _last("adamw_state"),
    "the_rest": lambda c: gib(_others(_rows(c)[-1]["measured"])),
    "activation_share_max": _share,
}
TABLES = {"families": families}
FIGURES = {"steady": steady_chart}
