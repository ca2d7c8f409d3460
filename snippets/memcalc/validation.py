"""The calculator's current predictions for the configurations the GPU
measured (docs/captures/memory_calculator.json).

The capture keeps what the GPU measured; what the calculator predicts for
the same configurations is recomputed from the code as it is now, so that
improving a rule never needs a GPU. `python -m snippets.memcalc.validation`
writes examples/render/memory_calculator.predictions.json, which the page's
renderer reads (the site build stays fast);
tests/test_memcalc_validation.py recomputes it and fails when the file is
not what the calculator says now.

The captured Muon row was measured with the harness of snippets/memcalc/
training.py, which gives every 2-D tensor (the tied embedding too) to Muon:
it is predicted with that partition (muon_partition="every-matrix").
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREDICTIONS = ROOT / "examples" / "render" / \
    "memory_calculator.predictions.json"


def options(config: tuple) -> dict:
    """estimate()'s options for one entry of CONFIGS."""
    _, _, _, _, _, optimizer, precision, impl, micro = config
    out = dict(optimizer=optimizer, precision=precision,
               implementation=impl, micro_batches=micro)
    if optimizer == "muon":      # as measured: every matrix to Muon
        out["muon_partition"] = "every-matrix"
    return out


def predict(index: int) -> dict:
    """The prediction for CONFIGS[index] at full size."""
    from examples.memory_calculator import CONFIGS, _formula, case
    from snippets.memcalc.tracer import estimate

    config = CONFIGS[index]
    name, build, loss, facts = case(config, "full")
    e = estimate(build, loss, **options(config))
    formula = None if facts is None else _formula(facts, config)
    return {"name": name, "max_bytes": e.peak, "phase": e.phase,
            "persistent_bytes": e.persistent,
            "muon_partition": options(config).get("muon_partition"),
            "formula_max_bytes": formula and formula["max_bytes"]}


def predictions() -> list[dict]:
    from examples.memory_calculator import CONFIGS
    return [predict(i) for i in range(len(CONFIGS))]


def write() -> Path:
    rows = predictions()
    PREDICTIONS.write_text(
        '{"rows": [\n' + ",\n".join(json.dumps(r) for r in rows)
        + "\n]}\n", encoding="utf-8")
    return PREDICTIONS


def load() -> list[dict]:
    return json.loads(PREDICTIONS.read_text(encoding="utf-8"))["rows"]


if __name__ == "__main__":
    print(f"wrote {write()}")
