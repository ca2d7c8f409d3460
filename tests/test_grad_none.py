"""snippets/grad_none.py: a None gradient is skipped, a zero gradient is stepped, in every implementation."""

from __future__ import annotations

import math

import pytest
import torch

from examples.render import figures_grad_none
from snippets.grad_none import TwoHeads, idle_head_drift, keep_still, second_step, train_step, train_tasks

# The skip lives in _init_group, upstream of all three implementations.
IMPLEMENTATIONS = [{"foreach": False}, {"foreach": True}, {"fused": True}]


@pytest.mark.claim("A `None` gradient is skipped (no update, no decay, no state change); zeros "
                   "are stepped, in all three implementations",
                   page="none-vs-zero-grads.md#one-parameter-two-kinds-of-second-step")
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


@pytest.mark.claim("On a zero gradient SGD with momentum coasts: θ 0.9 → 0.81, buffer 1 → 0.9",
                   page="none-vs-zero-grads.md#one-parameter-two-kinds-of-second-step")
def test_sgd_momentum_numbers():
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
    assert second_step(sgd, None) == (0.9, 0.9, {"momentum_buffer": 1.0})
    theta_1, theta_2, state = second_step(sgd, 0.0)
    assert (theta_1, theta_2) == pytest.approx((0.9, 0.81), abs=1e-15)
    assert state == pytest.approx({"momentum_buffer": 0.9}, abs=1e-15)


@pytest.mark.claim("On a zero gradient AdamW decays, moves on its first moment and advances "
                   "`step`: θ 0.890000001 → 0.814094176524",
                   page="none-vs-zero-grads.md#one-parameter-two-kinds-of-second-step")
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


@pytest.mark.claim("No state is created for a parameter that has never had a gradient",
                   page="none-vs-zero-grads.md#where-the-skip-lives")
