"""Tables, figure and values for docs/captures/zero_fsdp.json: per-rank
memory of DDP, ZeroRedundancyOptimizer and FSDP2 beside the ZeRO formula, and
the collectives of gradient accumulation. Memory in MiB throughout.

"formula" is snippets.zero_formulas.zero_bytes_per_rank for the run's stage
and recipe; "tensors" is what the rank's tensors hold, counted with
Tensor.nbytes (local shards for FSDP2): the formula's three families, plus
AdamW's 4-byte step counters, plus DDP's gradient buckets where they are a
separate copy (without gradient_as_bucket_view). The allocator columns read
torch.cuda.memory_allocated() after the last step and the last step's peak,
above the batch already on the GPU; on a CPU they are "—".
"""

from __future__ import annotations

import matplotlib

from examples.render import STYLE, Chart, figure, markdown_table, mib
from snippets.zero_formulas import RECIPES, zero_bytes_per_rank

LABELS = {("ddp", "fp32"): "DDP + AdamW",
          ("ddp_bucket_view", "fp32"): "DDP, bucket view",
          ("zero1", "fp32"): "ZeroRedundancy\u00adOptimizer",
          ("fsdp2", "fp32"): "FSDP2",
          ("fsdp2", "mixed"): "FSDP2, bf16 compute, fp32 reduce",
          ("ddp", "bf16"): "DDP + AdamW, bf16",
          ("zero1", "bf16"): "ZeroRedundancy\u00adOptimizer, bf16",
          ("fsdp2", "bf16"): "FSDP2, bf16"}
ACCUMULATION_LABELS = {
    "ddp_every_micro_batch": "DDP, no `no_sync`",
    "ddp_no_sync": "DDP, `no_sync`",
    "fsdp2_every_micro_batch": "FSDP2, sync every micro-batch",
    "fsdp2_no_sync": "FSDP2, sync off until the last",
    "fsdp2_no_sync_unsharded": "… and no reshard after backward",
}


def _unit(capture: dict) -> tuple[str, int]:
    """MiB for a real model; bytes for the smoke size's tiny one (a few KiB,
    which MiB would show as 0.0)."""
    P = capture["data"]["model"]["P"]
    return ("MiB", 2**20) if 16 * P >= 2**20 else ("B", 1)


def _in(capture: dict, nbytes: int | None) -> str:
    """The number in the capture's unit, which the column header names."""
    name, size = _unit(capture)
    if nbytes is None:
        return "—"
    return f"{nbytes / size:,.1f}" if size > 1 else f"{nbytes:,}"


def _label(run: dict) -> str:
    return LABELS.get((run["setup"], run["recipe"]),
                      f"{run['setup']} ({run['recipe']})")


def formula_bytes(capture: dict, run: dict) -> int:
    d = capture["data"]
    return zero_bytes_per_rank(d["model"]["P"], d["world_size"], run["stage"],
                               RECIPES[run["recipe"]]).total


def tensor_bytes(run: dict) -> int:
    """The rank's tensors: the three families, the step counters, and DDP's
    buckets where the gradients are not views into them."""
    held = run["held"]
    total = held["params"] + held["grads"] + held["state"]
    total += held["step_counters"]
    ddp = run["ddp"]
    if ddp and ddp["grad_storages"] != ddp["buckets"]:
        total += ddp["bucket_bytes"]  # a second gradient-sized copy
    return total


def _runs(capture: dict):
    """(rank, run) for every rank's every run, setup by setup."""
    ranks = capture["data"]["ranks"]
    for i in range(len(ranks[0]["runs"])):
        for rank in ranks:
            yield rank["rank"], rank["runs"][i]


def _note(capture: dict) -> str:
    d = capture["data"]
    gpus = ", ".join(f"rank {i}: {name}" for i, name in enumerate(d["gpus"]))
    note = (f"{d['world_size']} ranks over {d['backend']} ({gpus}); "
            f"{d['model']['depth']} blocks of Linear({d['model']['width']}, "
            f"{d['model']['width']}), P = {d['model']['P']:,}, AdamW.")
    if d["world_size"] < 2:
        note += (" **World size 1: nothing is sharded**, so every setup "
                 "holds everything; this is not the multi-GPU measurement.")
    return note


def per_rank(capture: dict) -> str:
    unit = _unit(capture)[0]
    rows = [[_label(run), rank, _in(capture, formula_bytes(capture, run)),
             _in(capture, tensor_bytes(run)),
             _in(capture, run["allocated_after_step_bytes"]),
             _in(capture, run["peak_allocated_bytes"])]
            for rank, run in _runs(capture)]
    table = markdown_table(
        ["setup", "rank", "formula", "tensors", "after step", "peak"],
        rows, "lrrrrr")
    table = f"In {unit}, per rank.\n\n{table}"
    return f"{_note(capture)}\n\n{table}"


