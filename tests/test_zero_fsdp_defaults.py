"""FSDP2's defaults and what a rank holds beyond the ZeRO formula (chapter 8), on one CPU process
as rank 0 of a fake world (snippets/fsdp2_defaults.py), under torch 2.13:

* `reshard_after_forward=None` reshards every unit after forward except the root, which stays
  gathered until backward;
* `MixedPrecisionPolicy(param_dtype=bf16)` alone reduce-scatters and (sync off) accumulates in
  bf16; with `reduce_dtype=fp32` both are fp32, and the page's measured bf16 row sets it;
* a unit's unsharded gradient is alive together with the reduce-scatter buffer it is copied into;
* AdamW without fused or capturable keeps `step` on the CPU, off the parameters' device;
* the page's citations of the ZeRO paper and of pytorch PR 179291.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import MixedPrecisionPolicy

from snippets import sharded_training
from snippets.captures import ROOT
from snippets.fsdp2_defaults import (
    accumulated_grad_dtypes, fake_ranks, gathered, reduce_scatter_copies, tiny_lm,
)

PAGE = ROOT / "docs" / "zero-fsdp.md"
WORLD = 8
TOKENS = torch.randint(0, 32, (16,), generator=torch.Generator().manual_seed(0))
ROOT_PARAMS = ["0.weight", "3.weight", "3.bias"]   # tiny_lm's embedding and head
BF16, FP32 = torch.bfloat16, torch.float32


@pytest.mark.claim("By default (reshard_after_forward=None) FSDP2 reshards every unit after forward "
                   "except the root, which stays gathered until backward",
                   page="zero-fsdp.md#what-pytorch-implements")
def test_the_root_unit_stays_gathered_from_forward_to_backward_by_default():
    with fake_ranks(WORLD):
        lm = tiny_lm()
        before = gathered(lm)
        logits = lm(TOKENS)
        after_forward = gathered(lm)
        logits.sum().backward()
        after_backward = gathered(lm)
        explicit = tiny_lm(reshard_after_forward=True)
        explicit(TOKENS)
        resharded = gathered(explicit)
    assert before == [] and after_forward == ROOT_PARAMS and after_backward == []
    assert resharded == []


@pytest.mark.claim("MixedPrecisionPolicy(param_dtype=bf16) alone reduce-scatters gradients in bf16 "
                   "and, with sync off, accumulates them in bf16; reduce_dtype=fp32 makes both fp32",
                   page="zero-fsdp.md#what-pytorch-implements")
@pytest.mark.parametrize("reduce_dtype, expected", [(None, BF16), (FP32, FP32)])
def test_reduce_and_accumulation_dtype_follow_reduce_dtype(reduce_dtype, expected):
    policy = MixedPrecisionPolicy(param_dtype=BF16, reduce_dtype=reduce_dtype)
    with fake_ranks(WORLD):
        lm = tiny_lm(mp_policy=policy)
        with reduce_scatter_copies() as copies:
            lm(TOKENS).sum().backward()
        lm.set_requires_gradient_sync(False)
        lm(TOKENS).sum().backward()
        accumulated = accumulated_grad_dtypes(lm)
    assert {grad for grad, _, _, _ in copies} == {BF16}       # computed in bf16
    assert {buffer for _, _, buffer, _ in copies} == {expected}
    assert accumulated == {expected}


def test_the_policy_defaults_reduce_in_the_compute_dtype():
    default = MixedPrecisionPolicy()
    assert (default.param_dtype, default.reduce_dtype) == (None, None)


@pytest.mark.claim("The page's FSDP2 bf16-compute row reduces in fp32 (reduce_dtype=torch.float32)",
                   page="zero-fsdp.md#what-pytorch-implements")
def test_the_measured_bf16_row_sets_reduce_dtype_fp32_and_the_page_says_so():
    policy = sharded_training.BF16_COMPUTE
    assert (policy.param_dtype, policy.reduce_dtype) == (BF16, FP32)
    text = PAGE.read_text(encoding="utf-8")
    assert "bf16-compute row also sets `reduce_dtype=torch.float32`" in text
    assert "| FSDP2, bf16 compute, fp32 reduce |" in text


@pytest.mark.claim("In backward a unit's unsharded gradient and the reduce-scatter buffer it is "
                   "copied into are alive together (2 × 64 MiB per unit at the planned size)",
                   page="zero-fsdp.md#on-the-gpu-not-measured-yet")
def test_a_units_gradient_and_its_reduce_scatter_buffer_coexist():
    with fake_ranks(WORLD):
        lm = tiny_lm()
        with reduce_scatter_copies() as copies:
            lm(TOKENS).sum().backward()
    unit = 4 * (16 * 16 + 16)                 # one fp32 Linear(16, 16)
    root = 4 * (32 * 16 + 16 * 32 + 32)       # embedding and head
    assert copies == [(FP32, unit, FP32, unit)] * 2 + [(FP32, root, FP32, root)]
    from examples.zero_fsdp import SIZES
    W = SIZES["full"]["width"]
    assert 2 * 4 * (W * W + W) / 2**20 == pytest.approx(128, abs=0.05)


def test_fake_ranks_refuses_to_stack_on_an_existing_group():
    with fake_ranks(2):
        with pytest.raises(RuntimeError, match="already exists"):
            with fake_ranks(2):
                pass
    assert not dist.is_initialized()


@pytest.mark.claim("AdamW without fused or capturable keeps its step counter on the CPU, whatever "
                   "the parameters' device", page="zero-fsdp.md#on-the-gpu-not-measured-yet")
@pytest.mark.parametrize("options", [{}, {"foreach": True}, {"foreach": False}])
def test_non_fused_adamw_keeps_step_on_the_cpu(options):
    w = nn.Parameter(torch.zeros(4, 4, device="meta"))
    w.grad = torch.zeros_like(w)
    adamw = torch.optim.AdamW([w], **options)
    adamw.step()
    devices = {key: t.device.type for key, t in adamw.state[w].items()}
    assert devices == {"step": "cpu", "exp_avg": "meta", "exp_avg_sq": "meta"}


def test_the_page_no_longer_says_the_allocator_counts_step_counters():
    text = PAGE.read_text(encoding="utf-8")
    assert "allocator counts step counters" not in text
    assert "Not AdamW's `step`\ncounters" in text or "Not AdamW's `step` counters" in text


def test_the_zero_paper_is_cited_where_its_stage_formulas_are():
    """Figure 1 and §5.1-§5.3 give the stages' memory; §3.1 the 2 + 2 + K bytes; §7 the traffic."""
    text = PAGE.read_text(encoding="utf-8")
    assert "the paper's Figure 1 and §5.1–§5.3" in text
    assert "section 3" not in text
    assert re.search(r"Figure 1 and §5\.1–§5\.3 \(the stages", text)
    source = (ROOT / "snippets" / "zero_formulas.py").read_text(encoding="utf-8")
    assert "Figure 1 and sections 5.1-5.3" in source and "section 3 and Figure 1" not in source


def test_pr_179291_is_described_as_what_it_is():
    """The PR (closed, not merged) proposed an atexit handler for processes that exit without
    destroy_process_group(); the page's scripts destroy their group and still skip the teardown."""
    text = " ".join(PAGE.read_text(encoding="utf-8").split())
    assert "PR 179291](https://github.com/pytorch/pytorch/pull/179291), closed without merging" in text
    assert "exits *without* `destroy_process_group()`" in text
    assert "describes the mechanism" not in text
