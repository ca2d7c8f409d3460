"""Per-rank bytes of ZeRO's stages 0-3, and what each stage communicates.

Rajbhandari et al. 2019 (arXiv 1910.02054) split data-parallel training
state into three families, parameters, gradients and optimizer state (their
section 3.1: 2 + 2 + K bytes a parameter, K = 12 for mixed-precision Adam),
and shard one more family at each stage across the N data-parallel ranks
(Figure 1 and sections 5.1-5.3, the per-device memory of each stage). A
family that is sharded costs each rank 1/N of it; a family that is not is
replicated: every rank holds all of it.

A precision recipe says how many bytes a parameter costs in each family.
`zero_bytes_per_rank` is the formula; tests/test_zero_formulas.py checks it
against the paper's own numbers, and tests/test_zero_sharded.py against the
bytes PyTorch's DDP, ZeroRedundancyOptimizer and fully_shard really hold.
"""

from __future__ import annotations

from typing import NamedTuple


# --8<-- [start:recipes]
class Recipe(NamedTuple):
    """Bytes per parameter of each family, with Adam or AdamW."""
    name: str
    params: int  # the weights forward and backward use
    grads: int
    state: int   # optimizer state: Adam's two moments, any master copy


RECIPES = {
    # everything fp32: 4 + 4 + (4 + 4) for exp_avg and exp_avg_sq
    "fp32": Recipe("fp32", 4, 4, 8),
    # the ZeRO paper's mixed precision: bf16 (or fp16) weights and
    # gradients, fp32 master weights + two fp32 moments: K = 12
    "mixed": Recipe("mixed", 2, 2, 12),
    # everything bf16, the moments too
    "bf16": Recipe("bf16", 2, 2, 4),
}
# --8<-- [end:recipes]


class RankBytes(NamedTuple):
    params: int
    grads: int
    state: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.state


# --8<-- [start:zero_bytes_per_rank]
def shard(numel: int, N: int) -> int:
    """Elements one of N ranks holds: a flat buffer padded to a multiple
    of N, cut in N equal pieces."""
    return -(-numel // N)  # ceil(numel / N)


def zero_bytes_per_rank(P: int, N: int, stage: int,
                        recipe: Recipe) -> RankBytes:
    """Persistent bytes on one of N ranks, P parameters, ZeRO `stage`.

    Stage 0 is plain data parallelism: every rank holds everything.
    Stage 1 shards the optimizer state, stage 2 the gradients too,
    stage 3 the parameters too."""
    def held(sharded: bool) -> int:
        return shard(P, N) if sharded else P
    return RankBytes(params=held(stage >= 3) * recipe.params,
                     grads=held(stage >= 2) * recipe.grads,
                     state=held(stage >= 1) * recipe.state)
# --8<-- [end:zero_bytes_per_rank]


# --8<-- [start:communication]
def communication_per_step(P: int, stage: int) -> dict[str, int]:
    """Elements each collective covers in one step (section 7 of the
    paper). A ring all-reduce costs a rank about 2(N-1)/N of its size,
    an all-gather or reduce-scatter (N-1)/N: the paper's 2P for data
    parallelism."""
    if stage <= 2:
        # stage 0: all-reduce the gradients. Stages 1-2: reduce-scatter
        # them (each rank needs only its shard's sum), all-gather the
        # updated parameters: the same volume.
        return ({"all-reduce": P} if stage == 0
                else {"reduce-scatter": P, "all-gather": P})
    # stage 3: gather each unit's parameters for forward and again for
    # backward, reduce-scatter its gradients: 1.5 times the volume.
    return {"all-gather": 2 * P, "reduce-scatter": P}


def paper_volume(collectives: dict[str, int]) -> int:
    """The paper's unit: an all-reduce counts twice (reduce-scatter, then
    all-gather); any other collective once."""
    return sum(2 * n if kind == "all-reduce" else n
               for kind, n in collectives.items())
# --8<-- [end:communication]
