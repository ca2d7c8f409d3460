"""What chapter 8 and page A say in words about the per-rank and the real-model captures,
checked against the captures (their numbers are rendered from them; these are the sentences)."""

from __future__ import annotations

import pytest

from examples.render import memcalc_models as models
from examples.render import memcalc_ranks as ranks
from snippets.captures import load_capture
from snippets.cuda_memory import ALLOCATOR_BLOCK

RANKS = load_capture("memcalc_ranks")["data"]["rows"]
MODELS = load_capture("memcalc_models")["data"]["configs"]
FSDP2 = [r for r in RANKS if r["strategy"] == "fsdp2"]


def _excess(row: dict, phase: str) -> int:
    return row["predicted"]["phase_max_bytes"][phase] - row["measured"]["peak_bytes"][phase]


@pytest.mark.claim("DDP and ZeroRedundancyOptimizer: the calculator's per-rank peak is the "
                   "allocator's, to the 512-byte block", page="zero-fsdp.md")
def test_ddp_and_zero_redundancy_are_exact_to_the_block():
    rows = [r for r in RANKS if r["strategy"] != "fsdp2"]
    assert rows and all(ranks.measured_peak(r)[0] == r["predicted"]["max_bytes"] for r in rows)
    assert all(r["predicted"]["max_bytes"] % ALLOCATOR_BLOCK == 0 for r in rows)


@pytest.mark.claim("fully_shard comes out high by about one gathered unit in the forward pass "
                   "and about two in the backward, less with bf16 compute", page="zero-fsdp.md")
def test_fully_shard_is_high_by_about_one_unit_forward_and_two_backward():
    for row in FSDP2:
        unit = row["predicted"]["breakdown"]["grads"] or 1   # the unit's unsharded gradient
        assert 0 < _excess(row, "forward") and 0 < _excess(row, "backward")
        if not row["mixed"]:   # fp32 units: the gradient's size is a gathered unit's
            assert 0.85 < _excess(row, "forward") / unit < 1.05, row
            assert 1.85 < _excess(row, "backward") / unit < 2.05, row
    for n in {r["ranks"] for r in FSDP2}:
        fp32, = [r for r in FSDP2 if r["ranks"] == n and r["reshard_after_forward"] is None
                 and not r["mixed"]]
        bf16, = [r for r in FSDP2 if r["ranks"] == n and r["mixed"]]
        assert _excess(bf16, "forward") < _excess(fp32, "forward")


@pytest.mark.claim("What a rank keeps between steps is what the calculator says, fully_shard's "
                   "shards included", page="zero-fsdp.md")
def test_what_a_rank_keeps_is_exact():
    for row in RANKS:
        said, held = row["predicted"]["breakdown"], row["measured"]["held"]
        assert said["optimizer_state"] == held["optimizer_state"], row
        if row["strategy"] != "fsdp2":
            assert said["params"] == held["params"], row
        else:   # the calculator's count adds the units gathered at the peak
            assert said["params"] > held["params"]
    # Gathered units are whole at any world size: what the calculator adds to fully_shard's
    # shard is the same at 2, 8 and 64 ranks, so the shard itself is exact at each.
    gathered: dict[tuple, set[int]] = {}
    for row in FSDP2:
        extra = row["predicted"]["breakdown"]["params"] - row["measured"]["held"]["params"]
        gathered.setdefault((row["reshard_after_forward"], row["mixed"]), set()).add(extra)
    assert gathered and all(len(extras) == 1 for extras in gathered.values()), gathered


@pytest.mark.claim("Every phase the calculator misses on the models we did not write is a near "
                   "tie, and the convolutional nets come out slightly low",
                   page="memory-calculator.md#on-models-this-project-did-not-write")
def test_phase_misses_are_near_ties_and_the_convnets_are_slightly_low():
    for row in MODELS:
        measured, said = row["measured"]["phase"], row["predicted"]["phase"]
        if measured != said:
            peaks = row["measured"]["phase_peak_bytes"]
            f, b = peaks["forward"], peaks["backward"]
            assert abs(f - b) / max(f, b) < 0.02, row
    convnets = [r for r in MODELS if r["model"] in ("resnet50", "convnext_tiny",
                                                     "mobilenet_v3_large")]
    assert convnets and all(-0.05 < models.error(r) < 0 for r in convnets)


def test_the_held_out_set_is_the_models_the_rules_were_not_written_on():
    from examples.memcalc_models import FITTED

    assert {r["model"] for r in MODELS if r["set"] == "fitted"} == set(FITTED)
    assert {r["set"] for r in MODELS} == {"fitted", "held out"}
