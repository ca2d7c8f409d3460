"""Tables and values for docs/captures/memcalc_ranks.json: rank 0 of 2, 8
and 64 on torch's fake process group, measured on the GPU, beside the
calculator's per-rank prediction (snippets/memcalc/sharding.py over the
trace) made in the same run.

"measured" is the third step's peak above what was allocated before the
model was built, the largest of its three phases; "predicted" is the
calculator's peak for the same step, cuBLAS's workspace included (it is
allocated inside the measured window). Memory in MiB. The scoring
helpers are memcalc_models.py's.
"""

from __future__ import annotations

from examples.render import markdown_table
from examples.render.memcalc_models import (pct, phase_cell, relative,
                                            right_of, scored, within_bound,
                                            worst_error, worst_of)

MIB = 2 ** 20
LABELS = {("ddp", None, False): "DDP",
          ("zero-redundancy", None, False): "ZeroRedundancyOptimizer",
          ("fsdp2", None, False): "fully_shard, defaults",
          ("fsdp2", False, False): "fully_shard, no reshard",
          ("fsdp2", None, True): "fully_shard, bf16, fp32 reduce"}


def _key(row: dict) -> tuple:
    return row["strategy"], row["reshard_after_forward"], row["mixed"]


def label(row: dict) -> str:
    return LABELS.get(_key(row), f"{row['strategy']} {_key(row)[1:]}")


def measured_peak(row: dict) -> tuple[int | None, str | None]:
    """(the largest phase peak, its phase); (None, None) off the GPU."""
    phases = {p: b for p, b in row["measured"]["peak_bytes"].items()
              if b is not None}
    if not phases:
        return None, None
    phase = max(phases, key=phases.get)
    return phases[phase], phase


def error(row: dict) -> float | None:
    return relative(row["predicted"]["max_bytes"], measured_peak(row)[0])


def _mib(nbytes: int | None) -> str:
    return "—" if nbytes is None else f"{nbytes / MIB:,.1f}"


def _phases(row: dict) -> tuple[str | None, str]:
    return measured_peak(row)[1], row["predicted"]["phase"]


def per_rank(capture: dict) -> str:
    rows = []
    for row in capture["data"]["rows"]:
        said, gpu = row["predicted"]["max_bytes"], measured_peak(row)[0]
        rows.append([row["ranks"], label(row),
                     f"{_mib(said)} / {_mib(gpu)}", pct(error(row)),
                     phase_cell(*_phases(row))])
    return markdown_table(["ranks", "strategy", "MiB, said / GPU", "error",
                           "peak in"], rows, "rlrrl")


def held(capture: dict) -> str:
    """What rank 0 keeps between steps: the calculator's split against the
    tensors' own byte counts after the run (local shards under
    fully_shard)."""
    rows = []
    for row in capture["data"]["rows"]:
        p, m = row["predicted"]["breakdown"], row["measured"]["held"]
        rows.append([row["ranks"], label(row)] + [
            f"{_mib(p[k])} / {_mib(m[k])}"
            for k in ("params", "optimizer_state")])
    return markdown_table(["ranks", "strategy",
                           "parameters MiB, said / held",
                           "state MiB, said / held"], rows, "rlrr")


def _scored(capture: dict) -> list[tuple[float, dict]]:
    return scored(capture["data"]["rows"], error)


def worst_config(capture: dict) -> str:
    worst = worst_of(_scored(capture))
    if worst is None:
        return "—"
    return f"{label(worst[1])} on {worst[1]['ranks']} ranks"


def fsdp2_excess(capture: dict) -> str:
    """How much more than measured the calculator gives fully_shard (by
    default, at the fewest ranks) at its forward pass's peak: about one
    gathered unit, in MiB."""
    row = next(r for r in capture["data"]["rows"]
               if _key(r) == ("fsdp2", None, False))
    measured = row["measured"]["peak_bytes"]["forward"]
    if measured is None:
        return "—"
    said = row["predicted"]["phase_max_bytes"]["forward"]
    return f"{(said - measured) / MIB:,.1f} MiB"


def exact(capture: dict) -> str:
    """How many DDP and ZeroRedundancyOptimizer runs the calculator gets to
    the allocator's 512-byte block at the peak."""
    rows = [r for r in capture["data"]["rows"] if r["strategy"] != "fsdp2"]
    hits = sum(measured_peak(r)[0] == r["predicted"]["max_bytes"]
               for r in rows)
    return f"{hits} of {len(rows)}"


TABLES = {"per_rank": per_rank, "held": held}
VALUES = {
    "worst_error": lambda c: worst_error(_scored(c)),
    "worst_config": worst_config,
    "within_bound": lambda c: within_bound([e for e, _ in _scored(c)]),
    "phases_right": lambda c: right_of(
        [_phases(r) for r in c["data"]["rows"]]),
    "fsdp2_excess": fsdp2_excess,
    "exact": exact,
}
