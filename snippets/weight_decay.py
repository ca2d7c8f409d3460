"""Weight decay two ways: an L2 penalty added to the gradient, or decoupled.

Scalar experiments small enough to predict by hand: one parameter, one or a
few steps, every hyperparameter explicit. Nothing runs on import.
"""

import inspect
import math

import torch


# --8<-- [start:scalar_step]
def scalar_step(optimizer_class, grad: float, *, theta: float = 1.0,
                dtype=torch.float32, **hyper):
    """One step on a single parameter: (theta after, state after) as floats.

    The study plan's scalar test: theta = 1, a gradient set by hand, step()."""
    p = torch.nn.Parameter(torch.tensor([theta], dtype=dtype))
    optimizer = optimizer_class([p], **hyper)
    p.grad = torch.tensor([grad], dtype=dtype)  # no loss, no backward
    optimizer.step()
    state = {key: value.item() for key, value in optimizer.state[p].items()}
    return p.item(), state
# --8<-- [end:scalar_step]


# --8<-- [start:predict_first_adam_step]
def predict_first_adam_step(grad, theta, *, lr, weight_decay, eps, decoupled):
    """Adam's first step by hand, in Python floats (float64).

    On step 1 the bias corrections undo the betas exactly: m_hat = g and
    v_hat = g**2 for any betas, so the step is lr * g / (|g| + eps)."""
    if decoupled:
        theta = theta * (1 - lr * weight_decay)  # the moments never see it
    else:
        grad = grad + weight_decay * theta  # L2: joins g, then the moments
    m_hat, v_hat = grad, grad * grad
    return theta - lr * (m_hat / (math.sqrt(v_hat) + eps))
# --8<-- [end:predict_first_adam_step]


# --8<-- [start:sgd_trajectory]
def sgd_trajectory(grads, lrs, *, decay, weight_decay, momentum=0.0):
    """theta after each SGD step from theta = 1 (float64), with one of:

    "l2"         SGD(weight_decay=...): g + lambda*theta, before the buffer
    "decoupled"  theta <- (1 - lr_t*lambda)*theta, then SGD (AdamW's way)
    "fixed"      theta <- (1 - lambda)*theta whatever the lr (the paper's
                 Eq. 1)
    """
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    l2 = weight_decay if decay == "l2" else 0.0
    optimizer = torch.optim.SGD([p], lr=lrs[0], momentum=momentum,
                                weight_decay=l2)
    thetas = []
    for grad, lr in zip(grads, lrs):
        optimizer.param_groups[0]["lr"] = lr  # what a scheduler does
        with torch.no_grad():  # the shrink is outside autograd, as in AdamW
            if decay == "decoupled":
                p.mul_(1 - lr * weight_decay)
            elif decay == "fixed":
                p.mul_(1 - weight_decay)
        p.grad = torch.tensor([grad], dtype=torch.float64)
        optimizer.step()
        thetas.append(p.item())
    return thetas
# --8<-- [end:sgd_trajectory]


# --8<-- [start:decay_by_gradient_scale]
def decay_over_steps(make_optimizer, steps=100, scales=(1.0, 0.01)):
    """theta after every step, one coordinate per scale, all starting at 1.

    Each coordinate gets g_t = (-1)**t * scale: no net pull, so what moves
    theta on average is the decay. Adam alone is scale-invariant (g and
    0.01*g give the same update), so coordinates part only through lambda."""
    p = torch.nn.Parameter(torch.ones(len(scales), dtype=torch.float64))
    optimizer = make_optimizer([p])
    scale = torch.tensor(scales, dtype=torch.float64)
    thetas = []
    for t in range(steps):
        p.grad = scale * (-1.0) ** t
        optimizer.step()
        thetas.append(p.tolist())
    return thetas


def decay_by_gradient_scale(make_optimizer, steps=100, scales=(1.0, 0.01)):
    """Where each coordinate ends after `steps` steps."""
    return decay_over_steps(make_optimizer, steps, scales)[-1]


# Adam's lr and one lambda, three ways to (not) decay
ADAM_LR, ADAM_LAMBDA = 0.01, 0.1
THREE_DECAYS = {
    "no decay": lambda ps: torch.optim.Adam(ps, lr=ADAM_LR),
    "Adam (L2)": lambda ps: torch.optim.Adam(ps, lr=ADAM_LR,
                                             weight_decay=ADAM_LAMBDA),
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=ADAM_LR,
                                          weight_decay=ADAM_LAMBDA),
}
# --8<-- [end:decay_by_gradient_scale]


# --8<-- [start:adamw_under_schedule]
def adamw_under_schedule(lrs, *, weight_decay):
    """theta after each AdamW step with g = 0, the lr set per step.

    With g = 0 the Adam part is 0 / (0 + eps) = 0: only the decay moves."""
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = torch.optim.AdamW([p], lr=lrs[0], weight_decay=weight_decay)
    thetas = []
    for lr in lrs:
        optimizer.param_groups[0]["lr"] = lr
        p.grad = torch.zeros_like(p)
        optimizer.step()
        thetas.append(p.item())
    return thetas
# --8<-- [end:adamw_under_schedule]


# --8<-- [start:decoupled_adam]
def has_decoupled_flag() -> bool:
    """Does Adam take decoupled_weight_decay? Ask the signature."""
    parameters = inspect.signature(torch.optim.Adam).parameters
    return "decoupled_weight_decay" in parameters


def adam_decoupled(params, *, weight_decay, **hyper):
    """Adam with decoupled decay. weight_decay is required: Adam's default
    is 0, AdamW's 1e-2, so Adam(decoupled_weight_decay=True) alone decays
    nothing."""
    if has_decoupled_flag():
        return torch.optim.Adam(params, weight_decay=weight_decay,
                                decoupled_weight_decay=True, **hyper)
    return torch.optim.AdamW(params, weight_decay=weight_decay, **hyper)
# --8<-- [end:decoupled_adam]


# --8<-- [start:same_run]
def same_run(make_a, make_b, shapes=((16, 8), (16,)), steps=5, seed=0):
    """Step two optimizers on identical parameters and random gradients.

    True when every parameter and every state tensor ends bitwise equal."""
    runs = []
    for make in (make_a, make_b):
        torch.manual_seed(seed)  # same start, same gradients for both
        params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
        optimizer = make(params)
        for _ in range(steps):
            for p in params:
                p.grad = torch.randn_like(p)
            optimizer.step()
        runs.append((params, optimizer))
    (params_a, opt_a), (params_b, opt_b) = runs
    return all(
        torch.equal(a, b)
        and opt_a.state[a].keys() == opt_b.state[b].keys()
        and all(torch.equal(opt_a.state[a][k], opt_b.state[b][k])
                for k in opt_a.state[a])
        for a, b in zip(params_a, params_b)
    )
# --8<-- [end:same_run]
