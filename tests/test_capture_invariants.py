"""Physical consistency of the committed GPU captures: what was measured must agree with what
was counted, within the allocator's known rounding, and orderings the pages state must hold."""

from __future__ import annotations

import pytest

from snippets.captures import load_capture
from snippets.cuda_memory import ALLOCATOR_BLOCK
from snippets.step_peak import for_loop_adam_extra_bytes


@pytest.fixture(scope="module")
def optimizer_state():
    return load_capture("optimizer_state")["data"]["optimizers"]


@pytest.mark.claim("On the GPU the counted state is the 4kP formula plus 4 bytes of `step` per "
                   "tensor for the Adam family",
                   page="adam.md#measured-on-the-gpu", capture="optimizer_state")
def test_counted_state_is_the_formula_plus_step_counters(optimizer_state):
    for name, r in optimizer_state.items():
        counted = sum(r["state_bytes_by_key"].values())
        steps = 4 * r["n_param_tensors"] if "step" in r["state_bytes_by_key"] else 0
        assert counted == r["predicted_state_bytes"] + steps, name


@pytest.mark.claim("The allocator's growth across the first step is the state rounded up to "
                   "512-byte blocks",
                   page="sgd-momentum.md#measured-on-the-gpu", capture="optimizer_state")
def test_allocator_growth_is_the_state_rounded_to_512_byte_blocks(optimizer_state):
    for name, r in optimizer_state.items():
        assert r["allocated_growth_bytes"] == r["allocator_prediction_bytes"], name
        slack = r["allocated_growth_bytes"] - sum(v for k, v in r["state_bytes_by_key"].items() if r["step_device"] == "cuda" or k != "step")
        tensors = r["n_param_tensors"] * (len(r["state_bytes_by_key"]) - (r["step_device"] == "cpu"))
        assert 0 <= slack < ALLOCATOR_BLOCK * max(tensors, 1), name


@pytest.mark.claim("`step` lives on the GPU only with `fused=True` or `capturable=True`",
                   page="adam.md#where-step-lives", capture="optimizer_state")
def test_step_counter_lives_on_the_gpu_only_for_fused_and_capturable(optimizer_state):
    for name, r in optimizer_state.items():
        if "step" in r["state_bytes_by_key"]:
            assert r["step_device"] == ("cuda" if ("fused" in name or "capturable" in name) else "cpu"), name


def test_peak_during_the_first_step_is_at_least_the_state(optimizer_state):
    for name, r in optimizer_state.items():
        assert r["step_peak_extra_bytes"] >= r["allocated_growth_bytes"], name


@pytest.mark.claim("`zero_grad()` gives back every gradient block the backward took; kept zeros "
                   "hold them all", page="memory.md#what-the-gpu-adds", capture="zero_grad")
def test_zero_grad_releases_exactly_the_gradients():
    d = load_capture("zero_grad")["data"]
    a = d["allocated"]
    assert a["after_backward"] - a["baseline"] == d["allocator_prediction_grads_bytes"]
    assert a["after_zero_grad_set_to_none"] == a["baseline"]
    assert a["after_zero_grad_zeros"] == a["after_backward"]
    assert a["baseline"] >= a["before_first_iteration"]  # workspaces created by the first iteration stay


# ---- optimizer_step (chapter 3b) -----------------------------------------

OPTIMIZERS = ("SGD momentum", "Adam", "AdamW")
LAYOUTS = ("mixed", "large")


@pytest.fixture(scope="module")
def optimizer_step():
    d = load_capture("optimizer_step")["data"]
    results = {(r["layout"], r["optimizer"], r["implementation"]): r
               for r in d["results"]}
    return d, results


@pytest.mark.claim("No implementation of a step reaches the rate of a plain device-to-device copy",
                   page="optimizer-step.md#measured-on-the-gpu-two-layouts",
                   capture="optimizer_step")
def test_no_step_beats_the_copy_roofline(optimizer_step):
    d, results = optimizer_step
    for key, r in results.items():
        assert r["GBps"] < d["copy"]["GBps"], key


@pytest.mark.claim("Over many small tensors fused beats foreach, and foreach beats the for-loop "
                   "by more than 1.5×",
                   page="optimizer-step.md#measured-on-the-gpu-two-layouts",
                   capture="optimizer_step")
def test_many_small_tensors_fused_beats_foreach_beats_the_for_loop(
        optimizer_step):
    """Launch-bound: the for-loop pays for a dozen launches per tensor."""
    _, results = optimizer_step
    for o in OPTIMIZERS:
        ms = {i: results[("mixed", o, i)]["ms"]
              for i in ("for-loop", "foreach", "fused")}
        assert ms["fused"] < ms["foreach"] < ms["for-loop"], (o, ms)
        assert ms["for-loop"] > 1.5 * ms["foreach"], (o, ms)


