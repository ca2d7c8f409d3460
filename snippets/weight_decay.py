"""Weight decay two ways: as an L2 penalty added to the gradient, or decoupled from it.

Scalar experiments small enough to predict by hand: one parameter, one or a few steps, every
hyperparameter explicit. Nothing runs on import.
"""

import inspect
import math

import torch


# --8<-- [start:scalar_step]
def scalar_step(optimizer_class, grad: float, *, theta: float = 1.0, dtype=torch.float32, **hyper):
    """One optimizer step on a single parameter: returns (theta after, state after, as floats).

    The seed notebook's unit test: theta = 1, a gradient set by hand, one step()."""
    p = torch.nn.Parameter(torch.tensor([theta], dtype=dtype))
    optimizer = optimizer_class([p], **hyper)
    p.grad = torch.tensor([grad], dtype=dtype)  # no loss, no backward: the gradient is ours
    optimizer.step()
    state = {key: value.item() for key, value in optimizer.state[p].items()}
    return p.item(), state
# --8<-- [end:scalar_step]


# --8<-- [start:predict_first_adam_step]
def predict_first_adam_step(grad, theta, *, lr, weight_decay, eps, decoupled):
    """Adam's first step by hand, in Python floats (float64).

    On step 1 the bias corrections undo the betas exactly: m_hat = g and v_hat = g**2 for any
    betas, so the update is lr * g / (|g| + eps), a step of about lr in the direction of g."""
    if decoupled:
        theta = theta * (1 - lr * weight_decay)  # shrink theta itself; the moments never see lambda
    else:
        grad = grad + weight_decay * theta  # L2: lambda*theta joins the gradient, then the moments
    m_hat, v_hat = grad, grad * grad
    return theta - lr * (m_hat / (math.sqrt(v_hat) + eps))
# --8<-- [end:predict_first_adam_step]


# --8<-- [start:sgd_trajectory]
def sgd_trajectory(grads, lrs, *, decay, weight_decay, momentum=0.0):
    """theta after each SGD step, starting at theta = 1 (float64), under one of three decays:

    "l2"         torch's SGD(weight_decay=...): g <- g + lambda*theta, before the momentum buffer
    "decoupled"  theta <- (1 - lr_t*lambda)*theta, then a plain SGD step (AdamW's convention)
    "fixed"      theta <- (1 - lambda)*theta, whatever the lr (Loshchilov & Hutter's Eq. 1)
    """
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    l2 = weight_decay if decay == "l2" else 0.0
    optimizer = torch.optim.SGD([p], lr=lrs[0], momentum=momentum, weight_decay=l2)
    thetas = []
    for grad, lr in zip(grads, lrs):
        optimizer.param_groups[0]["lr"] = lr  # what an lr scheduler does
        with torch.no_grad():  # the decoupled shrink happens outside autograd, as in AdamW
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
def decay_by_gradient_scale(make_optimizer, steps=100, scales=(1.0, 0.01)):
    """Two coordinates, both starting at 1, fed the same zero-mean gradient at two scales.

    g_t = (-1)**t * scale: no net pull, so what moves theta on average is the decay. Adam itself is
    scale-invariant (g and 0.01*g give the same update), so any difference comes from lambda."""
    p = torch.nn.Parameter(torch.ones(len(scales), dtype=torch.float64))
    optimizer = make_optimizer([p])
    scale = torch.tensor(scales, dtype=torch.float64)
    for t in range(steps):
        p.grad = scale * (-1.0) ** t
        optimizer.step()
    return p.tolist()
# --8<-- [end:decay_by_gradient_scale]


# --8<-- [start:adamw_under_schedule]
def adamw_under_schedule(lrs, *, weight_decay):
    """theta after each AdamW step with a zero gradient, the lr set per step as a scheduler would.

    With g = 0 the Adam part of the update is 0 / (0 + eps) = 0, so only the decay moves theta."""
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
    """Does torch.optim.Adam take decoupled_weight_decay? Ask the signature, not the version."""
    return "decoupled_weight_decay" in inspect.signature(torch.optim.Adam).parameters


def adam_decoupled(params, *, weight_decay, **hyper):
    """Adam with decoupled decay. weight_decay is required: Adam's default is 0, AdamW's 1e-2,
    so leaving it out of Adam(decoupled_weight_decay=True) silently means no decay at all."""
    if has_decoupled_flag():
        return torch.optim.Adam(params, weight_decay=weight_decay, decoupled_weight_decay=True, **hyper)
    return torch.optim.AdamW(params, weight_decay=weight_decay, **hyper)
# --8<-- [end:decoupled_adam]


# --8<-- [start:same_run]
def same_run(make_a, make_b, shapes=((16, 8), (16,)), steps=5, seed=0):
    """Step two optimizers on identical parameters with identical random gradients.

    Returns True when every parameter and every state tensor ends up bitwise equal."""
    runs = []
    for make in (make_a, make_b):
        torch.manual_seed(seed)  # same initial values and same gradients for both runs
        params = [torch.nn.Parameter(torch.randn(shape)) for shape in shapes]
        optimizer = make(params)
        for _ in range(steps):
            for p in params:
                p.grad = torch.randn_like(p)
            optimizer.step()
        runs.append((params, optimizer))
    (params_a, opt_a), (params_b, opt_b) = runs
    return all(
        torch.equal(a, b) and opt_a.state[a].keys() == opt_b.state[b].keys()
        and all(torch.equal(opt_a.state[a][key], opt_b.state[b][key]) for key in opt_a.state[a])
        for a, b in zip(params_a, params_b)
    )
# --8<-- [end:same_run]
