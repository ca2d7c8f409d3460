"""Gradient accumulation: the canonical loop, its equivalence with the big batch, and every gotcha
the chapter shows (docs/grad-accumulation.md), checked beyond the page's own examples."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.grad_accumulation import SIZES, predicted_activation_bytes
from snippets.accounting import count_params
from snippets.accumulation import (
    accumulate_gradients, accumulation_step, gradients, max_abs_difference, max_grad_difference,
)
from snippets.amp_accumulation import amp_accumulation_step, relative_grad_error
from snippets.dropout_masks import PresampledDropout, draw_masks
from snippets.token_loss import (
    IGNORE_INDEX, mean_of_means_backward, token_count, token_losses_sum, token_weighted_backward,
)

CPU = torch.device("cpu")


def noise(model_grads: list[torch.Tensor], dtype=torch.float32, units: int = 16) -> float:
    """The page's rounding-noise bound: `units` epsilons at the largest gradient."""
    return units * torch.finfo(dtype).eps * max(g.abs().max().item() for g in model_grads)


def big_batch_grads(model: nn.Module, loss_fn, inputs, targets) -> list[torch.Tensor]:
    big = copy.deepcopy(model)
    loss_fn(big(inputs), targets).backward()
    return gradients(big)


@pytest.fixture
def mlp_and_data():
    torch.manual_seed(123)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    return model, torch.randn(64, 16), torch.randn(64, 4)


# ---- the canonical loop and the proof ---------------------------------------------------------

@pytest.mark.claim("Accumulated gradients equal the big batch's within float32 rounding for every "
                   "K that splits the batch of 64 into equal micro-batches (1, 2, 4, …, 64)",
                   page="grad-accumulation.md#the-proof-one-big-batch-against-k-micro-batches")
@pytest.mark.parametrize("K", [K for K in range(1, 65) if 64 % K == 0])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_accumulated_gradient_is_the_big_batch_gradient(mlp_and_data, K, loss):
    model, X, T = mlp_and_data
    loss_fn, targets = (nn.MSELoss(), T) if loss == "mse" else (F.cross_entropy, T.argmax(dim=1))
    expected = big_batch_grads(model, loss_fn, X, targets)
    diff = max_grad_difference(model, loss_fn, X, targets, K)
    assert diff < noise(expected), (K, diff)
    if K == 1:
        assert diff == 0.0  # the very same computation


@pytest.mark.claim("The leftover difference is rounding: in float64 it shrinks with ε",
                   page="grad-accumulation.md#the-proof-one-big-batch-against-k-micro-batches")
def test_the_difference_is_rounding_it_shrinks_with_epsilon(mlp_and_data):
    model, X, T = mlp_and_data
    model64 = copy.deepcopy(model).double()
    expected = big_batch_grads(model64, nn.MSELoss(), X.double(), T.double())
    for K in (2, 8, 64):
        assert max_grad_difference(model64, nn.MSELoss(), X.double(), T.double(), K) < noise(expected, torch.float64)


@pytest.mark.claim("Without the /K every gradient comes out K times too large: bitwise K times the "
                   "canonical loop's, K times the big batch's within rounding",
                   page="grad-accumulation.md#a-forgotten-k")