@pytest.mark.claim("Over few large tensors the for-loop takes about as long as foreach (within a "
                   "quarter)",
                   page="optimizer-step.md#measured-on-the-gpu-two-layouts",
                   capture="optimizer_step")
def test_few_large_tensors_the_for_loop_is_as_fast_as_foreach(
        optimizer_step):
    """Bandwidth-bound: both make the same passes over memory, so launches
    no longer decide; within a quarter either way."""
    _, results = optimizer_step
    for o in OPTIMIZERS:
        loop = results[("large", o, "for-loop")]["ms"]
        foreach = results[("large", o, "foreach")]["ms"]
        assert 0.75 < loop / foreach < 1.25, (o, loop, foreach)


@pytest.mark.claim("Fused is the fastest in both layouts, at more than half the copy's rate",
                   page="optimizer-step.md#measured-on-the-gpu-two-layouts",
                   capture="optimizer_step")
def test_fused_is_fastest_in_both_layouts_above_half_the_copy(
        optimizer_step):
    d, results = optimizer_step
    for layout in LAYOUTS:
        for o in OPTIMIZERS:
            fused = results[(layout, o, "fused")]
            others = [results[(layout, o, i)]["ms"]
                      for i in ("for-loop", "foreach")]
            assert fused["ms"] < min(others), (layout, o)
            assert fused["GBps"] > 0.5 * d["copy"]["GBps"], (layout, o)


@pytest.mark.claim("At its peak a foreach Adam step needs one extra copy of the parameters; fused "
                   "and SGD with momentum (no weight decay, Nesterov or maximize) need nothing",
                   page="optimizer-step.md#the-extra-peak-of-a-step", capture="optimizer_step")
def test_extra_peak_foreach_is_the_params_fused_and_sgd_nothing(
        optimizer_step):
    d, results = optimizer_step
    for layout in LAYOUTS:
        params = d["layouts"][layout]["bytes"]
        for o in OPTIMIZERS:
            extra = {i: results[(layout, o, i)]["step_peak_extra_bytes"]
                     for i in ("for-loop", "foreach", "fused", "default")}
            assert extra["fused"] == 0, (layout, o)
            assert extra["default"] == extra["foreach"], (layout, o)
            if o == "SGD momentum":  # in place in every implementation
                assert extra["for-loop"] == extra["foreach"] == 0, layout
            else:
                assert extra["foreach"] == params, (layout, o)


@pytest.mark.claim("The for-loop's GPU peak is the `denom` prediction from the tensor sizes, to "
                   "the byte",
                   page="optimizer-step.md#the-extra-peak-of-a-step", capture="optimizer_step")
def test_for_loop_extra_peak_is_the_denom_mechanism_to_the_byte(
        optimizer_step):
    """The previous tensor's denom + this tensor's sqrt and quotient
    (snippets/step_peak.py, counted on the CPU in tests/test_optimizer_step.py)
    predict the GPU allocator's peak exactly (all sizes are multiples of
    512 bytes, so the allocator adds no rounding)."""
    d, results = optimizer_step
    for layout in LAYOUTS:
        sizes = d["layouts"][layout]["tensor_bytes"]
        assert all(s % ALLOCATOR_BLOCK == 0 for s in sizes)
        for o in ("Adam", "AdamW"):  # Adam here has no L2 weight_decay
            extra = results[(layout, o, "for-loop")]["step_peak_extra_bytes"]
            assert extra == for_loop_adam_extra_bytes(sizes), (layout, o)


@pytest.mark.claim("With no flag every optimizer runs foreach on the GPU",
                   page="optimizer-step.md#deeper", capture="optimizer_step")
def test_default_is_foreach_on_the_gpu(optimizer_step):
    _, results = optimizer_step
    for layout in LAYOUTS:
        for o in OPTIMIZERS:
            ratio = (results[(layout, o, "default")]["ms"]
                     / results[(layout, o, "foreach")]["ms"])
            assert 0.8 < ratio < 1.25, (layout, o, ratio)


@pytest.mark.claim("On the GPU a step `GradScaler` skips leaves fused SGD a momentum buffer; "
                   "fused Adam and AdamW match stock",
                   page="optimizer-step.md#fused-sgd-under-a-gradscaler-a-skipped-step-that-leaves-state",
                   capture="optimizer_step")
def test_a_skipped_step_leaves_fused_sgd_a_momentum_buffer(optimizer_step):
    d, _ = optimizer_step
    skip = {(r["optimizer"], r["implementation"]): r for r in d["scaler_skip"]}
    assert skip[("SGD momentum", "stock")]["state_after_skip"] == []
    assert skip[("SGD momentum", "fused")]["state_after_skip"] == [
        "momentum_buffer"]
    assert skip[("SGD momentum", "stock")]["theta"] == [1.0, 0.9, 0.71]
    for o in ("Adam", "AdamW"):  # fused Adam honours found_inf
        assert skip[(o, "fused")]["theta"] == skip[(o, "stock")]["theta"], o
