"""The GPU captures of the checkpointing chapter agree with what the CPU counted, and hold what
docs/checkpointing.md states about them (the page checks the same claims in its blocks; these
tests say in one place what a re-capture must still show). Made on a CUDA machine with
`PYTHONPATH=. python3 -m examples activation_breakdown checkpoint_seed_demo checkpointing`.

Bytes are exact and deterministic, so they are compared exactly or against exact bounds; times
are medians, so they are compared with margins that run-to-run noise does not cross.
"""

from __future__ import annotations

import math

import pytest

from snippets.captures import load_capture

MiB = 2**20
LOSS_SCALARS = 2 * (512 - 4)  # two fp32 scalars, each rounded up to a 512-byte allocator block


@pytest.fixture(scope="module")
def sweep():
    return load_capture("checkpointing")["data"]


def rows(sweep, kind):
    return {r["name"]: r for r in sweep[kind]["strategies"]}


def formula_held(sweep, kind, r):
    """What forward leaves for backward, by the page's formulas (in bytes)."""
    a, per_layer, n = sweep[kind]["a_bytes"], sweep[kind]["per_layer_bytes"], sweep[kind]["model"]["layers"]
    if r["segments"]:
        k = r["segments"]
        return (k - 1) * a + n // k * per_layer
    return {"none": n * per_layer, "one checkpoint": a, "per block": n * a, "selective": 6 * n * a}[r["name"]]


@pytest.mark.parametrize("kind", ["blocks", "uniform"])
def test_held_after_forward_is_the_count_and_the_formula_to_the_byte(sweep, kind):
    for name, r in rows(sweep, kind).items():
        assert r["measured"]["held_bytes"] == r["counted"]["held_bytes"] == formula_held(sweep, kind, r), (kind, name)


@pytest.mark.parametrize("kind", ["blocks", "uniform"])
def test_peak_is_the_count_plus_rounding_plus_at_most_two_activations_of_scratch(sweep, kind):
    """Every run: the loss's two scalars rounded up. Some block runs: about 2a of a backward
    kernel's private scratch, which LiveBytes cannot see (the H100 capture: none, segments=1,
    segments=16)."""
    a = sweep[kind]["a_bytes"]
    excess = {name: r["measured"]["peak_bytes"] - r["counted"]["max_live_bytes"] for name, r in rows(sweep, kind).items()}
    assert min(excess.values()) == LOSS_SCALARS, excess
    assert max(excess.values()) <= 2 * a + MiB, excess


def test_the_scratch_breaks_the_counted_ties(sweep):
    r = rows(sweep, "blocks")
    a = sweep["blocks"]["a_bytes"]
    counted = {name: row["counted"]["max_live_bytes"] for name, row in r.items()}
    peak = {name: row["measured"]["peak_bytes"] for name, row in r.items()}
    assert counted["segments=16"] == counted["per block"] and counted["one checkpoint"] == counted["none"]
    assert peak["per block"] < peak["segments=16"] <= peak["per block"] + 2 * a + MiB
    assert peak["none"] - 2 * a - MiB <= peak["one checkpoint"] <= peak["none"]


def test_one_checkpoint_around_everything_does_not_lower_the_peak(sweep):
    for kind in ("blocks", "uniform"):
        r = rows(sweep, kind)
        none, one = r["none"]["measured"]["peak_bytes"], r["one checkpoint"]["measured"]["peak_bytes"]
        assert one > 0.95 * none, kind
        assert r["one checkpoint"]["measured"]["held_bytes"] == sweep[kind]["a_bytes"], kind  # the output