@pytest.mark.parametrize("K", [2, 4, 8, 64])
def test_without_dividing_by_k_the_gradient_is_k_times_too_large(mlp_and_data, K):
    model, X, T = mlp_and_data
    expected = big_batch_grads(model, nn.MSELoss(), X, T)
    summed, canonical = copy.deepcopy(model), copy.deepcopy(model)
    for x, t in zip(X.split(64 // K), T.split(64 // K)):
        nn.MSELoss()(summed(x), t).backward()
    accumulate_gradients(canonical, nn.MSELoss(), X, T, K)
    # K a power of two: dividing the loss by K scales every number of the backward exactly
    assert all(torch.equal(K * c, s) for c, s in zip(gradients(canonical), gradients(summed)))
    assert max_abs_difference([K * g for g in expected], gradients(summed)) < K * noise(expected)
    assert max_abs_difference(expected, gradients(summed)) > 0.1  # and not the big batch's


def test_a_batch_that_does_not_split_evenly_is_refused(mlp_and_data):
    model, X, T = mlp_and_data
    with pytest.raises(ValueError, match="equal micro-batches"):
        accumulate_gradients(model, nn.MSELoss(), X[:60], T[:60], 8)


@pytest.mark.claim("The canonical loop (clear once, divide by K, step once) takes the big batch's "
                   "steps", page="grad-accumulation.md#the-canonical-loop")
def test_one_accumulation_step_equals_one_big_batch_step(mlp_and_data):
    model, X, T = mlp_and_data
    big, accumulated = copy.deepcopy(model), copy.deepcopy(model)
    for m, K in ((big, 1), (accumulated, 4)):
        optimizer = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):  # zero_grad inside the step: nothing leaks from one step into the next
            accumulation_step(m, optimizer, nn.MSELoss(), X, T, K)
    weights = [p.detach() for p in big.parameters()]
    assert max_abs_difference(weights, [p.detach() for p in accumulated.parameters()]) < 1e-6


@pytest.mark.claim("The optimizer's state advances once per effective batch, not per micro-batch",
                   page="grad-accumulation.md#the-canonical-loop")
def test_the_optimizer_counts_effective_batches_not_micro_batches(mlp_and_data):
    model, X, T = mlp_and_data
    optimizer = torch.optim.AdamW(model.parameters())
    accumulation_step(model, optimizer, nn.MSELoss(), X, T, 8)
    assert all(state["step"].item() == 1 for state in optimizer.state.values())


# ---- BatchNorm and dropout ---------------------------------------------------------------------

@pytest.mark.claim("BatchNorm in training mode breaks the equivalence; in eval mode it holds",
                   page="grad-accumulation.md#batchnorm")
def test_batchnorm_in_training_mode_breaks_the_equivalence_and_eval_mode_restores_it(mlp_and_data):
    _, X, T = mlp_and_data
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))
    expected = big_batch_grads(bn, nn.MSELoss(), X, T)
    assert max_grad_difference(bn, nn.MSELoss(), X, T, 4) > 1e3 * noise(expected)
    bn.eval()
    expected = big_batch_grads(bn, nn.MSELoss(), X, T)
    assert max_grad_difference(bn, nn.MSELoss(), X, T, 4) < noise(expected)


@pytest.mark.claim("Under accumulation BatchNorm's running statistics take K momentum updates a "
                   "step", page="grad-accumulation.md#batchnorm")
def test_batchnorm_running_statistics_take_k_momentum_updates(mlp_and_data):
    _, X, T = mlp_and_data
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32, momentum=0.1))
    accumulated = copy.deepcopy(bn)
    accumulate_gradients(accumulated, nn.MSELoss(), X, torch.zeros(64, 32), 4)
    with torch.no_grad():
        means = [bn[0](x).mean(dim=0) for x in X.split(16)]
    predicted = sum(0.1 * 0.9 ** (3 - k) * mu for k, mu in enumerate(means))
    assert accumulated[1].num_batches_tracked.item() == 4
    torch.testing.assert_close(accumulated[1].running_mean, predicted)


@pytest.mark.claim("Dropout draws other masks under accumulation; masks drawn once for the whole "
                   "batch match it", page="grad-accumulation.md#dropout")
def test_two_dropout_layers_draw_different_masks_and_presampled_masks_match(mlp_and_data):
    _, X, T = mlp_and_data
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 32), nn.ReLU(),
                          nn.Dropout(0.5), nn.Linear(32, 4))
    torch.manual_seed(0)
    expected = big_batch_grads(plain, nn.MSELoss(), X, T)
    assert max_grad_difference(plain, nn.MSELoss(), X, T, 4) > 1e3 * noise(expected)

    presampled = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), PresampledDropout(32, 0.5), nn.Linear(32, 32),
                               nn.ReLU(), PresampledDropout(32, 0.5), nn.Linear(32, 4))
    draw_masks(presampled, batch_size=64, seed=1)
    expected = big_batch_grads(presampled, nn.MSELoss(), X, T)
    for K in (2, 4, 8, 64):
        assert max_grad_difference(presampled, nn.MSELoss(), X, T, K) < noise(expected)


