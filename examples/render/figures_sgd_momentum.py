"""Figures of chapter 2 (docs/sgd-momentum.md), from data the tests compute on
the CPU: PyTorch's momentum against Sutskever's across a learning-rate drop.

The moves come from snippets/update_rules.py: `sgd_moves` drives
torch.optim.SGD itself, `sutskever_moves` the rule the page shows; both are
tested in tests/test_update_rules.py, and this figure's data in
tests/test_sgd_momentum_page.py.
"""

from __future__ import annotations

from examples.render import FONT_SIZE_PT, PALETTE, Chart, figure
from snippets.update_rules import sgd_moves, sutskever_moves

MOMENTUM = 0.9
BEFORE, AFTER = 40, 60            # steps at the first and the second lr
LR_HIGH, LR_LOW = 1.0, 0.1        # the drop: tenfold, at step BEFORE + 1


def lr_drop() -> dict:
    """Moves per step of both forms on a constant gradient g = 1."""
    schedule = [LR_HIGH] * BEFORE + [LR_LOW] * AFTER
    pytorch = sgd_moves(schedule, momentum=MOMENTUM)
    sutskever = sutskever_moves(schedule, momentum=MOMENTUM)
    steady_low = LR_LOW / (1 - MOMENTUM)  # γ/(1−μ) at the new lr
    # steps after the drop until Sutskever's move is within 10 % of it
    settle = next(k for k, move in enumerate(sutskever[BEFORE:], 1)
                  if move < 1.1 * steady_low)
    return {"schedule": schedule, "pytorch": pytorch, "sutskever": sutskever,
            "steady_high": LR_HIGH / (1 - MOMENTUM), "steady_low": steady_low,
            "settle_steps": settle}


def momentum_after_lr_drop() -> Chart:
    d = lr_drop()
    steps = list(range(1, len(d["schedule"]) + 1))
    fig, ax = figure(width=5.0, height=3.2)
    ax.plot(steps, d["sutskever"], color=PALETTE[2], lw=2,
            label="Sutskever: v = μv + γg")
    ax.plot(steps, d["pytorch"], color=PALETTE[0], lw=2, ls="--",
            label="PyTorch: b = μb + g, step γb")
    for level in (d["steady_high"], d["steady_low"]):  # γ/(1−μ), both lrs
        ax.axhline(level, color=PALETTE[6], lw=1, ls=":")
    ax.text(steps[-1], d["steady_low"] + 0.25, "γ/(1−μ)", ha="right",
            fontsize=FONT_SIZE_PT)
    ax.axvline(BEFORE + 0.5, color=PALETTE[6], lw=1, ls=":")
    ax.annotate(f"lr {LR_HIGH:g} → {LR_LOW:g}", xy=(BEFORE + 0.5, d["steady_high"]),
                xytext=(BEFORE + 3, d["steady_high"] * 0.92),
                fontsize=FONT_SIZE_PT)
    ax.set_xlabel("step", fontsize=FONT_SIZE_PT)
    ax.set_ylabel("move per step, |Δθ|", fontsize=FONT_SIZE_PT)
    ax.set_ylim(0, d["steady_high"] * 1.1)
    ax.legend(loc="center right", frameon=False, fontsize=FONT_SIZE_PT)
    p, s = d["pytorch"], d["sutskever"]
    alt = (f"Line chart of how far θ moves per step on a constant gradient, "
           f"momentum {MOMENTUM}. Both forms climb to "
           f"{p[BEFORE - 1]:.2f} over the first {BEFORE} steps at lr "
           f"{LR_HIGH:g}. After the drop to lr {LR_LOW:g}, PyTorch's move falls "
           f"at once to {p[BEFORE]:.2f}; Sutskever's falls to {s[BEFORE]:.2f} "
           f"and reaches within 10 % of {d['steady_low']:.1f} only after "
           f"{d['settle_steps']} steps.")
    caption = (f"Moves per step of `torch.optim.SGD` and of Sutskever's form on "
               f"the same constant gradient (g = 1, μ = {MOMENTUM}), with the "
               f"learning rate dropped tenfold after step {BEFORE}. PyTorch "
               f"rescales the whole buffer at once; Sutskever's velocity keeps "
               f"what it gathered at the old rate and sheds it over "
               f"{d['settle_steps']} steps.")
    return Chart(fig, alt=alt, caption=caption)


FIGURES = {"momentum_after_lr_drop": momentum_after_lr_drop}
