"""Chapter 3b on the CPU: the extra memory of a step, counted byte for byte,
and what a step that GradScaler skips leaves behind (torch 2.13 CPU)."""

from __future__ import annotations

import functools

import pytest
import torch

from examples.optimizer_step import (
    large_shapes, parameters, transformer_like_shapes,
)
from snippets.scaler_skip import UninitialisedAsNaN, skip_then_step
from snippets.step_peak import for_loop_adam_extra_bytes, step_extra_bytes

ADAM_FAMILY = {
    "AdamW": (torch.optim.AdamW, {}, False),
    "Adam": (torch.optim.Adam, {}, False),
    "Adam with L2 weight_decay": (torch.optim.Adam, {"weight_decay": 0.1}, True),
    "AdamW amsgrad": (torch.optim.AdamW, {"amsgrad": True}, False),
}


def _second_step_extra_bytes(shapes, constructor, kwargs, **flags) -> int:
    torch.manual_seed(0)
    params = parameters(shapes, "cpu")
    optimizer = constructor(params, lr=1e-3, **kwargs, **flags)
    optimizer.step()  # the first step makes the state; count a later one
    return step_extra_bytes(optimizer)


@pytest.mark.claim("The for-loop's extra peak is three tensors' worth, four "
                   "with Adam's L2 decay",
                   page="optimizer-step.md#the-extra-peak-of-a-step")
@pytest.mark.parametrize("name", ADAM_FAMILY)
def test_for_loop_peak_is_three_equal_tensors_four_with_l2(name):
    """8 equal tensors: the previous tensor's denom, the sqrt and the quotient
    (and, with L2, g + λθ) are alive at once: exactly 3 (4) tensors' worth."""
    constructor, kwargs, l2 = ADAM_FAMILY[name]
    shapes = [(1024,)] * 8
    extra = _second_step_extra_bytes(shapes, constructor, kwargs,
                                     foreach=False)
    assert extra == (4 if l2 else 3) * 1024 * 4


@pytest.mark.claim("For tensors of different sizes the for-loop's peak is "
                   "predicted from the sizes in step order, exactly",
                   page="optimizer-step.md#the-extra-peak-of-a-step")
@pytest.mark.parametrize("shapes", [
    transformer_like_shapes(2, 16), large_shapes(4, 1),
    [(5,), (100,), (7,), (300,), (2,)],
], ids=["transformer-like", "large", "uneven"])
@pytest.mark.parametrize("name", ADAM_FAMILY)
def test_for_loop_peak_is_predicted_from_the_sizes_exactly(name, shapes):
    constructor, kwargs, l2 = ADAM_FAMILY[name]
    sizes = [torch.Size(s).numel() * 4 for s in shapes]
    extra = _second_step_extra_bytes(shapes, constructor, kwargs,
                                     foreach=False)
    assert extra == for_loop_adam_extra_bytes(sizes, l2=l2)


@pytest.mark.claim("Foreach needs one copy of the parameters at its peak, "
                   "fused nothing",
                   page="optimizer-step.md#three-implementations-of-the-same-update")
@pytest.mark.parametrize("name", ADAM_FAMILY)
def test_foreach_needs_one_params_worth_and_fused_nothing(name):
    constructor, kwargs, _ = ADAM_FAMILY[name]
    shapes = transformer_like_shapes(2, 16)
    params_bytes = sum(torch.Size(s).numel() * 4 for s in shapes)
    assert _second_step_extra_bytes(shapes, constructor, kwargs,
                                    foreach=True) == params_bytes
    assert _second_step_extra_bytes(shapes, constructor, kwargs,
                                    fused=True) == 0


@pytest.mark.claim("SGD with momentum updates in place in all three "
                   "implementations: nothing extra",
                   page="optimizer-step.md#the-extra-peak-of-a-step")
def test_sgd_momentum_steps_in_place_in_every_implementation():
    shapes = transformer_like_shapes(1, 16)
    for flags in ({"foreach": False}, {"foreach": True}, {"fused": True}):
        assert _second_step_extra_bytes(
            shapes, torch.optim.SGD, {"momentum": 0.9}, **flags) == 0, flags


# ---- a step that GradScaler skips ----------------------------------------

SGD = functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)


@pytest.mark.claim("Stock SGD keeps no state through a skipped step and "
                   "starts its momentum afterwards",
                   page="optimizer-step.md#fused-sgd-under-a-gradscaler-a-skipped-step-that-leaves-state")
def test_stock_sgd_skips_the_overflow_step_entirely():
    assert skip_then_step(SGD) == ([], [1.0, 0.9, 0.71])
    assert skip_then_step(functools.partial(SGD, foreach=True)) == (
        [], [1.0, 0.9, 0.71])


@pytest.mark.claim("A skipped step leaves fused SGD with momentum a buffer "
                   "of uninitialised memory",
                   page="optimizer-step.md#fused-sgd-under-a-gradscaler-a-skipped-step-that-leaves-state")
def test_fused_sgd_keeps_an_uninitialised_momentum_buffer():
    kept, _ = skip_then_step(functools.partial(SGD, fused=True))
    assert kept == ["momentum_buffer"]
    with UninitialisedAsNaN():  # what empty_like returned becomes visible
        kept, thetas = skip_then_step(functools.partial(SGD, fused=True))
    assert kept == ["momentum_buffer"]
    assert thetas[0] == 1.0 and all(t != t for t in thetas[1:])  # NaN
    assert not torch.are_deterministic_algorithms_enabled()  # restored


@pytest.mark.claim("Fused SGD without momentum keeps no buffer through a "
                   "skipped step",
                   page="optimizer-step.md#fused-sgd-under-a-gradscaler-a-skipped-step-that-leaves-state")
def test_fused_sgd_without_momentum_keeps_nothing():
    plain = functools.partial(torch.optim.SGD, lr=0.1)
    with UninitialisedAsNaN():
        assert skip_then_step(functools.partial(plain, fused=True)) == (
            [], [1.0, 0.9, 0.8])


@pytest.mark.claim("Fused Adam and AdamW make zeroed state at step 0 on a "
                   "skipped step, so their next steps match stock",
                   page="optimizer-step.md#fused-sgd-under-a-gradscaler-a-skipped-step-that-leaves-state")
@pytest.mark.parametrize("constructor", [torch.optim.Adam, torch.optim.AdamW])
def test_fused_adam_honours_found_inf(constructor):
    stock = skip_then_step(functools.partial(constructor, lr=0.1))
    with UninitialisedAsNaN():
        kept, thetas = skip_then_step(
            functools.partial(constructor, lr=0.1, fused=True))
    assert stock[0] == []
    # state is made, but zero and at step 0: the next steps match stock
    assert kept == ["exp_avg", "exp_avg_sq", "step"]
    assert thetas == stock[1]