def test_presampled_dropout_is_inverted_dropout():
    layer = PresampledDropout(1000, p=0.25)
    layer.draw(8, torch.Generator().manual_seed(0))
    out = layer(torch.ones(8, 1000))
    assert set(out.unique().tolist()) == {0.0, torch.tensor(1 / 0.75).item()}  # kept units scaled by 1 / (1 - p)
    assert abs((out == 0).float().mean().item() - 0.25) < 0.02
    assert layer.next_row == 8
    layer.eval()
    x = torch.randn(3, 1000)
    assert layer(x) is x


# ---- token counts ------------------------------------------------------------------------------

def _language_model_batch(lengths: list[int]):
    torch.manual_seed(0)
    lm = nn.Sequential(nn.Embedding(16, 32), nn.Linear(32, 16))
    tokens = torch.randint(0, 16, (len(lengths), 8))
    labels = torch.randint(0, 16, (len(lengths), 8))
    for row, n in enumerate(lengths):
        labels[row, n:] = IGNORE_INDEX
    return lm, tokens, labels


@pytest.mark.claim("The summed token loss over the step's N is the big batch's; averaging "
                   "micro-batch token means is not", page="grad-accumulation.md#token-counts")
@pytest.mark.parametrize("lengths", [[8, 7, 2, 1], [1, 1, 8, 8], [3, 8, 5, 2, 8, 1]])
def test_token_weighted_loss_is_the_big_batch_token_mean_and_mean_of_means_is_not(lengths):
    lm, tokens, labels = _language_model_batch(lengths)
    big = copy.deepcopy(lm)
    big_loss = F.cross_entropy(big(tokens).flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
    big_loss.backward()
    expected = gradients(big)
    micro_batches = list(zip(tokens.split(2), labels.split(2)))

    right = copy.deepcopy(lm)
    assert token_weighted_backward(right, micro_batches) == pytest.approx(big_loss.item(), rel=1e-6)
    assert max_abs_difference(expected, gradients(right)) < noise(expected)

    wrong = copy.deepcopy(lm)
    counts = [token_count(l) for _, l in micro_batches]
    assert len(set(counts)) > 1  # the micro-batches do hold different numbers of tokens
    assert mean_of_means_backward(wrong, micro_batches) != pytest.approx(big_loss.item(), rel=1e-3)
    assert max_abs_difference(expected, gradients(wrong)) > 1e3 * noise(expected)


@pytest.mark.claim("Dividing by K is right when every micro-batch holds as many tokens",
                   page="grad-accumulation.md#token-counts")
def test_mean_of_means_is_right_when_every_micro_batch_holds_as_many_tokens():
    lm, tokens, labels = _language_model_batch([8, 1, 5, 4])  # 9 and 9 tokens
    micro_batches = list(zip(tokens.split(2), labels.split(2)))
    assert [token_count(l) for _, l in micro_batches] == [9, 9]
    big, wrong = copy.deepcopy(lm), copy.deepcopy(lm)
    F.cross_entropy(big(tokens).flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX).backward()
    mean_of_means_backward(wrong, micro_batches)
    assert max_abs_difference(gradients(big), gradients(wrong)) < noise(gradients(big))


@pytest.mark.claim("Padding positions, labelled -100, carry no loss",
                   page="grad-accumulation.md#token-counts")
def test_padding_carries_no_loss():
    lm, tokens, labels = _language_model_batch([3])
    changed = tokens.clone()
    changed[0, 3:] = (changed[0, 3:] + 1) % 16  # rewrite only the padded positions' inputs
    # labels there are IGNORE_INDEX: whatever the model predicts at those positions costs nothing
    assert token_losses_sum(lm, tokens, labels).item() == token_losses_sum(lm, changed, labels).item()
    assert token_count(labels) == 3


# ---- clipping ----------------------------------------------------------------------------------

@pytest.mark.claim("Clipping once, after the last micro-batch, matches the clipped big batch",
                   page="grad-accumulation.md#clipping")
def test_clip_after_accumulation_matches_the_clipped_big_batch(mlp_and_data):
    model, X, T = mlp_and_data
    big = copy.deepcopy(model)
    nn.MSELoss()(big(X), T).backward()
    norm = torch.nn.utils.clip_grad_norm_(big.parameters(), float("inf")).item()
    torch.nn.utils.clip_grad_norm_(big.parameters(), norm / 2)
    after = copy.deepcopy(model)
    returned = accumulation_step(after, torch.optim.SGD(after.parameters(), lr=0.0), nn.MSELoss(), X, T, 4,
                                 max_norm=norm / 2)
    assert returned.item() == pytest.approx(norm, rel=1e-6)
    assert max_abs_difference(gradients(big), gradients(after)) < noise(gradients(big))
    assert accumulation_step(after, torch.optim.SGD(after.parameters(), lr=0.0), nn.MSELoss(), X, T, 4) is None


# ---- mixed precision ---------------------------------------------------------------------------

@pytest.fixture
def classifier_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    X, Y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    reference = copy.deepcopy(model)
    accumulate_gradients(reference, F.cross_entropy, X, Y, 1)
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
    return model, list(zip(X.split(16), Y.split(16))), gradients(reference)


@pytest.mark.claim("Accumulation under bf16 or fp16 autocast steps once and stays within the "
                   "format's precision", page="grad-accumulation.md#mixed-precision")
@pytest.mark.parametrize("dtype, scaled, tolerance", [
    (torch.bfloat16, False, 0.1),   # about 20 roundings of 2**-8
    (torch.float16, True, 0.01),    # about 20 roundings of 2**-11
    (torch.float16, False, 0.01),  # float16 without a scaler: fine here, where nothing underflows
])
def test_amp_accumulation_steps_and_stays_within_the_formats_precision(classifier_and_data, dtype, scaled, tolerance):
    model, micro_batches, expected = classifier_and_data
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=scaled)
    before = [p.detach().clone() for p in model.parameters()]
    out = amp_accumulation_step(model, optimizer, scaler, F.cross_entropy, micro_batches,
                                device_type="cpu", dtype=dtype, max_norm=1.0)
    assert out["skipped"] is False and out["scale"] == (65536.0 if scaled else 1.0)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # it stepped
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())  # grads follow the fp32 params
    assert relative_grad_error(gradients(model), expected) < tolerance
    assert optimizer.state[next(model.parameters())]["step"].item() == 1


