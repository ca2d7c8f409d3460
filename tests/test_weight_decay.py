"""snippets/weight_decay.py: L2 vs decoupled decay, predicted by hand and checked against torch."""

from __future__ import annotations

import math

import pytest
import torch

import snippets.weight_decay as wd
from examples.render import figures_weight_decay
from snippets.weight_decay import (
    THREE_DECAYS, adam_decoupled, adamw_under_schedule, decay_by_gradient_scale, decay_over_steps,
    has_decoupled_flag, predict_first_adam_step, same_run, scalar_step, sgd_trajectory,
)

SCALAR_TEST = dict(lr=0.1, weight_decay=0.1, betas=(0.0, 0.0), eps=1e-8)


# --- Adam's first step: the closed form against torch ------------------------------------------

@pytest.mark.claim("Adam's first step is about γ along g + λθ under L2; decoupled, θ shrinks by 1 "
                   "− γλ and steps about γ along g",
                   page="weight-decay.md#adam-lambda-theta-goes-through-the-normaliser")
@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("betas", [(0.0, 0.0), (0.9, 0.999), (0.5, 0.9)])
@pytest.mark.parametrize("grad, theta", [(0.0, 1.0), (0.1, 1.0), (-0.3, 2.0), (1e-6, -0.5), (5.0, 0.25)])
def test_first_adam_step_matches_the_closed_form(decoupled, betas, grad, theta):
    hyper = dict(lr=0.1, weight_decay=0.1, eps=1e-8)
    measured, _ = scalar_step(torch.optim.Adam, grad, theta=theta, dtype=torch.float64, betas=betas,
                              decoupled_weight_decay=decoupled, **hyper)
    predicted = predict_first_adam_step(grad, theta, decoupled=decoupled, **hyper)
    assert measured == pytest.approx(predicted, abs=1e-14, rel=0)


@pytest.mark.claim("In float32 the scalar test gives the float32 values of 0.9, 0.99, 0.9 and "
                   "0.89", page="weight-decay.md#prove-it-the-scalar-test")
def test_the_scalar_test_in_float32_exactly():
    results = {
        (name, grad): scalar_step(cls, grad, **SCALAR_TEST)[0]
        for name, cls in [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)]
        for grad in (0.0, 0.1)
    }
    f32 = lambda x: torch.tensor(x, dtype=torch.float32).item()  # noqa: E731
    assert results == {
        ("adam", 0.0): f32(0.9), ("adamw", 0.0): f32(0.99),
        ("adam", 0.1): f32(0.9), ("adamw", 0.1): f32(0.89),
    }
    assert results[("adam", 0.0)] == 0.8999999761581421
    assert results[("adamw", 0.1)] == 0.8899999856948853


@pytest.mark.claim("One step from θ = 1, g = 0, γ = λ = 0.1 gives 0.90000001 under Adam (L2) and "
                   "0.99 under AdamW", page="weight-decay.md#prove-it-the-scalar-test")
def test_the_scalar_test_in_float64_is_the_formula():
    assert scalar_step(torch.optim.Adam, 0.0, dtype=torch.float64, **SCALAR_TEST)[0] == pytest.approx(1 - 0.1 / (1 + 1e-7), abs=1e-15)
    assert scalar_step(torch.optim.AdamW, 0.0, dtype=torch.float64, **SCALAR_TEST)[0] == pytest.approx(0.99, abs=1e-15)
    assert scalar_step(torch.optim.Adam, 0.1, dtype=torch.float64, **SCALAR_TEST)[0] == pytest.approx(1 - 0.1 / (1 + 5e-8), abs=1e-15)
    assert scalar_step(torch.optim.AdamW, 0.1, dtype=torch.float64, **SCALAR_TEST)[0] == pytest.approx(0.99 - 0.1 / (1 + 1e-7), abs=1e-15)


def f32(x: float) -> float:
    return torch.tensor(x, dtype=torch.float32).item()


@pytest.mark.claim("In float32, Adam (L2) at g = 0 lands one float32 step below the float32 "
                   "nearest the exact result", page="weight-decay.md#prove-it-the-scalar-test")
