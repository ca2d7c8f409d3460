"""A gradient of None versus a gradient of zeros: what the optimizer does with each.

torch.optim steps only the parameters whose .grad is not None. A zero-filled gradient is a real
gradient: the state machine takes a full transition with it. Nothing runs on import.
"""

import torch
from torch import nn


# --8<-- [start:second_step]
def second_step(make_optimizer, second_grad):
    """Step once with g = 1, then again with `second_grad` (None, or a number such as 0.0).

    Returns theta after each step and the state after the second, as floats (float64 throughout)."""
    p = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = make_optimizer([p])
    p.grad = torch.tensor([1.0], dtype=torch.float64)
    optimizer.step()
    theta_1 = p.item()
    # None is what zero_grad() leaves by default; zeros are what zero_grad(set_to_none=False) leaves.
    p.grad = None if second_grad is None else torch.tensor([second_grad], dtype=torch.float64)
    optimizer.step()
    state = {key: value.item() for key, value in optimizer.state[p].items()}
    return theta_1, p.item(), state
# --8<-- [end:second_step]


# --8<-- [start:two_heads]
class TwoHeads(nn.Module):
    """A shared trunk and two task heads; a batch of task "a" never touches head_b."""

    def __init__(self, d: int = 8):
        super().__init__()
        self.trunk = nn.Linear(d, d)
        self.head_a = nn.Linear(d, 1)
        self.head_b = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        head = self.head_a if task == "a" else self.head_b
        return head(torch.relu(self.trunk(x)))


def train_tasks(tasks, *, set_to_none: bool, seed: int = 0):
    """AdamW on one batch per entry of `tasks` ("a" or "b"), clearing grads the chosen way.

    Returns the model, its optimizer and a snapshot of head_b's weight after every step."""
    torch.manual_seed(seed)
    model = TwoHeads()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    head_b_after = []
    for task in tasks:
        x, y = torch.randn(16, 8), torch.randn(16, 1)
        optimizer.zero_grad(set_to_none=set_to_none)
        torch.nn.functional.mse_loss(model(x, task), y).backward()
        optimizer.step()
        head_b_after.append(model.head_b.weight.detach().clone())
    return model, optimizer, head_b_after
# --8<-- [end:two_heads]
