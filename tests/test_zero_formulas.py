"""The ZeRO formulas (snippets/zero_formulas.py) against the paper's own numbers.

Rajbhandari et al. 2019 (arXiv 1910.02054), Figure 1: a 7.5 B-parameter model on 64 GPUs,
mixed-precision Adam (K = 12), costs each GPU 120 GB, 31.4 GB, 16.6 GB and 1.9 GB at stages
0 to 3; section 7: stages 1 and 2 move as much data as plain data parallelism (2Ψ per step),
stage 3 one and a half times as much (3Ψ).
"""

from __future__ import annotations

import pytest

from snippets.zero_formulas import (
    RECIPES, RankBytes, communication_per_step, paper_volume, shard, zero_bytes_per_rank,
)

PAPER_P, PAPER_N = 7_500_000_000, 64


@pytest.mark.claim("ZeRO's stages cost 120, 31.4, 16.6 and 1.9 GB per GPU for 7.5 B parameters "
                   "on 64 GPUs (the paper's Figure 1)", page="zero-fsdp.md#the-formula")
def test_the_formula_gives_the_papers_figure_1():
    gb = [zero_bytes_per_rank(PAPER_P, PAPER_N, stage, RECIPES["mixed"]).total / 1e9
          for stage in range(4)]
    assert [round(x, 1) for x in gb] == [120.0, 31.4, 16.6, 1.9]


def test_the_papers_closed_forms():
    """(2 + 2 + K)Ψ, 4Ψ + KΨ/N, 2Ψ + (2 + K)Ψ/N, (4 + K)Ψ/N with K = 12, for N dividing Ψ."""
    P, N, K = 1_000_000 * 64, 64, 12
    expected = [(4 + K) * P, 4 * P + K * P // N, 2 * P + (2 + K) * P // N, (4 + K) * P // N]
    assert [zero_bytes_per_rank(P, N, s, RECIPES["mixed"]).total for s in range(4)] == expected


def test_recipes_cost_16_16_and_8_bytes_a_parameter_unsharded():
    assert {name: r.params + r.grads + r.state for name, r in RECIPES.items()} == \
        {"fp32": 16, "mixed": 16, "bf16": 8}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_each_stage_shards_one_more_family(recipe):
    r, P, N = RECIPES[recipe], 1000, 4
    assert zero_bytes_per_rank(P, N, 0, r) == RankBytes(P * r.params, P * r.grads, P * r.state)
    assert zero_bytes_per_rank(P, N, 1, r) == RankBytes(P * r.params, P * r.grads, P // N * r.state)
    assert zero_bytes_per_rank(P, N, 2, r) == RankBytes(P * r.params, P // N * r.grads, P // N * r.state)
    assert zero_bytes_per_rank(P, N, 3, r) == RankBytes(P // N * r.params, P // N * r.grads,
                                                        P // N * r.state)


def test_one_rank_shards_nothing_and_uneven_counts_round_up():
    for stage in range(4):
        assert zero_bytes_per_rank(10, 1, stage, RECIPES["fp32"]).total == 160
    assert shard(10, 4) == 3  # padded to 12, cut in four
    assert zero_bytes_per_rank(10, 4, 3, RECIPES["fp32"]).total == 3 * 16


@pytest.mark.claim("Stages 1 and 2 move as much data as plain data parallelism, stage 3 one and a "
                   "half times as much (the paper's section 7)", page="zero-fsdp.md#what-is-communicated")
def test_communication_volume_2p_2p_2p_3p():
    P = 1000
    assert [paper_volume(communication_per_step(P, s)) for s in range(4)] == [2 * P] * 3 + [3 * P]
