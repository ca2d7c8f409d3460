"""snippets/grad_none.py: a None gradient is skipped, a zero gradient is stepped, in every implementation."""

from __future__ import annotations

import math

import pytest
import torch

from snippets.grad_none import TwoHeads, second_step, train_tasks
from tests.docblocks import DOCS
from tests.test_weight_decay import unbacked_numbers

# The skip lives in _init_group, upstream of all three implementations.
IMPLEMENTATIONS = [{"foreach": False}, {"foreach": True}, {"fused": True}]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=["for-loop", "foreach", "fused"])
@pytest.mark.parametrize("make", [
    lambda impl: (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, **impl)),
    lambda impl: (lambda ps: torch.optim.Adam(ps, lr=0.1, weight_decay=0.1, **impl)),
    lambda impl: (lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.1, **impl)),
], ids=["SGD", "Adam", "AdamW"])
def test_none_is_skipped_and_zeros_are_stepped(make, impl):
    theta_1, theta_2, state_none = second_step(make(impl), None)
    assert theta_2 == theta_1  # no update and no decay
    theta_1z, theta_2z, state_zero = second_step(make(impl), 0.0)
    assert theta_1z == theta_1 and theta_2z < theta_1  # decayed and/or coasting
    if "step" in state_none:
        assert (state_none["step"], state_zero["step"]) == (1.0, 2.0)
    for key in state_none:
        if key != "step":
            assert state_zero[key] != state_none[key], key  # the state took a transition


def test_sgd_momentum_numbers():
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
    assert second_step(sgd, None) == (0.9, 0.9, {"momentum_buffer": 1.0})
    theta_1, theta_2, state = second_step(sgd, 0.0)
    assert (theta_1, theta_2) == pytest.approx((0.9, 0.81), abs=1e-15)
    assert state == pytest.approx({"momentum_buffer": 0.9}, abs=1e-15)


def test_adamw_numbers():
    adamw = lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.1)  # noqa: E731
    theta_1 = 0.99 - 0.1 / (1 + 1e-8)
    m_hat, v_hat = 0.09 / (1 - 0.9**2), 0.000999 / (1 - 0.999**2)
    theta_2 = 0.99 * theta_1 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)
    _, skipped, state = second_step(adamw, None)
    assert skipped == pytest.approx(theta_1, abs=1e-15)
    assert state == pytest.approx({"step": 1.0, "exp_avg": 0.1, "exp_avg_sq": 0.001}, abs=1e-15)
    _, stepped, state = second_step(adamw, 0.0)
    assert stepped == pytest.approx(theta_2, abs=1e-12)
    assert state == pytest.approx({"step": 2.0, "exp_avg": 0.09, "exp_avg_sq": 0.000999}, abs=1e-15)


def test_no_state_is_created_for_a_parameter_without_a_gradient():
    used, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.AdamW([used, unused], lr=0.1, weight_decay=0.1)
    used.grad = torch.ones(2)
    optimizer.step()
    assert unused not in optimizer.state and torch.equal(unused, torch.ones(2))
    assert set(optimizer.state[used]) == {"step", "exp_avg", "exp_avg_sq"}


def test_an_idle_head_is_frozen_with_none_and_moves_with_zeros():
    model, optimizer, head_b = train_tasks(["b", "a", "a", "a"], set_to_none=True)
    assert all(torch.equal(head_b[0], w) for w in head_b[1:])
    steps = {name: optimizer.state[p]["step"].item() for name, p in model.named_parameters()}
    assert steps == {"trunk.weight": 4.0, "trunk.bias": 4.0, "head_a.weight": 3.0, "head_a.bias": 3.0,
                     "head_b.weight": 1.0, "head_b.bias": 1.0}
    model, optimizer, head_b = train_tasks(["b", "a", "a", "a"], set_to_none=False)
    assert not any(torch.equal(a, b) for a, b in zip(head_b, head_b[1:]))
    assert optimizer.state[model.head_b.weight]["step"].item() == 4.0


def test_zero_grad_false_zeroes_only_existing_gradients():
    model, optimizer, _ = train_tasks(["a", "a"], set_to_none=False)
    assert model.head_b.weight.grad is None and model.head_b.weight not in optimizer.state
    assert model.head_a.weight.grad is not None  # zeroed, not removed


def test_two_heads_uses_one_head_per_task():
    model = TwoHeads()
    model(torch.randn(2, 8), "a").sum().backward()
    assert model.head_b.weight.grad is None and model.head_a.weight.grad is not None


def test_every_number_in_the_prose_is_shown_by_code():
    assert unbacked_numbers(DOCS / "none-vs-zero-grads.md") == []