def test_float32_adam_l2_is_not_the_nearest_float32_but_one_step_below():
    """Issue 8 item 4: with g = 0, Adam (L2) in float32 is not the float32 nearest the exact
    result; the roundings along the way land one float32 step (2**-24 near 0.9) below it."""
    exact = 1 - 0.1 / (1 + 1e-7)
    theta32, _ = scalar_step(torch.optim.Adam, 0.0, **SCALAR_TEST)
    assert repr(exact) == "0.900000009999999"
    assert f32(exact) == 0.9000000357627869
    assert theta32 == 0.8999999761581421
    assert f32(exact) - theta32 == 2**-24
    assert abs(theta32 - exact) > abs(f32(exact) - exact)  # not the nearest


@pytest.mark.claim("Every float32 result of the scalar test is within one float32 step of the "
                   "exact value", page="weight-decay.md#prove-it-the-scalar-test")
@pytest.mark.parametrize("cls, decoupled", [(torch.optim.Adam, False), (torch.optim.AdamW, True)])
@pytest.mark.parametrize("grad", [0.0, 0.1])
def test_float32_results_are_within_one_float32_step_of_the_exact_value(cls, decoupled, grad):
    exact = predict_first_adam_step(grad, 1.0, lr=0.1, weight_decay=0.1, eps=1e-8, decoupled=decoupled)
    theta32, _ = scalar_step(cls, grad, **SCALAR_TEST)
    assert abs(theta32 - exact) <= 2**-24
    nearest = f32(exact) == theta32
    assert nearest == (not (grad == 0.0 and not decoupled))  # only Adam (L2) at g = 0 misses


@pytest.mark.claim("Along the way the float32 denominator rounds to 0.10000000894069672 and the "
                   "quotient to one step below 1", page="weight-decay.md#prove-it-the-scalar-test")
def test_float32_roundings_along_the_way():
    """The page's chain: denominator 0.1 + 1e-8 rounded, quotient one step below 1, update."""
    grad = torch.zeros(1).add(torch.ones(1), alpha=0.1)
    denom = (grad * grad).sqrt().add_(1e-8)
    quotient = grad / denom
    assert denom.item() == 0.10000000894069672 and quotient.item() == 1 - 2**-24
    assert (1 - 0.1 * quotient).item() == scalar_step(torch.optim.Adam, 0.0, **SCALAR_TEST)[0]


@pytest.mark.claim("Under L2, λθ enters the state (Adam m = 0.1, v = 0.01; SGD's buffer 0.1); "
                   "AdamW's state stays zero",
                   page="weight-decay.md#the-state-machine-view-where-lambda-enters")
def test_l2_state_holds_lambda_theta_and_decoupled_state_does_not():
    _, l2 = scalar_step(torch.optim.Adam, 0.0, dtype=torch.float64, **SCALAR_TEST)
    _, decoupled = scalar_step(torch.optim.AdamW, 0.0, dtype=torch.float64, **SCALAR_TEST)
    assert l2["exp_avg"] == pytest.approx(0.1) and l2["exp_avg_sq"] == pytest.approx(0.01)
    assert decoupled["exp_avg"] == 0.0 and decoupled["exp_avg_sq"] == 0.0
    _, sgd = scalar_step(torch.optim.SGD, 0.0, dtype=torch.float64, lr=0.1, weight_decay=0.1, momentum=0.9)
    assert sgd == {"momentum_buffer": pytest.approx(0.1)}


@pytest.mark.claim("With `eps=0` AdamW's zero-gradient step is 0/0 and θ becomes NaN",
                   page="weight-decay.md#prove-it-the-scalar-test")
def test_eps_is_what_keeps_a_zero_gradient_step_defined():
    theta, _ = scalar_step(torch.optim.AdamW, 0.0, lr=0.1, weight_decay=0.1, eps=0.0)
    assert math.isnan(theta)
    theta, _ = scalar_step(torch.optim.AdamW, 0.0, lr=0.1, weight_decay=0.1, eps=1e-8)
    assert theta == torch.tensor(0.99).item()


