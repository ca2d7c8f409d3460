"""Two estimates people use, to compare with: accelerate's rule and the
per-layer activation formula of Korthikanti et al. (2022)."""

from __future__ import annotations


def accelerate_rule(parameters: int, itemsize: int) -> int:
    """`accelerate estimate-memory`: training with Adam takes 4 x the
    model's size in its dtype (weights, gradients, two moments); no
    activations, batch 1."""
    return 4 * parameters * itemsize


def korthikanti(parameters: int, layers: int, seq: int, batch: int,
                hidden: int, heads: int, checkpointing: str = "none") -> int:
    """16 bytes per parameter for mixed-precision Adam (ZeRO, §3) plus the
    activations of arXiv 2205.05198, Eq. 1 (16-bit, per layer:
    s·b·h·(34 + 5·a·s/h)); selective recompute drops the 5as/h term, full
    recompute keeps 2·s·b·h per layer."""
    sbh = seq * batch * hidden
    if checkpointing == "full":
        per_layer = 2 * sbh
    elif checkpointing == "selective":
        per_layer = 34 * sbh
    else:
        per_layer = 34 * sbh + 5 * heads * seq * seq * batch
    return 16 * parameters + layers * per_layer
