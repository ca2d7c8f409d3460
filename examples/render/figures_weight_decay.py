"""Chapter 4's figure: L2 versus decoupled decay, over steps and across gradient scales.

Drawn from snippets/weight_decay.py (decay_over_steps, THREE_DECAYS), which
tests/test_weight_decay.py checks and docs/weight-decay.md prints as a table.
"""

from __future__ import annotations

from examples.render import FONT_SIZE_PT, PALETTE, Chart, figure
from snippets.weight_decay import (
    ADAM_LAMBDA, ADAM_LR, THREE_DECAYS, decay_by_gradient_scale, decay_over_steps,
)

STEPS = 100
SCALES = (10.0, 1.0, 0.1, 0.01, 0.001)   # the table's rows on the page
OVER_STEPS = (1.0, 0.01)                  # the two coordinates of the left panel
COLOURS = {"no decay": PALETTE[6], "Adam (L2)": PALETTE[2], "AdamW": PALETTE[0]}


def over_steps() -> dict[str, list[list[float]]]:
    """theta after every step, [scale 1, scale 0.01], per optimizer."""
    return {name: decay_over_steps(make, STEPS, OVER_STEPS) for name, make in THREE_DECAYS.items()}


def across_scales() -> dict[str, list[float]]:
    """theta after STEPS steps for each gradient scale in SCALES, per optimizer."""
    return {name: decay_by_gradient_scale(make, STEPS, SCALES) for name, make in THREE_DECAYS.items()}


def decay() -> Chart:
    fig, (left, right) = figure(height=3.6, ncols=2)
    steps = range(STEPS + 1)
    for name, run in over_steps().items():
        for i, scale in enumerate(OVER_STEPS):
            if name != "Adam (L2)" and i:
                continue  # no decay and AdamW: both coordinates coincide
            label = f"{name}, g ×{scale:g}" if name == "Adam (L2)" else name
            left.plot(steps, [1.0] + [theta[i] for theta in run], color=COLOURS[name],
                      linestyle="--" if i else "-", label=label)
    left.set_xlabel("step")
    left.set_ylabel("θ (starts at 1)")
    left.set_ylim(0, 1.05)
    left.set_title("over steps", loc="left")
    for name, final in across_scales().items():
        right.plot(SCALES, final, marker="o", color=COLOURS[name])
    right.set_xscale("log")
    right.set_xticks(SCALES, [f"{s:g}" for s in SCALES])  # plain labels: 10^-3 prints too small
    right.minorticks_off()
    right.set_xlabel("gradient scale")
    right.set_title(f"after {STEPS} steps", loc="left")
    right.set_ylim(0, 1.05)
    right.tick_params(labelleft=False)
    fig.legend(loc="outside lower center", ncols=2, frameon=False, fontsize=FONT_SIZE_PT)
    final = across_scales()
    return Chart(
        fig,
        alt=(f"Two panels of θ starting at 1 under gradients that alternate in sign. Over {STEPS} "
             f"Adam steps at lr {ADAM_LR:g} with λ = {ADAM_LAMBDA:g}, AdamW ends at {final['AdamW'][1]:.2f} whatever "
             f"the gradient scale; Adam with L2 ends at {final['Adam (L2)'][1]:.2f} for gradients "
             f"of size 1 and at {final['Adam (L2)'][3]:.2f} for gradients of size 0.01; without "
             f"decay θ stays near {final['no decay'][1]:.2f}. Across gradient scales from "
             f"{SCALES[0]:g} to {SCALES[-1]:g}, the AdamW line is flat and the L2 line falls as "
             f"the gradients shrink."),
        caption=(f"L2 versus decoupled decay (lr {ADAM_LR:g}, λ = {ADAM_LAMBDA:g}, default betas, "
                 f"gradients alternating in sign). Left: θ over {STEPS} steps for gradients of size 1 "
                 f"(solid, under the AdamW line) and 0.01 (dashed); AdamW and no decay draw one line for both. "
                 f"Right: θ "
                 f"after {STEPS} steps against the gradient scale (the table above). Adam's L2 "
                 "decay depends on the gradients; AdamW's does not."),
    )


FIGURES = {"decay": decay}
