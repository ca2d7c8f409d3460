"""Table for docs/captures/checkpoint_seed_demo.json: the seed's printed numbers, and what is in them."""

from __future__ import annotations

from examples.render import markdown_table, mib


def _size(nbytes: int | None) -> str:
    """MiB, or KiB below one MiB (what the step adds is far below a MiB), or bytes below one KiB."""
    if nbytes is None or abs(nbytes) >= 2**20:
        return mib(nbytes)
    return f"{nbytes / 2**10:,.1f} KiB" if abs(nbytes) >= 2**10 else f"{nbytes} bytes"


def seed(capture: dict) -> str:
    d = capture["data"]
    s, model = d["seed"], d["model"]
    printed = markdown_table(
        ["what the seed prints", "plain", "checkpointed"],
        [["avg step time (time.time, 5 steps)", f"{s['avg_step_time_plain_s'] * 1e3:.2f} ms",
          f"{s['avg_step_time_ckpt_s'] * 1e3:.2f} ms"],
         ["peak CUDA (max_memory_allocated)", mib(s["peak_plain_bytes"]), mib(s["peak_ckpt_bytes"])],
         ["Δpeak (plain − ckpt)", _size(s["delta_peak_bytes"]), ""]],
        "lrr")
    added = [None if s[f"peak_{v}_bytes"] is None else s[f"peak_{v}_bytes"] - s[f"allocated_at_reset_{v}_bytes"]
             for v in ("plain", "ckpt")]
    inside = markdown_table(
        ["what is in it", "plain", "checkpointed"],
        [["allocated when the peak counter was reset", mib(s["allocated_at_reset_plain_bytes"]),
          mib(s["allocated_at_reset_ckpt_bytes"])],
         ["what the step added to that", _size(added[0]), _size(added[1])],
         ["peak above the persistent baseline (parameters, batch)", mib(d["measured"]["plain"]["peak_bytes"]),
          mib(d["measured"]["ckpt"]["peak_bytes"])],
         ["held between forward and backward (counted)", _size(d["counted"]["plain"]["held_bytes"]),
          _size(d["counted"]["ckpt"]["held_bytes"])],
         ["step, median of CUDA events after warm-up", f"{d['measured']['plain']['step_ms']:.2f} ms",
          f"{d['measured']['ckpt']['step_ms']:.2f} ms"]],
        "lrr")
    return (f"DeepMLP(d={model['d']}, depth={model['depth']}), batch {model['batch']}: "
            f"{mib(model['param_bytes_per_model'])} of parameters per model, {model['models_on_device']} models "
            f"on the GPU; predicted activations {_size(d['predicted_activation_bytes'])}.\n\n{printed}\n\n{inside}")


TABLES = {"seed": seed}
