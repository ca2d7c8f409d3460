"""PyTorch's SGD and Adam updates written out by hand, one tensor at a time.

Each function takes the keyword arguments of the torch.optim class it mirrors
and keeps its state in a plain dict under the same keys, so
`optimizer.state[p]` and ours compare key by key. The operations are those of
the for-loop (single-tensor) path of torch/optim/sgd.py and
torch/optim/adam.py, in the same order, so the results agree bit for bit.
`adam_update_paper` is Algorithm 1 of Kingma & Ba as printed, which agrees
within a tolerance.
"""

import torch


# --8<-- [start:sgd_update]
@torch.no_grad()
def sgd_update(param, grad, state, *, lr, momentum=0.0, dampening=0.0,
               weight_decay=0.0, nesterov=False, maximize=False):
    """One torch.optim.SGD step for one tensor; param and state change."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        # L2: λθ joins the gradient, so the momentum buffer carries it too.
        g = g.add(param, alpha=weight_decay)
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            # First step: the buffer is a copy of g. No zeros, no dampening.
            buf = g.clone()
            state["momentum_buffer"] = buf
        else:
            buf.mul_(momentum).add_(g, alpha=1 - dampening)  # μb + (1−τ)g
        # Nesterov steps along g + μb; plain momentum along the buffer.
        g = g.add(buf, alpha=momentum) if nesterov else buf
    # The learning rate multiplies the whole buffer, at every step.
    param.add_(g, alpha=-lr)                                # θ = θ − γg
# --8<-- [end:sgd_update]


# --8<-- [start:sutskever_update]
@torch.no_grad()
def sutskever_update(param, grad, state, *, lr, momentum):
    """Momentum as Sutskever et al. (2013) write it: lr goes INTO v."""
    v = state.setdefault("velocity", torch.zeros_like(param))  # v0 = 0
    v.mul_(momentum).add_(grad, alpha=lr)                      # μv + γg
    param.sub_(v)                                              # θ − v
# --8<-- [end:sutskever_update]


# --8<-- [start:constant_gradient]
def sgd_moves(learning_rates, g=1.0, **hyper):
    """torch.optim.SGD on a constant gradient g: how far θ moves each step.

    `learning_rates` holds one lr per step, as a scheduler would set it.
    """
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([theta], lr=learning_rates[0], **hyper)
    moves = []
    for lr in learning_rates:
        optimizer.param_groups[0]["lr"] = lr  # what a scheduler does
        theta.grad = torch.full_like(theta, g)
        before = theta.item()
        optimizer.step()
        moves.append(before - theta.item())
    return moves


def sutskever_moves(learning_rates, g=1.0, momentum=0.9):
    """The same for Sutskever's form: lr inside the velocity."""
    theta, state, moves = torch.zeros(1, dtype=torch.float64), {}, []
    for lr in learning_rates:
        before = theta.item()
        grad = torch.full_like(theta, g)
        sutskever_update(theta, grad, state, lr=lr, momentum=momentum)
        moves.append(before - theta.item())
    return moves
# --8<-- [end:constant_gradient]


# --8<-- [start:adam_update]
@torch.no_grad()
def adam_update(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999),
                eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False):
    """One torch.optim.Adam step (L2 weight decay) for one tensor."""
    beta1, beta2 = betas
    if not state:
        # Lazy: the state appears at the first step, shaped like the param.
        # `step` is 0-d, on the CPU, float32 whatever the param's dtype:
        # float64 only when the default dtype is float64.
        wide = torch.get_default_dtype() == torch.float64
        state["step"] = torch.tensor(0.0, dtype=torch.float64 if wide
                                     else torch.float32)
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
        if amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(param)
    g = -grad if maximize else grad
    state["step"] += 1              # counted first: the first step has t = 1
    t = state["step"].item()
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)  # L2: decay flows into m and v
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.lerp_(g, 1 - beta1)                          # β1·m + (1−β1)·g
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # β2·v + (1−β2)·g²
    bias_correction1 = 1 - beta1 ** t  # m and v started at 0: undo that
    bias_correction2 = 1 - beta2 ** t
    if amsgrad:
        # AMSGrad divides by the largest v seen so far, never a smaller one.
        vmax = state["max_exp_avg_sq"]
        torch.maximum(vmax, v, out=vmax)
        v = vmax
    denom = (v.sqrt() / bias_correction2 ** 0.5).add_(eps)  # √v̂ + ε
    # θ = θ − γ·m̂/(√v̂ + ε)
    param.addcdiv_(m, denom, value=-lr / bias_correction1)
# --8<-- [end:adam_update]


# --8<-- [start:adam_update_paper]
@torch.no_grad()
def adam_update_paper(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999),
                      eps=1e-8):
    """Kingma & Ba (2014), Algorithm 1, line by line: other rounding."""
    beta1, beta2 = betas
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * grad
    v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * grad**2
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    param -= lr * m_hat / (v_hat.sqrt() + eps)
# --8<-- [end:adam_update_paper]


# --8<-- [start:side_by_side]
def side_by_side(optimizer_class, update, steps=5, seed=0, flags=None,
                 **hyper):
    """Step torch.optim and a hand-written rule on the same params and grads.

    `hyper` goes to both; `flags` (foreach=..., fused=...) to torch only.
    Returns the largest |difference| between the two copies of the params
    after each step (0.0: bitwise equal), and both sets of state.
    """
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(8, 5, generator=gen), torch.randn(5, generator=gen)]
    theirs = [p.clone().requires_grad_() for p in params]
    ours, our_state = [p.clone() for p in params], [{} for _ in params]
    optimizer = optimizer_class(theirs, **hyper, **(flags or {}))
    differences = []
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=gen) for p in params]
        for p, g in zip(theirs, grads):
            p.grad = g.clone()
        optimizer.step()
        for p, g, state in zip(ours, grads, our_state):
            update(p, g.clone(), state, **hyper)
        gaps = [(a.detach() - b).abs().max().item()
                for a, b in zip(theirs, ours)]
        differences.append(max(gaps))
    return differences, [optimizer.state[p] for p in theirs], our_state


def same_state(theirs, ours) -> bool:
    """Both sets of state hold the same keys and bitwise equal tensors."""
    return all(t.keys() == o.keys() and all(torch.equal(t[k], o[k]) for k in t)
               for t, o in zip(theirs, ours))
# --8<-- [end:side_by_side]
