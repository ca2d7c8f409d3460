"""Parameter groups for weight decay: decay the weight matrices only.

The study plan's filter (substrings of names) is kept to show where it
misfires; the builder decides by tensor shape and module type instead, and a
check in the spirit of minGPT's assertions proves that every trainable
parameter lands in exactly one group.
"""

import textwrap

import torch
from torch import nn


# --8<-- [start:seed_filter]
def seed_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The study plan's filter, as it was: substrings of the name decide."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_bias = name.endswith(".bias")
        is_norm = any(nd in name.lower() for nd in
                      ["bn", "batchnorm", "layernorm", "ln", "norm"])
        if is_bias or is_norm:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
# --8<-- [end:seed_filter]


# --8<-- [start:trap_net]
class TrapNet(nn.Module):
    """A pre-norm residual block whose ordinary names trip a name filter."""

    def __init__(self, d: int = 16, n_out: int = 4):
        super().__init__()
        self.rms = nn.RMSNorm(d)  # a norm whose name says nothing of the kind
        self.subnet = nn.Linear(d, d)  # "subnet" contains "bn"
        self.controlnet = nn.Linear(d, d, bias=False)  # contains "ln"
        # a 1-D per-channel scale (CaiT's LayerScale)
        self.layer_scale = nn.Parameter(torch.full((d,), 0.1))
        self.ln_f = nn.LayerNorm(d)  # the case the filter was written for
        self.head = nn.Linear(d, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.controlnet(torch.relu(self.subnet(self.rms(x))))
        return self.head(self.ln_f(x + self.layer_scale * h))
# --8<-- [end:trap_net]


# --8<-- [start:build_param_groups]
# Modules whose every parameter is a gain or a shift. Their weights are
# usually 1-D, but LayerNorm((4, 8)) has a 2-D one, which a shape rule alone
# would decay.
NORM_TYPES = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.GroupNorm, nn.LayerNorm, nn.RMSNorm,
)


def build_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay p iff p.ndim >= 2 (nanoGPT's rule) and its module is no norm."""
    decay, no_decay, seen = {}, {}, set()
    for module_name, module in model.named_modules():
        for param_name, p in module.named_parameters(recurse=False):
            # frozen: no group; tied: under its first name only
            if not p.requires_grad or p in seen:
                continue
            seen.add(p)
            name = f"{module_name}.{param_name}" if module_name else param_name
            if p.ndim >= 2 and not isinstance(module, NORM_TYPES):
                decay[name] = p  # weight matrices, conv kernels, embeddings
            else:
                no_decay[name] = p  # biases, gains, shifts, 1-D scales
    return [
        {"params": list(decay.values()), "param_names": list(decay),
         "weight_decay": weight_decay},
        {"params": list(no_decay.values()), "param_names": list(no_decay),
         "weight_decay": 0.0},
    ]
# --8<-- [end:build_param_groups]


# --8<-- [start:check_partition]
def check_partition(model: nn.Module, groups: list[dict]) -> None:
    """minGPT's two assertions: no parameter in two groups, and no
    trainable parameter in none; and no frozen one in any."""
    placed = [p for group in groups for p in group["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    in_two = len(placed) - len(set(placed))
    assert in_two == 0, f"{in_two} parameter(s) placed in more than one group"
    missing = set(trainable) - set(placed)
    shapes = [tuple(p.shape) for p in missing]
    assert not missing, (
        f"{len(missing)} trainable parameter(s) in no group: {shapes}")
    frozen = set(placed) - set(trainable)
    assert not frozen, (
        f"{len(frozen)} frozen or foreign parameter(s) placed in a group")
# --8<-- [end:check_partition]


# --8<-- [start:describe_groups]
def names_of(model: nn.Module, params) -> list[str]:
    """Names of some parameters, in the model's order (the study plan's
    groups carry no names)."""
    wanted = set(params)
    return [name for name, p in model.named_parameters() if p in wanted]


def describe_groups(model: nn.Module, groups: list[dict]) -> str:
    """Per group: its weight_decay, its tensors and scalars, their names."""
    lines = []
    for group in groups:
        params = group["params"]
        scalars = sum(p.numel() for p in params)
        lines.append(f"weight_decay={group['weight_decay']}: "
                     f"{len(params)} tensors, {scalars} scalars")
        names = ", ".join(names_of(model, params)) or "(none)"
        lines += textwrap.wrap(names, 76, initial_indent="  ",
                               subsequent_indent="  ")
    return "\n".join(lines)
# --8<-- [end:describe_groups]
