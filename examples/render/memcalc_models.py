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

from examples.memcalc_models import MODELS
from examples.render import markdown_table

MIB = 2 ** 20
BOUND = 0.10   # the error a configuration must stay within
NAMES = {"llama": "Llama", "llama-mha": "Llama, full heads", "qwen2": "Qwen2",
         "mistral": "Mistral", "gpt2": "GPT-2", "bert": "BERT", "resnet50": "ResNet-50",
         "vit_b_16": "ViT-B/16", "convnext_tiny": "ConvNeXt-T",
         "mobilenet_v3_large": "MobileNetV3-L"}


def display(model: str) -> str:
    return NAMES.get(model, model)


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
    return (f"{display(row['model'])}, {row['precision']}, {row['optimizer']} "
            f"({row['implementation']}){ckpt}")


def _short(row: dict) -> str:
    """What sets a configuration apart within its model: precision,
    checkpointing ("ckpt"), and the optimizer when it is not AdamW."""
    parts = [row["precision"]]
    if row["checkpointing"] != "none":
        parts.append("ckpt")
    if row["optimizer"] != "adamw":
        parts.append(row["optimizer"])
    return " ".join(parts)


def _phase(row: dict) -> str:
    """The measured phase of the peak; the predicted one beside it when
    they differ."""
    measured, predicted = row["measured"]["phase"], row["predicted"]["phase"]
    if measured is None:
        return "—"
    return measured if measured == predicted else f"{measured} (said {predicted})"


def families(capture: dict) -> str:
    """One row a model: how many configurations, the set, median and worst
    error (with what set the worst apart), and how often the phase of the
    peak was right."""
    by_model: dict[str, list[dict]] = {}
    for row in capture["data"]["configs"]:
        by_model.setdefault(row["model"], []).append(row)
    rows = []
    for model, group in by_model.items():
        errs = [(e, r) for r in group if (e := error(r)) is not None]
        worst = max(errs, key=lambda s: abs(s[0])) if errs else None
        phases = sum(r["measured"]["phase"] == r["predicted"]["phase"] for r in group
                     if r["measured"]["phase"])
        rows.append([display(model), group[0]["set"], len(group),
                     _pct(statistics.median(e for e, _ in errs)) if errs else "—",
                     f"{_pct(worst[0])} ({_short(worst[1])})" if worst else "—",
                     f"{phases} of {len(group)}"])
    return markdown_table(["model", "set", "configs", "median error", "worst error",
                           "phase right"], rows, "llrrll")


def shapes(capture: dict) -> str:
    """Each model's batch, in words: "llama, ... 4 sequences of 1,024 tokens;
    resnet50, ... 32 images of 224 × 224" (from the capture's rows)."""
    groups: dict[str, list[str]] = {}
    for r in capture["data"]["configs"]:
        image = isinstance(MODELS.get(r["model"]), str)    # "torchvision:..."
        shape = (f"{r['batch']} images of {r['length']} × {r['length']}" if image
                 else f"{r['batch']} sequences of {r['length']:,} tokens")
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
        rows.append([display(r["model"]), setting,
                     f"{r['predicted']['max_bytes'] / MIB:,.0f} / "
                     + ("—" if measured is None else f"{measured / MIB:,.0f}"),
                     _pct(error(r)), _phase(r)])
    return markdown_table(["model", "setting", "MiB, said / GPU", "error", "peak in"],
                          rows, "llrrl")


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


def within_bound(capture: dict) -> str:
    scored = _scored(capture)
    inside = sum(abs(e) <= BOUND for e, _ in scored)
    return f"{inside} of {len(scored)} within {100 * BOUND:.0f} %"


def phases_right(capture: dict) -> str:
    rows = [r for r in capture["data"]["configs"] if r["measured"]["phase"]]
    right = sum(r["measured"]["phase"] == r["predicted"]["phase"] for r in rows)
    return f"{right} of {len(rows)}"


def near_misses(capture: dict) -> str:
    """The rows whose phase of the peak the calculator got wrong, each with
    how far apart the GPU's forward and backward peaks were."""
    out = []
    for r in capture["data"]["configs"]:
        m = r["measured"]
        if m["phase"] is None or m["phase"] == r["predicted"]["phase"]:
            continue
        f, b = m["phase_peak_bytes"]["forward"], m["phase_peak_bytes"]["backward"]
        out.append(f"{display(r['model'])} under {r['precision']} ({100 * abs(f - b) / max(f, b):.1f} %)")
    return ", ".join(out) or "none"


TABLES = {"families": families, "configs": configs}
VALUES = {"count": lambda c: str(len(c["data"]["configs"])), "shapes": shapes,
          "near_misses": near_misses,
          "within_bound": within_bound, "phases_right": phases_right,
          "median_error": _median(None), "held_out_median_error": _median("held out"),
          "fitted_median_error": _median("fitted"),
          "worst_error": _worst(None, "error"), "worst_config": _worst(None, "config"),
          "held_out_worst_error": _worst("held out", "error"),
          "held_out_worst_config": _worst("held out", "config")}
