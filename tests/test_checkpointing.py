"""Activation checkpointing (docs/checkpointing.md): the counter, the strategies' memory and
FLOPs against their formulas, gradient equality, the torch API facts the page states, and the
three examples at smoke size on the CPU."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils import checkpoint as ckpt

from snippets.activations import SavedActivations
from snippets.checkpointing import (
    DeepMLP,
    block_stack,
    count_step,
    forward_calls,
    gradients,
    loss_of,
    no_checkpoint,
    one_checkpoint,
    per_block,
    segments,
    selective,
)
from snippets.live_bytes import LiveBytes
from snippets.transformer_block import predicted_recompute, transformer_stack

D, N, T = 8, 8, 64
A_BYTES = T * D * 4  # one d-wide activation
BLOCK_BYTES = (10 * D + 2) * T * 4  # what one MLPBlock keeps for backward


@pytest.fixture(scope="module")
def blocks():
    torch.manual_seed(0)
    return block_stack(D, N)


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.randn(T, D)


@pytest.fixture(scope="module")
def counts(blocks, x):
    strategies = {"none": no_checkpoint, "one": one_checkpoint, "per block": per_block, "selective": selective,
                  **{f"segments={k}": segments(k) for k in (1, 2, 4, 8)}}
    return {name: count_step(blocks, x, forward) for name, forward in strategies.items()}


# --- LiveBytes --------------------------------------------------------------------------------

@pytest.mark.claim("`LiveBytes` counts every new storage until it is freed; views and in-place "
                   "results cost nothing", page="checkpointing.md#counting-live-bytes-on-a-cpu")
def test_live_bytes_counts_new_storages_only_and_forgets_freed_ones():
    before = torch.randn(10)
    with LiveBytes() as live:
        y = before + 1  # 40 new bytes
        views = y.view(2, 5), y.mul_(2), before.view(5, 2)  # views and in-place: nothing new
        assert live.live == 40
        z = torch.empty(100)
        assert (live.live, live.peak) == (440, 440)
        del z
        assert (live.live, live.peak) == (40, 440)
    del y, views
    assert live.live == 0


def test_live_bytes_counts_every_output_of_an_op_and_temporaries_in_the_peak():
    with LiveBytes() as live:
        values, indices = torch.randn(6, 4).max(dim=1)  # the randn input is a temporary
    assert live.live == 6 * 4 + 6 * 8  # fp32 values, int64 indices
    assert live.peak == 6 * 4 * 4 + 6 * 4 + 6 * 8


# --- memory: the page's formulas ---------------------------------------------------------------

@pytest.mark.claim("Forward leaves nA unchecked, na per block, a with one checkpoint and (k − 1)a "
                   "+ (n/k)A with k segments", page="checkpointing.md#what-checkpointing-does")
def test_held_bytes_follow_the_formulas(counts):
    assert counts["none"]["held_bytes"] == N * BLOCK_BYTES
    assert counts["one"]["held_bytes"] == A_BYTES  # only the output
    assert counts["per block"]["held_bytes"] == N * A_BYTES
    assert counts["selective"]["held_bytes"] == N * 6 * A_BYTES  # input + two matmul outputs (4a + a)
    for k in (1, 2, 4, 8):  # k - 1 checkpointed segment outputs + the unchecked last segment
        assert counts[f"segments={k}"]["held_bytes"] == (k - 1) * A_BYTES + N // k * BLOCK_BYTES


@pytest.mark.claim("One checkpoint around everything leaves the blocks' peak unmoved and trims a "
                   "chain's by two activations (20a → 18a)",
                   page="checkpointing.md#one-checkpoint-around-everything")
def test_one_checkpoint_around_everything_trims_exactly_what_the_loss_backward_holds(counts, x):
    """The page's exact effect (issue 8, item 17): on the blocks, whose peak
    sits inside the last block's backward in both runs, the counted peak does
    not move; on a uniform chain the unchecked run peaks in the loss's
    backward, whose temporaries meet every activation only there: 20a -> 18a
    for 16 layers, two activations, whatever the depth (O(1/n))."""
    assert counts["one"]["max_live_bytes"] == counts["none"]["max_live_bytes"]
    assert counts["segments=1"] == counts["none"]  # one segment checkpoints nothing
    for depth in (4, 8):
        torch.manual_seed(0)
        mlp = DeepMLP(d=D, depth=depth).seq  # 2 * depth layers, each keeping one a
        plain, once = (count_step(mlp, x, f)["max_live_bytes"] for f in (no_checkpoint, one_checkpoint))
        assert plain - once == 2 * A_BYTES, depth
        assert (plain - 4 * 2) // A_BYTES == 2 * depth + 4  # 20a at 16 layers (and the loss's scalars)


@pytest.mark.claim("Counted, per block has the lowest peak, below selective, below none",
                   page="checkpointing.md#the-counts")
def test_orderings_the_page_states(counts):
    held = {name: c["held_bytes"] for name, c in counts.items()}
    assert held["one"] < held["per block"] < held["segments=8"] < held["segments=4"] < held["segments=2"] < held["none"]
    assert held["per block"] < held["selective"] < held["none"]
    peak = {name: c["max_live_bytes"] for name, c in counts.items()}
    assert peak["per block"] == min(peak.values())
    assert peak["per block"] < peak["selective"] < peak["none"]


@pytest.mark.claim("On equal layers the bytes held are a U in the segment count with its floor at "
                   "√n", page="checkpointing.md#chen-sqrt-n")
def test_uniform_stack_is_u_shaped_with_its_floor_at_sqrt_n(x):
    torch.manual_seed(0)
    mlp = DeepMLP(d=D, depth=8).seq  # 16 layers, each keeping one T x d tensor
    ks = (1, 2, 4, 8, 16)
    held = {k: count_step(mlp, x, segments(k))["held_bytes"] for k in ks}
    assert all(held[k] == (k - 1 + 16 // k) * A_BYTES for k in ks)
    assert min(held, key=held.get) == math.isqrt(16)
    assert held[1] == held[16]


@pytest.mark.claim("`SavedActivations` sees only what autograd saves, not what a selective "
                   "checkpoint caches", page="checkpointing.md#counting-live-bytes-on-a-cpu")
def test_saved_activations_misses_the_selective_cache(blocks, x, counts):
    with SavedActivations(blocks) as saved:
        selective(blocks, x)
    assert saved.nbytes == N * A_BYTES < counts["selective"]["held_bytes"]


# --- compute -----------------------------------------------------------------------------------

def recompute_forwards(count, none):
    return (count["step_flops"] - none["step_flops"]) / none["forward_flops"]


@pytest.mark.claim("Per block recomputes half a forward, one checkpoint all but the last "
                   "down-projection, selective no matmul",
                   page="checkpointing.md#what-the-recompute-costs")
def test_recompute_cost_in_forwards(counts):
    none = counts["none"]
    assert recompute_forwards(counts["per block"], none) == 0.5  # early stop skips each down-projection
    assert recompute_forwards(counts["one"], none) == (N - 0.5) / N
    assert recompute_forwards(counts["selective"], none) == 0.0
    for k in (2, 4, 8):
        assert recompute_forwards(counts[f"segments={k}"], none) == (k - 1) * (N // k - 0.5) / N


@pytest.mark.claim("Without early stop, per block recomputes a whole forward",
                   page="checkpointing.md#what-the-recompute-costs")
def test_without_early_stop_per_block_recomputes_a_whole_forward(blocks, x, counts):
    with ckpt.set_checkpoint_early_stop(False):
        full = count_step(blocks, x, per_block)
    assert recompute_forwards(full, counts["none"]) == 1.0


@pytest.mark.claim("On a transformer block, per block with early stop reruns every matmul but the "
                   "down-projection: (16d² + 4sd)/(24d² + 4sd) of a forward, about two thirds",
                   page="checkpointing.md#a-transformer-block")
@pytest.mark.parametrize("d, s, heads, depth", [(32, 8, 2, 2), (64, 16, 4, 3), (64, 64, 4, 2),
                                                (128, 16, 8, 1)])
def test_per_block_on_a_transformer_block_reruns_all_but_the_down_projection(d, s, heads, depth):
    torch.manual_seed(0)
    layers = transformer_stack(d, heads, depth)
    tokens = torch.randn(2, s, d)
    plain = count_step(layers, tokens, no_checkpoint)
    # the forward's matmuls, by hand: 24d² a token for the projections, 4sd for attention
    assert plain["forward_flops"] == depth * 2 * s * 2 * (12 * d * d + 2 * s * d)
    assert plain["step_flops"] == 3 * plain["forward_flops"]  # backward: two matmuls per matmul
    rerun = recompute_forwards(count_step(layers, tokens, per_block), plain)
    assert rerun == pytest.approx(predicted_recompute(d, s), rel=1e-12)
    assert 2 / 3 < rerun < 1
    if s * 4 <= d:
        assert rerun == pytest.approx(2 / 3, abs=0.02)  # "about two thirds" where the projections dominate
    with ckpt.set_checkpoint_early_stop(False):
        assert recompute_forwards(count_step(layers, tokens, per_block), plain) == 1.0  # the rule of thumb


@pytest.mark.claim("Early stop skips exactly one matmul per transformer block: the down-projection's "
                   "forward never finishes in the recompute", page="checkpointing.md#a-transformer-block")
def test_early_stop_skips_only_the_down_projection_of_a_transformer_block():
    """The ops the recompute runs, by the Linear layers whose forward returns: every one twice
    (forward and rerun) except the down-projection, whose rerun ends when its input is saved."""
    torch.manual_seed(0)
    layers = transformer_stack(32, 2, 3)
    finished: dict[str, int] = {}
    handles = [module.register_forward_hook(
                   lambda module, args, out, name=name: finished.__setitem__(name, finished.get(name, 0) + 1))
               for name, module in layers.named_modules() if isinstance(module, nn.Linear)]
    try:
        loss_of(per_block(layers, torch.randn(2, 8, 32))).backward()
    finally:
        for handle in handles:
            handle.remove()
    assert finished == {f"{i}.{name}": 1 if name == "down" else 2
                        for i in range(3) for name in ("qkv", "proj", "up", "down")}


@pytest.mark.claim("A step is three forwards of matmul FLOPs, so a whole rerun forward is at most about "
                   "33 % more compute", page="checkpointing.md#a-transformer-block")
def test_a_step_is_three_forwards_so_one_extra_forward_is_a_third_more(counts):
    assert counts["none"]["step_flops"] == 3 * counts["none"]["forward_flops"]
    assert round(100 * counts["none"]["forward_flops"] / counts["none"]["step_flops"]) == 33


@pytest.mark.claim("Every strategy gives bitwise the unchecked gradients",
                   page="checkpointing.md#how-to-choose")
def test_every_strategy_gives_bitwise_the_same_gradients(blocks, x):
    reference = gradients(blocks, x, no_checkpoint)
    for forward in (one_checkpoint, per_block, selective, segments(2), segments(8)):
        assert all(torch.equal(g, r) for g, r in zip(gradients(blocks, x, forward), reference)), forward


@pytest.mark.claim("`checkpoint_sequential` checkpoints every segment but the last",
                   page="checkpointing.md#chen-sqrt-n")
def test_checkpoint_sequential_leaves_its_last_segment_unchecked(blocks, x):
    assert forward_calls(blocks, x, segments(4)) == [2] * 6 + [1] * 2
    assert forward_calls(blocks, x, segments(N)) == [2] * (N - 1) + [1]
    assert forward_calls(blocks, x, segments(1)) == [1] * N
    assert forward_calls(blocks, x, per_block) == [2] * N


# --- the torch API facts the page states (torch 2.13) -----------------------------------------

@pytest.mark.claim("Leaving out `use_reentrant` warns, then takes the reentrant path",
                   page="checkpointing.md#pass-use_reentrantfalse")
def test_omitting_use_reentrant_warns_and_falls_back_to_the_reentrant_variant(blocks):
    h = torch.randn(2, D, requires_grad=True)
    with pytest.warns(UserWarning, match="use_reentrant parameter should be passed explicitly"):
        out = ckpt.checkpoint(blocks[0], h)
    assert type(out.grad_fn).__name__ == "CheckpointFunctionBackward"
    with pytest.warns(UserWarning, match="use_reentrant parameter should be passed explicitly"):
        ckpt.checkpoint_sequential(blocks, 2, h)


@pytest.mark.claim("Reentrant, with no input requiring grad, the region's parameters get no "
                   "gradient, with only a warning", page="checkpointing.md#pass-use_reentrantfalse")
def test_reentrant_with_no_input_requiring_grad_leaves_gradients_none(blocks, x):
    blocks.zero_grad(set_to_none=True)
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True"):
        h = ckpt.checkpoint(blocks[0], x, use_reentrant=True)
    assert not h.requires_grad
    loss_of(blocks[1:](h)).backward()
    assert all(p.grad is None for p in blocks[0].parameters())
    assert all(p.grad is not None for p in blocks[1].parameters())
    blocks.zero_grad(set_to_none=True)


@pytest.mark.claim("The reentrant variant refuses a selective policy",
                   page="checkpointing.md#pass-use_reentrantfalse")
def test_reentrant_refuses_a_context_fn(blocks, x):
    from snippets.checkpointing import save_matmuls_contexts

    with pytest.raises(ValueError, match="only supported when use_reentrant=False"):
        ckpt.checkpoint(blocks[0], x.clone().requires_grad_(), use_reentrant=True, context_fn=save_matmuls_contexts)


@pytest.mark.claim("Selective activation checkpointing is public in `torch.utils.checkpoint`",
                   page="checkpointing.md#selective-checkpointing")
def test_selective_checkpointing_is_public():
    for name in ("create_selective_checkpoint_contexts", "CheckpointPolicy", "SelectiveCheckpointContext"):
        assert name in ckpt.__all__


@pytest.mark.claim("With dropout in a checkpoint the gradients match only with "
                   "`preserve_rng_state=True`", page="checkpointing.md#dropout-and-the-rng-state")
@pytest.mark.parametrize("preserve", [True, False])
def test_dropout_gradients_match_only_when_rng_state_is_preserved(preserve):
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(0.5), nn.Linear(32, 8))
    x = torch.randn(16, 8)

    def grads(forward):
        block.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        out = forward(x)
        loss_of(out).backward()
        return out.detach(), [p.grad.clone() for p in block.parameters()]

    plain_out, plain = grads(block)
    out, checked = grads(lambda t: ckpt.checkpoint(block, t, use_reentrant=False, preserve_rng_state=preserve))
    assert torch.equal(out, plain_out)  # the forward pass draws the same mask either way
    assert all(torch.equal(a, b) for a, b in zip(checked, plain)) is preserve


# --- the examples at smoke size ---------------------------------------------------------------

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sweep_data():
    from tests.smoke import smoke_data

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return smoke_data("checkpointing")


def test_checkpointing_example_counts_follow_the_formulas(sweep_data):
    assert sweep_data["reduction_scratch_bytes"] is None  # no allocator on a CPU
    for kind in ("blocks", "blocks_no_down_bias", "uniform"):
        data = sweep_data[kind]
        a, per_layer, n_layers = data["a_bytes"], data["per_layer_bytes"], data["model"]["layers"]
        rows = {r["name"]: r for r in data["strategies"]}
        assert rows["none"]["counted"]["held_bytes"] == n_layers * per_layer
        assert rows["one checkpoint"]["counted"]["held_bytes"] == a
        # the peak is not lowered, but for the loss's own backward temporaries on the uniform stack (2a)
        lower_by = rows["none"]["counted"]["max_live_bytes"] - rows["one checkpoint"]["counted"]["max_live_bytes"]
        assert lower_by == (2 * a if kind == "uniform" else 0), kind
        for r in data["strategies"]:
            if r["segments"]:
                k = r["segments"]
                assert r["counted"]["held_bytes"] == (k - 1) * a + n_layers // k * per_layer, (kind, k)
            assert r["grads_bitwise_equal"] and r["grads_max_abs_diff"] == 0.0, (kind, r["name"])
            assert r["measured"]["held_bytes"] is None and r["measured"]["peak_bytes"] is None
            assert r["measured"]["step_ms"] > 0 and r["measured"]["forward_ms"] > 0
        if kind == "blocks_no_down_bias":
            assert [r["name"] for r in data["strategies"]] == [
                "none", "one checkpoint", f"segments={n_layers}", "per block"]
            assert data["model"]["params"] == sweep_data["blocks"]["model"]["params"] - n_layers * 8
        if kind == "blocks":
            assert rows["per block"]["counted"]["held_bytes"] == n_layers * a
            assert rows["selective"]["counted"]["held_bytes"] == n_layers * 6 * a
            assert rows["per block"]["recompute_forwards_counted"] == 0.5
            assert rows["selective"]["recompute_forwards_counted"] == 0.0


def test_checkpointing_example_records_rng_and_use_reentrant_facts(sweep_data):
    rng = sweep_data["rng"]
    assert rng["preserve_rng_state=True"]["grads_bitwise_equal"] is True
    assert rng["preserve_rng_state=False"]["grads_bitwise_equal"] is False
    omitted = sweep_data["use_reentrant_omitted"]
    assert omitted["raised"] is None and omitted["grad_fn"] == "CheckpointFunctionBackward"
    assert [w["category"] for w in omitted["warnings"]] == ["UserWarning"]


def test_seed_demo_example_at_smoke_size():
    from examples.checkpoint_seed_demo import SIZES
    from tests.smoke import smoke_data

    data = smoke_data("checkpoint_seed_demo")
    cfg = SIZES["smoke"]
    assert data["seed"]["peak_plain_bytes"] is None and data["seed"]["delta_peak_bytes"] is None
    assert data["seed"]["avg_step_time_plain_s"] > 0 and data["seed"]["avg_step_time_ckpt_s"] > 0
    assert data["counted"]["plain"]["held_bytes"] == data["predicted_activation_bytes"] == 2 * cfg["depth"] * cfg["batch"] * cfg["d"] * 4
    assert data["counted"]["ckpt"]["held_bytes"] == cfg["batch"] * cfg["d"] * 4  # the output alone
    assert data["counted"]["ckpt"]["max_live_bytes"] == data["counted"]["plain"]["max_live_bytes"]
    assert data["measured"]["plain"]["peak_bytes"] is None
    assert len(data["event_ratios"]) == cfg["rounds"] and all(r > 0 for r in data["event_ratios"])
    assert data["weights_copy_ms"] > 0


def test_activation_breakdown_example_at_smoke_size():
    from tests.smoke import smoke_data

    data = smoke_data("activation_breakdown")
    rows = data["by_tokens"]
    assert data["steps"] == 3
    for row in rows:
        assert row["counted_activations"] == row["predicted"]["activations"]
        assert row["measured"] is None and row["steps"] is None  # no allocator on a CPU
        assert row["step_counter_devices"] == ["cpu"]
    first, last = rows[0], rows[-1]
    assert last["counted_activations"] * first["tokens"] == first["counted_activations"] * last["tokens"]


def test_renderers_draw_every_table_figure_and_value_from_smoke_data(sweep_data):
    """The renderers on CPU data, with the allocator's fields filled from the
    counts (a drawing test: the numbers are stand-ins, not measurements)."""
    import copy

    from tests.smoke import smoke_data
    from examples.render import renderer, svg

    data = copy.deepcopy(sweep_data)
    for kind in ("blocks", "blocks_no_down_bias", "uniform"):
        for r in data[kind]["strategies"]:
            r["measured"].update(held_bytes=r["counted"]["held_bytes"], peak_bytes=r["counted"]["max_live_bytes"])
    data["reduction_scratch_bytes"] = 2 * data["blocks"]["a_bytes"]
    breakdown = smoke_data("activation_breakdown")
    for row in breakdown["by_tokens"]:
        p = row["predicted"]
        row["measured"] = {**p, "peak_first_step": 5 * p["params"], "peak_first_step_phase": "optimizer",
                           "peak_steady": 5 * p["params"] + p["activations"], "peak_steady_phase": "backward"}
    seed = smoke_data("checkpoint_seed_demo")
    seed["seed"].update(peak_plain_bytes=3, peak_ckpt_bytes=3, allocated_at_reset_plain_bytes=1,
                        allocated_at_reset_ckpt_bytes=1, delta_peak_bytes=0)
    for variant in ("plain", "ckpt"):
        seed["measured"][variant]["peak_bytes"] = seed["counted"][variant]["max_live_bytes"]
    for name, capture_data in (("checkpointing", data), ("activation_breakdown", breakdown),
                               ("checkpoint_seed_demo", seed)):
        module = renderer(name)
        capture = {"name": name, "data": capture_data}
        for draw in module.TABLES.values():
            assert draw(capture).count("\n|") >= 3, name
        for draw in getattr(module, "FIGURES", {}).values():
            chart = draw(capture)
            assert chart.figure.axes[0].has_data() and "<svg" in svg(chart.figure), name
        for item, value in module.VALUES.items():
            assert value(capture).strip(), (name, item)


def test_headline_table_shows_the_five_strategies_relative_to_none():
    """The headline table of docs/checkpointing.md: five rows, none at 100 % and ×1.00."""
    from examples.render import renderer
    from snippets.captures import load_capture

    module = renderer("checkpointing")
    capture = load_capture("checkpointing")
    table = module.headline(capture)
    body = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    best = module.best_segments(capture)["name"]
    assert [line.split(" | ")[0].removeprefix("| ") for line in body] == [
        "none", "one checkpoint", f"best segments ({best})", "per block", "selective"]
    assert " | 100% | " in body[0] and " | ×1.00 | " in body[0]


def test_breakdown_table_claims_byte_agreement_only_when_it_holds():
    import copy

    from examples.render import renderer
    from snippets.captures import load_capture

    module = renderer("activation_breakdown")
    capture = load_capture("activation_breakdown")
    assert "to the byte" in module.families(capture)
    changed = copy.deepcopy(capture)
    changed["data"]["by_tokens"][0]["measured"]["grads"] += 512
    table = module.families(changed)
    assert "to the byte" not in table and "differs from its prediction" in table


def test_time_figure_shows_both_models_the_page_discusses(sweep_data):
    """Issue 8, item 20: the page's time fold argues about the equal layers'
    n one-layer segments, so the figure shows that run, beside the blocks."""
    from examples.render import renderer

    capture = {"name": "checkpointing", "data": sweep_data}
    chart = renderer("checkpointing").FIGURES["time"](capture)
    panels = [ax for ax in chart.figure.axes if ax.has_data()]
    labels = [[t.get_text() for t in ax.get_yticklabels()] for ax in panels]
    n = sweep_data["uniform"]["model"]["layers"]
    assert len(panels) == 2
    assert "per block" in labels[0] and f"segments={n}" in labels[1]
    assert f"{n} one-layer segments" in chart.alt
