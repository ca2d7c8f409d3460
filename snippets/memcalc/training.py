"""The training step the calculator predicts, as a GPU runs it.

`make_optimizers` builds the optimizer(s) an option names; `Trainer.step`
runs one step: micro-batches of forward and backward passes (under
autocast for bf16-autocast), the optimizer step (through fp32 master
weights for bf16-mixed) and `zero_grad(set_to_none=True)`. Run it twice,
then measure the third: that is the steady state the estimate describes.
"""

from __future__ import annotations

import torch
from torch import nn


def _flags(implementation: str) -> dict:
    return {"foreach": {"foreach": True}, "for-loop": {"foreach": False},
            "fused": {"fused": True}}[implementation]


def make_optimizers(name: str, implementation: str,
                    params: list[torch.Tensor]) -> list:
    flags = _flags(implementation)
    if name == "sgd":
        return [torch.optim.SGD(params, lr=1e-3, **flags)]
    if name == "sgd-momentum":
        return [torch.optim.SGD(params, lr=1e-3, momentum=0.9, **flags)]
    if name in ("adam", "amsgrad"):
        return [torch.optim.Adam(params, lr=1e-4,
                                 amsgrad=name == "amsgrad", **flags)]
    if name == "adamw":
        return [torch.optim.AdamW(params, lr=1e-4, **flags)]
    if name == "adafactor":
        return [torch.optim.Adafactor(params, lr=1e-3, **flags)]
    if name == "muon":   # Muon for matrices, AdamW for the rest
        matrices = [p for p in params if p.ndim == 2]
        others = [p for p in params if p.ndim != 2]
        return [torch.optim.Muon(matrices, lr=1e-3),
                torch.optim.AdamW(others, lr=1e-4, **flags)]
    if name == "adam8bit":
        import bitsandbytes as bnb   # not a dependency of this project
        return [bnb.optim.Adam8bit(params, lr=1e-4)]
    raise ValueError(name)


# --8<-- [start:step]
class Trainer:
    """One model, its optimizer(s), and the step estimate() describes."""

    def __init__(self, model: nn.Module, loss_fn, optimizer: str,
                 precision: str, implementation: str = "foreach",
                 micro_batches: int = 1):
        if precision in ("bf16-mixed", "bf16"):
            model.to(torch.bfloat16)
        self.model, self.loss_fn = model, loss_fn
        self.precision, self.micro_batches = precision, micro_batches
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.masters = None
        stepped = self.params
        if precision == "bf16-mixed":   # fp32 master weights and states
            self.masters = [p.detach().float() for p in self.params]
            stepped = self.masters
        self.optimizers = make_optimizers(optimizer, implementation,
                                          stepped)
        self.loss = None

    def forward(self) -> torch.Tensor:
        if self.precision == "bf16-autocast":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.loss_fn(self.model)
        return self.loss_fn(self.model)

    def backward(self) -> None:
        self.loss.backward()

    def update(self) -> None:
        if self.masters is not None:   # bf16 grads -> fp32, one at a time
            for master, p in zip(self.masters, self.params):
                master.grad = p.grad.float()
                p.grad = None
        for optimizer in self.optimizers:
            optimizer.step()
        if self.masters is not None:
            with torch.no_grad():
                for master, p in zip(self.masters, self.params):
                    p.copy_(master)
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        for _ in range(self.micro_batches):
            self.loss = self.forward()
            self.backward()
        self.update()
# --8<-- [end:step]
