"""Tables, figure and values for docs/captures/grad_accumulation.json: memory
and time of one step at K = 1, 2, 4, 8 micro-batches, and the mixed-precision
step against the float32 big batch. Every memory number is in MiB, the unit
of the table and the figure alike."""

from __future__ import annotations

from examples.render import FONT_SIZE_PT, Chart, figure, markdown_table, mib

# (label, colour) of the stacked segments, bottom to top
SEGMENTS = (("persistent", "#757575"),   # params, grads, AdamW state
            ("data", "#a1887f"),         # X and Y
            ("workspaces", "#bdbdbd"),   # cuBLAS workspaces, 512-byte rounding
            ("activations", "#c62828"),  # one micro-batch's, saved by autograd
            ("rest of peak", "#5c6bc0"))  # gradients in flight, scratch
MiB = 2**20


def _mib(nbytes: int) -> str:
    """MiB without the unit, which the column header names."""
    return mib(nbytes).removesuffix(" MiB")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _rows(capture: dict) -> list[dict]:
    return capture["data"]["per_k"]


def _baselines(capture: dict) -> set[int]:
    return {r["baseline_allocated_bytes"] for r in _rows(capture)}


def _time_change(capture: dict) -> float:
    """The K whose step time is furthest from K = 1's: its relative change."""
    rows = _rows(capture)
    changes = [r["ms"] / rows[0]["ms"] - 1 for r in rows]
    return max(changes, key=abs)


def per_k(capture: dict) -> str:
    """One row per K, six columns (the table fits the column at 1280 px)."""
    d = capture["data"]
    m = d["model"]
    rows = _rows(capture)
    first = rows[0]
    exact = all(r["saved_activation_bytes"] == r["predicted_activation_bytes"]
                for r in rows)
    table = markdown_table(
        ["K", "micro-batch b", "peak above floor (MiB)", "activations (MiB)",
         "step (ms)", "÷ K = 1's"],
        [[r["K"], f"{r['micro_batch']:,}",
          _mib(r["peak_above_baseline_bytes"]),
          _mib(r["saved_activation_bytes"]), f"{r['ms']:.1f}",
          f"{r['ms'] / first['ms']:.2f}"] for r in rows])
    # the claims (a flat floor, hooks = formula) are the page's, checked
    # there; the table only says so when the data disagrees
    warnings = []
    if len(_baselines(capture)) != 1:
        warnings.append("the floor between steps **changed with K**")
    if not exact:
        warnings.append("the hooks did **not** count the formula's bytes")
    note = "".join(f" Note: {w}." for w in warnings)
    return (f"{m['depth']} × Linear({m['width']}, {m['width']}) and a "
            f"{m['classes']}-way head, {d['P']:,} fp32 parameters, AdamW "
            f"(for-loop), effective batch {m['batch']:,}; activations of one "
            f"micro-batch as autograd's hooks counted them; step time the "
            f"median of several repeats.{note}\n\n{table}")


def amp(capture: dict) -> str:
    """One column per precision, one row per quantity."""
    runs = capture["data"]["amp"]
    quantities = [
        ("loss scaler", lambda r: r["scaler"]),
        ("micro-batches K", lambda r: r["K"]),
        ("scale during the step", lambda r: f"{r['scale']:g}"),
        ("step skipped", lambda r: _yes_no(r["skipped"])),
        ("weights changed", lambda r: _yes_no(r["stepped"])),
        ("total gradient norm ÷ float32's",
         lambda r: f"{r['total_norm'] / r['fp32_total_norm']:.4f}"),
        ("relative gradient error (in norm)",
         lambda r: f"{r['relative_grad_error']:.1e}"),
    ]
    return markdown_table(
        ["autocast dtype"] + [r["dtype"] for r in runs],
        [[label] + [cell(r) for r in runs] for label, cell in quantities])


