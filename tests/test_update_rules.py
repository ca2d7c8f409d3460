"""The hand-written SGD and Adam updates (snippets/update_rules.py) against torch.optim.

Bitwise for the for-loop and foreach implementations on the CPU, where every `_foreach_*`
operator runs its per-tensor fallback (checked below: this says nothing of CUDA's multi-tensor
kernels); within 1e-6 for fused (one CPU kernel, other rounding) and for the paper's Algorithm 1
typed in literally. A deliberately wrong rule must
fail the same comparison, so the harness cannot pass by accident.
"""

from __future__ import annotations

import re

import pytest
import torch

from snippets.foreach_dispatch import ForeachOps, per_tensor_operators, registered_kernels
from snippets.update_rules import (
    adam_update, adam_update_paper, sgd_update, side_by_side, sutskever_update,
)

SGD_CONFIGURATIONS = {
    "plain": dict(lr=0.1),
    "weight_decay": dict(lr=0.1, weight_decay=0.01),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.1, momentum=0.9, dampening=0.5),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "nesterov+decay": dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "maximize": dict(lr=0.1, maximize=True),
    "maximize+momentum": dict(lr=0.1, momentum=0.9, maximize=True),
    "everything": dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.02, maximize=True),
}
ADAM_CONFIGURATIONS = {
    "defaults": dict(),
    "weight_decay": dict(lr=1e-2, weight_decay=0.1),
    "amsgrad": dict(amsgrad=True),
    "maximize": dict(maximize=True),
    "amsgrad+maximize+decay": dict(amsgrad=True, maximize=True, weight_decay=0.01),
    "short memory": dict(lr=1e-2, betas=(0.5, 0.6)),
    "large eps": dict(eps=1e-1),
}
STEPS = 8


def _same_state(theirs, ours) -> bool:
    return all(t.keys() == o.keys() and all(torch.equal(t[k], o[k]) for k in t)
               for t, o in zip(theirs, ours))


# (torch optimizer, hand-written rule, hyper-parameters) for every configuration of both optimizers
CASES = [(torch.optim.SGD, sgd_update, h) for h in SGD_CONFIGURATIONS.values()] + \
        [(torch.optim.Adam, adam_update, h) for h in ADAM_CONFIGURATIONS.values()]
CASE_IDS = [f"SGD-{k}" for k in SGD_CONFIGURATIONS] + [f"Adam-{k}" for k in ADAM_CONFIGURATIONS]


@pytest.mark.claim("On the CPU, `sgd_update` and `adam_update` are bitwise equal to "
                   "`torch.optim`'s for-loop and foreach paths, state included",
                   page="sgd-momentum.md#checked-against-torchoptimsgd")
