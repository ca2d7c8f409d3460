"""Figures of chapter 3 (docs/adam.md), from data the tests compute on the CPU:
what each optimizer keeps per parameter, in bytes, after one step.

The bytes are counted on live optimizers (TinyMLP, fp32, one step each) with
snippets/accounting.py; tests/test_adam_page.py checks them against the
chapter's formula 4k bytes of state per parameter.
"""

from __future__ import annotations

import torch
from torch import nn

from examples.render import FONT_SIZE_PT, PALETTE, Chart, figure
from snippets.accounting import (
    count_params, grads_nbytes, optimizer_state_nbytes, params_nbytes,
)
from snippets.models import TinyMLP

# label -> optimizer; Adam and AdamW keep the same state, so they share a bar
OPTIMIZERS = {
    "SGD": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "SGD + momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "Adam": lambda ps: torch.optim.Adam(ps, lr=1e-3),
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=1e-3),
    "AMSGrad": lambda ps: torch.optim.Adam(ps, lr=1e-3, amsgrad=True),
}


def state_per_optimizer() -> dict[str, dict[str, float]]:
    """Bytes per parameter of params, grads and state after one step."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 128), torch.randint(0, 10, (32,))
    result = {}
    for label, make in OPTIMIZERS.items():
        torch.manual_seed(1)
        model = TinyMLP()
        optimizer = make(model.parameters())
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        P = count_params(model)
        result[label] = {"params": params_nbytes(model) / P,
                         "grads": grads_nbytes(model) / P,
                         "state": optimizer_state_nbytes(optimizer) / P}
    if result["Adam"] != result["AdamW"]:
        raise AssertionError("Adam and AdamW no longer keep the same state")
    result["Adam / AdamW"] = result.pop("Adam")
    del result["AdamW"]
    result["AMSGrad"] = result.pop("AMSGrad")  # keep the order of the table
    return result


def state_per_optimizer_chart() -> Chart:
    data = state_per_optimizer()
    labels = list(data)[::-1]  # first optimizer on top
    fig, ax = figure(width=4.8, height=3.0)
    left = [0.0] * len(labels)
    parts = [("params", "parameters", PALETTE[6]), ("grads", "gradients", PALETTE[3]),
             ("state", "optimizer state", PALETTE[0])]
    for key, name, color in parts:
        widths = [data[label][key] for label in labels]
        ax.barh(labels, widths, left=left, color=color, label=name, height=0.6)
        left = [a + b for a, b in zip(left, widths)]
    for y, total in enumerate(left):
        ax.text(total + 0.3, y, f"{total:.0f} B", va="center",
                fontsize=FONT_SIZE_PT)
    ax.set_xlim(0, max(left) * 1.15)
    ax.set_xlabel("persistent bytes per parameter (fp32)",
                  fontsize=FONT_SIZE_PT)
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    fig.legend(loc="outside upper center", ncols=3, frameon=False,
               fontsize=FONT_SIZE_PT)
    states = ", ".join(f"{label} {data[label]['state']:.0f}" for label in data)
    alt = (f"Stacked bar chart of the bytes per parameter that persist after "
           f"one step in fp32: 4 for the parameters and 4 for the gradients in "
           f"every case, plus the optimizer's state: {states} bytes per "
           f"parameter, so {', '.join(f'{t:.0f}' for t in left[::-1])} in all.")
    caption = ("Persistent bytes per parameter after one step, counted on live "
               "optimizers (fp32). The state is 4k bytes per parameter for k "
               "full-size state tensors; Adam's step counters add 4 bytes per "
               "parameter *tensor*, too few to see. Multiply by P for a model.")
    return Chart(fig, alt=alt, caption=caption)


FIGURES = {"state_per_optimizer": state_per_optimizer_chart}
