"""Table, figure and values for docs/captures/mixed_precision.json."""

from __future__ import annotations

from examples.render import FONT_SIZE_PT, PALETTE, Chart, figure, markdown_table


def _rows(capture: dict) -> list[dict]:
    return [r for r in capture["data"]["rows"] if "skipped" not in r]


OPTIMIZER_NAMES = {"Bf16AdamW kahan": "AdamW (ours, Kahan)",
                   "Bf16AdamW stochastic": "AdamW (ours, stochastic)",
                   "AdamW": "AdamW (fused)", "Muon": "Muon + AdamW"}


def _optimizer(r: dict) -> str:
    return OPTIMIZER_NAMES.get(r["optimizer"], r["optimizer"])


def _label(r: dict) -> str:
    return f"{r['recipe']} · {_optimizer(r)}"


def _mib(n) -> str:
    return "—" if n is None else f"{n / 2**20:,.0f}"


def _row(capture: dict, recipe: str, optimizer: str) -> dict:
    return next(r for r in capture["data"]["rows"]
                if r["recipe"] == recipe and r["optimizer"] == optimizer)


def recipes(capture: dict) -> str:
    rows = []
    for r in capture["data"]["rows"]:
        if "skipped" in r:
            rows.append([r["recipe"], _optimizer(r), "—", "—", "—",
                         r["skipped"]])
            continue
        measured = (None if r["state_bytes"] is None else
                    r["params_bytes"] + r["grads_bytes"] + r["state_bytes"])
        gap = (None if measured is None else
               r["state_bytes"] - r["predicted"]["state"])
        rows.append([
            r["recipe"], _optimizer(r),
            "—" if measured is None else f"{measured / r['P']:.2f}",
            "—" if gap is None else f"{gap:,}",
            f"{_mib(r['persistent_bytes'])} / {_mib(r['peak_bytes'])}",
            f"{r['step_ms']:.1f}"])
    m = capture["data"]["model"]
    P = _rows(capture)[0]["P"]
    head = (f"{P / 1e6:.1f} M parameters (width {m['width']}, "
            f"{m['layers']} blocks, vocabulary {m['vocab']:,}); "
            f"{m['batch']} × {m['seq']} tokens a step. Bytes per parameter: "
            "weights, gradients and state together, as measured.")
    table = markdown_table(
        ["recipe", "optimizer", "bytes / param", "state − predicted (B)",
         "persistent / peak (MiB)", "step (ms)"], rows, "llrrrr")
    return f"{head}\n\n{table}"


def memory(capture: dict):
    rows = [r for r in _rows(capture) if r["peak_bytes"] is not None]
    fig, ax = figure(5.6, 5.4)
    ys = list(range(len(rows)))[::-1]
    peak = [r["peak_bytes"] / 2**20 for r in rows]
    persistent = [r["persistent_bytes"] / 2**20 for r in rows]
    ax.barh(ys, peak, color=PALETTE[0], alpha=0.35, label="peak of a step")
    ax.barh(ys, persistent, color=PALETTE[0],
            label="persistent (weights + state)")
    ax.set_yticks(ys, [f"{r['recipe']}\n{_optimizer(r)}" for r in rows])
    ax.set_xlabel("MiB")
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    fig.legend(loc="outside lower center", ncols=2, frameon=False,
               fontsize=FONT_SIZE_PT)
    return fig


def memory_chart(capture: dict) -> Chart:
    rows = [r for r in _rows(capture) if r["peak_bytes"] is not None]
    first = rows[0] if rows else None
    numbers = ("" if first is None else
               f" (fp32 AdamW: {_mib(first['persistent_bytes'])} MiB "
               f"persistent, {_mib(first['peak_bytes'])} MiB peak)")
    return Chart(
        memory(capture),
        alt="Horizontal bars, one per recipe and optimizer, of the memory "
            "held between steps (solid) and the peak of one training step "
            f"(light), in MiB{numbers}.",
        caption="Persistent memory (weights and optimizer state, gradients "
                "freed) and the peak of one steady-state step, in MiB, the "
                "units of the table.")


