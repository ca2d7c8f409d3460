"""The golden cases that tie the in-page calculator to the Python closed form.

`python -m tests.memcalc_golden` writes tests/golden/memcalc.json: a few
hundred transformer shapes and options drawn with a fixed seed, each with
what snippets.memcalc.transformer answers (the estimate, the largest
micro-batch under a budget, or the error message). tests/test_memcalc_golden
.py regenerates the cases and requires the file to match, and runs
docs/assets/javascripts/memcalc.js under Node against every case.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

from snippets.memcalc.optimizers import FUSED, IMPLEMENTATIONS, OPTIMIZERS
from snippets.memcalc.transformer import (ATTENTION, CHECKPOINTING,
                                          PRECISIONS, Shape,
                                          estimate_transformer,
                                          largest_micro_batch)

GOLDEN = Path(__file__).parent / "golden" / "memcalc.json"
ESTIMATES, BUDGETS = 320, 40
INVALID = [
    {"layers": 0}, {"hidden": -64}, {"heads": 5}, {"kv_heads": 5},
    {"batch": 0}, {"optimizer": "lion"}, {"precision": "fp16"},
    {"attention": "flash"}, {"checkpointing": "half"},
    {"zero_stage": 2}, {"zero_stage": 4, "ranks": 8},
    {"optimizer": "adafactor", "implementation": "fused"},
    {"implementation": "vectorised"}, {"micro_batches": 0},
    {"ranks": 0}, {"vocab": 0}, {"seq": 0},
    {"optimizer": "muon", "zero_stage": 2, "ranks": 8},
    {"optimizer": "adafactor", "zero_stage": 1, "ranks": 8},
]


def _draw(rng: random.Random) -> dict:
    head_dim = rng.choice([32, 48, 64, 64, 80, 96, 128, 128, 12])
    heads = rng.choice([1, 2, 4, 8, 12, 16, 25, 32])
    kv = rng.choice([0, 0, 0] + [d for d in (1, 2, 4, 8) if heads % d == 0])
    optimizer = rng.choice(OPTIMIZERS)
    impls = [i for i in IMPLEMENTATIONS
             if i != "fused" or optimizer in FUSED + ("muon",)]
    ranks = rng.choice([1, 1, 2, 8, 64])
    stage = rng.choice([0, 1, 2, 3]) if ranks > 1 else 0
    if optimizer in ("adafactor", "muon"):     # whole matrices only
        stage = 0
    return {
        "layers": rng.randint(1, 48), "hidden": heads * head_dim,
        "heads": heads, "kv_heads": kv,
        "vocab": rng.choice([1000, 32000, 50257, 128256]),
        "seq": rng.choice([128, 512, 1024, 2048, 4096]),
        "batch": rng.randint(1, 16), "optimizer": optimizer,
        "precision": rng.choice(PRECISIONS),
        "implementation": rng.choice(impls),
        "attention": rng.choice(ATTENTION),
        "checkpointing": rng.choice(CHECKPOINTING),
        "micro_batches": rng.choice([1, 1, 2, 4]), "ranks": ranks,
        "zero_stage": stage,
    }


def cases() -> list[dict]:
    rng = random.Random(2026)
    out = []
    for _ in range(ESTIMATES):
        shape = _draw(rng)
        out.append({"input": shape,
                    "output": estimate_transformer(Shape(**shape))})
    for _ in range(BUDGETS):
        shape = {**_draw(rng), "layers": rng.randint(1, 12)}
        budget = rng.choice([8, 24, 40, 80, 141]) * 2**30
        out.append({"input": shape, "budget": budget,
                    "largest": largest_micro_batch(Shape(**shape), budget)})
    base = asdict(Shape(layers=2, hidden=64, heads=4, vocab=1000, seq=128))
    for change in INVALID:
        shape = {**base, **change}
        try:
            estimate_transformer(Shape(**shape))
        except ValueError as error:
            out.append({"input": shape, "error": str(error)})
        else:
            raise AssertionError(f"{change} should be refused")
    return out


def write() -> Path:
    GOLDEN.parent.mkdir(exist_ok=True)
    lines = [json.dumps(case, separators=(",", ":")) for case in cases()]
    GOLDEN.write_text('{"cases": [\n' + ",\n".join(lines) + "\n]}\n",
                      encoding="utf-8")
    return GOLDEN


if __name__ == "__main__":
    print(f"wrote {write()}")