@pytest.mark.claim("An inf gradient makes `GradScaler` skip the step, leave every weight "
                   "unchanged and halve the scale", page="mixed-precision.md#fp16-and-loss-scaling")
def test_an_inf_gradient_skips_the_step_and_halves_the_scale(classifier_and_data):
    model, micro_batches, _ = classifier_and_data
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    before = [p.detach().clone() for p in model.parameters()]

    def exploding_loss(output, target):
        return F.cross_entropy(output, target) * float("inf")

    out = amp_accumulation_step(model, optimizer, scaler, exploding_loss, micro_batches,
                                device_type="cpu", dtype=torch.float16, max_norm=1.0)
    assert out["skipped"] is True
    assert scaler.get_scale() == 65536.0 * 0.5  # backoff_factor
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.claim("Clipping before `unscale_` sees the norm times the scale; after it, the true "
                   "norm", page="grad-accumulation.md#mixed-precision")
def test_clipping_before_unscale_sees_the_scaled_norm(classifier_and_data):
    model, micro_batches, expected = classifier_and_data
    true_norm = torch.nn.utils.get_total_norm(expected).item()
    scaler = torch.amp.GradScaler("cpu")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in micro_batches:
        with torch.autocast(device_type="cpu", dtype=torch.float16):
            loss = F.cross_entropy(model(x), y) / len(micro_batches)
        scaler.scale(loss).backward()
    seen = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0).item()
    assert seen / true_norm == pytest.approx(scaler.get_scale(), rel=1e-2)
    scaler.unscale_(optimizer)
    assert torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item() * scaler.get_scale() \
        == pytest.approx(1.0, rel=1e-3)


@pytest.mark.claim("`torch.cuda.amp.GradScaler` and `torch.cuda.amp.autocast` warn with a "
                   "FutureWarning", page="grad-accumulation.md#version-history")
def test_the_deprecated_cuda_amp_spellings_warn():
    with pytest.warns(FutureWarning, match="torch.amp.GradScaler"):
        torch.cuda.amp.GradScaler(enabled=False)
    with pytest.warns(FutureWarning, match="torch.amp.autocast"):
        torch.cuda.amp.autocast(enabled=False)


