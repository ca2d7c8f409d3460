"""Chapter 3 (docs/adam.md): the bias correction in general, where `step` lives
and in which dtype, the tables typed into the page checked cell by cell against
live optimizers, and the data of the state-per-optimizer figure."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from examples.render import figures_adam as figures
from snippets.accounting import count_params, optimizer_state_nbytes
from snippets.models import TinyMLP
from snippets.optimizer_state import (
    checkpoint_nbytes, in_units_of_p, persistent_scalars, tensor_nbytes,
)
from tests.test_captures import check_chart
from tests.test_optimizer_state import _tables

PAGE = "adam.md"


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


# ---- issue 8, item 8: the bias correction for every t ----------------------------------------

@pytest.mark.claim("The average's weights sum to 1 − βᵗ: on g = 1, `exp_avg` is 1 − β₁ᵗ and "
                   "`exp_avg_sq` 1 − β₂ᵗ", page="adam.md#why-the-bias-correction")
@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.6), (0.99, 0.9999)])
def test_the_emas_weights_sum_to_1_minus_beta_power_t(betas):
    """On g = 1 at every step, exp_avg is the sum of the weights: 1 − β1^t; same for v."""
    theta = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    adam = torch.optim.Adam([theta], lr=1e-3, betas=betas)
    beta1, beta2 = betas
    for t in range(1, 201):
        theta.grad = torch.ones_like(theta)
        adam.step()
        weights = [(1 - beta1) * beta1 ** (t - k) for k in range(1, t + 1)]
        assert sum(weights) == pytest.approx(1 - beta1 ** t, rel=1e-12)
        assert adam.state[theta]["exp_avg"].item() == pytest.approx(1 - beta1 ** t, rel=1e-12)
        assert adam.state[theta]["exp_avg_sq"].item() == pytest.approx(1 - beta2 ** t, rel=1e-12)


@pytest.mark.claim("For stationary gradients E(mₜ) = (1 − β₁ᵗ)·E(g), so mₜ/(1 − β₁ᵗ) is unbiased",
                   page="adam.md#why-the-bias-correction")
@pytest.mark.parametrize("t", [1, 2, 5, 20])
def test_stationary_gradients_give_e_m_t_equal_1_minus_beta_power_t_times_e_g(t):
    generator = torch.Generator().manual_seed(t)
    theta = nn.Parameter(torch.zeros(400_000))
    adam = torch.optim.Adam([theta], lr=1e-3)
    mean, square_mean = 0.5, 0.5 ** 2 + 1.0  # g = 0.5 + N(0, 1)
    for _ in range(t):
        theta.grad = mean + torch.randn(theta.shape, generator=generator)
        adam.step()
    m = adam.state[theta]["exp_avg"].mean().item()
    v = adam.state[theta]["exp_avg_sq"].mean().item()
    assert m == pytest.approx((1 - 0.9 ** t) * mean, rel=0.02)
    assert v == pytest.approx((1 - 0.999 ** t) * square_mean, rel=0.02)
    assert m / (1 - 0.9 ** t) == pytest.approx(mean, rel=0.02)  # corrected: unbiased


@pytest.mark.claim("The bias-correction table, steps 1 to 30, is what `torch.optim.Adam` stores",
                   page="adam.md#why-the-bias-correction")
def test_bias_correction_table_on_the_page():
    [rows] = [r for _, h, r in _tables(PAGE) if h[0] == "step" and "\\(1-\\beta_1^t\\)" in h[1]]
    assert [int(row[0]) for row in rows] == [1, 2, 5, 10, 30]
    for row in rows:
        t = int(row[0])
        weights, constant, random_m, random_m_hat, constant_v = map(_number, row[1:])
        assert weights == constant == round(1 - 0.9 ** t, 4)
        assert constant_v == round(1 - 0.999 ** t, 4)
        assert abs(random_m - (1 - 0.9 ** t)) <= 0.02  # sampling, 100,000 coordinates
        assert abs(random_m_hat - 1) <= 0.02


# ---- issue 8, item 12: `step` is float32 only under the default dtype --------------------------

def _step_dtype(param_dtype=torch.float32, **flags):
    param = nn.Parameter(torch.ones(3, dtype=param_dtype))
    optimizer = torch.optim.Adam([param], **flags)
    param.grad = torch.ones_like(param)
    optimizer.step()
    return optimizer.state[param]["step"].dtype


@pytest.mark.claim("`step` is float32 whatever the parameter's dtype, float64 only under a "
                   "float64 default dtype (not fused), float32 under a bfloat16 or float16 default",
                   page="adam.md#where-step-lives")
@pytest.mark.parametrize("flags", [{}, {"foreach": True}, {"foreach": False}], ids=["default", "foreach", "for-loop"])
def test_step_is_float32_unless_the_default_dtype_is_float64(flags):
    assert torch.get_default_dtype() == torch.float32
    assert _step_dtype(**flags) == _step_dtype(torch.float64, **flags) == torch.float32
    try:
        torch.set_default_dtype(torch.float64)
        assert _step_dtype(**flags) == _step_dtype(torch.float32, **flags) == torch.float64
        assert _step_dtype(fused=True) == torch.float32  # fused keeps float32
        for half in (torch.bfloat16, torch.float16):  # not "the default dtype"
            torch.set_default_dtype(half)
            assert _step_dtype(**flags) == _step_dtype(half, **flags) == torch.float32
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("default", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_adam_update_makes_the_step_counter_torch_makes(default):
    from snippets.update_rules import adam_update

    try:
        torch.set_default_dtype(default)
        state = {}
        adam_update(torch.ones(3), torch.ones(3), state)
        assert state["step"].dtype == _step_dtype()
    finally:
        torch.set_default_dtype(torch.float32)


def test_the_page_no_longer_says_step_takes_the_default_dtype():
    text = (Path(__file__).parents[1] / "docs" / PAGE).read_text(encoding="utf-8")
    assert "(the default dtype)" not in text and "is the *default dtype*" not in text


# ---- issue 23, item 4: the first step is γg/(|g| + ε), not γ whatever the gradient -------------

@pytest.mark.claim("Adam's first step moves each coordinate by γg/(|g| + ε): γ where |g| ≫ ε, "
                   "half that at |g| = ε, nothing at g = 0", page="adam.md#why-the-bias-correction")
@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_the_first_step_is_lr_g_over_abs_g_plus_eps(eps):
    lr = 1e-3
    theta = nn.Parameter(torch.zeros(6, dtype=torch.float64))
    optimizer = torch.optim.Adam([theta], lr=lr, eps=eps)
    g = torch.tensor([0.0, eps, -eps, 1e2 * eps, 1.0, -1e4], dtype=torch.float64)
    theta.grad = g.clone()
    optimizer.step()
    moves = -theta.detach()
    assert torch.allclose(moves, lr * g / (g.abs() + eps), rtol=1e-12, atol=0)
    assert moves[0] == 0 and moves[1] == pytest.approx(lr / 2, rel=1e-12)
    assert moves[4] == pytest.approx(lr, rel=2 * eps)


def test_the_summary_keeps_its_conditions():
    text = (Path(__file__).parents[1] / "docs" / PAGE).read_text(encoding="utf-8")
    summary = text[:text.index("**Questions it answers:**")]
    assert "for stationary gradients" in summary
    assert "moves every coordinate by" not in text and "whatever its\ngradient" not in text
    assert r"\gamma g/(|g|+\epsilon)" in summary


# ---- the 2P / 3P / 4P / 5P table and the checkpoint table ---------------------------------------

LIVE = {
    "SGD": (lambda ps: torch.optim.SGD(ps, lr=0.1), 0),
    "SGD + momentum": (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), 1),
    "Adam": (lambda ps: torch.optim.Adam(ps, lr=1e-3), 2),
    "Adam, amsgrad": (lambda ps: torch.optim.Adam(ps, lr=1e-3, amsgrad=True), 3),
}


def _trained(name):
    torch.manual_seed(0)
    x, y = torch.randn(32, 128), torch.randint(0, 10, (32,))
    torch.manual_seed(1)
    model = TinyMLP()
    optimizer = LIVE[name][0](model.parameters())
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    return model, optimizer


@pytest.mark.claim("On TinyMLP the state is 0, 142,376, 284,768 and 427,144 bytes: 8, 12, 16 and "
                   "20 persistent bytes per parameter", page="adam.md#measured-2p-3p-4p-5p")
def test_persistent_table_matches_live_optimizers():
    [(header, rows)] = [(h, r) for _, h, r in _tables(PAGE) if h[:2] == ["optimizer", "state predicted (bytes)"]]
    # every column says its unit (issue 8, item 6)
    assert header[1:] == ["state predicted (bytes)", "state measured (bytes)", "state (scalars)",
                          "persistent: params + grads + state (scalars)", "persistent (bytes per parameter)"]
    assert [row[0] for row in rows] == list(LIVE)
    for name, predicted, measured, state, persistent, per_parameter in rows:
        model, optimizer = _trained(name)
        P, n = count_params(model), len(list(model.parameters()))
        k = LIVE[name][1]
        counters = 4 * n if name.startswith("Adam") else 0
        counts = persistent_scalars(model, optimizer)
        total = counts["params"] + counts["grads"] + counts["state"]
        assert _number(predicted) == 4 * k * P + counters == _number(measured) == optimizer_state_nbytes(optimizer)
        assert state == in_units_of_p(counts["state"], P) == f"{k}P"
        assert persistent == in_units_of_p(total, P) == f"{k + 2}P"
        assert _number(per_parameter) == 4 * total / P == 4 * (k + 2)


@pytest.mark.claim("Adam's and AMSGrad's state dicts hold 284,768 and 427,144 bytes, and "
                   "`torch.save` writes the table's file sizes",
                   page="adam.md#measured-2p-3p-4p-5p")
def test_checkpoint_table_matches_torch_save():
    [(header, rows)] = [(h, r) for _, h, r in _tables(PAGE) if h[0] == "`state_dict()` of"]
    assert header[1:] == ["tensors (bytes)", "`torch.save` file, torch 2.13 (bytes)"]
    for name, tensors, saved in rows:
        state = _trained(name)[1].state_dict()
        assert (_number(tensors), _number(saved)) == (tensor_nbytes(state), checkpoint_nbytes(state))


# ---- the figure ----------------------------------------------------------------------------

def test_state_per_optimizer_is_4k_bytes_per_parameter_plus_counters():
    data = figures.state_per_optimizer()
    model = TinyMLP()
    P, n = count_params(model), len(list(model.parameters()))
    assert list(data) == ["SGD", "SGD + momentum", "Adam / AdamW", "AMSGrad"]
    for (label, bytes_), k in zip(data.items(), [0, 1, 2, 3]):
        counters = 4 * n / P if k >= 2 else 0
        assert bytes_ == {"params": 4.0, "grads": 4.0, "state": pytest.approx(4 * k + counters)}, label


def test_state_per_optimizer_figure_draws_with_words():
    chart = figures.state_per_optimizer_chart()
    check_chart(chart, "figures_adam/state_per_optimizer")
    assert "8, 12, 16, 20" in chart.alt
