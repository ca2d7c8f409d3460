"""Physical consistency of the committed GPU captures: what was measured must agree with what
was counted, within the allocator's known rounding, and orderings the pages state must hold."""

from __future__ import annotations

import pytest

from snippets.captures import load_capture
from snippets.cuda_memory import ALLOCATOR_BLOCK


@pytest.fixture(scope="module")
def optimizer_state():
    return load_capture("optimizer_state")["data"]["optimizers"]


def test_counted_state_is_the_formula_plus_step_counters(optimizer_state):
    for name, r in optimizer_state.items():
        counted = sum(r["state_bytes_by_key"].values())
        steps = 4 * r["n_param_tensors"] if "step" in r["state_bytes_by_key"] else 0
        assert counted == r["predicted_state_bytes"] + steps, name


def test_allocator_growth_is_the_state_rounded_to_512_byte_blocks(optimizer_state):
    for name, r in optimizer_state.items():
        assert r["allocated_growth_bytes"] == r["allocator_prediction_bytes"], name
        slack = r["allocated_growth_bytes"] - sum(v for k, v in r["state_bytes_by_key"].items() if r["step_device"] == "cuda" or k != "step")
        tensors = r["n_param_tensors"] * (len(r["state_bytes_by_key"]) - (r["step_device"] == "cpu"))
        assert 0 <= slack < ALLOCATOR_BLOCK * max(tensors, 1), name


def test_step_counter_lives_on_the_gpu_only_for_fused_and_capturable(optimizer_state):
    for name, r in optimizer_state.items():
        if "step" in r["state_bytes_by_key"]:
            assert r["step_device"] == ("cuda" if ("fused" in name or "capturable" in name) else "cpu"), name


def test_peak_during_the_first_step_is_at_least_the_state(optimizer_state):
    for name, r in optimizer_state.items():
        assert r["step_peak_extra_bytes"] >= r["allocated_growth_bytes"], name


def test_zero_grad_releases_exactly_the_gradients():
    d = load_capture("zero_grad")["data"]
    a = d["allocated"]
    assert a["after_backward"] - a["baseline"] == d["allocator_prediction_grads_bytes"]
    assert a["after_zero_grad_set_to_none"] == a["baseline"]
    assert a["after_zero_grad_zeros"] == a["after_backward"]
    assert a["baseline"] >= a["before_first_iteration"]  # workspaces created by the first iteration stay


@pytest.fixture(scope="module")
def optimizer_step():
    d = load_capture("optimizer_step")["data"]
    return d, {(r["optimizer"], r["implementation"]): r for r in d["results"]}


def test_no_step_beats_the_copy_roofline(optimizer_step):
    d, results = optimizer_step
    for key, r in results.items():
        assert r["GBps"] < d["copy"]["GBps"], key


def test_fused_is_fastest_and_the_for_loop_slowest(optimizer_step):
    d, results = optimizer_step
    for optimizer in {o for o, _ in results}:
        ms = {impl: results[(optimizer, impl)]["ms"] for impl in ("for-loop", "foreach", "fused")}
        assert ms["fused"] < ms["foreach"] < ms["for-loop"], (optimizer, ms)


def test_foreach_adam_needs_about_one_params_worth_of_temporaries(optimizer_step):
    d, results = optimizer_step
    params = d["params"]["bytes"]
    for optimizer in ("Adam", "AdamW"):
        assert 0.9 < results[(optimizer, "foreach")]["step_peak_extra_bytes"] / params < 1.1
        assert results[(optimizer, "fused")]["step_peak_extra_bytes"] < 0.01 * params
