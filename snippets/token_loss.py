"""Accumulating a token-level loss when micro-batches hold different numbers of real tokens.

Labels equal to IGNORE_INDEX (padding) carry no loss. The big batch's loss is the mean over its
real tokens. Averaging each micro-batch's own token mean (the Hugging Face Trainer's behaviour
before October 2024) weighs a token by 1 / (K · n_k), which differs from micro-batch to micro-batch;
the fix sums token losses and divides by the token count of the whole effective batch.
"""

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index; padding positions carry it


# --8<-- [start:token_count]
def token_count(labels: torch.Tensor) -> int:
    """Real (non-padding) tokens: the ones that carry a loss."""
    return int((labels != IGNORE_INDEX).sum())


def token_losses_sum(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = model(tokens)  # (batch, time, vocabulary)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
# --8<-- [end:token_count]


# --8<-- [start:mean_of_means]
def mean_of_means_backward(model: nn.Module, micro_batches) -> float:
    """WRONG for token losses: each micro-batch's token mean, divided by K."""
    K = len(micro_batches)
    reported = 0.0
    for tokens, labels in micro_batches:
        logits = model(tokens)
        # reduction="mean" divides by THIS micro-batch's token count n_k ...
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX) / K
        loss.backward()  # ... so a token weighs 1 / (K · n_k): more in a micro-batch with few tokens
        reported += loss.item()
    return reported
# --8<-- [end:mean_of_means]


# --8<-- [start:token_weighted]
def token_weighted_backward(model: nn.Module, micro_batches) -> float:
    """RIGHT: the summed token loss of every micro-batch, divided by the effective batch's token count."""
    # Count before the first backward: every micro-batch of the step must be at hand (prefetched).
    total_tokens = sum(token_count(labels) for _, labels in micro_batches)
    reported = 0.0
    for tokens, labels in micro_batches:
        loss = token_losses_sum(model, tokens, labels) / total_tokens  # every token weighs 1 / N
        loss.backward()
        reported += loss.item()
    return reported  # the big batch's mean token loss
# --8<-- [end:token_weighted]
