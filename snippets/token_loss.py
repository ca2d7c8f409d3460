"""Accumulating a token-level loss when micro-batches hold different numbers
of real tokens.

Labels equal to IGNORE_INDEX (padding) carry no loss. The big batch's loss is
the mean over its real tokens. Averaging each micro-batch's own token mean
(the Hugging Face Trainer's behaviour before October 2024) weighs a token by
1 / (K * n_k), which differs from micro-batch to micro-batch; the fix sums
token losses and divides by the token count N of the whole effective batch.
Under DDP, which averages gradients over ranks, N counts the tokens of every
rank and each rank multiplies by the world size.
"""

import contextlib

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index: padding


# --8<-- [start:token_count]
def token_count(labels: torch.Tensor) -> int:
    """Real (non-padding) tokens: the ones that carry a loss."""
    return int((labels != IGNORE_INDEX).sum())


def token_losses_sum(model: nn.Module, tokens, labels) -> torch.Tensor:
    logits = model(tokens)  # (batch, time, vocabulary)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(),
                           ignore_index=IGNORE_INDEX, reduction="sum")
# --8<-- [end:token_count]


# --8<-- [start:mean_of_means]
def mean_of_means_backward(model: nn.Module, micro_batches) -> float:
    """WRONG for token losses: each micro-batch's token mean, over K."""
    K = len(micro_batches)
    reported = 0.0
    for tokens, labels in micro_batches:
        logits = model(tokens).flatten(0, 1)
        # reduction="mean" divides by THIS micro-batch's token count n_k ...
        loss = F.cross_entropy(logits, labels.flatten(),
                               ignore_index=IGNORE_INDEX) / K
        loss.backward()  # ... a token weighs 1 / (K * n_k)
        reported += loss.item()
    return reported
# --8<-- [end:mean_of_means]


# --8<-- [start:token_weighted]
def token_weighted_backward(model: nn.Module, micro_batches) -> float:
    """RIGHT: every micro-batch's summed token loss, divided by the token
    count N of the whole effective batch."""
    # Count before the first backward: the step's micro-batches must all be
    # at hand (prefetched).
    N = sum(token_count(labels) for _, labels in micro_batches)
    reported = 0.0
    for tokens, labels in micro_batches:
        loss = token_losses_sum(model, tokens, labels) / N  # 1 / N a token
        loss.backward()
        reported += loss.item()
    return reported  # the big batch's mean token loss
# --8<-- [end:token_weighted]


# --8<-- [start:ddp_token_weighted]
def ddp_token_weighted_backward(ddp_model, micro_batches) -> float:
    """RIGHT under DistributedDataParallel, on every rank: DDP AVERAGES the
    ranks' gradients, so scale the summed token loss by world_size / N,
    with N the step's token count over all ranks."""
    world_size = dist.get_world_size()
    N = torch.tensor(sum(token_count(labels) for _, labels in micro_batches))
    dist.all_reduce(N)  # the sum over ranks, before the first backward
    K = len(micro_batches)
    reported = 0.0
    for i, (tokens, labels) in enumerate(micro_batches):
        last = i == K - 1
        with contextlib.nullcontext() if last else ddp_model.no_sync():
            loss = token_losses_sum(ddp_model, tokens, labels)
            loss = loss * world_size / N  # / N alone: 1 / world_size of it
            loss.backward()
        reported += loss.item()
    return reported / world_size  # this rank's share of the mean
# --8<-- [end:ddp_token_weighted]
