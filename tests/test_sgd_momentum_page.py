"""Chapter 2 (docs/sgd-momentum.md): the tables typed into the page checked cell
by cell against torch, the constant-gradient limit γ(1−τ)/(1−μ), PyTorch's
momentum against Sutskever's, and the data of the learning-rate-drop figure."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from examples.render import figures_sgd_momentum as figures
from snippets.models import TinyMLP
from snippets.optimizer_state import checkpoint_nbytes, tensor_nbytes
from snippets.update_rules import sgd_moves, sgd_update, sutskever_moves, sutskever_update
from tests.test_captures import check_chart
from tests.test_optimizer_state import _tables

PAGE = "sgd-momentum.md"


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def _closed_form(t: int, lr: float, momentum: float, dampening: float) -> float:
    """γ·b_t on g = 1: b_1 = 1, b_t = μ b_{t−1} + (1 − τ)."""
    mu_t = momentum ** (t - 1)
    return lr * (mu_t + (1 - dampening) * (1 - mu_t) / (1 - momentum))


# ---- issue 8, item 7: the step under a constant gradient -------------------------------------

@pytest.mark.claim("On a constant gradient the step tends to γg(1−τ)/(1−μ), and the closed form "
                   "holds at every step", page="sgd-momentum.md#the-step-under-a-constant-gradient")
@pytest.mark.parametrize("momentum", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("dampening", [0.0, 0.3, 0.5])
@pytest.mark.parametrize("lr", [0.1, 1.0])
def test_the_step_on_a_constant_gradient_tends_to_lr_times_1_minus_tau_over_1_minus_mu(momentum, dampening, lr):
    steps = 3000
    moves = sgd_moves([lr] * steps, momentum=momentum, dampening=dampening)
    assert moves[-1] == pytest.approx(lr * (1 - dampening) / (1 - momentum), rel=1e-9)
    # and the closed form holds at every step, the first-step copy (b_1 = g) included
    for t, move in enumerate(moves, start=1):
        assert move == pytest.approx(_closed_form(t, lr, momentum, dampening), rel=1e-9, abs=1e-12)


@pytest.mark.claim("Nesterov's step tends to the same γg/(1−μ)",
                   page="sgd-momentum.md#the-step-under-a-constant-gradient")
@pytest.mark.parametrize("momentum", [0.5, 0.9])
def test_nesterov_tends_to_the_same_limit(momentum):
    moves = sgd_moves([0.1] * 2000, momentum=momentum, nesterov=True)
    assert moves[-1] == pytest.approx(0.1 / (1 - momentum), rel=1e-9)


def test_sgd_moves_drives_torch_sgd_and_scales_with_the_gradient():
    # sgd_moves is torch.optim.SGD itself: the hand-written rule gives the same moves
    theta, state, ours = torch.zeros(1, dtype=torch.float64), {}, []
    for lr in [0.5, 0.5, 0.05]:
        before = theta.item()
        sgd_update(theta, torch.full_like(theta, 2.0), state, lr=lr, momentum=0.9)
        ours.append(before - theta.item())
    assert sgd_moves([0.5, 0.5, 0.05], g=2.0, momentum=0.9) == ours


@pytest.mark.claim("After 2,000 steps `torch.optim.SGD` moves 10, 5, 100 and 10 (Nesterov) times "
                   "γg, as predicted", page="sgd-momentum.md#the-step-under-a-constant-gradient")
def test_constant_gradient_table_is_what_torch_does():
    [(header, rows)] = [(h, r) for _, h, r in _tables(PAGE) if h[0] == "\\(\\mu\\)"]
    assert "2,000" in header[3]
    assert len(rows) == 4
    for mu_cell, tau_cell, predicted, measured in rows:
        mu, nesterov = _number(mu_cell.split(",")[0]), "Nesterov" in mu_cell
        tau = _number(tau_cell)
        moves = sgd_moves([0.1] * 2000, momentum=mu, dampening=tau, nesterov=nesterov)
        assert _number(predicted) == round((1 - tau) / (1 - mu), 6)
        assert _number(measured) == round(moves[-1] / 0.1, 6)


@pytest.mark.claim("Without dampening the step comes within 1 % of its limit in 44 steps at μ = "
                   "0.9 and 459 at μ = 0.99",
                   page="sgd-momentum.md#the-step-under-a-constant-gradient")
def test_the_one_percent_step_counts_in_the_proof():
    assert [math.ceil(math.log(100) / -math.log(mu)) for mu in (0.9, 0.99)] == [44, 459]
    for mu, t in [(0.9, 44), (0.99, 459)]:
        assert mu ** t < 0.01 <= mu ** (t - 1)
        # torch.optim.SGD itself: the first move within 1 % of the limit
        moves = sgd_moves([0.1] * t, momentum=mu)
        limit = 0.1 / (1 - mu)
        assert moves[-1] >= 0.99 * limit > moves[-2]


@pytest.mark.claim("The shortcut ln 100/(1−μ) gives 46 and 461, not the 44 and 459 steps that "
                   "⌈ln 100/(−ln μ)⌉ counts",
                   page="sgd-momentum.md#the-step-under-a-constant-gradient")
def test_the_shortcut_is_named_apart_from_the_exact_count():
    assert [round(math.log(100) / (1 - mu)) for mu in (0.9, 0.99)] == [46, 461]
    text = (Path(__file__).parents[1] / "docs" / PAGE).read_text(encoding="utf-8")
    proof = text[text.index("Proof: the closed form"):text.index("## PyTorch's momentum")]
    # the exact count names its formula; the shortcut is given with its own numbers
    assert r"\lceil \ln 100 / (-\ln \mu) \rceil" in proof
    assert "gives 46 and 461" in " ".join(proof.split())


# ---- PyTorch's momentum against Sutskever's (issue 8, item 12) -------------------------------

@pytest.mark.claim("PyTorch's first buffer is a copy of the gradient; Sutskever's velocity is γ "
                   "times PyTorch's buffer while γ is constant",
                   page="sgd-momentum.md#pytorchs-momentum-vs-sutskevers")
@pytest.mark.parametrize("lr", [0.1, 0.7])
def test_sutskevers_velocity_is_lr_times_pytorchs_buffer_while_lr_is_constant(lr):
    """b_1 = g_1 (a copy) but v_1 = γ g_1: the states differ by γ, the moves agree."""
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(5, dtype=torch.float64, generator=generator)
    ours, state = theta.clone(), {}
    theirs = theta.clone().requires_grad_()
    optimizer = torch.optim.SGD([theirs], lr=lr, momentum=0.9)
    for step in range(6):
        grad = torch.randn(5, dtype=torch.float64, generator=generator)
        theirs.grad = grad.clone()
        optimizer.step()
        sutskever_update(ours, grad.clone(), state, lr=lr, momentum=0.9)
        buffer = optimizer.state[theirs]["momentum_buffer"]
        if step == 0:
            assert torch.equal(buffer, grad)  # PyTorch: a copy of g1
        assert torch.allclose(state["velocity"], lr * buffer, rtol=1e-12)
        assert torch.allclose(theirs.detach(), ours, rtol=1e-12)


@pytest.mark.claim("At a learning-rate drop PyTorch's step falls tenfold at once; Sutskever's "
                   "falls by one step's decay",
                   page="sgd-momentum.md#pytorchs-momentum-vs-sutskevers")
def test_the_forms_part_at_a_learning_rate_drop():
    schedule = [1.0] * 5 + [0.1] * 3
    pytorch, sutskever = sgd_moves(schedule, momentum=0.9), sutskever_moves(schedule)
    assert pytorch[:5] == pytest.approx(sutskever[:5], rel=1e-12)
    b6 = sum(0.9 ** k for k in range(6))
    assert pytorch[5] == pytest.approx(0.1 * b6)                 # the whole buffer rescaled
    assert sutskever[5] == pytest.approx(0.9 * sutskever[4] + 0.1)  # one step of decay


def test_the_page_no_longer_says_the_first_buffer_is_the_same_in_both_forms():
    text = (_tables.__globals__["DOCS"] / PAGE).read_text(encoding="utf-8")
    assert "is \\(g_1\\) in both" not in text
    assert "\\(v_1 = \\gamma g_1 = \\gamma b_1\\)" in text


# ---- the checkpoint table --------------------------------------------------------------------

@pytest.mark.claim("The checkpoint table's tensor bytes and file sizes are what `torch.save` "
                   "writes: momentum doubles the tensors",
                   page="sgd-momentum.md#the-checkpoint-size-cost")
def test_checkpoint_table_is_what_torch_save_writes():
    [rows] = [r for _, h, r in _tables(PAGE) if h[0] == "`state_dict()` of"]
    torch.manual_seed(0)
    model = TinyMLP()
    model_momentum = copy.deepcopy(model)
    x, y = torch.randn(32, 128), torch.randint(0, 10, (32,))
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    momentum = torch.optim.SGD(model_momentum.parameters(), lr=0.1, momentum=0.9)
    for m, opt in [(model, sgd), (model_momentum, momentum)]:
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    states = {"model": model_momentum.state_dict(), "SGD": sgd.state_dict(),
              "SGD + momentum": momentum.state_dict()}
    assert [row[0] for row in rows] == list(states)
    for name, tensors, saved, overhead in rows:
        state = states[name]
        assert _number(tensors) == tensor_nbytes(state)
        assert _number(saved) == checkpoint_nbytes(state)
        assert _number(overhead) == checkpoint_nbytes(state) - tensor_nbytes(state)


# ---- the figure ------------------------------------------------------------------------------

@pytest.mark.claim("After an lr drop Sutskever's velocity sheds its excess by μ a step, taking "
                   "more than ten steps where PyTorch takes one",
                   page="sgd-momentum.md#pytorchs-momentum-vs-sutskevers")
def test_lr_drop_figure_data():
    d = figures.lr_drop()
    before, mu = figures.BEFORE, figures.MOMENTUM
    p, s = d["pytorch"], d["sutskever"]
    assert p[:before] == pytest.approx(s[:before], rel=1e-12)      # the same until the drop
    assert p[before - 1] == pytest.approx(d["steady_high"], rel=0.02)  # near γ/(1−μ) by then
    # PyTorch: the whole buffer times the new lr, at once
    assert p[before] == pytest.approx(figures.LR_LOW * (mu * p[before - 1] / figures.LR_HIGH + 1))
    # Sutskever: the excess over the new limit decays by μ per step
    excess = [move - d["steady_low"] for move in s[before:]]
    for a, b in zip(excess, excess[1:]):
        assert b == pytest.approx(mu * a, rel=1e-9)
    k = d["settle_steps"]
    assert s[before + k - 1] < 1.1 * d["steady_low"] <= s[before + k - 2]
    assert k > 10  # far slower than PyTorch's one step


def test_lr_drop_figure_draws_with_words():
    chart = figures.momentum_after_lr_drop()
    check_chart(chart, "figures_sgd_momentum/momentum_after_lr_drop")
    d = figures.lr_drop()
    assert f"{d['settle_steps']} steps" in chart.alt and re.search(r"\d", chart.caption)