def _ms(recipe: str, optimizer: str):
    return lambda c: f"{_row(c, recipe, optimizer)['step_ms']:.1f} ms"


def _state_mib(recipe: str, optimizer: str):
    def value(c):
        r = _row(c, recipe, optimizer)
        return "—" if "skipped" in r else f"{_mib(r['state_bytes'])} MiB"
    return value


def _quantiser(c: dict) -> str:
    q = c["data"]["quantiser"]
    if q is None:
        return "—"
    differ = round((1 - q["same_index_fraction"]) * q["numel"])
    return f"{differ:,} of {q['numel']:,}"


VALUES = {
    "params": lambda c: f"{_rows(c)[0]['P'] / 1e6:.1f} M",
    "fp32_ms": _ms("fp32", "AdamW"),
    "autocast_ms": _ms("autocast bf16", "AdamW"),
    "master_ms": _ms("bf16 + fp32 master", "AdamW"),
    "pure_ms": _ms("pure bf16", "AdamW"),
    "kahan_ms": _ms("pure bf16 + Kahan", "Bf16AdamW kahan"),
    "adamw_state": _state_mib("autocast bf16", "AdamW"),
    "adafactor_state": _state_mib("autocast bf16", "Adafactor"),
    "muon_state": _state_mib("autocast bf16", "Muon"),
    "adam8bit_state": _state_mib("autocast bf16", "Adam8bit"),
    "quantiser_differ": _quantiser,
    "bitsandbytes": lambda c: c["data"]["bitsandbytes"] or "—",
}
# The memory calculator (snippets/memcalc) beside the measurement: chapter 7's
# recipes and optimizers in the calculator's names (the rows it models).
CALCULATOR_PRECISION = {"fp32": "fp32", "autocast bf16": "bf16-autocast",
                        "bf16 + fp32 master": "bf16-mixed",
                        "pure bf16": "bf16"}
CALCULATOR_OPTIMIZER = {"AdamW": ("adamw", "fused"),
                        "Adafactor": ("adafactor", "foreach"),
                        "Muon": ("muon", "fused"),
                        "Adam8bit": ("adam8bit", "foreach")}


def calculator_predictions(capture: dict) -> list[dict]:
    """The calculator's peak for every row it models, traced on the CPU."""
    import torch
    import torch.nn.functional as F

    from examples.mixed_precision import TokenMLP
    from snippets.memcalc import estimate

    m = capture["data"]["model"]

    def build():
        return TokenMLP(m["vocab"], m["width"], m["layers"])

    def loss_fn(model):
        device = next(model.parameters()).device
        shape = (m["batch"], m["seq"])
        tokens = torch.randint(0, m["vocab"], shape, device=device)
        targets = torch.randint(0, m["vocab"], shape, device=device)
        logits = model(tokens).float()
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    out = []
    for r in _rows(capture):
        if (r["recipe"] not in CALCULATOR_PRECISION
                or r["optimizer"] not in CALCULATOR_OPTIMIZER):
            continue
        optimizer, implementation = CALCULATOR_OPTIMIZER[r["optimizer"]]
        e = estimate(build, loss_fn, optimizer=optimizer,
                     implementation=implementation,
                     precision=CALCULATOR_PRECISION[r["recipe"]])
        out.append({"row": r, "predicted": e.peak, "phase": e.phase,
                    "error": (e.peak - r["peak_bytes"]) / r["peak_bytes"]})
    return out


def calculator(capture: dict) -> str:
    rows = [[r["row"]["recipe"], _optimizer(r["row"]), _mib(r["row"]["peak_bytes"]),
             _mib(r["predicted"]), f"{r['error']:+.1%}"]
            for r in calculator_predictions(capture)]
    return markdown_table(["recipe", "optimizer", "peak, measured (MiB)",
                           "predicted (MiB)", "error"], rows, "llrrr")


TABLES = {"recipes": recipes, "calculator": calculator}
FIGURES = {"memory": memory_chart}
