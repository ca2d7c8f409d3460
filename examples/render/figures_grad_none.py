"""Chapter 4c's figure: an idle head across steps, its gradient None or zeros.

Drawn from snippets/grad_none.py (TwoHeads, train_tasks, idle_head_drift), which
tests/test_grad_none.py checks and docs/none-vs-zero-grads.md prints as a table.
"""

from __future__ import annotations

from examples.render import FONT_SIZE_PT, PALETTE, Chart, figure
from snippets.grad_none import LR, WEIGHT_DECAY, idle_head_drift, train_tasks

STEPS = 100


def drift() -> dict[str, list[float]]:
    """Distance head_b's weight has moved after k batches of task "a", k = 1..STEPS."""
    _, _, head_b = train_tasks(["b"], set_to_none=True)
    start = head_b[0].norm().item()
    return {
        "None (zero_grad())": idle_head_drift(STEPS, set_to_none=True),
        "zeros (set_to_none=False)": idle_head_drift(STEPS, set_to_none=False),
        "decay alone": [(1 - (1 - LR * WEIGHT_DECAY) ** k) * start for k in range(1, STEPS + 1)],
    }


def idle_head() -> Chart:
    fig, ax = figure(height=3.2)
    data = drift()
    steps = range(1, STEPS + 1)
    styles = {"None (zero_grad())": (PALETTE[0], "-"), "zeros (set_to_none=False)": (PALETTE[2], "-"),
              "decay alone": (PALETTE[6], ":")}
    for name, values in data.items():
        colour, line = styles[name]
        ax.plot(steps, values, color=colour, linestyle=line, label=name,
                linewidth=3 if name.startswith("None") else 1.8)
    ax.set_xlabel('batches of task "a" since head_b\'s last batch')
    ax.set_ylabel("distance moved by head_b")
    ax.set_ylim(bottom=-0.005)  # the None line sits at 0: keep it off the axis
    ax.legend(frameon=False, loc="center right", fontsize=FONT_SIZE_PT)
    zeros = data["zeros (set_to_none=False)"]
    return Chart(
        fig,
        alt=(f"Line chart of how far the idle head_b weight moves while {STEPS} batches of the other "
             f"task train. With gradients set to None the distance stays 0. With zero gradients it "
             f"moves {zeros[0]:.3f} after one batch, {zeros[9]:.3f} after ten and {zeros[-1]:.3f} "
             f"after {STEPS}, far more than AdamW's decay alone would move it "
             f"({data['decay alone'][-1]:.3f})."),
        caption=(f"An idle head across steps: the norm of head_b's weight minus its value after its "
                 f"own batch, over {STEPS} batches that never use it (AdamW, lr {LR:g}, weight "
                 f"decay {WEIGHT_DECAY:g}). None leaves it exactly still; zeros move it, mostly on "
                 "its stale first moment early, then by decay. The dotted line is decay alone."),
    )


FIGURES = {"idle_head": idle_head}
