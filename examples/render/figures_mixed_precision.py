"""Figures of chapter 7 (docs/mixed-precision.md), from data the tests
compute on the CPU: bytes per parameter per recipe, what pure bf16 loses
over a training run, and GradScaler's scale over steps."""

from __future__ import annotations

import math

from matplotlib.ticker import FuncFormatter

from examples.render import FONT_SIZE_PT, PALETTE, Chart, figure
from snippets.loss_scaling import scale_trace
from snippets.low_precision_updates import (
    ROUNDINGS, bf16_floor, regression_run,
)
from snippets.precision import bytes_per_param

RECIPE_ROWS = ["fp32", "autocast bf16", "bf16 + fp32 master", "pure bf16",
               "pure bf16 + Kahan"]
PARTS = [("params", "weights"), ("grads", "gradients"),
         ("master", "fp32 master"), ("state", "Adam state"),
         ("kahan", "Kahan buffer")]


def bytes_chart() -> Chart:
    fig, ax = figure(5.6, 3.8)
    rows = [bytes_per_param(r, "AdamW") for r in RECIPE_ROWS]
    ys = range(len(RECIPE_ROWS))[::-1]
    left = [0.0] * len(rows)
    for colour, (key, label) in zip(PALETTE, PARTS):
        widths = [r[key] for r in rows]
        ax.barh(ys, widths, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, widths)]
    copies = [r["autocast_copies"] for r in rows]
    ax.barh(ys, copies, left=left, color="none", edgecolor=PALETTE[6],
            hatch="//", label="autocast copies (during a step)")
    for y, total, extra in zip(ys, left, copies):
        label = f"{total:g}" + (f" (+{extra:g})" if extra else "")
        ax.text(total + extra + 0.3, y, label, va="center",
                fontsize=FONT_SIZE_PT)
    ax.set_yticks(list(ys), RECIPE_ROWS)
    ax.set_xlabel("bytes per parameter (AdamW)")
    ax.set_xlim(0, 23)
    ax.set_xticks(range(0, 21, 4))
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    # two columns: three of these labels do not fit the figure's width
    fig.legend(loc="outside lower center", ncols=2, frameon=False,
               fontsize=FONT_SIZE_PT)
    return Chart(
        fig,
        alt="Stacked horizontal bars of bytes per parameter for AdamW: fp32, "
            "autocast bf16 and bf16 with fp32 master weights all total 16; "
            "pure bf16 totals 8, and 10 with a Kahan buffer. Autocast adds "
            "2 hatched bytes of bf16 weight copies while a step runs.",
        caption="What each recipe keeps per parameter with AdamW, from "
                "`bytes_per_param` (the table beside it). Hatched: "
                "autocast's bf16 copies of the matmul weights whose input "
                "requires grad, alive only from the forward pass to the "
                "backward pass.")


RUN_STYLE = {"fp32": ("fp32 weights", PALETTE[0], "-"),
             "nearest": ("bf16, round to nearest", PALETTE[2], "-"),
             "kahan": ("bf16 + Kahan", PALETTE[1], "--"),
             "stochastic": ("bf16, stochastic rounding", PALETTE[3], ":")}


def lost_updates_chart() -> Chart:
    fig, ax = figure(5.6, 3.4)
    runs = {r: regression_run(r) for r in ROUNDINGS}
    for rounding, run in runs.items():
        label, colour, style = RUN_STYLE[rounding]
        ax.plot(run["losses"], label=label, color=colour, linestyle=style,
                linewidth=1.8)
    floor = bf16_floor()
    ax.axhline(floor, color=PALETTE[6], linewidth=1,
               label="best solution, rounded to bf16")
    stall = runs["nearest"]["last_change"]
    ax.axvline(stall, color=PALETTE[2], linewidth=0.8, alpha=0.6)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MSE)")
    ax.legend(frameon=False, loc="upper right", fontsize=FONT_SIZE_PT)
    return Chart(
        fig,
        alt="Training loss on a log scale over 400 steps of gradient "
            f"descent. With weights stored in bf16 and rounded to nearest "
            f"the loss stops falling at step {stall}, about 700 times above "
            "the fp32 run; Kahan summation and stochastic rounding follow "
            "the fp32 curve down to the bf16 floor.",
        caption="The same least-squares problem, the same fp32 gradients; "
                "only the storing of the weights differs. The vertical line "
                "marks the last step at which any round-to-nearest bf16 "
                "weight changed.")


def loss_scale_chart() -> Chart:
    fig, ax = figure(5.6, 3.0)
    trace = scale_trace()
    steps = range(len(trace))
    exponents = [math.log2(t["scale"]) for t in trace]
    ax.step(steps, exponents, where="mid", color=PALETTE[0],
            label="loss scale")
    skipped = [(i, e) for i, (t, e) in enumerate(zip(trace, exponents))
               if t["skipped"]]
    ax.plot([i for i, _ in skipped], [e for _, e in skipped], "x",
            color=PALETTE[2], markersize=9, markeredgewidth=2,
            label="step skipped (inf in a gradient)")
    ax.set_xlabel("step")
    ax.set_ylabel("log2 of the scale")
    ax.legend(frameon=False, loc="upper right", fontsize=FONT_SIZE_PT)
    return Chart(
        fig,
        alt="Step plot of GradScaler's scale in powers of two over 24 fp16 "
            "steps: it starts at 2^20, is halved on each of the first five "
            "skipped steps down to 2^15, then doubles to 2^16 after every "
            "four clean steps, overflows there, and is halved again.",
        caption="`torch.amp.GradScaler(\"cpu\", init_scale=2**20, "
                "growth_interval=4)` on a small fp16 network: back-off on "
                "overflow, growth after four clean steps.")


FIGURES = {"bytes": bytes_chart, "lost_updates": lost_updates_chart,
           "loss_scale": loss_scale_chart}