@pytest.mark.claim("`torch.amp.GradScaler(\"cpu\")` is a real scaler, starting at 65536",
                   page="grad-accumulation.md#version-history")
def test_the_cpu_scaler_is_a_real_scaler():
    scaler = torch.amp.GradScaler("cpu")
    assert scaler.is_enabled() and scaler.get_scale() == 2.0**16
    loss = torch.tensor(3.0)
    assert scaler.scale(loss).item() == 3.0 * 2**16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what GradScaler('cuda') does without CUDA")
def test_a_cuda_scaler_without_cuda_disables_itself_with_a_warning():
    with pytest.warns(UserWarning, match="CUDA is not available"):
        scaler = torch.amp.GradScaler("cuda")
    assert not scaler.is_enabled()


# ---- the GPU example, at smoke size on the CPU ---------------------------------------------------

@pytest.fixture(scope="module")
def smoke():
    from tests.smoke import smoke_data

    return smoke_data("grad_accumulation")


def test_example_records_every_k_with_no_invented_memory_numbers(smoke):
    cfg = SIZES["smoke"]
    assert [row["K"] for row in smoke["per_k"]] == cfg["ks"]
    for row in smoke["per_k"]:
        assert row["micro_batch"] == cfg["batch"] // row["K"]
        assert row["baseline_allocated_bytes"] is None and row["peak_above_baseline_bytes"] is None
        assert row["ms"] > 0
    assert smoke["allocator_prediction_baseline_bytes"] is None


def test_example_activation_formula_matches_autograd_and_halves_with_k(smoke):
    rows = smoke["per_k"]
    for row in rows:
        assert row["predicted_activation_bytes"] == row["saved_activation_bytes"]
    for a, b in zip(rows, rows[1:]):  # b·(...)+4: halving the micro-batch halves all but 4 bytes
        assert 2 * (b["predicted_activation_bytes"] - 4) == a["predicted_activation_bytes"] - 4


def test_example_persistent_memory_is_sixteen_bytes_a_parameter(smoke):
    P = smoke["P"]
    persistent = smoke["persistent_bytes"]
    assert persistent["params"] == persistent["grads"] == 4 * P
    n_tensors = 2 * (SIZES["smoke"]["depth"] + 1)
    assert persistent["optimizer_state"] == 8 * P + 4 * n_tensors  # two moments + a step counter each


def test_example_amp_runs_step_and_stay_close_to_float32(smoke):
    by_dtype = {r["dtype"]: r for r in smoke["amp"]}
    assert set(by_dtype) == {"float16", "bfloat16"}
    assert by_dtype["float16"]["scaler"] == 'GradScaler("cpu")' and by_dtype["float16"]["scale"] == 65536.0
    assert by_dtype["bfloat16"]["scaler"] == "disabled" and by_dtype["bfloat16"]["scale"] == 1.0
    for r in smoke["amp"]:
        assert r["stepped"] and not r["skipped"]
        assert r["total_norm"] == pytest.approx(r["fp32_total_norm"], rel=0.05)
    assert by_dtype["float16"]["relative_grad_error"] < 0.01
    assert by_dtype["bfloat16"]["relative_grad_error"] < 0.1


@pytest.mark.claim("On the GPU model one micro-batch of b examples saves 4b(8 · 2048 + 10) bytes "
                   "of activations", page="grad-accumulation.md#measured-on-the-gpu")
def test_full_size_prediction_is_the_pages():
    full = SIZES["full"]
    with torch.device("meta"):
        from snippets.models import wide_mlp
        model = wide_mlp(full["width"], full["depth"], full["classes"])
    assert count_params(model) == 33591306
    assert predicted_activation_bytes(full["width"], full["depth"], full["classes"], full["batch"]) \
        == 4 * full["batch"] * (full["depth"] * full["width"] + full["classes"]) + 4
    # activations at K = 1 are about four times the persistent memory: the sweep shows them shrink past it
    ratio = predicted_activation_bytes(full["width"], full["depth"], full["classes"], full["batch"]) / (16 * count_params(model))
    assert 3.9 < ratio < 4.1


# ---- a forgotten / K (issue 8, item 14) -----------------------------------------------------------
# Normalisation assumed throughout: each micro-batch loss is reduced by its MEAN (the torch.nn
# default), and the wrong loop sums the K micro-batch means without dividing by K, so its gradient
# is exactly K times the big batch's (K a power of two: scaling is exact in floating point).