@pytest.mark.claim("Adam's L2 path divides λ out: any λ moves θ by about γ",
                   page="weight-decay.md#prove-it-the-scalar-test")
@pytest.mark.parametrize("weight_decay", [1e-3, 1e-2, 0.1, 1.0])
def test_l2_in_adam_steps_about_lr_whatever_lambda(weight_decay):
    theta, _ = scalar_step(torch.optim.Adam, 0.0, dtype=torch.float64, lr=0.1, weight_decay=weight_decay,
                           betas=(0.0, 0.0), eps=1e-8)
    assert theta == pytest.approx(0.9, abs=1e-5)


# --- SGD: equivalence and where it breaks ------------------------------------------------------

@pytest.mark.claim("For plain SGD, L2 and decoupled decay are one update, even while a scheduler "
                   "changes the lr", page="weight-decay.md#plain-sgd-one-update-written-two-ways")
def test_sgd_l2_equals_decoupled_under_an_lr_schedule():
    torch.manual_seed(0)
    grads = torch.randn(50).tolist()
    lrs = torch.linspace(0.2, 0.0, 50).tolist()
    l2 = sgd_trajectory(grads, lrs, decay="l2", weight_decay=0.3)
    decoupled = sgd_trajectory(grads, lrs, decay="decoupled", weight_decay=0.3)
    assert l2 == pytest.approx(decoupled, abs=1e-13, rel=0)


@pytest.mark.claim("With momentum 0.9, L2 and decoupled decay agree at step 1 and part from step "
                   "2 (0.9711 against 0.9801)", page="weight-decay.md#with-momentum")
def test_sgd_with_momentum_parts_from_step_two():
    l2 = sgd_trajectory([0.0] * 3, [0.1] * 3, decay="l2", weight_decay=0.1, momentum=0.9)
    decoupled = sgd_trajectory([0.0] * 3, [0.1] * 3, decay="decoupled", weight_decay=0.1, momentum=0.9)
    assert l2[0] == pytest.approx(decoupled[0], abs=1e-15)
    assert l2[1:] == pytest.approx([0.9711, 0.944379], abs=1e-15)
    assert decoupled[1:] == pytest.approx([0.9801, 0.970299], abs=1e-15)


@pytest.mark.claim("The paper's fixed decay per step equals L2 with λ' = λ/α only while the lr "
                   "stays the same", page="weight-decay.md#decay-follows-the-lr-schedule")
def test_a_fixed_decay_matches_l2_only_at_one_lr():
    fixed = sgd_trajectory([0.3, -0.1] * 2, [0.1] * 4, decay="fixed", weight_decay=0.01)
    l2 = sgd_trajectory([0.3, -0.1] * 2, [0.1] * 4, decay="l2", weight_decay=0.1)  # lambda' = lambda / lr
    assert fixed == pytest.approx(l2, abs=1e-15)
    lrs = [0.1, 0.1, 0.05, 0.05]
    fixed = sgd_trajectory([0.0] * 4, lrs, decay="fixed", weight_decay=0.01)
    l2 = sgd_trajectory([0.0] * 4, lrs, decay="l2", weight_decay=0.1)
    assert fixed[:2] == pytest.approx(l2[:2], abs=1e-15)
    assert fixed[3] == pytest.approx(0.99**4) and l2[3] == pytest.approx(0.99**2 * 0.995**2)


# --- Adam: non-equivalence ----------------------------------------------------------------------

@pytest.mark.claim("Adam (L2) and AdamW take different steps unless λ = 0",
                   page="weight-decay.md#adam-lambda-theta-goes-through-the-normaliser")
def test_adam_l2_and_adamw_differ_unless_lambda_is_zero():
    for grad in (0.0, 0.1, -2.0):
        l2, _ = scalar_step(torch.optim.Adam, grad, dtype=torch.float64, **SCALAR_TEST)
        decoupled, _ = scalar_step(torch.optim.AdamW, grad, dtype=torch.float64, **SCALAR_TEST)
        assert abs(l2 - decoupled) > 1e-3
    no_decay = dict(SCALAR_TEST, weight_decay=0.0)
    assert scalar_step(torch.optim.Adam, 0.1, **no_decay) == scalar_step(torch.optim.AdamW, 0.1, **no_decay)


