"""Tables and values for docs/captures/memcalc_models.json: the calculator
on Hugging Face and torchvision models this project did not write, each
configuration's peak measured on the GPU beside the calculator's trace of
it made in the same run.

"fitted" rows are the configurations the rules were written against (HF
Llama); "held out" rows were not looked at while the rules were written,
so their errors are the honest out-of-sample score. Errors are the
prediction's against the measured peak (positive: the calculator says
more). The scoring helpers serve memcalc_ranks.py too.
"""

from __future__ import annotations

import statistics

from examples.memcalc_models import MODELS
from examples.render import markdown_table

MIB = 2 ** 20
BOUND = 0.10   # the error a configuration must stay within
NAMES = {"llama": "Llama", "llama-mha": "Llama, full heads",
         "qwen2": "Qwen2", "mistral": "Mistral", "gpt2": "GPT-2",
         "bert": "BERT", "resnet50": "ResNet-50", "vit_b_16": "ViT-B/16",
         "convnext_tiny": "ConvNeXt-T", "mobilenet_v3_large": "MobileNetV3-L"}


# ---- scoring, shared with memcalc_ranks.py ---------------------------

def relative(predicted: int, measured: int | None) -> float | None:
    return None if not measured else (predicted - measured) / measured


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.1f} %"


def phase_cell(measured: str | None, said: str) -> str:
    """The GPU's phase of the peak; the calculator's beside it if other."""
    if measured is None:
        return "—"
    return measured if measured == said else f"{measured} (said {said})"


def within_bound(errors: list[float]) -> str:
    inside = sum(abs(e) <= BOUND for e in errors)
    return f"{inside} of {len(errors)} within {100 * BOUND:.0f} %"


def scored(rows: list[dict], error) -> list[tuple[float, dict]]:
    """(error(row), row) for every row measured."""
    return [(e, r) for r in rows if (e := error(r)) is not None]


def worst_of(pairs: list[tuple[float, dict]]) -> tuple[float, dict] | None:
    """The (error, row) farthest from zero; None when nothing was measured."""
    return max(pairs, key=lambda s: abs(s[0])) if pairs else None


def worst_error(pairs: list[tuple[float, dict]]) -> str:
    worst = worst_of(pairs)
    return "—" if worst is None else pct(worst[0])


def right_of(pairs: list[tuple[str | None, str]]) -> str:
    """How many (measured, said) phases agree, of those measured."""
    measured = [(m, s) for m, s in pairs if m is not None]
    return f"{sum(m == s for m, s in measured)} of {len(measured)}"


# ---- this capture -----------------------------------------------------

def display(model: str) -> str:
    return NAMES.get(model, model)


def error(row: dict) -> float | None:
    return relative(row["predicted"]["max_bytes"],
                    row["measured"]["peak_bytes"])


def _phases(row: dict) -> tuple[str | None, str]:
    return row["measured"]["phase"], row["predicted"]["phase"]


def _scored(capture: dict, subset: str | None = None):
    """(error, row) for every measured row, of one set or of both."""
    return [(e, r) for e, r in scored(capture["data"]["configs"], error)
            if subset in (None, r["set"])]


def _short(row: dict) -> str:
    """What sets a configuration apart within its model: precision,
    checkpointing ("ckpt"), and the optimizer when it is not AdamW."""
    parts = [row["precision"]]
    if row["checkpointing"] != "none":
        parts.append("ckpt")
    if row["optimizer"] != "adamw":
        parts.append(row["optimizer"])
    return " ".join(parts)


def families(capture: dict) -> str:
    """One row a model: its set and configurations, median and worst error
    (with what sets the worst apart), and how often the phase was right."""
    by_model: dict[str, list[dict]] = {}
    for row in capture["data"]["configs"]:
        by_model.setdefault(row["model"], []).append(row)
    rows = []
    for model, group in by_model.items():
        errs = scored(group, error)
        median = statistics.median(e for e, _ in errs) if errs else None
        worst = worst_of(errs)
        worst_cell = (f"{pct(worst[0])} ({_short(worst[1])})" if worst
                      else "—")
        rows.append([display(model), group[0]["set"], len(group),
                     pct(median), worst_cell,
                     right_of([_phases(r) for r in group])])
    return markdown_table(["model", "set", "configs", "median error",
                           "worst error", "phase right"], rows, "llrrll")


def shapes(capture: dict) -> str:
    """Each model's batch, in words ("Llama, ...: 4 sequences of 1,024
    tokens; ResNet-50, ...: 32 images of 224 × 224"), from the rows."""
    groups: dict[str, list[str]] = {}
    for r in capture["data"]["configs"]:
        batch, n = r["batch"], r["length"]
        image = isinstance(MODELS.get(r["model"]), str)  # "torchvision:..."
        shape = (f"{batch} images of {n} × {n}" if image
                 else f"{batch} sequences of {n:,} tokens")
        models = groups.setdefault(shape, [])
        if r["model"] not in models:
            models.append(r["model"])
    return "; ".join(f"{', '.join(map(display, models))}: {shape}"
                     for shape, models in groups.items())


def configs(capture: dict) -> str:
    """Every configuration (the batches are the value `shapes`): what sets
    it apart, the calculator's peak and the GPU's in MiB, the error and the
    phase of the GPU's peak."""
    rows = []
    for r in capture["data"]["configs"]:
        measured = r["measured"]["peak_bytes"]
        setting = _short(r)
        if r["implementation"] != "foreach":
            setting += f" ({r['implementation']})"
        said = f"{r['predicted']['max_bytes'] / MIB:,.0f}"
        gpu = "—" if measured is None else f"{measured / MIB:,.0f}"
        rows.append([display(r["model"]), setting, f"{said} / {gpu}",
                     pct(error(r)), phase_cell(*_phases(r))])
    return markdown_table(["model", "setting", "MiB, said / GPU", "error",
                           "peak in"], rows, "llrrl")


def _median(subset: str | None):
    def value(capture: dict) -> str:
        errs = [abs(e) for e, _ in _scored(capture, subset)]
        return "—" if not errs else f"{100 * statistics.median(errs):.1f} %"
    return value


def worst_config(capture: dict) -> str:
    worst = worst_of(_scored(capture))
    if worst is None:
        return "—"
    row = worst[1]
    ckpt = ", checkpointed" if row["checkpointing"] != "none" else ""
    return (f"{display(row['model'])}, {row['precision']}, "
            f"{row['optimizer']} ({row['implementation']}){ckpt}")


def near_misses(capture: dict) -> str:
    """The rows whose phase of the peak the calculator got wrong, each with
    how far apart the GPU's forward and backward peaks were."""
    out = []
    for r in capture["data"]["configs"]:
        measured, said = _phases(r)
        if measured is None or measured == said:
            continue
        peaks = r["measured"]["phase_peak_bytes"]
        f, b = peaks["forward"], peaks["backward"]
        gap = 100 * abs(f - b) / max(f, b)
        out.append(f"{display(r['model'])} under {r['precision']} "
                   f"({gap:.1f} %)")
    return ", ".join(out) or "none"


TABLES = {"families": families, "configs": configs}
VALUES = {
    "count": lambda c: str(len(c["data"]["configs"])),
    "shapes": shapes,
    "near_misses": near_misses,
    "within_bound": lambda c: within_bound([e for e, _ in _scored(c)]),
    "phases_right": lambda c: right_of(
        [_phases(r) for r in c["data"]["configs"]]),
    "median_error": _median(None),
    "held_out_median_error": _median("held out"),
    "worst_error": lambda c: worst_error(_scored(c)),
    "worst_config": worst_config,
}