def accumulation(capture: dict) -> str:
    d = capture["data"]
    K = d["model"]["micro_batches"]
    rows = []
    for result in d["ranks"][0]["accumulation"]:
        counts = {kind: n for kind, (n, _) in result["collectives"].items()}
        rows.append([ACCUMULATION_LABELS.get(result["name"], result["name"]),
                     counts.get("all-reduce", 0), counts.get("all-gather", 0),
                     counts.get("reduce-scatter", 0),
                     _in(capture, result["peak_allocated_bytes"])])
    table = markdown_table(["rank 0, one step of K micro-batches",
                            "all-reduces", "all-gathers", "reduce-scatters",
                            f"peak ({_unit(capture)[0]})"], rows, "lrrrr")
    return (f"K = {K} micro-batches, {d['model']['depth']} FSDP units; "
            f"peak above the batch, rank 0.\n\n{table}")


SHORT = {("ddp", "fp32"): "DDP", ("ddp_bucket_view", "fp32"): "DDP, view",
         ("zero1", "fp32"): "ZeRO-1", ("fsdp2", "fp32"): "FSDP2",
         ("fsdp2", "mixed"): "FSDP2, bf16"}


def _draw(ax, capture: dict, rank0: list, series: list) -> None:
    d = capture["data"]
    name, size = _unit(capture)
    height = 0.2
    for j, (label, value, colour) in enumerate(series):
        ys, widths = [], []
        for i, run in enumerate(rank0):
            nbytes = value(run)
            if nbytes is not None:
                ys.append(i + (j - 1.5) * height)
                widths.append(nbytes / size)
        if ys:
            ax.barh(ys, widths, height, label=label, color=colour)
    ax.set_yticks(range(len(rank0)),
                  [SHORT.get((r["setup"], r["recipe"]), _label(r))
                   for r in rank0])
    ax.invert_yaxis()  # the first setup on top, as in the table
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    ax.set_xlabel(f"{name} on rank 0 of {d['world_size']}")
    ax.legend(loc="lower right")


def per_rank_figure(capture: dict) -> Chart:
    d = capture["data"]
    rank0 = d["ranks"][0]["runs"]
    name = _unit(capture)[0]
    series = [("formula", lambda r: formula_bytes(capture, r), "#9e9e9e"),
              ("tensors", tensor_bytes, "#5c6bc0"),
              ("after step", lambda r: r["allocated_after_step_bytes"],
               "#2e7d32"),
              ("peak", lambda r: r["peak_allocated_bytes"], "#c62828")]
    fig, ax = figure(height=4.2)
    with matplotlib.rc_context(STYLE):  # 11 pt for every text drawn below
        _draw(ax, capture, rank0, series)
    ddp, fsdp = rank0[0], next(r for r in rank0 if r["setup"] == "fsdp2")
    alt = (f"Horizontal grouped bars, {name} on rank 0 of {d['world_size']}, "
           f"for each setup: the ZeRO formula, the bytes its tensors hold, "
           f"and where measured the allocator after a step and at the peak. "
           f"DDP's formula is {_in(capture, formula_bytes(capture, ddp))} "
           f"{name}, FSDP2's {_in(capture, formula_bytes(capture, fsdp))} "
           f"{name}.")
    return Chart(fig, alt=alt, caption=(
        "Per-rank memory of each setup on rank 0: formula, counted tensors, "
        f"and the allocator after the last step and at its peak ({name})."))


def _nccl_bytes(capture: dict) -> int | None:
    grown = [r["outside_allocator_after_bytes"]
             - r["outside_allocator_before_process_group_bytes"]
             for r in capture["data"]["ranks"]
             if r["outside_allocator_after_bytes"] is not None]
    return max(grown) if grown else None


def _accumulation_peak_gap(capture: dict) -> int | None:
    rank0 = capture["data"]["ranks"][0]
    results = {r["name"]: r for r in rank0["accumulation"]}
    synced = results["fsdp2_every_micro_batch"]["peak_allocated_bytes"]
    unsynced = results["fsdp2_no_sync"]["peak_allocated_bytes"]
    return None if synced is None else unsynced - synced


TABLES = {"per_rank": per_rank, "accumulation": accumulation}
FIGURES = {"per_rank_chart": per_rank_figure}
VALUES = {
    "world_size": lambda c: str(c["data"]["world_size"]),
    "outside_allocator_growth": lambda c: mib(_nccl_bytes(c)),
    "no_sync_extra_peak": lambda c: mib(_accumulation_peak_gap(c)),
}