@pytest.mark.claim("Adam's L2 decay depends on each weight's gradient scale; AdamW decays every "
                   "weight alike", page="weight-decay.md#across-gradient-scales")
def test_l2_decay_in_adam_depends_on_the_gradient_scale_and_adamw_does_not():
    none = decay_by_gradient_scale(lambda ps: torch.optim.Adam(ps, lr=0.01))
    l2 = decay_by_gradient_scale(lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1))
    adamw = decay_by_gradient_scale(lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1))
    assert none[0] == pytest.approx(none[1], rel=1e-6)      # Adam is scale-invariant
    assert adamw[0] == pytest.approx(adamw[1], rel=1e-6)    # decoupled decay too
    assert (1 - l2[1]) > 5 * (1 - l2[0])                      # L2 decays small-gradient weights harder
    assert adamw[0] == pytest.approx(0.999**100 * none[0], abs=1e-3)


def test_decay_over_steps_ends_where_decay_by_gradient_scale_ends():
    for make in THREE_DECAYS.values():
        run = decay_over_steps(make, 30, (1.0, 0.01, 5.0))
        assert len(run) == 30 and all(len(theta) == 3 for theta in run)
        assert run[-1] == decay_by_gradient_scale(make, 30, (1.0, 0.01, 5.0))
    assert list(THREE_DECAYS) == ["no decay", "Adam (L2)", "AdamW"]


@pytest.mark.claim("After 100 steps Adam (L2) leaves θ from 0.9727 (gradients of 10) to 0.2246 "
                   "(0.001); AdamW the same θ at every scale",
                   page="weight-decay.md#across-gradient-scales")
def test_l2_decay_grows_as_the_gradients_shrink_and_adamw_is_flat():
    """What the figure and the page's table show, across gradient scales."""
    final = figures_weight_decay.across_scales()
    assert figures_weight_decay.SCALES == (10.0, 1.0, 0.1, 0.01, 0.001)
    l2, adamw, none = final["Adam (L2)"], final["AdamW"], final["no decay"]
    assert all(a > b for a, b in zip(l2, l2[1:]))           # smaller gradients, more decay
    assert max(adamw) - min(adamw) < 1e-6 and max(none) - min(none) < 1e-6  # up to eps
    assert [round(x, 4) for x in l2] == [0.9727, 0.8898, 0.4403, 0.2295, 0.2246]
    run = figures_weight_decay.over_steps()
    assert all(len(r) == figures_weight_decay.STEPS for r in run.values())
    assert run["Adam (L2)"][-1] == [final["Adam (L2)"][1], final["Adam (L2)"][3]]


# --- PyTorch's flag, defaults, schedule ---------------------------------------------------------

@pytest.mark.claim("`AdamW` is a subclass of `Adam` whose groups carry "
                   "`decoupled_weight_decay=True`",
                   page="weight-decay.md#in-pytorch-adamdecoupled_weight_decaytrue-is-adamw")
def test_adamw_is_adam_with_the_flag():
    assert has_decoupled_flag()
    assert issubclass(torch.optim.AdamW, torch.optim.Adam)
    assert torch.optim.AdamW([torch.nn.Parameter(torch.ones(1))]).param_groups[0]["decoupled_weight_decay"]


@pytest.mark.claim("`Adam(decoupled_weight_decay=True, weight_decay=λ)` is `AdamW`, bitwise",
                   page="weight-decay.md#in-pytorch-adamdecoupled_weight_decaytrue-is-adamw")
@pytest.mark.parametrize("impl", [{}, {"foreach": True}, {"amsgrad": True}, {"maximize": True}])
def test_decoupled_adam_equals_adamw_bitwise(impl):
    assert same_run(lambda ps: adam_decoupled(ps, weight_decay=1e-2, **impl), lambda ps: torch.optim.AdamW(ps, **impl))


