"""Adding a small update to a bf16 weight: round to nearest (the update may
vanish), Kahan-compensated (what rounding drops is carried to the next
step), or stochastically rounded (unbiased in expectation).

bf16 keeps 8 significant bits: between 1 and 2 its values are 2**-7 apart,
so `1 + u` rounds back to 1 for any positive u below half that gap, 2**-8
(below 1 the gap halves).
"""

import torch

ROUNDINGS = ("fp32", "nearest", "kahan", "stochastic")


# --8<-- [start:kahan]
def kahan_add_(param: torch.Tensor, update: torch.Tensor,
               compensation: torch.Tensor) -> None:
    """param += update, stored in bf16, keeping what rounding drops.

    `compensation` (bf16, shaped like param: 2 more bytes per parameter)
    holds the part of earlier updates that the bf16 weight could not take;
    it is added back before the next rounding, so nothing is lost for good.
    """
    wanted = param.float() + (update.float() + compensation.float())
    param.copy_(wanted)                         # rounds to nearest bf16
    compensation.copy_(wanted - param.float())  # what that rounding dropped
# --8<-- [end:kahan]


# --8<-- [start:stochastic]
def stochastic_round_(param: torch.Tensor, value: torch.Tensor,
                      generator: torch.Generator | None = None) -> None:
    """param (bf16) = value (fp32) rounded up or down at random, with the
    probabilities that make the expected result exactly `value`.

    bf16 is the upper half of fp32's bits. Adding a uniform random 16-bit
    integer to the lower half carries into the upper half with probability
    (lower half) / 2**16; clearing the lower half then truncates.
    """
    bits = value.float().contiguous().view(torch.int32)
    noise = torch.randint(0, 1 << 16, bits.shape, dtype=torch.int32,
                          device=bits.device, generator=generator)
    rounded = (bits + noise) & -65536             # clear the low 16 bits
    param.copy_(rounded.view(torch.float32))      # exact: fits in bf16
# --8<-- [end:stochastic]


def apply_update_(param, update, rounding: str, compensation=None,
                  generator=None) -> None:
    """param += update, with one of the three roundings (param is bf16)."""
    if rounding == "nearest":
        param.copy_(param.float() + update)
    elif rounding == "kahan":
        kahan_add_(param, update, compensation)
    elif rounding == "stochastic":
        stochastic_round_(param, param.float() + update, generator)
    else:
        raise ValueError(f"unknown rounding {rounding!r}")


def regression_problem(seed: int = 0):
    """Least squares with 64 weights and 512 examples, a little noise."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(512, 64, generator=g)
    y = X @ torch.randn(64, generator=g) + 0.01 * torch.randn(512, generator=g)
    return X, y


# --8<-- [start:regression]
def regression_run(rounding: str, steps: int = 400, lr: float = 0.05,
                   seed: int = 0) -> dict:
    """Plain gradient descent on `regression_problem(seed)` from w = 0.

    The loss and its gradient are computed in fp32 in every run; only the
    weights are stored differently (fp32, or bf16 with one of the three
    roundings), so any difference between runs is the storing of updates.
    """
    X, y = regression_problem(seed)
    dtype = torch.float32 if rounding == "fp32" else torch.bfloat16
    w = torch.zeros(64, dtype=dtype)
    compensation = torch.zeros(64, dtype=torch.bfloat16)    # Kahan only
    noise = torch.Generator().manual_seed(seed + 1)          # SR only
    losses, last_change = [], 0
    for step in range(steps):
        residual = X @ w.float() - y
        losses.append((residual @ residual / len(y)).item())
        update = -lr * (2 / len(y)) * (X.T @ residual)
        before = w.clone()
        if rounding == "fp32":
            w += update
        else:
            apply_update_(w, update, rounding, compensation, noise)
        if not torch.equal(before, w):
            last_change = step
    return {"losses": losses, "last_change": last_change}
# --8<-- [end:regression]


def bf16_floor(seed: int = 0) -> float:
    """The loss at the least-squares solution rounded to bf16: about the
    best a model whose weights are stored in bf16 can reach."""
    X, y = regression_problem(seed)
    w = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
    residual = X @ w.to(torch.bfloat16).float() - y
    return (residual @ residual / len(y)).item()


def steps_to_reach(losses: list[float], target: float) -> int:
    """The first step whose loss is at or below `target`."""
    return next(i for i, loss in enumerate(losses) if loss <= target)


# --8<-- [start:bf16_adamw]
class Bf16AdamW(torch.optim.Optimizer):
    """AdamW for bf16 parameters with bf16 moments (8 bytes per parameter
    with weights and gradients), the update added by `rounding`:
    "nearest" (what torch.optim does), "kahan" (+2 bytes) or "stochastic".
    A teaching version: one parameter at a time, not fused.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=1e-2, rounding="kahan", seed=0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay))
        self.rounding = rounding
        self.generator = None
        self.seed = seed

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            (b1, b2), lr = group["betas"], group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:       # lazily, like torch.optim
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if self.rounding == "kahan":
                        state["compensation"] = torch.zeros_like(p)
                if self.rounding == "stochastic" and self.generator is None:
                    self.generator = torch.Generator(p.device)
                    self.generator.manual_seed(self.seed)
                state["step"] += 1
                t, g = state["step"], p.grad.float()
                m = state["exp_avg"].float().lerp_(g, 1 - b1)
                v = state["exp_avg_sq"].float().mul_(b2)
                v.addcmul_(g, g, value=1 - b2)
                state["exp_avg"].copy_(m)
                state["exp_avg_sq"].copy_(v)
                denom = (v / (1 - b2**t)).sqrt_().add_(group["eps"])
                update = (m / (1 - b1**t)).div_(denom)
                update.add_(p.float(), alpha=group["weight_decay"])
                apply_update_(p, update.mul_(-lr), self.rounding,
                              state.get("compensation"), self.generator)
# --8<-- [end:bf16_adamw]