@pytest.mark.parametrize("optimizer, rule, hyper", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("flags", [None, {"foreach": False}, {"foreach": True}], ids=["default", "for-loop", "foreach"])
def test_hand_written_rule_is_bitwise_torch(optimizer, rule, hyper, flags):
    differences, theirs, ours = side_by_side(optimizer, rule, steps=STEPS, flags=flags, **hyper)
    assert differences == [0.0] * STEPS
    assert _same_state(theirs, ours)


@pytest.mark.claim("`fused=True` SGD and Adam agree with the hand-written rules to within 1e-6",
                   page="adam.md#checked-against-torchoptimadam")
@pytest.mark.parametrize("optimizer, rule, hyper", CASES, ids=CASE_IDS)
def test_hand_written_rule_matches_fused_within_1e_6(optimizer, rule, hyper):
    differences, theirs, ours = side_by_side(optimizer, rule, steps=STEPS, flags={"fused": True}, **hyper)
    assert max(differences) <= 1e-6
    for t, o in zip(theirs, ours):
        assert t.keys() == o.keys()
        assert all(torch.allclose(t[k], o[k], rtol=0, atol=1e-6) for k in t)


@pytest.mark.claim("Kingma & Ba's Algorithm 1, typed in literally, agrees with `torch.optim.Adam` "
                   "to within 1e-6", page="adam.md#checked-against-torchoptimadam")
@pytest.mark.parametrize("hyper", [dict(), dict(lr=1e-2, betas=(0.5, 0.6)), dict(lr=0.1, eps=1e-3)])
def test_the_papers_algorithm_agrees_within_1e_6(hyper):
    differences, _, _ = side_by_side(torch.optim.Adam, adam_update_paper, steps=20, **hyper)
    assert max(differences) <= 1e-6


@pytest.mark.claim("A bf16 parameter gets bf16 moments and a float32 `step`",
                   page="adam.md#state-follows-the-parameter")
def test_adam_update_state_follows_a_bf16_parameter_bitwise():
    param = torch.randn(6, 4).to(torch.bfloat16)
    theirs, ours, state = param.clone().requires_grad_(), param.clone(), {}
    optimizer = torch.optim.Adam([theirs], lr=1e-2)
    for seed in range(4):
        grad = torch.randn(6, 4, generator=torch.Generator().manual_seed(seed)).to(torch.bfloat16)
        theirs.grad = grad.clone()
        optimizer.step()
        adam_update(ours, grad.clone(), state, lr=1e-2)
    assert torch.equal(theirs.detach(), ours)
    assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.bfloat16
    assert state["step"].dtype == torch.float32
    assert _same_state([optimizer.state[theirs]], [state])


@torch.no_grad()
def _sgd_with_dampened_first_step(param, grad, state, *, lr, momentum, dampening):
    """A plausible mistake: start the buffer at zeros, so dampening hits the first gradient."""
    buf = state.setdefault("momentum_buffer", torch.zeros_like(param))
    buf.mul_(momentum).add_(grad, alpha=1 - dampening)
    param.add_(buf, alpha=-lr)


@torch.no_grad()
def _adam_without_bias_correction(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    m = state["m"] = betas[0] * state.get("m", 0.0) + (1 - betas[0]) * grad
    v = state["v"] = betas[1] * state.get("v", 0.0) + (1 - betas[1]) * grad * grad
    param -= lr * m / (v.sqrt() + eps)


def test_the_harness_catches_a_wrong_sgd_rule():
    differences, _, _ = side_by_side(torch.optim.SGD, _sgd_with_dampened_first_step, lr=0.1, momentum=0.9, dampening=0.5)
    assert differences[0] > 1e-3


def test_the_harness_catches_a_missing_bias_correction():
    differences, _, _ = side_by_side(torch.optim.Adam, _adam_without_bias_correction)
    assert differences[0] > 1e-3


def test_the_harness_catches_a_one_ulp_difference():
    @torch.no_grad()
    def almost_sgd(param, grad, state, *, lr):
        sgd_update(param, grad, state, lr=lr)
        first = param.view(-1)[:1]  # nudge one element by one unit in the last place
        first.copy_(torch.nextafter(first, torch.full_like(first, float("inf"))))

    differences, _, _ = side_by_side(torch.optim.SGD, almost_sgd, lr=0.1)
    assert all(d > 0 for d in differences)


def _trajectory(update, learning_rates, grads):
    theta, state, path = torch.zeros(3, dtype=torch.float64), {}, []
    for lr, grad in zip(learning_rates, grads):
        update(theta, grad, state, lr=lr, momentum=0.9)
        path.append(theta.clone())
    return torch.stack(path)


@pytest.mark.claim("PyTorch's and Sutskever's momentum take the same steps at a constant lr and "
                   "part after it changes", page="sgd-momentum.md#pytorchs-momentum-vs-sutskevers")
def test_sutskever_equals_pytorch_momentum_at_constant_lr_and_not_after_a_change():
    grads = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    constant = [0.05] * 30
    assert torch.allclose(_trajectory(sgd_update, constant, grads), _trajectory(sutskever_update, constant, grads),
                          rtol=0, atol=1e-12)
    schedule = [0.05] * 10 + [0.005] * 20
    pytorch, sutskever = _trajectory(sgd_update, schedule, grads), _trajectory(sutskever_update, schedule, grads)
    assert torch.allclose(pytorch[:10], sutskever[:10], rtol=0, atol=1e-12)
    assert (pytorch[10] - sutskever[10]).abs().max() > 1e-3


@pytest.mark.claim("Nesterov needs a momentum and zero dampening: the constructor refuses "
                   "anything else", page="sgd-momentum.md#checked-against-torchoptimsgd")
def test_nesterov_needs_momentum_and_no_dampening():
    param = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError, match="Nesterov"):
        torch.optim.SGD(param, lr=0.1, momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        torch.optim.SGD(param, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)


# ---- what the CPU's foreach check compares (issue 23, item 5) --------------------------------

def _stepped_once(optimizer, hyper, **flags):
    """Eight small tensors and an optimizer whose state exists (one step taken)."""
    params = [torch.nn.Parameter(torch.randn(16, generator=torch.Generator().manual_seed(i)))
              for i in range(8)]
    for p in params:
        p.grad = torch.randn_like(p)
    stepped = optimizer(params, **hyper, **flags)
    stepped.step()
    return stepped


@pytest.mark.claim("On the CPU every `_foreach_*` operator of a step runs its per-tensor `_slow` "
                   "fallback; on CUDA each has a multi-tensor kernel of its own",
                   page="sgd-momentum.md#foreach-on-the-cpu")
@pytest.mark.parametrize("optimizer, rule, hyper", CASES, ids=CASE_IDS)
def test_every_foreach_operator_falls_back_per_tensor_on_the_cpu_only(optimizer, rule, hyper):
    stepped = _stepped_once(optimizer, {"lr": 0.1, **hyper}, foreach=True)
    with ForeachOps() as ops:
        stepped.step()
    assert ops.names, "a foreach step calls _foreach_* operators"
    for op in ops.names:
        kernels = registered_kernels(op)
        assert re.fullmatch(r"foreach_tensor_\w+_slow_?", kernels["CPU"]), (op, kernels)
        assert kernels["CUDA"] != kernels["CPU"] and "cuda" in kernels["CUDA"], (op, kernels)


@pytest.mark.claim("On the CPU a foreach momentum step runs exactly the for-loop's per-tensor "
                   "operators", page="sgd-momentum.md#foreach-on-the-cpu")
@pytest.mark.parametrize("hyper", [dict(momentum=0.9), dict(momentum=0.9, dampening=0.5),
                                   dict(lr=0.1)], ids=["momentum", "dampening", "plain"])
def test_foreach_runs_the_for_loops_operators_on_the_cpu(hyper):
    hyper = {"lr": 0.1, **hyper}
    foreach = _stepped_once(torch.optim.SGD, hyper, foreach=True)
    loop = _stepped_once(torch.optim.SGD, hyper, foreach=False)
    counted = per_tensor_operators(foreach.step)
    assert counted == per_tensor_operators(loop.step)
    assert sum(counted.values()) % 8 == 0  # per tensor: eight of each


def test_registered_kernels_reads_the_dispatch_table():
    """A plain operator with a CPU kernel of its own, and a foreach one without."""
    assert registered_kernels("add.Tensor")["CPU"] != registered_kernels("_foreach_add_.List")["CPU"]
    assert registered_kernels("_foreach_add_.List") == {
        "CPU": "foreach_tensor_add_list_kernel_slow_", "CUDA": "foreach_tensor_add_list_kernel_cuda_"}