@pytest.mark.claim("The defaults differ: `weight_decay` is 0 for Adam, 0.01 for AdamW, so the "
                   "flag alone decays nothing",
                   page="weight-decay.md#in-pytorch-adamdecoupled_weight_decaytrue-is-adamw")
def test_the_defaults_differ():
    assert not same_run(lambda ps: torch.optim.Adam(ps, decoupled_weight_decay=True), torch.optim.AdamW)
    assert not same_run(lambda ps: torch.optim.Adam(ps, weight_decay=1e-2), torch.optim.AdamW)
    assert torch.optim.Adam([torch.nn.Parameter(torch.ones(1))]).defaults["weight_decay"] == 0
    assert torch.optim.AdamW([torch.nn.Parameter(torch.ones(1))]).defaults["weight_decay"] == 1e-2


def test_adam_decoupled_falls_back_to_adamw_without_the_flag(monkeypatch):
    monkeypatch.setattr(wd, "has_decoupled_flag", lambda: False)
    optimizer = wd.adam_decoupled([torch.nn.Parameter(torch.ones(1))], weight_decay=0.1)
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["weight_decay"] == 0.1


@pytest.mark.claim("AdamW shrinks θ by 1 − γₜλ with each step's lr; an lr of 0 stops the decay",
                   page="weight-decay.md#decay-follows-the-lr-schedule")
def test_decay_follows_the_lr_schedule():
    lrs = [0.1, 0.05, 0.0, 0.2]
    expected, theta = [], 1.0
    for lr in lrs:
        theta *= 1 - lr * 0.1
        expected.append(theta)
    assert adamw_under_schedule(lrs, weight_decay=0.1) == pytest.approx(expected, abs=1e-15)


# --- Issue 23 item 10 and issue 17 item 5: the summary's numbers with their settings -------------

def _slow_mode_loss(lr: float, weight_decay: float = 0.1, momentum: float = 0.9, steps: int = 300):
    """Percent of θ lost per step once the slow mode dominates (g = 0), L2 and decoupled."""
    hyper = dict(weight_decay=weight_decay, momentum=momentum)
    loss = {}
    for decay in ("l2", "decoupled"):
        run = sgd_trajectory([0.0] * steps, [lr] * steps, decay=decay, **hyper)
        loss[decay] = 100 * (1 - run[-1] / run[-2])
    return loss


@pytest.mark.claim("With momentum 0.9, γ = 0.01 and λ = 0.1, L2 removes 1.11 % of a weight a step, "
                   "11 times decoupled decay's 0.1 %; the ratio nears 1/(1 − μ) = 10 only as γλ "
                   "shrinks", page="weight-decay.md#with-momentum")
def test_momentum_l2_decays_eleven_times_harder_at_the_pages_settings():
    loss = _slow_mode_loss(0.01)
    assert round(loss["l2"], 2) == 1.11 and round(loss["decoupled"], 2) == 0.1
    assert round(loss["l2"] / loss["decoupled"]) == 11       # not "about ten"
    small = _slow_mode_loss(1e-4, steps=3000)
    assert round(small["l2"] / small["decoupled"], 1) == 10.0  # 1 / (1 - 0.9) as γλ -> 0
    assert all(_slow_mode_loss(lr)["l2"] / _slow_mode_loss(lr)["decoupled"] > 10 for lr in (0.03, 0.01, 1e-3))


@pytest.mark.claim("100 Adam steps at lr 0.01, λ = 0.1, default betas, on alternating-sign "
                   "gradients: ±0.01 loses 0.77 under L2 and 0.11 under AdamW; ±1 loses 0.11 "
                   "under either", page="weight-decay.md#across-gradient-scales")
