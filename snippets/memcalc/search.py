"""The largest micro-batch that fits: one search for every face of the
calculator (the trace, the closed forms)."""

from __future__ import annotations

from collections.abc import Callable


def largest_that_fits(fits: Callable[[int], bool], limit: int) -> int:
    """The largest batch in 1..limit for which `fits(batch)` holds, given
    that memory grows with the batch; 0 when not even one fits. Doubles
    until a batch does not fit, then bisects."""
    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:            # fits(low) and not fits(high)
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low
