"""The golden cases that tie the in-page calculator to the Python closed forms.

`python -m tests.memcalc_golden` writes tests/golden/memcalc.json: GPT-style
transformer shapes and options drawn with a fixed seed, answered by
snippets.memcalc.transformer, and decoder-family cases (every preset of
snippets.memcalc.families across precisions, checkpointing, sharding and
accumulation, then custom shapes drawn with a fixed seed) answered by
snippets.memcalc.decoder: the estimate with its moments, the largest
micro-batch under a budget, or the error message. Decoder cases carry
"form": "decoder". tests/test_memcalc_golden.py regenerates the cases and
requires the file to match, and runs docs/assets/javascripts/memcalc.js
under Node against every case.

Moments are stored compactly, [phase, label, bytes, [families]], by
`compact` here and by tests/memcalc_golden.js alike.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, fields
from pathlib import Path

from snippets.memcalc.decoder import estimate_decoder
from snippets.memcalc.decoder import largest_micro_batch as decoder_batch
from snippets.memcalc.families import PRESETS, Decoder
from snippets.memcalc.optimizers import FUSED, IMPLEMENTATIONS, OPTIMIZERS
from snippets.memcalc.sharding import FAMILIES, Sharding
from snippets.memcalc.transformer import (ATTENTION, CHECKPOINTING,
                                          PRECISIONS, Shape,
                                          estimate_transformer,
                                          largest_micro_batch)

GOLDEN = Path(__file__).parent / "golden" / "memcalc.json"
ESTIMATES, BUDGETS, SHARDED = 320, 40, 40
DECODERS, DECODER_BUDGETS = 80, 24
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
    {"strategy": "zero3", "zero_stage": 3, "ranks": 8},
    {"offload": "optimizer", "ranks": 8},
    {"strategy": "fsdp2", "ranks": 8, "precision": "bf16-autocast"},
    {"strategy": "ddp", "ranks": 8, "offload": "optimizer"},
    {"strategy": "zero1", "ranks": 8, "offload": "params"},
    {"strategy": "fsdp2", "ranks": 1},
    {"strategy": "fsdp1", "ranks": 8},
]
DECODER_INVALID = [
    {"layers": 0}, {"heads": 5}, {"kv_heads": 3}, {"ffn": -1},
    {"mlp": "relu"}, {"norm": "batchnorm"}, {"positions": "alibi"},
    {"positions": "learned", "max_positions": 0},
    {"experts": 8, "top_k": 0}, {"experts": 4, "top_k": 5},
    {"precision": "fp16"}, {"checkpointing": "selective"},
    {"batch": 0}, {"seq": 0}, {"micro_batches": 0},
    {"optimizer": "lion"}, {"optimizer": "adafactor",
                            "implementation": "fused"},
    {"strategy": "ddp", "ranks": 1}, {"ranks": 8},
    {"strategy": "zero2", "ranks": 8, "optimizer": "muon"},
    {"strategy": "fsdp2", "ranks": 8, "optimizer": "muon"},
    {"strategy": "fsdp2", "ranks": 8, "precision": "bf16-autocast"},
    {"strategy": "zero2", "ranks": 8, "offload": "params"},
    {"strategy": "zero3", "ranks": 8, "reshard_after_forward": False},
    {"strategy": "fsdp2", "ranks": 8, "reduce_dtype": "fp16"},
    {"strategy": "ddp", "ranks": 8, "offload": "disk"},
]
DECODER_FIELDS = [f.name for f in fields(Decoder)]
SHARDING_FIELDS = ("strategy", "ranks", "reshard_after_forward",
                   "reduce_dtype", "offload")
STEP_FIELDS = ("batch", "seq", "optimizer", "precision", "implementation",
               "checkpointing", "micro_batches")
# (strategy, ranks, offload, reshard_after_forward) the presets go through
PRESET_SHARDINGS = [("single", 1, "none", None), ("ddp", 8, "none", None),
                    ("zero-redundancy", 8, "none", None),
                    ("zero1", 8, "none", None), ("zero2", 64, "none", None),
                    ("zero3", 8, "none", None), ("fsdp2", 8, "none", None),
                    ("fsdp2", 64, "none", False),
                    ("zero3", 8, "params", None),
                    ("fsdp2", 8, "optimizer", True)]


def compact(output: dict) -> dict:
    """An answer with its moments as [phase, label, bytes, [families]]."""
    if "moments" not in output:
        return output
    return {**output, "moments": [
        [m["phase"], m["label"], m["bytes"],
         [m["breakdown"][k] for k in FAMILIES]] for m in output["moments"]]}


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


def _sharding(rng: random.Random, optimizer: str, precision: str) -> dict:
    """A strategy that can run the optimizer and precision, at random."""
    ranks = rng.choice([2, 8, 64])
    choices = ["ddp", "zero-redundancy"]
    if optimizer not in ("adafactor", "muon"):
        choices += ["zero1", "zero2", "zero3"]
    if optimizer != "muon" and precision != "bf16-autocast":
        choices += ["fsdp2", "fsdp2"]
    strategy = rng.choice(choices)
    offload = "none"
    if strategy in ("zero1", "zero2", "zero3", "fsdp2"):
        offload = rng.choice(["none", "none", "optimizer"]
                             + (["params"] if strategy in ("zero3", "fsdp2")
                                else []))
    return {"strategy": strategy, "ranks": ranks, "offload": offload}


def _sharded(rng: random.Random) -> dict:
    shape = {**_draw(rng), "zero_stage": 0}
    return {**shape, **_sharding(rng, shape["optimizer"], shape["precision"])}


def decoder_answer(x: dict, budget: int | None = None):
    """estimate_decoder (or the largest micro-batch) for a flat input."""
    d = Decoder(**{k: x[k] for k in DECODER_FIELDS if k in x})
    step = {k: x[k] for k in STEP_FIELDS if k in x}
    sharding = Sharding(**{k: x[k] for k in SHARDING_FIELDS if k in x})
    if budget is not None:
        step.pop("batch", None)
        return decoder_batch(d, budget, sharding=sharding, **step)
    return estimate_decoder(d, sharding=sharding, **step)


def _preset_cases() -> list[dict]:
    """Every preset through every precision and checkpointing, a strategy
    and an accumulation each, in turn."""
    out, turn = [], 0
    for name, d in PRESETS.items():
        for precision in PRECISIONS:
            for checkpointing in ("none", "full"):
                strategy, ranks, offload, reshard = PRESET_SHARDINGS[
                    turn % len(PRESET_SHARDINGS)]
                if strategy == "fsdp2" and precision == "bf16-autocast":
                    strategy = "zero3"
                    reshard = None
                optimizer, impl = (("adamw", "fused"), ("adamw", "foreach"),
                                   ("adam8bit", "fused"),
                                   ("sgd-momentum", "for-loop"))[turn % 4]
                x = {**asdict(d), "batch": 1 + turn % 3,
                     "seq": (4096, 2048, 1024)[turn % 3],
                     "optimizer": optimizer, "precision": precision,
                     "implementation": impl,
                     "checkpointing": checkpointing,
                     "micro_batches": (1, 4)[turn % 2],
                     "strategy": strategy, "ranks": ranks,
                     "offload": offload, "reshard_after_forward": reshard,
                     "reduce_dtype": "fp32"}
                out.append({"form": "decoder", "preset": name, "input": x,
                            "output": decoder_answer(x)})
                turn += 1
    return out


def _draw_decoder(rng: random.Random) -> dict:
    head_dim = rng.choice([32, 64, 64, 80, 128, 12])
    heads = rng.choice([1, 2, 4, 8, 16, 32])
    experts = rng.choice([0, 0, 0, 4, 8])
    positions = rng.choice(["learned", "rotary", "rotary"])
    optimizer = rng.choice(OPTIMIZERS)
    precision = rng.choice(PRECISIONS)
    impls = [i for i in IMPLEMENTATIONS
             if i != "fused" or optimizer in FUSED + ("muon",)]
    sharding = (_sharding(rng, optimizer, precision) if rng.random() < 0.6
                else {"strategy": "single", "ranks": 1, "offload": "none"})
    reshard = rng.choice([None, True, False]) \
        if sharding["strategy"] == "fsdp2" else None
    reduce = rng.choice(["fp32", "bf16"]) \
        if sharding["strategy"] == "fsdp2" else "fp32"
    return {
        "vocab": rng.choice([1000, 32000, 50257, 128256, 152064]),
        "hidden": heads * head_dim, "layers": rng.randint(1, 16),
        "heads": heads,
        "kv_heads": rng.choice([0, 0] + [d for d in (1, 2, 4, 8)
                                         if heads % d == 0]),
        "ffn": rng.choice([0, 688, 1376, 2816, 11008]),
        "mlp": rng.choice(["gelu", "swiglu"]),
        "norm": rng.choice(["layernorm", "rmsnorm"]),
        "linear_bias": rng.random() < 0.3, "qkv_bias": rng.random() < 0.3,
        "tied": rng.random() < 0.5, "positions": positions,
        "max_positions": rng.choice([512, 2048, 4096])
        if positions == "learned" else 0,
        "experts": experts,
        "top_k": rng.randint(1, experts) if experts else 0,
        "batch": rng.randint(1, 8),
        "seq": rng.choice([128, 512, 1024, 2048, 4096]),
        "optimizer": optimizer, "precision": precision,
        "implementation": rng.choice(impls),
        "checkpointing": rng.choice(["none", "full"]),
        "micro_batches": rng.choice([1, 1, 2, 4]),
        **sharding, "reshard_after_forward": reshard, "reduce_dtype": reduce,
    }


def decoder_cases() -> list[dict]:
    rng = random.Random(2027)
    out = _preset_cases()
    for _ in range(DECODERS):
        x = _draw_decoder(rng)
        out.append({"form": "decoder", "input": x,
                    "output": decoder_answer(x)})
    for _ in range(DECODER_BUDGETS):
        x = {**_draw_decoder(rng), "layers": rng.randint(1, 8)}
        budget = rng.choice([8, 24, 40, 80, 141]) * 2**30
        out.append({"form": "decoder", "input": x, "budget": budget,
                    "largest": decoder_answer(x, budget)})
    base = {**asdict(PRESETS["llama-3.2-1b"]), "layers": 2, "batch": 1,
            "seq": 256}
    for change in DECODER_INVALID:
        x = {**base, **change}
        try:
            decoder_answer(x)
        except ValueError as error:
            out.append({"form": "decoder", "input": x, "error": str(error)})
        else:
            raise AssertionError(f"{change} should be refused")
    return out


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
    for _ in range(SHARDED):
        shape = _sharded(rng)
        out.append({"input": shape,
                    "output": estimate_transformer(Shape(**shape))})
    out += decoder_cases()
    return [{**c, "output": compact(c["output"])} if "output" in c else c
            for c in out]


def write() -> Path:
    GOLDEN.parent.mkdir(exist_ok=True)
    lines = [json.dumps(case, separators=(",", ":")) for case in cases()]
    GOLDEN.write_text('{"cases": [\n' + ",\n".join(lines) + "\n]}\n",
                      encoding="utf-8")
    return GOLDEN


if __name__ == "__main__":
    print(f"wrote {write()}")