def _segments(capture: dict) -> list[list[int]]:
    """Per K, the bytes of each SEGMENT: the measured floor split into
    persistent memory, data and the rest (cuBLAS workspaces, 512-byte
    rounding), then the peak above it split into the activations autograd
    saved and the rest (backward's gradients in flight, kernels' scratch)."""
    d = capture["data"]
    persistent = sum(d["persistent_bytes"].values())
    data = d["data_bytes"]
    columns = [[persistent, data,
                r["baseline_allocated_bytes"] - persistent - data,
                r["saved_activation_bytes"],
                r["peak_above_baseline_bytes"] - r["saved_activation_bytes"]]
               for r in d["per_k"]]
    if any(value < 0 for column in columns for value in column):
        # fail loudly, draw nothing
        raise ValueError(f"grad_accumulation/peak: a negative segment in "
                         f"{columns}")
    return columns


def peak(capture: dict):
    """Memory at the peak of one step, stacked, in MiB. A bar's top is the
    step's peak of allocated bytes."""
    # narrow, so that a phone shrinks it little and the 11 pt text stays
    # legible
    fig, ax = figure(4.4, 3.4)
    labels = [str(r["K"]) for r in _rows(capture)]
    columns = _segments(capture)
    bottom = [0.0] * len(columns)
    for i, (label, colour) in enumerate(SEGMENTS):
        values = [c[i] / MiB for c in columns]
        ax.bar(labels, values, bottom=bottom, color=colour, label=label,
               width=0.6)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("MiB at the step's peak")
    ax.set_xlabel("micro-batches K")
    ax.yaxis.set_major_formatter("{x:,.0f}")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              fontsize=FONT_SIZE_PT, reverse=True)  # the site's 11 pt
    return fig


def peak_chart(capture: dict) -> Chart:
    rows = _rows(capture)
    first, last = rows[0], rows[-1]
    floor = first["baseline_allocated_bytes"]
    alt = (f"Stacked bars, one per number of micro-batches K from "
           f"{first['K']} to {last['K']}, of the memory allocated at the "
           f"peak of one step, in MiB. The floor held between steps is "
           f"{_mib(floor)} MiB at every K; the peak above it falls from "
           f"{_mib(first['peak_above_baseline_bytes'])} MiB at K = "
           f"{first['K']} to {_mib(last['peak_above_baseline_bytes'])} MiB "
           f"at K = {last['K']}, most of it one micro-batch's activations "
           f"({_mib(first['saved_activation_bytes'])} down to "
           f"{_mib(last['saved_activation_bytes'])} MiB).")
    caption = ("Peak allocated memory of one optimizer step on the same "
               "effective batch, in MiB. Grey and brown, the floor that stays "
               "between steps (persistent: parameters, gradients, AdamW's "
               "moments; the data; cuBLAS workspaces), the same at every K; "
               "red, one micro-batch's saved activations; blue, the rest of "
               "the peak (backward's gradients in flight, kernels' scratch).")
    return Chart(peak(capture), alt=alt, caption=caption)


def _peak_mib(index: int):
    return lambda c: mib(_rows(c)[index]["peak_above_baseline_bytes"])


def _activations_mib(index: int):
    return lambda c: mib(_rows(c)[index]["saved_activation_bytes"])


def _peak_ratio(capture: dict) -> float:
    rows = _rows(capture)
    return (rows[0]["peak_above_baseline_bytes"]
            / rows[-1]["peak_above_baseline_bytes"])


TABLES = {"per_k": per_k, "amp": amp}
FIGURES = {"peak": peak_chart}
VALUES = {
    # the between-steps floor (one value: the tests check it is one)
    "floor": lambda c: mib(max(_baselines(c))),
    "peak_first": _peak_mib(0),      # peak above the floor at the first K
    "peak_last": _peak_mib(-1),      # ... and at the last
    "peak_ratio": lambda c: f"{_peak_ratio(c):.1f}×",
    "activations_first": _activations_mib(0),
    "activations_last": _activations_mib(-1),
    "ms_first": lambda c: f"{_rows(c)[0]['ms']:.1f} ms",
    # the largest change of the step time against K = 1's, signed
    "time_change": lambda c: f"{100 * _time_change(c):+.1f} %",
    "workspaces": lambda c: mib(
        max(_baselines(c)) - c["data"]["allocator_prediction_baseline_bytes"]),
    "fp16_error": lambda c: f"{c['data']['amp'][0]['relative_grad_error']:.1e}",
    "bf16_error": lambda c: f"{c['data']['amp'][1]['relative_grad_error']:.1e}",
}
