"""Tables and values for docs/captures/checkpoint_seed_demo.json: the study
plan's printed numbers, and what is in them."""

from __future__ import annotations

from examples.render import markdown_table, mib


def _size(nbytes: int | None) -> str:
    """MiB, or KiB below one MiB (what the step adds is far below a MiB), or
    bytes below one KiB."""
    if nbytes is None or abs(nbytes) >= 2**20:
        return mib(nbytes)
    if abs(nbytes) >= 2**10:
        return f"{nbytes / 2**10:,.1f} KiB"
    return f"{nbytes} bytes"


def _ms(value: float) -> str:
    return f"{value:.2f} ms"


def seed(capture: dict) -> str:
    d = capture["data"]
    s, model, m = d["seed"], d["model"], d["measured"]
    printed = markdown_table(
        ["what the plan prints", "plain", "checkpointed"],
        [["avg step time (time.time, 5 steps)",
          _ms(s["avg_step_time_plain_s"] * 1e3),
          _ms(s["avg_step_time_ckpt_s"] * 1e3)],
         ["peak CUDA (max_memory_allocated)", mib(s["peak_plain_bytes"]),
          mib(s["peak_ckpt_bytes"])],
         ["Δpeak (plain − ckpt)", _size(s["delta_peak_bytes"]), ""]],
        "lrr")
    added = [s[f"peak_{v}_bytes"] - s[f"allocated_at_reset_{v}_bytes"]
             for v in ("plain", "ckpt")]
    inside = markdown_table(
        ["what is in it", "plain", "checkpointed"],
        [["allocated when the peak counter was reset",
          mib(s["allocated_at_reset_plain_bytes"]),
          mib(s["allocated_at_reset_ckpt_bytes"])],
         ["what the step added to that", _size(added[0]), _size(added[1])],
         ["peak above the persistent baseline",
          mib(m["plain"]["peak_bytes"]), mib(m["ckpt"]["peak_bytes"])],
         ["held between forward and backward (counted)",
          _size(d["counted"]["plain"]["held_bytes"]),
          _size(d["counted"]["ckpt"]["held_bytes"])],
         ["step, median of CUDA events after warm-up",
          _ms(m["plain"]["step_ms"]), _ms(m["ckpt"]["step_ms"])]],
        "lrr")
    return (f"DeepMLP(d={model['d']}, depth={model['depth']}), batch "
            f"{model['batch']}: {mib(model['param_bytes_per_model'])} of "
            f"parameters per model, {model['models_on_device']} models on "
            f"the GPU; predicted activations "
            f"{_size(d['predicted_activation_bytes'])}.\n\n{printed}\n\n"
            f"{inside}")


def _step(variant: str):
    return lambda c: _ms(c["data"]["measured"][variant]["step_ms"])


def _ratio(c: dict) -> float:
    m = c["data"]["measured"]
    return m["ckpt"]["step_ms"] / m["plain"]["step_ms"]


def _step_over_copy(c: dict) -> float:
    d = c["data"]
    return d["measured"]["plain"]["step_ms"] / d["weights_copy_ms"]


def _seed_ratio(c: dict) -> float:
    s = c["data"]["seed"]
    return s["avg_step_time_ckpt_s"] / s["avg_step_time_plain_s"]


VALUES = {
    "step_plain": _step("plain"),
    "step_ckpt": _step("ckpt"),
    "ratio": lambda c: f"{_ratio(c):.2f}",
    "ratio_min": lambda c: f"{min(c['data']['event_ratios']):.2f}",
    "ratio_max": lambda c: f"{max(c['data']['event_ratios']):.2f}",
    "rounds": lambda c: str(len(c["data"]["event_ratios"])),
    "weights_copy": lambda c: _ms(c["data"]["weights_copy_ms"]),
    "step_over_copy": lambda c: f"{_step_over_copy(c):.0f}",
    "seed_ratio": lambda c: f"{_seed_ratio(c):.1f}",
    "params": lambda c: mib(c["data"]["model"]["param_bytes_per_model"]),
}
TABLES = {"seed": seed}
