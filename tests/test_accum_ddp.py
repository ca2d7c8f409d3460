"""DDP no_sync with two real processes: two CPU ranks over gloo (snippets/ddp_no_sync.py).

Each rank takes half of one global batch and accumulates it in K = 4 micro-batches, three ways:
no_sync() around forward and backward of all but the last micro-batch (right), no_sync() around
the backward only (the trap), and every micro-batch inside no_sync() (no all-reduce at all).
The workers turn warnings into errors and destroy their process group; a free port is picked.
The demo's cost is counted in CPU seconds (its own and its ranks'), which other work on the machine
does not inflate as it does the wall clock.
"""

from __future__ import annotations

import resource

import pytest
import torch
import torch.distributed as dist

from snippets.accumulation import max_abs_difference
from snippets.ddp_no_sync import two_process_demo

K = 4


@pytest.fixture(scope="module")
def ranks():
    start = _cpu_seconds()
    results = two_process_demo(K=K, local_batch=8)
    return results, _cpu_seconds() - start


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the two ranks, once joined):
    unlike the wall clock, it does not grow when other work shares the cores."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def _noise(grads: list[torch.Tensor]) -> float:
    return 16 * torch.finfo(torch.float32).eps * max(g.abs().max().item() for g in grads)


@pytest.mark.claim("`no_sync` around forward and backward all-reduces once, after the last "
                   "micro-batch", page="grad-accumulation.md#no-sync")
def test_no_sync_all_reduces_once_after_the_last_micro_batch(ranks):
    results, _ = ranks
    for rank in results:
        assert rank["no_sync"]["allreduced_after"] == [K - 1]  # one bucket, reduced once


@pytest.mark.claim("`no_sync` around the backward only still all-reduces every micro-batch",
                   page="grad-accumulation.md#no-sync")
def test_no_sync_around_backward_only_still_all_reduces_every_micro_batch(ranks):
    results, _ = ranks
    for rank in results:
        assert rank["backward_only"]["allreduced_after"] == list(range(K))


@pytest.mark.claim("With `no_sync` both ranks end with the one-process big batch's gradient, "
                   "within rounding", page="grad-accumulation.md#no-sync")
def test_both_ranks_end_with_the_one_process_big_batch_gradient(ranks):
    results, _ = ranks
    zero, one = results
    for variant in ("no_sync", "backward_only"):
        # the all-reduce hands both ranks the very same tensor
        assert all(torch.equal(a, b) for a, b in zip(zero[variant]["grads"], one[variant]["grads"]))
        expected = zero["reference"]  # one process, both ranks' data at once
        assert max_abs_difference(zero[variant]["grads"], expected) < _noise(expected), variant


@pytest.mark.claim("Entirely inside `no_sync` each rank keeps its own, different sum",
                   page="grad-accumulation.md#no-sync")
def test_inside_no_sync_each_rank_keeps_its_own_sum(ranks):
    results, _ = ranks
    zero, one = results
    for rank in results:
        assert rank["all_local"]["allreduced_after"] == []
    expected = zero["reference"]
    # the two local sums differ (different data) ...
    assert max_abs_difference(zero["all_local"]["grads"], one["all_local"]["grads"]) > 1e3 * _noise(expected)
    # ... and their average, what the all-reduce would compute, is the big batch's gradient
    average = [(a + b) / 2 for a, b in zip(zero["all_local"]["grads"], one["all_local"]["grads"])]
    assert max_abs_difference(average, expected) < _noise(expected)


def test_the_demo_is_quick_and_leaves_no_process_group_behind(ranks):
    _, cpu_seconds = ranks
    assert cpu_seconds < 30  # about 7 CPU seconds, mostly two fresh imports of torch
    assert not dist.is_initialized()


# ---- the token-weighted loss across ranks (issue 8, item 13) -------------------------------------

@pytest.fixture(scope="module")
def token_ranks(ranks):
    results, _ = ranks
    return [rank["tokens"] for rank in results]  # the same two processes, K = 2 a rank


def test_ranks_hold_different_token_counts(token_ranks):
    assert [r["local_tokens"] for r in token_ranks] == [26, 5]


@pytest.mark.claim("Under DDP, the global token count times the world size gives the big batch's "
                   "gradient", page="grad-accumulation.md#token-counts")
def test_global_token_count_times_world_size_is_the_one_process_big_batch(token_ranks):
    """Each rank divides its summed token loss by the global N and multiplies by the world
    size; DDP's average over ranks then gives the single-process big batch's gradient."""
    zero, one = token_ranks
    expected = zero["reference"]
    assert all(torch.equal(a, b) for a, b in zip(zero["global_n_times_world_size"],
                                                 one["global_n_times_world_size"]))
    assert max_abs_difference(zero["global_n_times_world_size"], expected) < _noise(expected)


@pytest.mark.claim("Under DDP, the global token count alone gives 1/world size of the gradient",
                   page="grad-accumulation.md#token-counts")
def test_global_token_count_alone_gives_one_over_world_size(token_ranks):
    zero, _ = token_ranks
    expected = zero["reference"]
    half = [g / 2 for g in expected]
    assert max_abs_difference(zero["global_n_only"], half) < _noise(expected)
    ratio = torch.cat([g.flatten() for g in zero["global_n_only"]]).norm() / \
        torch.cat([g.flatten() for g in expected]).norm()
    assert ratio.item() == pytest.approx(0.5, rel=1e-5)


@pytest.mark.claim("Dividing by each rank's own token count repeats the mean-of-means bug across "
                   "ranks", page="grad-accumulation.md#token-counts")
def test_each_ranks_own_token_count_is_the_mean_of_means_bug_across_ranks(token_ranks):
    zero, _ = token_ranks
    expected = zero["reference"]
    assert max_abs_difference(zero["local_n"], expected) > 1e3 * _noise(expected)


# ---- with and without no_sync on two ranks (issue 23, item 6) -------------------------------------

@pytest.fixture(scope="module")
def two_rank_loops():
    from snippets.ddp_two_ranks import two_ranks
    return two_ranks(K=K, local_batch=8)


@pytest.mark.claim("On two ranks DDP's gradients with and without `no_sync` are equal within float32 "
                   "rounding, not bitwise (at world size 1 they are bitwise equal)",
                   page="grad-accumulation.md#no-sync")
def test_with_and_without_no_sync_agree_within_rounding_on_two_ranks(two_rank_loops):
    from snippets.ddp_two_ranks import LOOPS
    zero, one = two_rank_loops
    assert [zero[loop]["allreduced_after"] for loop in LOOPS] == [[K - 1], list(range(K))]
    for loop in LOOPS:
        assert one[loop]["allreduced_after"] == zero[loop]["allreduced_after"]
        assert all(torch.equal(a, b) for a, b in zip(zero[loop]["grads"], one[loop]["grads"]))
        assert max_abs_difference(zero[loop]["grads"], zero["reference"]) < _noise(zero["reference"])
    with_sync, without_sync = (zero[loop]["grads"] for loop in LOOPS)
    difference = max_abs_difference(with_sync, without_sync)
    assert 0 < difference < _noise(zero["reference"])  # a few roundings: the sums' order differs
