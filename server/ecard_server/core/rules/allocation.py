"""Whole-fen allocation of an amount over weights (lines of a basket), exact and deterministic. No I/O.

    allocate(T, [w1, ..., wn])  part_k = floor(T * (w1 + .. + wk) / W) - floor(T * (w1 + .. + wk-1) / W)

The parts add up to T exactly (the last prefix is T), each is >= 0, and each is within one fen of
its exact proportion T * wk / W; with T <= W a part is never above its weight (floor(x) - floor(y)
<= ceil(x - y), and T * wk / W <= wk). The result depends only on the weights and their order, so
the same basket always gets the same allocation, on every replica and after every restart.
"""

from __future__ import annotations

from collections.abc import Sequence


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """`total` fen over `weights` (each >= 0) by prefix floors; all to nothing if every weight is 0
    (then `total` must be 0)."""
    whole = sum(weights)
    if total < 0 or any(w < 0 for w in weights):
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
