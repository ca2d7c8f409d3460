"""Tables and values for docs/captures/memcalc_models.json: the calculator
on Hugging Face and torchvision models this project did not write, each
configuration's peak measured on the GPU beside the calculator's trace of
it made in the same run.

"fitted" rows are the configurations the rules were written against (HF
Llama); "held out" rows were not looked at while the rules were written, so
their errors are the honest out-of-sample score. Errors are the
prediction's against the measured peak (positive: the calculator says
more).
"""

from __future__ import annotations

import statistics

from examples.render import markdown_table

MIB = 2 ** 20


def error(row: dict) -> float | None:
    measured = row["measured"]["peak_bytes"]
    if not measured:
        return None
    return (row["predicted"]["max_bytes"] - measured) / measured


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.1f} %"


def _scored(capture: dict, subset: str | None = None) -> list[tuple[float, dict]]:
    return [(e, r) for r in capture["data"]["configs"]
            if (e := error(r)) is not None and subset in (None, r["set"])]


def _name(row: dict) -> str:
    ckpt = ", checkpointed" if row["checkpointing"] != "none" else ""
    return (f"{row['model']}, {row['precision']}, {row['optimizer']} "
            f"({row['implementation']}){ckpt}")


def families(capture: dict) -> str:
    """One row a model: how many configurations, the set, median and worst
    error, and how often the phase of the peak was right."""
    by_model: dict[str, list[dict]] = {}
    for row in capture["data"]["configs"]:
        by_model.setdefault(row["model"], []).append(row)
    rows = []
    for model, group in by_model.items():
        errs = [(e, r) for r in group if (e := error(r)) is not None]
        worst = max(errs, key=lambda s: abs(s[0])) if errs else None
        phases = sum(r["measured"]["phase"] == r["predicted"]["phase"] for r in group
                     if r["measured"]["phase"])
        rows.append([model, group[0]["set"], len(group),
                     _pct(statistics.median(e for e, _ in errs)) if errs else "—",
                     _pct(worst[0]) if worst else "—",
                     _name(worst[1]).removeprefix(f"{model}, ") if worst else "—",
                     f"{phases} of {len(group)}"])
    return markdown_table(["model", "set", "configs", "median error", "worst error",
                           "worst configuration", "phase right"], rows, "llrrrll")


def configs(capture: dict) -> str:
    rows = []
    for r in capture["data"]["configs"]:
        measured = r["measured"]["peak_bytes"]
        rows.append([r["model"], r["precision"], f"{r['optimizer']} ({r['implementation']})",
                     r["checkpointing"], f"{r['batch']} × {r['length']}",
                     f"{r['predicted']['max_bytes'] / MIB:,.0f}",
                     "—" if measured is None else f"{measured / MIB:,.0f}",
                     _pct(error(r)), r["predicted"]["phase"], r["measured"]["phase"] or "—"])
    return markdown_table(["model", "precision", "optimizer", "ckpt", "batch × length",
                           "predicted MiB", "measured MiB", "error", "predicted phase",
                           "measured phase"], rows, "llllrrrrll")


def _median(subset: str | None):
    def value(capture: dict) -> str:
        errs = [abs(e) for e, _ in _scored(capture, subset)]
        return "—" if not errs else f"{100 * statistics.median(errs):.1f} %"
    return value


def _worst(subset: str | None, part: str):
    def value(capture: dict) -> str:
        scored = _scored(capture, subset)
        if not scored:
            return "—"
        e, row = max(scored, key=lambda s: abs(s[0]))
        return _pct(e) if part == "error" else _name(row)
    return value


def within_10(capture: dict) -> str:
    scored = _scored(capture)
    return f"{sum(abs(e) <= 0.10 for e, _ in scored)} of {len(scored)}"


def phases_right(capture: dict) -> str:
    rows = [r for r in capture["data"]["configs"] if r["measured"]["phase"]]
    right = sum(r["measured"]["phase"] == r["predicted"]["phase"] for r in rows)
    return f"{right} of {len(rows)}"


TABLES = {"families": families, "configs": configs}
VALUES = {"count": lambda c: str(len(c["data"]["configs"])),
          "within_10": within_10, "phases_right": phases_right,
          "median_error": _median(None), "held_out_median_error": _median("held out"),
          "fitted_median_error": _median("fitted"),
          "worst_error": _worst(None, "error"), "worst_config": _worst(None, "config"),
          "held_out_worst_error": _worst("held out", "error"),
          "held_out_worst_config": _worst("held out", "config")}