def _adam_after(model, X, T, K: int, steps: int, optimizer_class, weight_decay: float,
                divide_by_k: bool) -> list[torch.Tensor]:
    model = copy.deepcopy(model)
    optimizer = optimizer_class(model.parameters(), lr=1e-2, weight_decay=weight_decay)
    for _ in range(steps):
        optimizer.zero_grad()
        for x, t in zip(X.split(len(X) // K), T.split(len(T) // K)):
            loss = nn.MSELoss()(model(x), t)
            (loss / K if divide_by_k else loss).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def _relative_gap(a, b, start) -> float:
    """How far apart two runs end, relative to how far the reference moved."""
    return max(((x - y).abs().max() / (y - s).abs().max()).item() for x, y, s in zip(a, b, start))


@pytest.mark.claim("A forgotten /K changes Adam and AdamW only through ε",
                   page="grad-accumulation.md#a-forgotten-k")
@pytest.mark.parametrize("optimizer_class, weight_decay", [
    (torch.optim.Adam, 0.0), (torch.optim.AdamW, 0.1),  # no L2 term: only eps sees the scale
])
def test_a_forgotten_k_changes_adam_only_through_eps_without_l2_decay(mlp_and_data, optimizer_class,
                                                                     weight_decay):
    model, X, T = mlp_and_data
    start = [p.detach() for p in model.parameters()]
    right = _adam_after(model, X, T, 4, 5, optimizer_class, weight_decay, divide_by_k=True)
    wrong = _adam_after(model, X, T, 4, 5, optimizer_class, weight_decay, divide_by_k=False)
    assert _relative_gap(wrong, right, start) < 1e-3


@pytest.mark.claim("A forgotten /K turns Adam's L2 decay λ into λ/K",
                   page="grad-accumulation.md#a-forgotten-k")
def test_a_forgotten_k_divides_adams_l2_decay_by_k(mlp_and_data):
    """Adam's weight_decay adds lambda * theta to the gradient: K * g + lambda * theta is K times
    (g + (lambda / K) * theta), and Adam ignores the factor K. So the wrong loop with decay lambda
    is the right loop with decay lambda / K (up to eps), and not the right loop with lambda."""
    model, X, T = mlp_and_data
    K, lam = 4, 0.1
    start = [p.detach() for p in model.parameters()]
    right = _adam_after(model, X, T, K, 5, torch.optim.Adam, lam, divide_by_k=True)
    wrong = _adam_after(model, X, T, K, 5, torch.optim.Adam, lam, divide_by_k=False)
    diluted = _adam_after(model, X, T, K, 5, torch.optim.Adam, lam / K, divide_by_k=True)
    assert _relative_gap(wrong, diluted, start) < 1e-3
    assert _relative_gap(wrong, right, start) > 0.5


def _largest_safe_scale_exponent(model, micro_batches, loss_fn) -> int:
    """The largest power-of-two GradScaler scale whose fp16 backward does not overflow."""
    for exponent in range(40, -20, -1):
        m = copy.deepcopy(model)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**exponent)
        out = amp_accumulation_step(m, torch.optim.SGD(m.parameters(), lr=0.0), scaler, loss_fn,
                                    micro_batches, device_type="cpu", dtype=torch.float16, max_norm=1.0)
        if not out["skipped"]:
            return exponent
    raise AssertionError("every scale overflowed")


@pytest.mark.claim("A forgotten /K leaves the fp16 `GradScaler` K times less headroom: log₂ K "
                   "fewer doublings", page="grad-accumulation.md#a-forgotten-k")
@pytest.mark.parametrize("K", [2, 4])
def test_a_forgotten_k_leaves_the_grad_scaler_k_times_less_headroom(K):
    """Under fp16 autocast each micro-batch's backward carries values K times larger without the
    / K, so the largest scale that does not overflow is K times smaller: log2(K) fewer doublings,
    each of which the scaler finds by a skipped step. (p.grad is float32 under AMP: the sum itself
    does not overflow.)"""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    X, Y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    micro_batches = list(zip(X.split(64 // K), Y.split(64 // K)))
    right = _largest_safe_scale_exponent(model, micro_batches, F.cross_entropy)
    wrong = _largest_safe_scale_exponent(model, micro_batches, lambda out, y: K * F.cross_entropy(out, y))
    assert right - wrong == {2: 1, 4: 2}[K]


# ---- a forgotten / K under clipping, and the learning-rate schedule (issue 23, items 2 and 16) ---

def _adam_run(model, X, T, K: int, steps: int, divide_by_k: bool,
              max_norm: float | None) -> tuple[list[torch.Tensor], list[float]]:
    """The page's `train`: Adam, lr 1e-2, K micro-batches a step, clipped as accumulation_step
    clips (after the last micro-batch) when max_norm is given. The weights, and each step's
    gradient norm before clipping."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    norms = []
    for _ in range(steps):
        optimizer.zero_grad()
        for x, t in zip(X.split(len(X) // K), T.split(len(T) // K)):
            loss = nn.MSELoss()(model(x), t)
            (loss / K if divide_by_k else loss).backward()
        norms.append(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item())
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()], norms


@pytest.mark.claim("Adam hides a forgotten /K only if nothing clips: with max_norm between ‖g‖ and "
                   "K‖g‖ the runs part (gap 0.48 after 20 steps at 2‖g‖)",
                   page="grad-accumulation.md#a-forgotten-k")
def test_a_forgotten_k_shows_through_adam_when_only_the_wrong_run_is_clipped(mlp_and_data):
    model, X, T = mlp_and_data
    K, steps = 4, 20
    start = [p.detach() for p in model.parameters()]
    g_norm = torch.nn.utils.get_total_norm(big_batch_grads(model, nn.MSELoss(), X, T)).item()

    def gap(max_norm):
        wrong, _ = _adam_run(model, X, T, K, steps, False, max_norm)
        right, _ = _adam_run(model, X, T, K, steps, True, max_norm)
        return _relative_gap(wrong, right, start)

    # at max_norm = 2‖g‖ the right run is never clipped, the wrong one is at first
    _, right_norms = _adam_run(model, X, T, K, steps, True, 2 * g_norm)
    _, wrong_norms = _adam_run(model, X, T, K, steps, False, 2 * g_norm)
    assert right_norms[0] == pytest.approx(g_norm, rel=1e-5) and max(right_norms) < 2 * g_norm
    assert wrong_norms[0] == pytest.approx(K * g_norm, rel=1e-5)
    assert gap(None) < 1e-3                 # unclipped: only eps sees the factor K
    assert round(gap(2 * g_norm), 2) == 0.48  # clipped: the wrong run's steps only, by varying factors
    assert gap(0.1 * g_norm) < 1e-3         # below the window both runs are clipped at every step
    assert gap(2 * K * g_norm) < 1e-3       # above it neither ever is


@pytest.mark.claim("`scheduler.step()` once per micro-batch runs the schedule K times too fast",
                   page="grad-accumulation.md#lr-schedulers")
@pytest.mark.parametrize("K", [2, 4])
def test_a_scheduler_stepped_per_micro_batch_runs_k_times_too_fast(mlp_and_data, K):
    model, X, T = mlp_and_data
    warmup_steps, steps = 8, 4

    def run(per_micro_batch: bool) -> tuple[list[float], int]:
        m = copy.deepcopy(model)
        optimizer = torch.optim.SGD(m.parameters(), lr=0.1)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup_steps))
        used = []
        for _ in range(steps):
            optimizer.zero_grad()
            for x, t in zip(X.split(len(X) // K), T.split(len(T) // K)):
                (nn.MSELoss()(m(x), t) / K).backward()
                if per_micro_batch:
                    warmup.step()
            used.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if not per_micro_batch:
                warmup.step()
        return used, warmup.last_epoch

    right_lrs, right_count = run(False)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):  # once, about the order only
        wrong_lrs, wrong_count = run(True)
    assert (right_count, wrong_count) == (steps, K * steps)
    # step i used the schedule's value at i scheduler steps, or at K(i + 1) when stepped per micro-batch
    assert right_lrs == pytest.approx([0.1 * min(1.0, (i + 1) / warmup_steps) for i in range(steps)])
    assert wrong_lrs == pytest.approx([0.1 * min(1.0, (K * (i + 1) + 1) / warmup_steps) for i in range(steps)])
