"""A gradient of None versus a gradient of zeros: what the optimizer does.

torch.optim steps only the parameters whose .grad is not None. A zero-filled
gradient is a real gradient: the state machine takes a full transition with
it. Nothing runs on import.
"""

import torch
from torch import nn


# --8<-- [start:second_step]
def second_step(make_optimizer, second_grad):
    """Step once with g = 1, then again with `second_grad` (None or a number).

    Returns theta after each step and the state after the second, as floats
    (float64 throughout)."""
    p = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = make_optimizer([p])
    p.grad = torch.tensor([1.0], dtype=torch.float64)
    optimizer.step()
    theta_1 = p.item()
    # None is what zero_grad() leaves, zeros what set_to_none=False leaves
    if second_grad is None:
        p.grad = None
    else:
        p.grad = torch.tensor([second_grad], dtype=torch.float64)
    optimizer.step()
    state = {key: value.item() for key, value in optimizer.state[p].items()}
    return theta_1, p.item(), state
# --8<-- [end:second_step]


# --8<-- [start:two_heads]
LR, WEIGHT_DECAY = 1e-2, 0.1  # the AdamW that train_tasks builds


class TwoHeads(nn.Module):
    """A shared trunk and two task heads; task "a" never touches head_b."""

    def __init__(self, d: int = 8):
        super().__init__()
        self.trunk = nn.Linear(d, d)
        self.head_a = nn.Linear(d, 1)
        self.head_b = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        head = self.head_a if task == "a" else self.head_b
        return head(torch.relu(self.trunk(x)))


def train_step(model, optimizer, task: str, *, set_to_none: bool) -> None:
    """One batch of `task`, gradients cleared the chosen way first."""
    x, y = torch.randn(16, 8), torch.randn(16, 1)
    optimizer.zero_grad(set_to_none=set_to_none)
    nn.functional.mse_loss(model(x, task), y).backward()
    optimizer.step()


def train_tasks(tasks, *, set_to_none: bool, seed: int = 0):
    """AdamW on one batch per entry of `tasks` ("a" or "b").

    Returns the model, its optimizer and head_b's weight after every step."""
    torch.manual_seed(seed)
    model = TwoHeads()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR,
                                  weight_decay=WEIGHT_DECAY)
    head_b_after = []
    for task in tasks:
        train_step(model, optimizer, task, set_to_none=set_to_none)
        head_b_after.append(model.head_b.weight.detach().clone())
    return model, optimizer, head_b_after
# --8<-- [end:two_heads]


# --8<-- [start:idle_head_drift]
def idle_head_drift(steps: int, *, set_to_none: bool) -> list[float]:
    """How far head_b's weight has moved since its one batch of task "b",
    after each of `steps` batches of task "a" (norm of the difference)."""
    tasks = ["b"] + ["a"] * steps
    _, _, head_b = train_tasks(tasks, set_to_none=set_to_none)
    return [(w - head_b[0]).norm().item() for w in head_b[1:]]
# --8<-- [end:idle_head_drift]


# --8<-- [start:keep_still]
def keep_still(p: torch.Tensor) -> None:
    """Stop the optimizer moving p: no new gradient, and no kept one."""
    p.requires_grad_(False)  # backward writes no gradient into p.grad
    p.grad = None  # a kept tensor of zeros would still be stepped
# --8<-- [end:keep_still]
