"""Tables and figure for docs/captures/grad_accumulation.json: memory and time of one step at
K = 1, 2, 4, 8 micro-batches, and the mixed-precision step against the float32 big batch."""

from __future__ import annotations

from examples.render import Chart, figure, markdown_table, mib

# (label, colour) of the stacked segments, bottom to top
SEGMENTS = (("parameters + gradients + AdamW state", "#9e9e9e"), ("data (X, Y)", "#bdbdbd"),
            ("workspaces and rounding", "#e0e0e0"), ("activations of one micro-batch", "#c62828"),
            ("rest of the peak", "#5c6bc0"))


def _mib(nbytes: int) -> str:
    """MiB without the unit, which the row's label names."""
    return mib(nbytes).removesuffix(" MiB")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def per_k(capture: dict) -> str:
    """One column per K (the table stays narrow however many quantities it shows)."""
    d = capture["data"]
    m = d["model"]
    rows_by_k = d["per_k"]
    first = rows_by_k[0]
    quantities = [
        ("micro-batch b", lambda r: f"{r['micro_batch']:,}"),
        ("baseline: allocated between steps (MiB)", lambda r: _mib(r["baseline_allocated_bytes"])),
        ("peak of one step above the baseline (MiB)", lambda r: _mib(r["peak_above_baseline_bytes"])),
        ("activations one micro-batch saves: counted by hooks (MiB)", lambda r: _mib(r["saved_activation_bytes"])),
        ("activations one micro-batch saves: formula (MiB)", lambda r: _mib(r["predicted_activation_bytes"])),
        ("step (ms, median)", lambda r: f"{r['ms']:.1f}"),
        ("step time ÷ K = 1's", lambda r: f"{r['ms'] / first['ms']:.2f}"),
    ]
    table = markdown_table([""] + [f"K = {r['K']}" for r in rows_by_k],
                           [[label] + [cell(r) for r in rows_by_k] for label, cell in quantities])
    return (f"{m['depth']} × Linear({m['width']}, {m['width']}) and a {m['classes']}-way head, "
            f"{d['P']:,} fp32 parameters, AdamW (for-loop), effective batch {m['batch']:,}.\n\n{table}")


def amp(capture: dict) -> str:
    """One column per precision, one row per quantity."""
    runs = capture["data"]["amp"]
    quantities = [
        ("loss scaler", lambda r: r["scaler"]),
        ("micro-batches K", lambda r: r["K"]),
        ("scale during the step", lambda r: f"{r['scale']:g}"),
        ("step skipped", lambda r: _yes_no(r["skipped"])),
        ("weights changed", lambda r: _yes_no(r["stepped"])),
        ("total gradient norm ÷ float32 big batch's", lambda r: f"{r['total_norm'] / r['fp32_total_norm']:.4f}"),
        ("largest gradient error ÷ largest gradient", lambda r: f"{r['max_abs_grad_difference'] / r['max_abs_fp32_grad']:.1e}"),
        ("relative gradient error (whole vector, in norm)", lambda r: f"{r['relative_grad_error']:.1e}"),
    ]
    return markdown_table(["autocast dtype"] + [r["dtype"] for r in runs],
                          [[label] + [cell(r) for r in runs] for label, cell in quantities])


def peak(capture: dict):
    """Memory at the peak of one step, stacked: what stays between steps, then what the step adds.

    Each bar is its own K's measured baseline (the same bytes at every K) split into persistent
    memory, data and the rest (cuBLAS workspaces and 512-byte rounding), then the peak above it
    split into the activations autograd saved and the rest of the peak (backward's gradients in
    flight, kernels' scratch). A bar's top is the step's peak of allocated bytes.
    """
    d = capture["data"]
    persistent = sum(d["persistent_bytes"].values())
    data = d["data_bytes"]
    fig, ax = figure(5.6, 3.6)
    labels = [f"K = {r['K']}\nb = {r['micro_batch']:,}" for r in d["per_k"]]
    columns = [[persistent, data, r["baseline_allocated_bytes"] - persistent - data,
                r["saved_activation_bytes"], r["peak_above_baseline_bytes"] - r["saved_activation_bytes"]]
               for r in d["per_k"]]
    if any(value < 0 for column in columns for value in column):
        raise ValueError(f"grad_accumulation/peak: a negative segment in {columns}")  # fail loudly, draw nothing
    bottom = [0.0] * len(columns)
    for i, (label, colour) in enumerate(SEGMENTS):
        values = [c[i] / 2**30 for c in columns]
        ax.bar(labels, values, bottom=bottom, color=colour, label=label, width=0.6)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("GiB at the step's peak\n(CUDA allocator)")
    ax.legend(fontsize=8, frameon=False, loc="upper right", reverse=True)
    return fig


TABLES = {"per_k": per_k, "amp": amp}
def peak_chart(capture: dict) -> Chart:
    return Chart(peak(capture),
                 alt="Stacked bars, one per number of micro-batches K, of the memory at the peak of a "
                     "step in GiB: a persistent part that is the same for every K and an activation "
                     "part that halves each time K doubles.",
                 caption="Peak memory of one optimizer step on the same effective batch, split into "
                         "what stays between steps and what the step adds, in GiB.")


FIGURES = {"peak": peak_chart}
