"""Whole-fen allocation of an amount over weights (lines of a basket), exact and deterministic. No I/O.

    allocate(T, [w1, ..., wn])  part_k = floor(T * (w1 + .. + wk) / W) - floor(T * (w1 + .. + wk-1) / W)
    times_half_up(A, n/d)       floor(A * n/d + 1/2) = (2 * A * n + d) // (2 * d): whole fen of an
                                amount times an exact ratio, halves up, in integers (no Fraction made)

The parts add up to T exactly (the last prefix is T), each is >= 0, and each is within one fen of
its exact proportion T * wk / W; with T <= W a part is never above its weight (floor(x) - floor(y)
<= ceil(x - y), and T * wk / W <= wk). The result depends only on the weights and their order, so
the same basket always gets the same allocation, on every replica and after every restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """`total` fen over `weights` (each >= 0) by prefix floors; all to nothing if every weight is 0
    (then `total` must be 0)."""
    whole = sum(weights)
    if total < 0 or min(weights, default=0) < 0:
        raise ValueError("amounts and weights are never negative")
    if whole == 0:
        if total:
            raise ValueError(f"cannot allocate {total} fen over nothing")
        return [0] * len(weights)
    parts = []
    before = prefix = 0
    for weight in weights:
        prefix += weight
        upto = total * prefix // whole
        parts.append(upto - before)
        before = upto
    return parts


def times_half_up(amount: int, ratio: Fraction) -> int:
    """round_half_up(amount * ratio), exactly, for a whole amount and an exact ratio."""
    denominator = ratio.denominator
    return (2 * amount * ratio.numerator + denominator) // (2 * denominator)