def test_what_a_weight_loses_over_100_steps_at_the_pages_settings():
    assert (wd.ADAM_LR, wd.ADAM_LAMBDA) == (0.01, 0.1)
    lost = {name: [round(1 - theta, 2) for theta in decay_by_gradient_scale(make, 100, (1.0, 0.01))]
            for name, make in THREE_DECAYS.items()}
    assert lost == {"no decay": [0.02, 0.02], "Adam (L2)": [0.11, 0.77], "AdamW": [0.11, 0.11]}
    groups = THREE_DECAYS["AdamW"]([torch.nn.Parameter(torch.ones(1))]).param_groups[0]
    assert (groups["lr"], groups["weight_decay"], groups["betas"]) == (0.01, 0.1, (0.9, 0.999))


@pytest.mark.claim("torch's AdamW shrinks θ by lr·λ a step: doubling the lr doubles the decay, so "
                   "lr and λ do not tune apart", page="weight-decay.md#decay-follows-the-lr-schedule")
@pytest.mark.parametrize("weight_decay", [1e-2, 0.05, 0.1])
def test_adamw_decay_per_step_is_lr_times_lambda(weight_decay):
    for lr in (1e-3, 2e-3, 4e-3, 0.05):
        theta, = adamw_under_schedule([lr], weight_decay=weight_decay)
        assert 1 - theta == pytest.approx(lr * weight_decay, rel=1e-9)
    # halve λ and double lr: the same decay, so the two are one knob as far as the decay goes
    twice, = adamw_under_schedule([2e-3], weight_decay=weight_decay / 2)
    once, = adamw_under_schedule([1e-3], weight_decay=weight_decay)
    assert twice == pytest.approx(once, abs=1e-15)


def _run_on_gradients(make, grads):
    p = torch.nn.Parameter(torch.ones(grads[0].shape, dtype=torch.float64))
    optimizer = make([p])
    thetas = [p.detach().clone()]
    for grad in grads:
        p.grad = grad.clone()
        optimizer.step()
        thetas.append(p.detach().clone())
    return thetas


@pytest.mark.claim("What decoupling buys: AdamW's decay never passes through √v̂, so every weight "
                   "shrinks by the same γλ whatever its gradients; Adam's L2 decay is divided by "
                   "√v̂", page="weight-decay.md#decay-follows-the-lr-schedule")
def test_decoupled_decay_never_passes_through_the_normaliser():
    lr, lam = 0.01, 0.1
    scales = torch.tensor([10.0, 1.0, 1e-2, 1e-4], dtype=torch.float64)
    torch.manual_seed(0)
    grads = [torch.randn(4, dtype=torch.float64) * scales for _ in range(20)]
    plain = _run_on_gradients(lambda ps: torch.optim.Adam(ps, lr=lr), grads)
    adam_steps = [after - before for before, after in zip(plain, plain[1:])]
    adamw = _run_on_gradients(lambda ps: torch.optim.AdamW(ps, lr=lr, weight_decay=lam), grads)
    for before, after, adam_step in zip(adamw, adamw[1:], adam_steps):
        # each step: the same shrink 1 - lr·λ for every coordinate, then the undecayed Adam step
        assert torch.allclose(after, before * (1 - lr * lam) + adam_step, atol=1e-14, rtol=0)
    l2 = _run_on_gradients(lambda ps: torch.optim.Adam(ps, lr=lr, weight_decay=lam), grads[:1])
    decay_share = (l2[1] - plain[1]) / (-lr * lam * l2[0])   # 1 would be an undivided γλθ
    assert decay_share[-1] > 100 * decay_share[0]           # small gradients: decayed far harder


@pytest.mark.claim("Adam's first step is about γ only once |g| is well above ε: γ = 1e-3 moves θ by "
                   "0, 5e-4, 9.999e-4 and 1e-3 for g = 0, 1e-8, 1e-4, 1",
                   page="weight-decay.md#adam-lambda-theta-goes-through-the-normaliser")
def test_the_first_step_is_about_lr_only_well_above_eps():
    moves = [abs(scalar_step(torch.optim.Adam, g, theta=0.0, dtype=torch.float64, lr=1e-3, eps=1e-8)[0])
             for g in (0.0, 1e-8, 1e-4, 1.0)]
    assert moves == pytest.approx([0.0, 5e-4, 9.999e-4, 1e-3], rel=1e-6, abs=0)