def test_uniform_stack_peak_is_a_symmetric_u_with_its_floor_at_sqrt_n(sweep):
    measured = {row["segments"]: row["measured"] for row in rows(sweep, "uniform").values() if row["segments"]}
    layers = sweep["uniform"]["model"]["layers"]
    peaks = {k: m["peak_bytes"] for k, m in measured.items()}
    assert min(peaks, key=peaks.get) == math.isqrt(layers)
    assert all(peaks[k] == peaks[layers // k] for k in peaks)
    assert len({m["peak_bytes"] - m["held_bytes"] for m in measured.values()}) == 1  # the same lift at every k


def test_blocks_per_block_beats_every_segment_count_and_the_best_count_is_above_sqrt_n(sweep):
    r = rows(sweep, "blocks")
    peak = {name: row["measured"]["peak_bytes"] for name, row in r.items()}
    segmented = {row["segments"]: peak[name] for name, row in r.items() if row["segments"]}
    assert peak["per block"] < min(segmented.values())
    assert min(segmented, key=segmented.get) > math.isqrt(sweep["blocks"]["model"]["layers"])
    assert peak["per block"] < 0.35 * peak["none"]
    assert peak["per block"] < peak["selective"] < peak["one checkpoint"] <= peak["none"]
    held = {name: row["measured"]["held_bytes"] for name, row in r.items()}
    assert held["one checkpoint"] < held["per block"] < held["selective"] < held["none"]


def test_recompute_time_follows_the_flop_count(sweep):
    r = rows(sweep, "blocks")
    for name, row in r.items():
        assert abs(row["recompute_forwards_measured"] - row["recompute_forwards_counted"]) < 0.1, name
    step = {name: row["measured"]["step_ms"] for name, row in r.items()}
    slower = {name: step[name] / step["none"] - 1 for name in step}
    assert slower["selective"] < 0.1 < slower["per block"] < slower["one checkpoint"] < 0.5
    assert 0.25 < r["none"]["measured"]["forward_ms"] / step["none"] < 0.4  # a forward is about a third of a step
    assert r["selective"]["recompute_forwards_counted"] == 0.0 < r["selective"]["recompute_forwards_measured"]
    assert r["per block"]["recompute_forwards_counted"] == 0.5


def test_uniform_recompute_follows_the_count_until_checkpoint_overhead_shows(sweep):
    u = {row["segments"]: row for row in rows(sweep, "uniform").values() if row["segments"]}
    for k, row in u.items():
        if k <= 16:
            assert abs(row["recompute_forwards_measured"] - row["recompute_forwards_counted"]) < 0.1, k
    # 64 one-layer segments recompute nothing, yet cost time: the checkpoint calls' own bookkeeping
    assert u[64]["recompute_forwards_counted"] == 0.0 and u[64]["recompute_forwards_measured"] > 0.3
    plain_forward = rows(sweep, "uniform")["none"]["measured"]["forward_ms"]
    assert u[64]["measured"]["forward_ms"] > 1.25 * plain_forward


def test_no_strategy_changes_the_gradients(sweep):
    for kind in ("blocks", "uniform"):
        for name, r in rows(sweep, kind).items():
            assert r["grads_bitwise_equal"] and r["grads_max_abs_diff"] == 0.0, (kind, name)


def test_rng_and_use_reentrant_on_the_gpu_torch(sweep):
    assert sweep["rng"]["preserve_rng_state=True"]["grads_bitwise_equal"] is True
    assert sweep["rng"]["preserve_rng_state=False"]["grads_bitwise_equal"] is False
    omitted = sweep["use_reentrant_omitted"]
    assert omitted["raised"] is None, "this torch raises when use_reentrant is omitted: update §6.5"
    assert [w["category"] for w in omitted["warnings"]] == ["UserWarning"]
    assert omitted["grad_fn"] == "CheckpointFunctionBackward"


def test_seed_demo_shows_nothing_and_why():
    d = load_capture("checkpoint_seed_demo")["data"]
    seed, params, activations = d["seed"], d["model"]["param_bytes_per_model"], d["predicted_activation_bytes"]
    assert seed["delta_peak_bytes"] == 0  # the seed's printed difference: not one byte
    # each absolute "peak" is what the process held at the reset (both models, both sets of
    # gradients, and whatever else was allocated), plus less than the step's own activations
    at_reset = seed["allocated_at_reset_plain_bytes"]
    assert at_reset == seed["allocated_at_reset_ckpt_bytes"] > 4 * params
    added = seed["peak_plain_bytes"] - at_reset
    assert added == seed["peak_ckpt_bytes"] - at_reset < activations
    # above the persistent baseline, both variants peak at the same byte: one set of gradients and a little
    plain, ckpt = d["measured"]["plain"], d["measured"]["ckpt"]
    assert plain["peak_bytes"] == ckpt["peak_bytes"]
    assert params < plain["peak_bytes"] < params + activations
    assert d["counted"]["plain"]["held_bytes"] == activations < 0.01 * params
    assert d["counted"]["ckpt"]["held_bytes"] == d["model"]["batch"] * d["model"]["d"] * 4  # the output
    # time: a recomputed forward costs something, less than a step; the seed's timer overstates it
    event_ratio = ckpt["step_ms"] / plain["step_ms"]
    assert 1 < event_ratio < 2
    assert event_ratio < seed["avg_step_time_ckpt_s"] / seed["avg_step_time_plain_s"]
    # why: the seed warmed up the plain model only, whose wall-clock average agrees with the events
    assert abs(seed["avg_step_time_plain_s"] * 1000 / plain["step_ms"] - 1) < 0.25
    assert seed["avg_step_time_ckpt_s"] * 1000 / ckpt["step_ms"] > 1.25


def test_activation_breakdown_is_the_prediction_to_the_byte_and_activations_dominate():
    d = load_capture("activation_breakdown")["data"]
    D = d["model"]["d"]
    for row in d["by_tokens"]:
        m, p = row["measured"], row["predicted"]
        for family in ("params", "grads", "adamw_state", "activations"):
            assert m[family] == p[family], (row["tokens"], family)
        assert m["activations"] == row["counted_activations"], row["tokens"]
        # the step's peak: the optimizer step (5 × 4P: params, grads, moments, foreach's copy) or
        # the start of backward (params and every activation), whichever is larger; plus the batch
        batch = row["tokens"] * D * 4
        step_bound, backward_bound = 5 * p["params"] + batch, p["params"] + p["activations"] + batch
        if step_bound > backward_bound:
            assert m["step_peak_above_start"] == step_bound, row["tokens"]
        else:
            assert backward_bound < m["step_peak_above_start"] < 1.05 * backward_bound, row["tokens"]
    first, last = d["by_tokens"][0], d["by_tokens"][-1]
    assert last["measured"]["activations"] * first["tokens"] == first["measured"]["activations"] * last["tokens"]
    m = last["measured"]
    assert m["activations"] > m["params"] + m["grads"] + m["adamw_state"]
    m = first["measured"]
    assert m["activations"] < m["params"] + m["grads"] + m["adamw_state"]
