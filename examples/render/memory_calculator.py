"""Tables, values and a figure for docs/captures/memory_calculator.json:
each estimator's prediction of the peak against what the GPU measured.

The capture's measurements are shown beside the calculator's *current*
predictions for the same configurations (memory_calculator.predictions.
json, written by `python -m snippets.memcalc.validation` and checked by
tests/test_memcalc_validation.py), never the predictions captured with
them."""

from __future__ import annotations

import statistics

from examples.render import PALETTE, Chart, figure, markdown_table
from snippets.memcalc.validation import load as load_predictions

GIB = 2 ** 30
ESTIMATORS = (   # (key, label)
    ("ours", "ours: estimate()"),
    ("formula", "ours: closed form"),
    ("accelerate", "accelerate's 4x rule"),
    ("korthikanti", "Korthikanti et al."),
)


def _rows(capture: dict) -> list[tuple[dict, dict]]:
    """(captured row, the calculator's current prediction) pairs."""
    rows = capture["data"]["configs"]
    now = load_predictions()
    if [r["name"] for r in rows] != [p["name"] for p in now]:
        raise ValueError("memory_calculator.predictions.json does not match "
                         "the capture: python -m snippets.memcalc.validation")
    return [({**r, "predicted": p}, p) for r, p in zip(rows, now)]


def _prediction(row: dict, key: str) -> int | None:
    if key == "ours":
        return row["predicted"]["max_bytes"]
    if key == "formula":
        return row["predicted"]["formula_max_bytes"]
    return row[f"{key}_bytes"]


def _errors(capture: dict, key: str) -> list[tuple[float, str]]:
    """(relative error, configuration) where both numbers exist."""
    out = []
    for row, _ in _rows(capture):
        measured = row["measured"]["peak_bytes"]
        predicted = _prediction(row, key)
        if measured and predicted is not None:
            out.append(((predicted - measured) / measured, row["name"]))
    return out


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def _cell(predicted: int | None, measured: int | None) -> str:
    if predicted is None:
        return "—"
    if not measured:
        return f"{predicted / GIB:.2f}"
    return f"{predicted / GIB:.2f} ({_pct((predicted - measured) / measured)})"


def validation(capture: dict) -> str:
    rows = []
    for r, _ in _rows(capture):
        m = r["measured"]
        measured, phase = m["peak_bytes"], m["phase"]
        ours = r["predicted"]["phase"]
        name = r["name"] + (" (every matrix to Muon, as measured)"
                            if r["predicted"]["muon_partition"] else "")
        mark = "—" if phase is None else (
            f"{phase} ✓" if phase == ours else f"{phase} ✗ (ours: {ours})")
        rows.append([name,
                     "—" if measured is None else f"{measured / GIB:.2f}",
                     _cell(r["predicted"]["max_bytes"], measured),
                     _cell(r["accelerate_bytes"], measured),
                     _cell(r["korthikanti_bytes"], measured), mark])
    return markdown_table(
        ["configuration", "measured peak (GiB)", "ours (GiB, error)",
         "4× rule (GiB, error)", "Korthikanti (GiB, error)",
         "phase measured"], rows, "lrrrrl")


def summary(capture: dict) -> str:
    rows = []
    for key, label in ESTIMATORS:
        errors = _errors(capture, key)
        if not errors:
            rows.append([label, "—", "—", "—"])
            continue
        within = sum(abs(e) <= 0.10 for e, _ in errors)
        worst = max(errors, key=lambda e: abs(e[0]))
        median = statistics.median(abs(e) for e, _ in errors)
        rows.append([label, f"{100 * median:.1f} %",
                     f"{_pct(worst[0])} ({worst[1]})",
                     f"{within} of {len(errors)}"])
    return markdown_table(["estimator", "median miss", "worst error",
                           "within 10 %"], rows, "lrll")


def persistent(capture: dict) -> str:
    rows = []
    for r, _ in _rows(capture):
        measured = r["measured"]["persistent_bytes"]
        predicted = r["predicted"]["persistent_bytes"]
        diff = "—" if measured is None else \
            f"{(predicted - measured) / 2**20:+.2f}"
        rows.append([r["name"], "—" if measured is None
                     else f"{measured / 2**20:,.1f}",
                     f"{predicted / 2**20:,.1f}", diff])
    return markdown_table(["configuration", "measured (MiB)",
                           "predicted (MiB)", "predicted − measured (MiB)"],
                          rows, "lrrr")


def errors_figure(capture: dict) -> Chart:
    fig, ax = figure(height=2.8)
    labels, medians = [], []
    for i, (key, label) in enumerate(ESTIMATORS):
        errors = [100 * e for e, _ in _errors(capture, key)]
        y = len(ESTIMATORS) - 1 - i
        ax.scatter(errors or [0], [y] * max(1, len(errors)), s=18,
                   color=PALETTE[i], alpha=0.8 if errors else 0)
        labels.append(label)
        medians.append(statistics.median(abs(e) for e in errors)
                       if errors else None)
    ax.axvline(0, color="#9e9e9e", linewidth=1)
    ax.set_yticks(range(len(ESTIMATORS)), labels[::-1])
    ax.set_xlabel("predicted peak − measured, % of measured")
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    shown = "; ".join(f"{label} median {m:.1f} %" for label, m
                      in zip(labels, medians) if m is not None)
    return Chart(fig, alt=(f"Error of each estimator on every measured "
                           f"configuration, one dot each: {shown}."),
                 caption=("Each dot is one configuration of the table "
                          "below: how far each estimate of the peak is "
                          "from the GPU's max_memory_allocated(), in % of "
                          "the measured peak. The closed form and "
                          "Korthikanti et al. apply to the transformers "
                          "only."))


def _ours(capture):
    return _errors(capture, "ours")


def _median(key):
    def value(capture):
        errors = _errors(capture, key)
        return "—" if not errors else \
            f"{100 * statistics.median(abs(e) for e, _ in errors):.1f} %"
    return value


def _worst(capture) -> str:
    errors = _ours(capture)
    return "—" if not errors else \
        f"{100 * max(abs(e) for e, _ in errors):.1f} %"


def _worst_name(capture) -> str:
    errors = _ours(capture)
    return "—" if not errors else max(errors, key=lambda e: abs(e[0]))[1]


def _phases(capture) -> str:
    rows = [r for r, _ in _rows(capture)
            if r["measured"]["phase"] is not None]
    right = sum(r["measured"]["phase"] == r["predicted"]["phase"]
                for r in rows)
    return f"{right} of {len(rows)}" if rows else "—"


def _persistent_worst(capture) -> str:
    diffs = [abs(r["predicted"]["persistent_bytes"]
                 - r["measured"]["persistent_bytes"])
             for r, _ in _rows(capture)
             if r["measured"]["persistent_bytes"] is not None]
    return "—" if not diffs else f"{max(diffs) / 2**20:.1f} MiB"


def _workspace(capture) -> str:
    calibration = capture["data"]["calibration"]
    if not calibration:
        return "—"
    return f"{calibration['workspace_bytes']['float32'] / 2**20:.1f} MiB"


TABLES = {"validation": validation, "summary": summary,
          "persistent": persistent}
FIGURES = {"errors": errors_figure}
VALUES = {
    "configs": lambda c: str(len(c["data"]["configs"])),
    "median_error": _median("ours"),
    "formula_median_error": _median("formula"),
    "accelerate_median_error": _median("accelerate"),
    "korthikanti_median_error": _median("korthikanti"),
    "worst_error": _worst,
    "worst_config": _worst_name,
    "phases_right": _phases,
    "persistent_worst": _persistent_worst,
    "workspace": _workspace,
}
