"""Table and figure for docs/captures/activation_breakdown.json: the four families, measured and predicted."""

from __future__ import annotations

from examples.render import Chart, figure, gib, markdown_table

FAMILIES = (("params", "parameters", "#9e9e9e"), ("grads", "gradients", "#5c6bc0"),
            ("adamw_state", "AdamW state", "#2e7d32"), ("activations", "activations", "#c62828"))


def _cell(row: dict, key: str) -> str:
    measured, predicted = row["measured"][key], row["predicted"][key]
    return gib(measured) if measured == predicted else f"{gib(measured)} (predicted {gib(predicted)})"


def families(capture: dict) -> str:
    d = capture["data"]
    rows, exact = [], True
    for row in d["by_tokens"]:
        m = row["measured"]
        exact = exact and all(m[key] == row["predicted"][key] for key, _, _ in FAMILIES)
        others = m["params"] + m["grads"] + m["adamw_state"]
        rows.append([f"{row['tokens']:,}", *(_cell(row, key) for key, _, _ in FAMILIES),
                     f"{m['activations'] / others:.2f}", gib(m["step_peak_above_start"])])
    headers = ["tokens", *(label for _, label, _ in FAMILIES), "activations ÷ the rest", "peak of the step"]
    m = d["model"]
    agreement = ("Every family's allocator reading equals its prediction to the byte."
                 if exact else "Where a reading differs from its prediction, the prediction is shown beside it.")
    return (f"{m['depth']} MLP blocks, d = {m['d']}, fp32, one AdamW step; the growth of "
            f"`torch.cuda.memory_allocated()` across each stage. {agreement}\n\n"
            + markdown_table(headers, rows, "lrrrrrr"))


def by_tokens(capture: dict):
    rows = capture["data"]["by_tokens"]
    fig, ax = figure(5.6, 3.6)
    labels = [f"{r['tokens']:,}" for r in rows]
    bottom = [0.0] * len(rows)
    for key, label, colour in FAMILIES:
        values = [r["measured"][key] / 2**30 for r in rows]
        ax.bar(labels, values, bottom=bottom, color=colour, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]
    peaks = [r["measured"]["step_peak_above_start"] / 2**30 for r in rows]
    ax.hlines(peaks, [i - 0.45 for i in range(len(rows))], [i + 0.45 for i in range(len(rows))], colors="#000000",
              linewidth=2, zorder=3, label="peak of the step")
    ax.set_xlabel("tokens in the batch")
    ax.set_ylabel("GiB (CUDA allocator)")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return fig


TABLES = {"families": families}
def by_tokens_chart(capture: dict) -> Chart:
    return Chart(by_tokens(capture),
                 alt="Stacked bars of parameters, gradients, AdamW state and activations in GiB for each "
                     "batch size in tokens, with a black mark at the peak of the step.",
                 caption="The four families on the GPU, in GiB, as the batch grows: the first three stay "
                         "fixed, activations grow with the tokens.")


FIGURES = {"by_tokens": by_tokens_chart}