def test_no_state_is_created_for_a_parameter_without_a_gradient():
    used, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.AdamW([used, unused], lr=0.1, weight_decay=0.1)
    used.grad = torch.ones(2)
    optimizer.step()
    assert unused not in optimizer.state and torch.equal(unused, torch.ones(2))
    assert set(optimizer.state[used]) == {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.claim("An idle head stays bitwise still, its `step` at 1, under `None`; under zeros "
                   "it moves and its `step` advances",
                   page="none-vs-zero-grads.md#where-it-matters-a-head-that-sits-out")
def test_an_idle_head_is_frozen_with_none_and_moves_with_zeros():
    model, optimizer, head_b = train_tasks(["b", "a", "a", "a"], set_to_none=True)
    assert all(torch.equal(head_b[0], w) for w in head_b[1:])
    steps = {name: optimizer.state[p]["step"].item() for name, p in model.named_parameters()}
    assert steps == {"trunk.weight": 4.0, "trunk.bias": 4.0, "head_a.weight": 3.0, "head_a.bias": 3.0,
                     "head_b.weight": 1.0, "head_b.bias": 1.0}
    model, optimizer, head_b = train_tasks(["b", "a", "a", "a"], set_to_none=False)
    assert not any(torch.equal(a, b) for a, b in zip(head_b, head_b[1:]))
    assert optimizer.state[model.head_b.weight]["step"].item() == 4.0


@pytest.mark.claim("`zero_grad(set_to_none=False)` zeroes only gradients that exist: a never-used "
                   "head keeps `None` and gets no state",
                   page="none-vs-zero-grads.md#where-it-matters-a-head-that-sits-out")
def test_zero_grad_false_zeroes_only_existing_gradients():
    model, optimizer, _ = train_tasks(["a", "a"], set_to_none=False)
    assert model.head_b.weight.grad is None and model.head_b.weight not in optimizer.state
    assert model.head_a.weight.grad is not None  # zeroed, not removed


def test_two_heads_uses_one_head_per_task():
    model = TwoHeads()
    model(torch.randn(2, 8), "a").sum().backward()
    assert model.head_b.weight.grad is None and model.head_a.weight.grad is not None


@pytest.mark.claim("`requires_grad=False` alone does not keep a parameter with a kept zero "
                   "gradient still; `p.grad = None` as well does",
                   page="none-vs-zero-grads.md#keeping-a-parameter-still-on-purpose")
def test_requires_grad_false_alone_does_not_keep_a_parameter_with_a_kept_zero_grad_still():
    """Issue 8 item 5: after zero_grad(set_to_none=False), a frozen parameter's .grad is a kept
    zero tensor and AdamW still decays and moves it; setting p.grad = None as well stops it."""
    model, optimizer, _ = train_tasks(["b"], set_to_none=False)
    head = model.head_b.weight
    head.requires_grad_(False)
    before = head.detach().clone()
    train_step(model, optimizer, "b", set_to_none=False)
    assert head.grad is not None and not head.grad.any()
    assert not torch.equal(head, before)
    assert optimizer.state[head]["step"].item() == 2.0
    keep_still(head)
    before = head.detach().clone()
    for task in ("b", "a", "b"):
        train_step(model, optimizer, task, set_to_none=False)
    assert torch.equal(head, before) and head.grad is None and not head.requires_grad
    assert optimizer.state[head]["step"].item() == 2.0


@pytest.mark.claim("Under the default `zero_grad()`, `requires_grad=False` keeps a parameter "
                   "still", page="none-vs-zero-grads.md#keeping-a-parameter-still-on-purpose")
def test_requires_grad_false_alone_suffices_under_the_default_zero_grad():
    model, optimizer, _ = train_tasks(["b"], set_to_none=True)
    head = model.head_b.weight
    head.requires_grad_(False)
    before = head.detach().clone()
    train_step(model, optimizer, "b", set_to_none=True)
    assert torch.equal(head, before)


def _optimizer_classes():
    classes = [getattr(torch.optim, name) for name in torch.optim.__all__]
    return [c for c in classes if isinstance(c, type) and issubclass(c, torch.optim.Optimizer)
            and c is not torch.optim.Optimizer]


@pytest.mark.claim("Every `torch.optim` optimizer but LBFGS and SparseAdam gathers its parameters "
                   "in `_init_group`; AdamW inherits Adam's",
                   page="none-vs-zero-grads.md#where-the-skip-lives")
def test_every_optimizer_but_lbfgs_and_sparse_adam_has_init_group():
    """Issue 8 item 12: the skip lives in _init_group, which LBFGS and SparseAdam lack."""
    without = sorted(c.__name__ for c in _optimizer_classes() if not hasattr(c, "_init_group"))
    assert without == ["LBFGS", "SparseAdam"]
    assert "_init_group" not in vars(torch.optim.AdamW)  # inherited from Adam since torch 2.7


@pytest.mark.claim("Every optimizer with `_init_group` skips a `None` gradient; only Adagrad "
                   "creates state in its constructor",
                   page="none-vs-zero-grads.md#where-the-skip-lives")
@pytest.mark.parametrize("cls", [c for c in _optimizer_classes() if hasattr(c, "_init_group")],
                         ids=lambda c: c.__name__)
def test_every_optimizer_with_init_group_skips_a_none_gradient(cls):
    """No update and no state change for a None gradient; state is created lazily, on the first
    gradient, except by Adagrad, which creates its 'sum' in the constructor (and leaves it)."""
    used = torch.nn.Parameter(torch.ones(4, 4))   # 2-D: Muon steps matrices only
    idle = torch.nn.Parameter(torch.ones(4, 4))
    optimizer = cls([used, idle], lr=0.1)
    eager = {key: torch.as_tensor(value).clone() for key, value in optimizer.state.get(idle, {}).items()}
    assert bool(eager) == (cls is torch.optim.Adagrad)
    used.grad = torch.full((4, 4), 0.5)
    optimizer.step()
    assert torch.equal(idle, torch.ones(4, 4))
    assert not torch.equal(used, torch.ones(4, 4))
    after = {key: torch.as_tensor(value) for key, value in optimizer.state.get(idle, {}).items()}
    assert after.keys() == eager.keys() and all(torch.equal(after[k], eager[k]) for k in eager)


@pytest.mark.claim("SparseAdam skips a `None` gradient in `step()`; LBFGS reads `None` as zeros",
                   page="none-vs-zero-grads.md#where-the-skip-lives")
def test_sparse_adam_skips_inline_and_lbfgs_reads_none_as_zeros():
    used, idle = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    sparse = torch.optim.SparseAdam([used, idle], lr=0.1)
    used.grad = torch.ones(3).to_sparse()
    sparse.step()
    assert idle not in sparse.state and torch.equal(idle, torch.ones(3))
    used, idle = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    lbfgs = torch.optim.LBFGS([used, idle])
    used.grad = torch.ones(2)
    assert lbfgs._gather_flat_grad().tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


@pytest.mark.claim("Under zeros the idle head moves 0.0192, 0.0463, 0.097, 0.1399 and 0.1611 "
                   "after 1, 3, 10, 30 and 100 batches",
                   page="none-vs-zero-grads.md#where-it-matters-a-head-that-sits-out")
def test_the_idle_head_figure_data():
    """What the page's table and figure show: None leaves head_b still, zeros move it, at first
    mostly on the stale first moment, far beyond decay alone."""
    data = figures_grad_none.drift()
    none, zeros, decay = data.values()
    assert len(zeros) == figures_grad_none.STEPS == 100
    assert all(d == 0.0 for d in none)
    assert all(a < b for a, b in zip(zeros, zeros[1:]))
    assert zeros[9] > 0.5 * zeros[-1] and zeros[-1] > 2 * decay[-1]
    assert [round(zeros[k - 1], 4) for k in (1, 3, 10, 30, 100)] == [0.0192, 0.0463, 0.097, 0.1399, 0.1611]
    assert idle_head_drift(5, set_to_none=False) == zeros[:5]


@pytest.mark.claim("The summary's 0.1611 is the norm of the change of head_b's 8 weights after one "
                   "batch of its own and 100 it sits out, under AdamW at lr 0.01 and λ = 0.1",
                   page="none-vs-zero-grads.md#where-it-matters-a-head-that-sits-out")
def test_the_idle_heads_drift_has_the_settings_the_page_states():
    """Issue 23 item 11: the number and its setting."""
    from snippets import grad_none
    assert (grad_none.LR, grad_none.WEIGHT_DECAY) == (0.01, 0.1)
    model, optimizer, head_b = train_tasks(["b"] + ["a"] * 100, set_to_none=False)
    group, = optimizer.param_groups
    assert (group["lr"], group["weight_decay"], type(optimizer)) == (0.01, 0.1, torch.optim.AdamW)
    assert model.head_b.weight.numel() == 8
    change = head_b[-1] - head_b[0]
    assert change.norm().item() == torch.linalg.matrix_norm(change, "fro").item()  # Frobenius
    assert round(change.norm().item(), 4) == 0.1611


@pytest.mark.claim("A head never used has no `.grad` and stays bitwise still under either "
                   "`zero_grad`; a head trained earlier that then sits out moves under zeros only",
                   page="none-vs-zero-grads.md#where-it-matters-a-head-that-sits-out")
@pytest.mark.parametrize("set_to_none", [True, False])
def test_a_never_used_head_stays_still_either_way(set_to_none):
    """Issue 17 item 6: 'a head no batch uses drifts under zeros' is wrong; it needs a gradient
    first, then zero_grad(set_to_none=False) keeps a zero tensor that the optimizer steps."""
    torch.manual_seed(0)
    model = TwoHeads()
    before = model.head_b.weight.detach().clone()
    _, _, head_b = train_tasks(["a"] * 10, set_to_none=set_to_none)   # same seed, same start
    assert torch.equal(head_b[0], before) and all(torch.equal(w, before) for w in head_b)
    _, _, head_b = train_tasks(["b"] + ["a"] * 10, set_to_none=set_to_none)
    moved = any(not torch.equal(head_b[0], w) for w in head_b[1:])
    assert moved == (not set_to_none)
