"""Tables for docs/captures/optimizer_state.json: predicted, counted and allocated state bytes."""

from __future__ import annotations

from examples.render import markdown_table


def _bytes(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def state_bytes(capture: dict) -> str:
    data = capture["data"]
    rows = []
    for name, r in data["optimizers"].items():
        counted = sum(r["state_bytes_by_key"].values())
        rows.append([
            name, r["k"], _bytes(r["predicted_state_bytes"]), _bytes(counted),
            _signed(counted - r["predicted_state_bytes"]), r["step_device"] or "—",
            _bytes(r["allocated_growth_bytes"]), _signed(r["allocated_growth_bytes"] - counted),
        ])
    P = next(iter(data["optimizers"].values()))["P"]
    table = markdown_table(
        ["optimizer", "k", "predicted k·P·4 (B)", "counted in optimizer.state (B)", "counted − predicted",
         "`step` on", "allocator growth (B)", "growth − counted"],
        rows, "lrrrrcrr")
    return f"P = {P:,} fp32 parameters.\n\n{table}"


def step_peak(capture: dict) -> str:
    rows = []
    for name, r in capture["data"]["optimizers"].items():
        growth, peak = r["allocated_growth_bytes"], r["step_peak_extra_bytes"]
        params_bytes = 4 * r["P"]
        rows.append([name, _bytes(growth), _bytes(peak), _bytes(peak - growth), f"{(peak - growth) / params_bytes:.2f}"])
    return markdown_table(
        ["optimizer", "state allocated (B)", "peak above before (B)", "temporaries (B)", "temporaries ÷ params bytes"],
        rows)


TABLES = {"state_bytes": state_bytes, "step_peak": step_peak}
