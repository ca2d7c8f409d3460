"""Tables and values for docs/captures/optimizer_state.json: predicted, counted
and allocated optimizer-state bytes on the GPU (chapters 2 and 3)."""

from __future__ import annotations

from examples.render import markdown_table, mib


def _bytes(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def _signed(n: int | None) -> str:
    return "—" if n is None else (f"{n:+,}" if n else "0")


def _minus(a: int | None, b: int | None) -> int | None:
    """a − b, or None where a CPU run measured nothing (no CUDA allocator)."""
    return None if a is None or b is None else a - b


def _optimizers(capture: dict) -> dict:
    """The optimizers that ran (a CPU smoke run skips capturable=True)."""
    return {name: r for name, r in capture["data"]["optimizers"].items()
            if "not_run" not in r}


def _counted(r: dict) -> int:
    return sum(r["state_bytes_by_key"].values())


def state_bytes(capture: dict) -> str:
    """Six columns, so that the table fits the column at 1280 px."""
    rows = []
    for name, r in _optimizers(capture).items():
        counted, growth = _counted(r), r["allocated_growth_bytes"]
        rows.append([
            name, _bytes(r["predicted_state_bytes"]), _bytes(counted),
            r["step_device"] or "—", _bytes(growth), _signed(_minus(growth, counted)),
        ])
    return markdown_table(
        ["optimizer", "predicted 4kP (bytes)", "counted (bytes)",
         "`step` on", "allocator growth (bytes)", "growth − counted (bytes)"],
        rows, "lrrcrr")


def step_peak(capture: dict) -> str:
    rows = []
    for name, r in _optimizers(capture).items():
        growth, peak = r["allocated_growth_bytes"], r["step_peak_extra_bytes"]
        extra = _minus(peak, growth)
        ratio = "—" if extra is None else f"{extra / (4 * r['P']):.2f}"
        rows.append([name, _bytes(growth), _bytes(peak), _bytes(extra), ratio])
    return markdown_table(
        ["optimizer", "state allocated (bytes)", "peak above start (bytes)",
         "temporaries (bytes)", "temporaries ÷ parameter bytes (ratio)"],
        rows)


def _first(capture: dict) -> dict:
    return next(iter(_optimizers(capture).values()))


def _rounding(capture: dict) -> str:
    """What the allocator added on top of the counted momentum buffers."""
    r = _optimizers(capture)["SGD momentum"]
    extra = _minus(r["allocated_growth_bytes"], _counted(r))
    return "—" if extra is None else f"{extra:,} bytes"


def _temporaries(capture: dict) -> str:
    """The default (foreach) Adam step's temporaries above its new state."""
    r = _optimizers(capture)["Adam"]
    return mib(_minus(r["step_peak_extra_bytes"], r["allocated_growth_bytes"]))


VALUES = {
    # the model: P in millions, its tensors, its layers' width and count
    "p_millions": lambda c: f"{_first(c)['P'] / 1e6:.1f} million",
    "n_tensors": lambda c: f"{_first(c)['n_param_tensors']}",
    "width": lambda c: f"{c['data']['model']['width']}",
    "depth": lambda c: f"{c['data']['model']['depth']}",
    # state counted in optimizer.state
    "momentum_state": lambda c: mib(_counted(_optimizers(c)["SGD momentum"])),
    "adam_state": lambda c: mib(_counted(_optimizers(c)["Adam"])),
    "amsgrad_state": lambda c: mib(_counted(_optimizers(c)["Adam AMSGrad"])),
    "momentum_rounding": _rounding,
    "adam_temporaries": _temporaries,
}

TABLES = {"state_bytes": state_bytes, "step_peak": step_peak}
